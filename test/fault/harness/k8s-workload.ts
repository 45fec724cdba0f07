// W-K8s (faults.md §6.3): traffic shaped like kube-apiserver's (/work/shared/docs/kube-contract.md §3–§5, §7;
// etcd's client/v3/kubernetes and k8s.io/apiserver pkg/storage/etcd3), recorded in the checkers' history format:
//
// - object clients, a few per member, over pods `k/registry/pods/default/p<i>`, each with one outstanding request:
//   - Get: Range(key, limit 1);
//   - List: paginated Range(prefix, limit PAGE); later pages start at the last key + "\x00" and are pinned to the
//     first page's header revision (so they may get ErrCompacted, which ends the list, as kube turns it into 410);
//   - Update (GuaranteedUpdate → OptimisticPut): Txn if mod_revision(K) = R then Put else Range(K), R from the
//     client's cache of what it last read (kube's cacher passes a possibly stale object); on a conflict it retries
//     once with the mod_revision the Else branch returned; an absent object is created instead;
//   - Create: Txn if mod_revision(K) = 0 then Put, no Else (kube's Create sends exactly this: MOD, not CREATE);
//   - Delete (conditionalDelete → OptimisticDelete): Txn if mod_revision(K) = R then DeleteRange(K) else Range(K),
//     at most 3 in flight with the other non-unique writes (faults.md §5.4);
// - one compactor per member (one per "apiserver", so they contend as kube's do), kube's compact.go loop with the
//   interval scaled from 5 min to seconds: Txn if version(compact_rev_key) = t then Put(compact_rev_key, rev) else
//   Range(compact_rev_key); on success t+1 and Compact(rev) (except on bootstrap, rev 0); either way the header
//   revision becomes the next rev (so it compacts at the revision seen one interval earlier). compact_rev_key is
//   `k/compact_rev_key` so the collector watches (prefix k/) see it, and its value is "<rev>/<unique id>": kube
//   writes just the number, but the checkers need every Put value unique;
// - one ListAndWatch per member, like the cacher's reflector: a paginated List, then a Watch from its revision + 1
//   on the pods prefix with RequireLeader metadata (hasleader=true), prev_kv and progress_notify, RequestProgress
//   every 250 ms; when the watch ends (canceled on compaction, "etcdserver: no leader" after the member lost its
//   leader — expected with RequireLeader, not an anomaly —, or the member died) it lists and watches again. Each
//   watch is one WatchLog for the watch checks; why each ended is counted in `watchEnds`.
//
// Every write touches exactly one key, so every revision has one event (the watch checks' expectUniqueRevision).
// Values are unique; clients never retry a failed request; a failed write is indeterminate and its client takes a
// new id, as in ./workload.ts.

import * as grpc from '@grpc/grpc-js';
import { rawClient } from '../../helpers/member';
import { type Input, type KeyValue, type Output, prefixEnd, type RangeOutput, type TxnOutput } from '../checker/history';
import type { WatchLog } from '../checker/watch';
import { sleep } from './cluster';
import { type Rng } from './rng';
import { type Clock, KEY_PREFIX, type Recorder, toWatchResponse } from './workload';

export const PODS_PREFIX = `${KEY_PREFIX}registry/pods/default/`;
export const COMPACT_REV_KEY = `${KEY_PREFIX}compact_rev_key`;

export interface K8sWorkloadOptions {
  endpoints: string[];
  names: string[];
  clientsPerMember: number;
  /** Number of pod keys. */
  keys: number;
  /** Page size of the paginated lists (kube's default is 500; small here so lists have several pages). */
  pageSize: number;
  timeoutMs: number;
  thinkMs: [number, number];
  /** Compactor interval, ms: [min, max] (kube: --etcd-compaction-interval, 5 min). */
  compactEveryMs: [number, number];
  rng: Rng;
  clock: Clock;
}

type Kv = ReturnType<typeof rawClient>;

