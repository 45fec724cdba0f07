// The workloads of a fault run, recorded in the checkers' history format (../checker/history.ts):
//
// - KvWorkload: a few clients per member, each with one outstanding request, over a handful of keys under `k/`:
//   Get, List (prefix), a read at a past revision, Put, Put with a lease, Delete, LeaseRevoke, a CAS (Get, then
//   Txn if mod_revision = observed then Put else Get) and a two-op Txn. Every Put value is unique. Clients never
//   retry. A failed write is recorded as indeterminate (ret = Infinity, output undefined) and its client continues
//   under a new id; a failed read is recorded with output undefined (the checkers drop it). `failedAt`/`error` keep
//   the error and when it came, for the timeline. The kube-apiserver-like workload is ./k8s-workload.ts.
// - Watchers: one per member, on the whole `k/` prefix from revision 1 with prev_kv and progress_notify, sending
//   RequestProgress now and then. When a stream breaks (member killed, partition) a new watch is started from the
//   last revision known delivered + 1; each stream is one WatchLog (../checker/watch.ts).
//
// Times are milliseconds since the run started, from one monotonic clock (process.hrtime).

import { rawClient } from '../../helpers/member';
import type { Compare, ErrorKind, Input, KeyValue, LeaseGrantOutput, Operation, Output, TxnRequestOp, TxnResponseOp } from '../checker/history';
import { prefixEnd } from '../checker/history';
import type { WatchEvent, WatchLog, WatchResponse } from '../checker/watch';
import { type Rng } from './rng';
import { sleep } from './cluster';

export const KEY_PREFIX = 'k/';

export interface HarnessOp extends Operation {
  /** The error message of a failed request. */
  error?: string;
  /** When the failure came back (ret is Infinity for a failed write). */
  failedAt?: number;
}

export class Clock {
  private readonly t0 = process.hrtime.bigint();
  now(): number {
    return Number(process.hrtime.bigint() - this.t0) / 1e6;
  }
}

const b = (s: string) => Buffer.from(s);
const str = (x: Buffer | string | undefined) => (x === undefined ? '' : Buffer.isBuffer(x) ? x.toString() : String(x));

export function toKv(x: any): KeyValue {
  return {
    key: str(x.key),
    value: str(x.value),
    modRevision: Number(x.mod_revision),
    createRevision: Number(x.create_revision),
    version: Number(x.version),
    lease: BigInt(x.lease ?? 0),
  };
}

/** A WatchResponse as the gRPC client decoded it, in the checker's form (received at `time`, if given). */
export function toWatchResponse(r: any, time?: number): WatchResponse {
  const resp: WatchResponse = {
    revision: Number(r.header?.revision ?? 0),
    events: (r.events ?? []).map((e: any): WatchEvent => ({
      type: e.type === 1 || e.type === 'DELETE' ? 'delete' : 'put',
      kv: toKv(e.kv),
      prevKv: e.prev_kv ? toKv(e.prev_kv) : null,
    })),
    created: r.created || undefined,
    canceled: r.canceled || undefined,
    compactRevision: Number(r.compact_revision ?? 0) || undefined,
  };
  if (time !== undefined) resp.time = time;
  return resp;
}

const CMP_RESULT = { '=': 0, '>': 1, '<': 2, '!=': 3 } as const;
const CMP_TARGET = { version: 0, create: 1, mod: 2, value: 3, lease: 4 } as const;

function requestOp(o: TxnRequestOp): object {
  switch (o.type) {
    case 'range':
      return { request_range: { key: b(o.key), range_end: o.rangeEnd === undefined ? undefined : b(o.rangeEnd), revision: o.revision ?? 0, limit: o.limit ?? 0 } };
    case 'put':
      return { request_put: { key: b(o.key), value: b(o.value), lease: String(o.lease ?? 0n) } };
    case 'delete':
      return { request_delete_range: { key: b(o.key), range_end: o.rangeEnd === undefined ? undefined : b(o.rangeEnd) } };
  }
}

function compareReq(c: Compare): object {
  const r: any = { result: CMP_RESULT[c.op], target: CMP_TARGET[c.target], key: b(c.key) };
  if (c.target === 'mod') r.mod_revision = c.operand;
  else if (c.target === 'create') r.create_revision = c.operand;
  else if (c.target === 'version') r.version = c.operand;
  else if (c.target === 'value') r.value = b(String(c.operand));
  else r.lease = String(c.operand);
  return r;
}

