// kube: the traffic a busy Kubernetes control plane sends its etcd, in the shapes kube-apiserver uses
// (shared/docs/kube-contract.md §3-§7). The mix and why it looks like this are documented in bench/README.md.
//
// Objects live under /registry/<resource>/<namespace>/<name> with opaque protobuf-like values ("k8s\0" + bytes):
// pods (status updates, churn), node leases (kubelet heartbeats), configmaps, and events (created with a lease,
// never updated). Every client owns a slice of the objects, as a kubelet owns its node and its pods, so conflicts
// come from stale caches: --conflict-rate of first update attempts use a stale mod_revision (the apiserver passes
// its watch-cache copy to GuaranteedUpdate), fail, and are retried with the revision the failure branch returned.
//
// Operations (weights in --mix; one operation may be several requests):
//   lease-update, pod-update, configmap-update   Txn MOD(key)==rev → Put, else Range(key); retried on conflict
//   event-create                                 Txn MOD(key)==0 → Put with a lease (LeaseGrant TTL 3660 per 1000)
//   pod-churn                                    create a pod (MOD==0) or delete one (MOD==rev → Delete, else Range)
//   get                                          Range(key, limit 1), linearizable
//   list                                         every pod, pages of --page-size: first at revision 0, the rest
//                                                pinned to the first page's revision, from lastKey+"\0"
// Watchers: --watch-streams streams per resource (one per apiserver), each a prefix watch with prev_kv and
// progress_notify from the revision after the preload, with a progress_request every --progress-interval (kube's
// ConditionalProgressRequester while a consistent read waits). Delivery latency = event arrival - write response.

import { openConnections, type BidiStream, type Transport } from '../lib/conn';
import type { Flags } from '../lib/flags';
import { currentRevision } from '../lib/runner';
import { paths, pb, encode, int64Text, toNumber } from '../lib/proto';
import { nowUs, prefixEnd, prng, randBytes, sleep } from '../lib/util';
import type { Workload } from '../lib/workload';
import { bytes, decodeRange, decodeTxn, rangeRequest, txnRequest } from './common';
import { decodeWatchResponse } from './watch-latency';

const resources = ['pods', 'leases', 'configmaps', 'events'] as const;
type Resource = (typeof resources)[number];

const defaultMix = 'lease-update=30,pod-update=25,event-create=15,pod-churn=10,configmap-update=5,get=10,list=5';
const opNames = ['lease-update', 'pod-update', 'configmap-update', 'event-create', 'pod-churn', 'get', 'list'] as const;
type OpName = (typeof opNames)[number];

interface Prepared {
  /** [key, mod_revision] of every preloaded object, by resource. */
  objects: Record<'pods' | 'leases' | 'configmaps', Array<[string, number]>>;
  startRev: number;
  /** Makes this run's new object names unique when several runs share a store. */
  runId: string;
}

interface Obj {
  key: Buffer;
  rev: number;
}

interface Teardown {
  /** Flat [revision, responseUs] of every successful write in the measured window. */
  acks: number[];
  /** Flat [revision, arrivalUs] of every event delivered to a watcher. */
  arrivals: number[];
  streams: number;
}

const ignore = (): void => undefined;

function parseMix(text: string): Array<[OpName, number]> {
  const out: Array<[OpName, number]> = [];
  for (const part of text.split(',')) {
    const [name, weight] = part.split('=');
    if (!opNames.includes(name as OpName)) throw new Error(`--mix: unknown operation "${name}" (known: ${opNames.join(', ')})`);
    const w = Number(weight);
    if (!(w >= 0)) throw new Error(`--mix: bad weight for ${name}`);
    out.push([name as OpName, w]);
  }
  return out;
}

function value(size: number): Buffer {
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), randBytes(Math.max(0, size - 4))]);
}

function objectKey(resource: Resource, namespaces: number, i: number, name: string): string {
  if (resource === 'leases') return `/registry/leases/kube-node-lease/${name}`;
  return `/registry/${resource}/ns-${String(i % namespaces).padStart(3, '0')}/${name}`;
}

function createTxn(key: Buffer, val: Buffer, lease: string = '0'): Buffer {
  return txnRequest([{ key, modRevision: 0 }], [{ put: { key, value: val, lease } }]);
}