export class K8sWorkload {
  /** One per watch stream of the ListAndWatch loops. */
  readonly watchLogs: WatchLog[] = [];
  /** Why ListAndWatch watches ended: "no leader", "compacted", "stopped", or the error. */
  readonly watchEnds = new Map<string, number>();
  readonly keys: string[];
  private stopping = false;
  private loops: Promise<void>[] = [];
  private nonUniqueInFlight = 0;
  private readonly openWatches = new Set<() => void>();

  constructor(readonly recorder: Recorder, private readonly o: K8sWorkloadOptions) {
    this.keys = Array.from({ length: o.keys }, (_, i) => `${PODS_PREFIX}p${i}`);
  }

  start(): void {
    let n = 0;
    for (let m = 0; m < this.o.endpoints.length; m++) {
      for (let c = 0; c < this.o.clientsPerMember; c++) this.loops.push(this.objects(m, this.o.rng.fork(n++)));
      this.loops.push(this.compactor(m, this.o.rng.fork(n++)));
      this.loops.push(this.listAndWatch(m, this.o.rng.fork(n++)));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const end of this.openWatches) end();
    await Promise.all(this.loops);
  }

  /** A one-line account for the run summary. */
  describe(): string {
    const ends = [...this.watchEnds].map(([k, v]) => `${k} ×${v}`).join(', ');
    return `${this.watchLogs.length} ListAndWatch streams (RequireLeader, prev_kv, progress_notify); ended: ${ends || 'none'}`;
  }

  private note(reason: string): void {
    this.watchEnds.set(reason, (this.watchEnds.get(reason) ?? 0) + 1);
  }

  /** Runs a paginated List as kube's store.GetList does; returns the list's revision and items, or undefined. */
  private async list(client: number, kv: Kv, member: string): Promise<{ revision: number; kvs: KeyValue[] } | undefined> {
    const end = prefixEnd(PODS_PREFIX);
    const first = (await this.recorder.run(client, kv, member, { type: 'range', key: PODS_PREFIX, rangeEnd: end, limit: this.o.pageSize }, this.o.timeoutMs)) as RangeOutput | undefined;
    if (first === undefined || 'error' in first) return undefined;
    const kvs = [...first.kvs];
    let more = first.more;
    while (more && kvs.length > 0 && !this.stopping) {
      const input: Input = { type: 'range', key: kvs[kvs.length - 1]!.key + '\0', rangeEnd: end, revision: first.revision, limit: this.o.pageSize };
      const page = (await this.recorder.run(client, kv, member, input, this.o.timeoutMs)) as RangeOutput | undefined;
      if (page === undefined || 'error' in page) return undefined; // ErrCompacted: kube answers 410 and relists
      kvs.push(...page.kvs);
      more = page.more;
    }
    return { revision: first.revision, kvs };
  }