/** The definite domain errors the history records as outputs (history.ts ErrorKind); anything else is a failure. */
function errorKind(err: any): ErrorKind | undefined {
  const m = String(err?.details ?? err?.message ?? '');
  if (m.includes('has been compacted')) return 'compacted';
  if (m.includes('future revision')) return 'future';
  if (m.includes('requested lease not found')) return 'lease-not-found';
  return undefined;
}

/** Long enough that no lease expires during a run: expiry is not modelled (model.ts). */
export const LEASE_TTL_S = 600;

/** Sends one request (to a KV client; to a Lease client for the lease requests) and converts the answer to the
 * history's Output. */
export async function execute(client: any, input: Input, timeoutMs: number): Promise<Output> {
  try {
    return await send(client, input, timeoutMs);
  } catch (err) {
    // ErrCompacted and ErrFutureRev (a past-revision read, a compaction) and "lease not found" (a Put with a
    // revoked lease, a second revoke) are definite answers, not failures.
    const kind = errorKind(err);
    if (kind) return { error: kind };
    throw err;
  }
}

/** `client` is a KV client, or a Lease client for LeaseGrant and LeaseRevoke. */
async function send(client: any, input: Input, timeoutMs: number): Promise<Output> {
  const call = <T = any>(m: string, req: object) =>
    new Promise<T>((resolve, reject) => client[m](req, { deadline: Date.now() + timeoutMs }, (e: any, r: T) => (e ? reject(e) : resolve(r))));
  switch (input.type) {
    case 'range': {
      const r = await call('Range', { key: b(input.key), range_end: input.rangeEnd === undefined ? undefined : b(input.rangeEnd), revision: input.revision ?? 0, limit: input.limit ?? 0 });
      return { revision: Number(r.header.revision), kvs: r.kvs.map(toKv), count: Number(r.count), more: Boolean(r.more) };
    }
    case 'put': {
      const r = await call('Put', { key: b(input.key), value: b(input.value), lease: String(input.lease ?? 0n) });
      return { revision: Number(r.header.revision) };
    }
    case 'delete': {
      const r = await call('DeleteRange', { key: b(input.key), range_end: input.rangeEnd === undefined ? undefined : b(input.rangeEnd) });
      return { revision: Number(r.header.revision), deleted: Number(r.deleted) };
    }
    case 'txn': {
      const r = await call('Txn', { compare: input.compare.map(compareReq), success: input.success.map(requestOp), failure: input.failure.map(requestOp) });
      const responses: TxnResponseOp[] = r.responses.map((x: any): TxnResponseOp => {
        if (x.response_range) return { type: 'range', kvs: x.response_range.kvs.map(toKv), count: Number(x.response_range.count), more: Boolean(x.response_range.more) };
        if (x.response_delete_range) return { type: 'delete', deleted: Number(x.response_delete_range.deleted) };
        return { type: 'put' };
      });
      return { revision: Number(r.header.revision), succeeded: Boolean(r.succeeded), responses };
    }
    case 'compact': {
      const r = await call('Compact', { revision: input.revision, physical: false });
      return { revision: Number(r.header.revision) };
    }
    case 'leaseGrant': {
      const r = await call('LeaseGrant', { ID: String(input.id), TTL: LEASE_TTL_S });
      return { revision: Number(r.header.revision), id: BigInt(r.ID) } satisfies LeaseGrantOutput;
    }
    case 'leaseRevoke': {
      const r = await call('LeaseRevoke', { ID: String(input.id) });
      return { revision: Number(r.header.revision) };
    }
  }
}

/** The history: every operation of every client, appended as they return. */
export class Recorder {
  readonly ops: HarnessOp[] = [];
  private nextClient = 0;
  constructor(readonly clock: Clock) {}
  newClientId(): number {
    return this.nextClient++;
  }
  /** Runs one request as `client` and records it; returns the output, or undefined if it failed. */
  async run(client: number, kv: any, member: string, input: Input, timeoutMs: number): Promise<Output | undefined> {
    const call = this.clock.now();
    try {
      const output = await execute(kv, input, timeoutMs);
      this.ops.push({ client, call, ret: this.clock.now(), input, output, member });
      return output;
    } catch (err: any) {
      const failedAt = this.clock.now();
      const write = input.type !== 'range';
      this.ops.push({ client, call, ret: write ? Infinity : failedAt, input, output: undefined, member, error: String(err?.details ?? err?.message ?? err), failedAt });
      return undefined;
    }
  }
}

export interface KvWorkloadOptions {
  endpoints: string[];
  names: string[];
  clientsPerMember: number;
  keys: number;
  timeoutMs: number;
  /** Pause between a client's requests, ms: [min, max]. */
  thinkMs: [number, number];
  rng: Rng;
}