export const kube: Workload = {
  name: 'kube',
  summary: 'A kube-apiserver-like mix: CAS creates/updates/deletes, paginated lists, prefix watchers',
  flags: [
    { name: 'namespaces', kind: 'int', default: 50, help: 'Namespaces the objects are spread over' },
    { name: 'pods', kind: 'int', default: 2000, help: 'Pods preloaded (churn keeps the count steady)' },
    { name: 'nodes', kind: 'int', default: 200, help: 'Node leases preloaded' },
    { name: 'configmaps', kind: 'int', default: 500, help: 'ConfigMaps preloaded' },
    { name: 'pod-size', kind: 'int', default: 4096, help: 'Pod value size' },
    { name: 'lease-size', kind: 'int', default: 300, help: 'Node lease value size' },
    { name: 'configmap-size', kind: 'int', default: 2048, help: 'ConfigMap value size' },
    { name: 'event-size', kind: 'int', default: 1024, help: 'Event value size' },
    { name: 'page-size', kind: 'int', default: 500, help: 'List page size (kube default limit 500)' },
    { name: 'watch-streams', kind: 'int', default: 3, help: 'Watch streams per resource (apiservers)' },
    { name: 'progress-interval', kind: 'duration', default: 100, help: 'progress_request period per watch stream (0 = none)' },
    { name: 'conflict-rate', kind: 'float', default: 0.05, help: 'Share of first update/delete attempts sent with a stale mod_revision' },
    { name: 'mix', kind: 'string', default: defaultMix, help: 'Operation weights' },
  ],
  needsFinalRev: true,
  async prepare(flags: Flags, endpoints: string[]): Promise<Prepared> {
    parseMix(flags.str('mix'));
    const ns = flags.int('namespaces');
    const plan: Array<['pods' | 'leases' | 'configmaps', string, Buffer]> = [];
    const podValue = value(flags.int('pod-size'));
    const leaseValue = value(flags.int('lease-size'));
    const cmValue = value(flags.int('configmap-size'));
    for (let i = 0; i < flags.int('pods'); i++) plan.push(['pods', objectKey('pods', ns, i, `pod-${String(i).padStart(6, '0')}`), podValue]);
    for (let i = 0; i < flags.int('nodes'); i++) plan.push(['leases', objectKey('leases', ns, i, `node-${String(i).padStart(5, '0')}`), leaseValue]);
    for (let i = 0; i < flags.int('configmaps'); i++) plan.push(['configmaps', objectKey('configmaps', ns, i, `cm-${String(i).padStart(5, '0')}`), cmValue]);
    const conns = await openConnections(Array.from({ length: 4 }, (_, i) => endpoints[i % endpoints.length]!), flags.str('transport') as Transport);
    const objects: Prepared['objects'] = { pods: [], leases: [], configmaps: [] };
    try {
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async (_, c) => {
          const conn = conns[c % conns.length]!;
          while (next < plan.length) {
            const [res, key, val] = plan[next++]!;
            const d = decodeTxn(await conn.unary(paths.txn, createTxn(Buffer.from(key), val)));
            if (d.succeeded) {
              objects[res].push([key, d.revision]);
              continue;
            }
            // Left by an earlier run against the same store: take it as it is.
            const existing = decodeRange(await conn.unary(paths.range, rangeRequest({ key: Buffer.from(key), limit: 1 }))).kvs[0];
            if (existing !== undefined) objects[res].push([key, existing.modRevision]);
          }
        }),
      );
    } finally {
      for (const c of conns) c.close();
    }
    // Keep each resource in key order so ownership by index is stable.
    for (const r of ['pods', 'leases', 'configmaps'] as const) objects[r].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    // Watchers start after everything that exists now, as a watch cache starts after its initial list.
    return { objects, startRev: await currentRevision(endpoints[0]!), runId: Date.now().toString(36) };
  },

  async setup(ctx) {
    const { flags, recorder } = ctx;
    const prepared = ctx.prepared as Prepared;
    const mix = parseMix(flags.str('mix'));
    const mixTotal = mix.reduce((a, [, w]) => a + w, 0);
    const ns = flags.int('namespaces');
    const conflictRate = flags.num('conflict-rate');
    const pageSize = flags.int('page-size');
    const values = {
      pods: value(flags.int('pod-size')),
      leases: value(flags.int('lease-size')),
      configmaps: value(flags.int('configmap-size')),
      events: value(flags.int('event-size')),
    };
    const podsPrefix = Buffer.from('/registry/pods/');
    const podsEnd = prefixEnd(podsPrefix);
    const acks: number[] = [];
    const t = pb();

    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      const rand = prng(flags.int('seed') * 15485863 + ci);
      const own = (r: 'pods' | 'leases' | 'configmaps'): Obj[] =>
        prepared.objects[r].filter((_, j) => j % ctx.totalClients === ci).map(([k, rev]) => ({ key: Buffer.from(k), rev }));
      const pods = own('pods');
      const leases = own('leases');
      const configmaps = own('configmaps');
      const initialPods = pods.length;
      let podSeq = 0;
      let eventSeq = 0;
      // Lease IDs are int64 and usually above 2^53: kept as decimal text, never as a number.
      let lease = { id: '0', uses: 0 };
      const pick = <T>(list: T[]): T | undefined => list[Math.floor(rand() * list.length)];

      const ack = (rev: number, t0: number, t1: number): void => {
        if (t0 >= recorder.measureStartUs) acks.push(rev, t1);
      };

      /** GuaranteedUpdate / conditionalDelete: CAS on mod_revision, retried with the failure branch's revision. */
      const cas = async (obj: Obj, op: 'update' | 'delete', val: Buffer): Promise<boolean> => {
        for (let attempt = 0; attempt < 10; attempt++) {
          const stale = attempt === 0 && rand() < conflictRate;
          const success = op === 'update' ? [{ put: { key: obj.key, value: val } }] : [{ deleteRange: { key: obj.key } }];
          const req = txnRequest([{ key: obj.key, modRevision: stale ? obj.rev - 1 : obj.rev }], success, [{ range: { key: obj.key } }]);
          const t0 = nowUs();
          let res: Buffer;
          try {
            res = await conn.unary(paths.txn, req);
          } catch (err) {
            recorder.fail(op, err);
            return false;
          }
          const t1 = nowUs();
          recorder.record(op, t0, t1);
          const d = decodeTxn(res);
          if (d.succeeded) {
            obj.rev = d.revision;
            ack(d.revision, t0, t1);
            return true;
          }
          const current = d.rangeKvs?.[0];
          if (current === undefined) {
            recorder.count('not-found');
            return false;
          }
          recorder.count('conflicts');
          obj.rev = current.modRevision;
        }
        recorder.count('gave-up');
        return false;
      };

      const create = async (key: Buffer, val: Buffer, leaseId: string): Promise<number> => {
        const t0 = nowUs();
        let res: Buffer;
        try {
          res = await conn.unary(paths.txn, createTxn(key, val, leaseId));
        } catch (err) {
          recorder.fail('create', err);
          return 0;
        }
        const t1 = nowUs();
        recorder.record('create', t0, t1);
        const d = decodeTxn(res);
        if (!d.succeeded) {
          recorder.count('already-exists');
          return 0;
        }
        ack(d.revision, t0, t1);
        return d.revision;
      };

      const ops: Record<OpName, () => Promise<void>> = {
        'lease-update': async () => {
          const o = pick(leases) ?? pick(pods);
          if (o) await cas(o, 'update', leases.length > 0 ? values.leases : values.pods);
        },
        'pod-update': async () => {
          const o = pick(pods);
          if (o) await cas(o, 'update', values.pods);
        },
        'configmap-update': async () => {
          const o = pick(configmaps) ?? pick(pods);
          if (o) await cas(o, 'update', configmaps.length > 0 ? values.configmaps : values.pods);
        },
        'event-create': async () => {
          // kube's leaseManager: one lease (TTL 3660 s = 1 h + reuse) for up to 1000 objects.
          if (lease.id === '0' || lease.uses >= 1000) {
            const res = await recorder.time('lease-grant', () => conn.unary(paths.leaseGrant, encode(t.LeaseGrantRequest, { TTL: 3660 })));
            if (res === undefined) return;
            lease = { id: int64Text((t.LeaseGrantResponse.decode(res) as unknown as { ID: unknown }).ID), uses: 0 };
          }
          lease.uses++;
          const key = Buffer.from(objectKey('events', ns, eventSeq, `ev-${prepared.runId}-${ci}-${eventSeq}`));
          eventSeq++;
          await create(key, values.events, lease.id);
        },
        'pod-churn': async () => {
          // Deletes the oldest pod above the starting count, creates below it, and either at it: the count stays put.
          const remove = pods.length > initialPods || (pods.length === initialPods && pods.length > 0 && rand() < 0.5);
          if (remove) {
            const victim = pods.shift()!;
            if (!(await cas(victim, 'delete', values.pods))) recorder.count('delete-failed');
          } else {
            const key = Buffer.from(objectKey('pods', ns, podSeq, `pod-${prepared.runId}-c${ci}-${podSeq}`));
            podSeq++;
            const rev = await create(key, values.pods, '0');
            if (rev > 0) pods.push({ key, rev });
          }
        },
        get: async () => {
          const o = pick(pods) ?? pick(leases);
          if (o) await recorder.time('get', () => conn.unary(paths.range, rangeRequest({ key: o.key, limit: 1 })));
        },
        list: async () => {
          let key = podsPrefix;
          let rev = 0;
          for (let page = 0; page < 10_000; page++) {
            const res = await recorder.time('list-page', () => conn.unary(paths.range, rangeRequest({ key, rangeEnd: podsEnd, limit: pageSize, revision: rev })));
            if (res === undefined) return;
            const d = decodeRange(res);
            if (rev === 0) rev = d.revision;
            const last = d.kvs[d.kvs.length - 1];
            if (!d.more || last === undefined) break;
            key = Buffer.concat([last.key, Buffer.from([0])]);
          }
          recorder.count('lists');
        },
      };

      return async (): Promise<void> => {
        let x = rand() * mixTotal;
        for (const [name, w] of mix) {
          x -= w;
          if (x < 0) return ops[name]();
        }
      };
    });

    // Watchers: stream k watches resource k mod 4, on client k mod clients.
    const arrivals: number[] = [];
    const streams: Array<{ stream: BidiStream; lastRev: number; timer: NodeJS.Timeout | null }> = [];
    const streamCount = resources.length * flags.int('watch-streams');
    const progressMs = flags.int('progress-interval');
    const progressRequest = bytes(t.WatchRequest.encode({ progress_request: {} }).finish());
    for (let k = 0; k < streamCount; k++) {
      const client = k % ctx.totalClients;
      if (!ctx.clientIndices.includes(client)) continue;
      const resource = resources[k % resources.length]!;
      const prefix = Buffer.from(`/registry/${resource}/`);
      const stream = ctx.connOf(client).bidi(paths.watch);
      const st = { stream, lastRev: 0, timer: null as NodeJS.Timeout | null };
      streams.push(st);
      let created: (() => void) | null = null;
      const createdP = new Promise<void>((resolve) => (created = resolve));
      stream.on('data', (b: Buffer) => {
        const at = nowUs();
        const r = decodeWatchResponse(b);
        if (r.created) {
          created?.();
          return;
        }
        if (r.canceled) {
          recorder.count('watch-canceled');
          return;
        }
        if (r.events.length === 0) {
          recorder.count('progress-notifications');
          st.lastRev = Math.max(st.lastRev, toNumber(r.header?.revision));
          return;
        }
        for (const ev of r.events) {
          const rev = toNumber(ev.kv?.mod_revision);
          const isCreate = ev.type === 0 && toNumber(ev.kv?.create_revision) === rev;
          if (!isCreate && (ev.prev_kv === null || ev.prev_kv === undefined)) recorder.count('prevkv-missing');
          arrivals.push(rev, at);
          st.lastRev = Math.max(st.lastRev, rev);
        }
        recorder.count('watch-events', r.events.length);
      });
      stream.on('error', ignore);
      stream.write(
        bytes(
          t.WatchRequest.encode({
            create_request: { key: prefix, range_end: prefixEnd(prefix), start_revision: prepared.startRev + 1, prev_kv: true, progress_notify: true },
          }).finish(),
        ),
      );
      await createdP;
      if (progressMs > 0) st.timer = setInterval(() => stream.write(progressRequest), progressMs);
    }

    return {
      steps,
      async teardown(finalRev: number): Promise<Teardown> {
        // Every watcher has seen everything once a progress notification (or event) reaches the final revision.
        const deadline = nowUs() + 10_000_000;
        const behind = (): number => streams.filter((s) => s.lastRev < finalRev).length;
        while (behind() > 0 && nowUs() < deadline) {
          if (progressMs === 0) for (const s of streams) s.stream.write(progressRequest);
          await sleep(progressMs === 0 ? 50 : 5);
        }
        recorder.count('watch-streams-behind', behind());
        for (const s of streams) {
          if (s.timer) clearInterval(s.timer);
          s.stream.cancel();
        }
        return { acks, arrivals, streams: streams.length };
      },
    };
  },

  finish(workerData) {
    const ackAt = new Map<number, number>();
    for (const w of workerData as Teardown[]) for (let i = 0; i < w.acks.length; i += 2) ackAt.set(w.acks[i]!, w.acks[i + 1]!);
    const delivery: number[] = [];
    let streams = 0;
    for (const w of workerData as Teardown[]) {
      streams += w.streams;
      for (let i = 0; i < w.arrivals.length; i += 2) {
        const acked = ackAt.get(w.arrivals[i]!);
        if (acked !== undefined) delivery.push(Math.max(0, w.arrivals[i + 1]! - acked));
      }
    }
    return { histogramsUs: { 'watch-delivery': delivery }, notes: { watchStreams: streams } };
  },
};