  private async objects(m: number, rng: Rng): Promise<void> {
    const kv = rawClient(this.o.endpoints[m]!, 'etcdserverpb', 'KV');
    const member = this.o.names[m]!;
    const tag = `${member}.${rng.int(0, 1e6)}`;
    const rec = this.recorder;
    let client = rec.newClientId();
    let seq = 0;
    // What this client last saw of each key: its mod_revision, 0 if absent.
    const cache = new Map<string, number>();
    const learn = (kvs: readonly KeyValue[], key?: string) => {
      if (key !== undefined) cache.set(key, 0);
      for (const x of kvs) cache.set(x.key, x.modRevision);
    };
    let failed = false;
    let failedWrite = false;
    const run = async (input: Input): Promise<Output | undefined> => {
      const out = await rec.run(client, kv, member, input, this.o.timeoutMs);
      if (out === undefined) {
        failed = true;
        if (input.type !== 'range') failedWrite = true;
      }
      return out;
    };
    const get = async (key: string): Promise<number | undefined> => {
      const out = (await run({ type: 'range', key, limit: 1 })) as RangeOutput | undefined;
      if (out === undefined) return undefined;
      learn(out.kvs, key);
      return cache.get(key);
    };
    // The failure branch's Range (kube's GetOnFailure) says what the object is now.
    const afterTxn = (key: string, out: TxnOutput): void => {
      if (out.succeeded) return;
      const r = out.responses?.[0];
      if (r?.type === 'range') learn(r.kvs, key);
      else cache.delete(key);
    };
    try {
      while (!this.stopping) {
        const key = rng.pick(this.keys);
        const r = rng.next();
        failed = failedWrite = false;
        if (r < 0.15) {
          await get(key);
        } else if (r < 0.3) {
          const l = await this.list(client, kv, member);
          if (l === undefined) failed = true;
          else for (const k of this.keys) cache.set(k, l.kvs.find((x) => x.key === k)?.modRevision ?? 0);
        } else if (r < 0.87) {
          let rev = cache.get(key) ?? (await get(key));
          const create = r >= 0.75 || rev === 0;
          if (create) {
            const out = (await run({
              type: 'txn',
              compare: [{ key, target: 'mod', op: '=', operand: 0 }],
              success: [{ type: 'put', key, value: `${tag}.${seq++}` }],
              failure: [],
            })) as TxnOutput | undefined;
            if (out?.succeeded) cache.set(key, out.revision);
            else if (out) cache.delete(key); // KeyExists: read it next time
          } else {
            // GuaranteedUpdate: one retry with what the conflict returned.
            for (let attempt = 0; attempt < 2 && rev !== undefined && rev !== 0 && !failed; attempt++) {
              const out = (await run({
                type: 'txn',
                compare: [{ key, target: 'mod', op: '=', operand: rev }],
                success: [{ type: 'put', key, value: `${tag}.${seq++}` }],
                failure: [{ type: 'range', key }],
              })) as TxnOutput | undefined;
              if (out === undefined) break;
              if (out.succeeded) {
                cache.set(key, out.revision);
                break;
              }
              afterTxn(key, out);
              rev = cache.get(key);
            }
          }
        } else {
          // Deletes are non-unique writes: keep at most 3 in flight (faults.md §5.4).
          if (this.nonUniqueInFlight >= 3) continue;
          const rev = cache.get(key) ?? (await get(key));
          if (rev === undefined || rev === 0) continue;
          this.nonUniqueInFlight++;
          try {
            const out = (await run({
              type: 'txn',
              compare: [{ key, target: 'mod', op: '=', operand: rev }],
              success: [{ type: 'delete', key }],
              failure: [{ type: 'range', key }],
            })) as TxnOutput | undefined;
            if (out?.succeeded) cache.set(key, 0);
            else if (out) afterTxn(key, out);
          } finally {
            this.nonUniqueInFlight--;
          }
        }
        if (failedWrite) client = rec.newClientId();
        await sleep(failed ? rng.int(100, 300) : rng.int(this.o.thinkMs[0], this.o.thinkMs[1]));
      }
    } finally {
      kv.close();
    }
  }