export class KvWorkload {
  private stopping = false;
  private loops: Promise<void>[] = [];
  private nonUniqueInFlight = 0;
  readonly keys: string[];

  constructor(readonly recorder: Recorder, private readonly o: KvWorkloadOptions) {
    this.keys = Array.from({ length: o.keys }, (_, i) => `${KEY_PREFIX}${i}`);
  }

  start(): void {
    let n = 0;
    for (let m = 0; m < this.o.endpoints.length; m++) {
      for (let c = 0; c < this.o.clientsPerMember; c++, n++) this.loops.push(this.loop(m, this.o.rng.fork(n), n));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async loop(m: number, rng: Rng, n: number): Promise<void> {
    const kv = rawClient(this.o.endpoints[m]!, 'etcdserverpb', 'KV');
    const leases = rawClient(this.o.endpoints[m]!, 'etcdserverpb', 'Lease');
    const member = this.o.names[m]!;
    const tag = `${member}.${rng.int(0, 1e6)}`;
    let client = this.recorder.newClientId();
    let seq = 0;
    // The newest header revision this client has seen: past-revision reads go up to 50 below it.
    let lastRevision = 1;
    // This client's lease, granted with an ID of its own (unique in the run, so an indeterminate grant is modelled
    // by its ID), used by its puts with a lease until it revokes it. After a failed grant or revoke the client
    // never uses that ID again: an unreferenced lease cannot be observed, so patch.ts may drop the grant.
    let lease: bigint | undefined;
    let leaseSeq = 0;
    const rec = this.recorder;
    const t = this.o.timeoutMs;
    const run = async (input: Input): Promise<Output | undefined> => {
      const out = await rec.run(client, input.type === 'leaseGrant' || input.type === 'leaseRevoke' ? leases : kv, member, input, t);
      const r = (out as { revision?: number } | undefined)?.revision;
      if (r !== undefined && r > lastRevision) lastRevision = r;
      return out;
    };
    // Deletes and revokes are non-unique writes: keep at most 3 in flight (faults.md §5.4).
    const nonUnique = async (input: Input): Promise<Output | undefined | 'skipped'> => {
      if (this.nonUniqueInFlight >= 3) return 'skipped';
      this.nonUniqueInFlight++;
      try {
        return await run(input);
      } finally {
        this.nonUniqueInFlight--;
      }
    };
    try {
      while (!this.stopping) {
        const key = rng.pick(this.keys);
        const value = () => `${tag}.${seq++}`;
        const r = rng.next();
        let failedWrite = false;
        let failed = false;
        if (r < 0.25) {
          failed = (await run({ type: 'range', key })) === undefined;
        } else if (r < 0.33) {
          failed = (await run({ type: 'range', key: KEY_PREFIX, rangeEnd: prefixEnd(KEY_PREFIX) })) === undefined;
        } else if (r < 0.43) {
          // A read at a past revision (etcd's StaleGet/StaleList): ErrCompacted once a compaction passed it.
          const revision = Math.max(1, lastRevision - rng.int(0, 50));
          const range = rng.next() < 0.5 ? { key } : { key: KEY_PREFIX, rangeEnd: prefixEnd(KEY_PREFIX) };
          failed = (await run({ type: 'range', ...range, revision })) === undefined;
        } else if (r < 0.62) {
          failed = failedWrite = (await run({ type: 'put', key, value: value() })) === undefined;
        } else if (r < 0.69) {
          if (lease === undefined) {
            const id = BigInt(n + 1) * 1_000_000n + BigInt(leaseSeq++);
            const out = await run({ type: 'leaseGrant', id });
            if (out === undefined) failed = failedWrite = true;
            else if (!('error' in out)) lease = id;
          }
          if (lease !== undefined) failed = failedWrite = (await run({ type: 'put', key, value: value(), lease })) === undefined;
        } else if (r < 0.73) {
          const out = await nonUnique({ type: 'delete', key });
          if (out === 'skipped') continue;
          failed = failedWrite = out === undefined;
        } else if (r < 0.76) {
          if (lease === undefined) continue;
          const out = await nonUnique({ type: 'leaseRevoke', id: lease });
          if (out === 'skipped') continue;
          lease = undefined;
          failed = failedWrite = out === undefined;
        } else if (r < 0.9) {
          const got = (await run({ type: 'range', key })) as { kvs: KeyValue[] } | undefined;
          if (got === undefined) failed = true;
          else {
            const mod = got.kvs[0]?.modRevision ?? 0;
            const out = await run({
              type: 'txn',
              compare: [{ key, target: 'mod', op: '=', operand: mod }],
              success: [{ type: 'put', key, value: value() }],
              failure: [{ type: 'range', key }],
            });
            failed = failedWrite = out === undefined;
          }
        } else {
          const other = rng.pick(this.keys);
          const out = await run({
            type: 'txn',
            compare: [],
            success: [{ type: 'put', key, value: value() }, { type: 'range', key: other }],
            failure: [],
          });
          failed = failedWrite = out === undefined;
        }
        if (failedWrite) client = rec.newClientId();
        // After a failure, back off a little so a dead member is not hammered.
        await sleep(failed ? rng.int(100, 300) : rng.int(this.o.thinkMs[0], this.o.thinkMs[1]));
      }
    } finally {
      kv.close();
      leases.close();
    }
  }
}

/** One watcher per member: a chain of watch streams on the whole key prefix, from revision 1. */
export class Watcher {
  readonly logs: WatchLog[] = [];
  /** Highest revision known delivered on this member's watch (last event or progress notification). */
  delivered = 0;
  private stopping = false;
  private current: { client: any; stream: any } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly endpoint: string, readonly member: string, private readonly clock: Clock, private readonly progressEveryMs = 500) {}

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.stream(this.delivered + 1);
      if (!this.stopping) await sleep(300);
    }
  }

  private stream(startRevision: number): Promise<void> {
    return new Promise((resolve) => {
      const log: WatchLog = {
        member: this.member,
        name: `${this.member}#${this.logs.length}`,
        request: { key: KEY_PREFIX, rangeEnd: prefixEnd(KEY_PREFIX), startRevision, prevKv: true, progressNotify: true },
        responses: [],
      };
      this.logs.push(log);
      const client = rawClient(this.endpoint, 'etcdserverpb', 'Watch');
      const stream = client.Watch();
      this.current = { client, stream };
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(this.timer);
        this.current = undefined;
        try {
          stream.cancel();
        } catch {
          // gone
        }
        client.close();
        resolve();
      };
      stream.on('data', (r: any) => {
        const resp = toWatchResponse(r, this.clock.now());
        const events = resp.events;
        log.responses.push(resp);
        if (events.length > 0) this.delivered = Math.max(this.delivered, events[events.length - 1]!.kv.modRevision);
        else if (!r.created && !r.canceled && resp.revision > 0) this.delivered = Math.max(this.delivered, resp.revision);
        if (r.canceled) {
          // Started below the compaction: go on from the compact revision (a new WatchLog).
          if (resp.compactRevision) this.delivered = Math.max(this.delivered, resp.compactRevision - 1);
          finish();
        }
      });
      stream.on('error', () => finish());
      stream.on('end', () => finish());
      stream.write({ create_request: { key: b(KEY_PREFIX), range_end: b(prefixEnd(KEY_PREFIX)), start_revision: startRevision, prev_kv: true, progress_notify: true } });
      this.timer = setInterval(() => {
        try {
          stream.write({ progress_request: {} });
        } catch {
          finish();
        }
      }, this.progressEveryMs);
    });
  }

  /** Waits until the watch delivered `revision` (or timeoutMs), then stops. */
  async stopAt(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.delivered < revision && Date.now() < deadline) await sleep(100);
    this.stopping = true;
    const c = this.current;
    if (c) {
      try {
        c.stream.cancel();
      } catch {
        // gone
      }
    }
    await this.loop;
    return this.delivered >= revision;
  }
}