  /** kube's compactor (k8s.io/apiserver pkg/storage/etcd3/compact.go: compactor.run and compact). */
  private async compactor(m: number, rng: Rng): Promise<void> {
    const kv = rawClient(this.o.endpoints[m]!, 'etcdserverpb', 'KV');
    const member = this.o.names[m]!;
    const tag = `${member}.compactor.${rng.int(0, 1e6)}`;
    const rec = this.recorder;
    let client = rec.newClientId();
    let seq = 0;
    let compactTime = 0;
    let rev = 0;
    try {
      while (!this.stopping) {
        const until = Date.now() + rng.int(this.o.compactEveryMs[0], this.o.compactEveryMs[1]);
        while (!this.stopping && Date.now() < until) await sleep(100);
        if (this.stopping) break;
        const out = (await rec.run(client, kv, member, {
          type: 'txn',
          compare: [{ key: COMPACT_REV_KEY, target: 'version', op: '=', operand: compactTime }],
          success: [{ type: 'put', key: COMPACT_REV_KEY, value: `${rev}/${tag}.${seq++}` }],
          failure: [{ type: 'range', key: COMPACT_REV_KEY }],
        }, this.o.timeoutMs)) as TxnOutput | undefined;
        if (out === undefined) {
          client = rec.newClientId(); // kube keeps (t, rev) and tries again next interval
          continue;
        }
        const currentRev = out.revision;
        if (!out.succeeded) {
          // Another apiserver won this epoch: adopt its version, compact next time with the current revision.
          const r = out.responses?.[0];
          compactTime = r?.type === 'range' && r.kvs[0]?.version !== undefined ? r.kvs[0].version : compactTime;
          rev = currentRev;
          continue;
        }
        compactTime++;
        if (rev !== 0) {
          const c = await rec.run(client, kv, member, { type: 'compact', revision: rev }, this.o.timeoutMs);
          if (c === undefined) client = rec.newClientId();
        }
        rev = currentRev;
      }
    } finally {
      kv.close();
    }
  }

  /** The cacher's reflector: List, then Watch from the list's revision + 1; again whenever the watch ends. */
  private async listAndWatch(m: number, rng: Rng): Promise<void> {
    const endpoint = this.o.endpoints[m]!;
    const member = this.o.names[m]!;
    const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
    // Reads only: a failed one keeps the client id.
    const client = this.recorder.newClientId();
    try {
      while (!this.stopping) {
        const l = await this.list(client, kv, member);
        if (l === undefined) {
          await sleep(rng.int(200, 500));
          continue;
        }
        if (this.stopping) break;
        await this.watch(endpoint, member, l.revision + 1);
        if (!this.stopping) await sleep(rng.int(100, 300));
      }
    } finally {
      kv.close();
    }
  }

  private watch(endpoint: string, member: string, startRevision: number): Promise<void> {
    return new Promise((resolve) => {
      const end = prefixEnd(PODS_PREFIX);
      const log: WatchLog = {
        member,
        name: `${member}/listwatch#${this.watchLogs.length}`,
        request: { key: PODS_PREFIX, rangeEnd: end, startRevision, prevKv: true, progressNotify: true },
        responses: [],
      };
      this.watchLogs.push(log);
      const client = rawClient(endpoint, 'etcdserverpb', 'Watch');
      // clientv3.WithRequireLeader: the member cancels the stream when it has no leader.
      const md = new grpc.Metadata();
      md.set('hasleader', 'true');
      const stream = client.Watch(md);
      let done = false;
      const finish = (reason: string) => {
        if (done) return;
        done = true;
        this.note(reason);
        clearInterval(timer);
        this.openWatches.delete(stop);
        try {
          stream.cancel();
        } catch {
          // gone
        }
        client.close();
        resolve();
      };
      const stop = () => finish('stopped');
      this.openWatches.add(stop);
      stream.on('data', (r: any) => {
        const resp = toWatchResponse(r, this.o.clock.now());
        log.responses.push(resp);
        if (r.canceled) finish(resp.compactRevision ? 'compacted' : `canceled: ${r.cancel_reason || 'no reason'}`);
      });
      stream.on('error', (e: any) => {
        const m = String(e?.details ?? e?.message ?? e);
        finish(m.includes('no leader') ? 'no leader' : m.includes('No connection') || m.includes('ECONNREFUSED') || m.includes('UNAVAILABLE') ? 'member unreachable' : m);
      });
      stream.on('end', () => finish('stream ended'));
      stream.write({ create_request: { key: Buffer.from(PODS_PREFIX), range_end: Buffer.from(end), start_revision: startRevision, prev_kv: true, progress_notify: true } });
      const timer = setInterval(() => {
        try {
          stream.write({ progress_request: {} });
        } catch {
          finish('write failed');
        }
      }, 250);
    });
  }
}