/** A one-off watch from revision 1 on one member, collected until `upTo`: the committed history (or why not). */
export function collectFromRevision1(endpoint: string, upTo: number, timeoutMs: number): Promise<{ responses: WatchResponse[]; error?: string }> {
  return new Promise((resolve) => {
    const client = rawClient(endpoint, 'etcdserverpb', 'Watch');
    const stream = client.Watch();
    const responses: WatchResponse[] = [];
    let last = 0;
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        stream.cancel();
      } catch {
        // gone
      }
      client.close();
      resolve({ responses, error });
    };
    const timer = setTimeout(() => finish(`timed out at revision ${last} of ${upTo}`), timeoutMs);
    stream.on('data', (r: any) => {
      const resp = toWatchResponse(r);
      responses.push(resp);
      const events = resp.events;
      if (r.canceled) return finish(`canceled (compact revision ${r.compact_revision})`);
      if (events.length) last = events[events.length - 1]!.kv.modRevision;
      if (last >= upTo) finish();
    });
    stream.on('error', (e: any) => finish(String(e?.details ?? e)));
    stream.write({ create_request: { key: b(KEY_PREFIX), range_end: b(prefixEnd(KEY_PREFIX)), start_revision: 1 } });
    if (upTo <= 1) setTimeout(() => finish(), 200);
  });
}
