// Test support: histories that are linearizable by construction, from a sequential simulation of the etcd model
// with random concurrency windows, plus the committed history and watch logs that go with them. The checkers'
// randomized tests accept these and must reject them after one planted mutation.
//
// Construction: operations take effect one at a time at increasing instants L (the linearization points). Each
// gets a client that is idle at L, a call in [L - window, L] after that client's previous return, and a return
// in [L, L + window]. Some writes fail: their return becomes +∞ and their output unknown, and they either take
// effect at L or never; their client retires (a new client id takes over, as the harness does).

import { Xoshiro128 } from '../../../src/util/prng';
import {
  type Compare,
  type Input,
  type KeyValue,
  type LeaseId,
  type Operation,
  type Output,
  prefixEnd,
} from './history';
import { apply, EtcdState } from './model';
import { type CommittedEvent, type CommittedRevision, Replay } from './replay';
import type { WatchLog, WatchRequest, WatchResponse } from './watch';

export class Rng {
  private readonly x: Xoshiro128;
  constructor(seed: number) {
    this.x = new Xoshiro128(seed);
  }
  intn(n: number): number {
    return this.x.intn(n);
  }
  chance(p: number): boolean {
    return this.x.intn(1_000_000) < p * 1_000_000;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.intn(a.length)]!;
  }
}

export interface SimOptions {
  seed: number;
  operations: number;
  /** Concurrently active clients. */
  clients?: number;
  keys?: number;
  /** Maximum distance of call and return from the linearization point (time units; points are 10 apart). */
  window?: number;
  /** Probability that a write fails (indeterminate). */
  indeterminate?: number;
  leases?: boolean;
}

export interface Simulation {
  history: Operation[];
  committed: CommittedRevision[];
  final: EtcdState;
  keys: string[];
}

export function simulate(o: SimOptions): Simulation {
  const rng = new Rng(o.seed);
  const nClients = o.clients ?? 5;
  const nKeys = o.keys ?? 10;
  const window = o.window ?? 30;
  const pFail = o.indeterminate ?? 0.05;
  const keys = Array.from({ length: nKeys }, (_, i) => `/k/${String(i).padStart(2, '0')}`);
  let state = EtcdState.empty();
  const history: Operation[] = [];
  const committed: CommittedRevision[] = [];
  // Slots of concurrently active clients: [client id, busy until].
  const slots = Array.from({ length: nClients }, (_, i) => ({ client: i, busyUntil: -1 }));
  let nextClient = nClients;
  let nextValue = 0;
  let nextLease = 1n;
  const leases: LeaseId[] = [];
  let L = 0;

  const randomInput = (): Input => {
    const key = rng.pick(keys);
    const r = rng.intn(100);
    if (r < 25) return { type: 'range', key };
    if (r < 33) return { type: 'range', key: '/k/', rangeEnd: prefixEnd('/k/'), limit: rng.chance(0.3) ? 1 + rng.intn(4) : undefined };
    if (r < 38) return { type: 'range', key, revision: 1 + rng.intn(state.revision) };
    if (r < 60) return { type: 'put', key, value: `v${nextValue++}` };
    if (r < 66) return { type: 'delete', key };
    if (r < 80) {
      // CAS on mod_revision: usually the current one, sometimes stale.
      const cur = state.keys.get(key)?.modRevision ?? 0;
      const expect = rng.chance(0.7) ? cur : Math.max(0, cur - 1 - rng.intn(3));
      const c: Compare = { key, target: 'mod', op: '=', operand: expect };
      return { type: 'txn', compare: [c], success: [{ type: 'put', key, value: `v${nextValue++}` }], failure: [{ type: 'range', key }] };
    }
    if (r < 86) {
      const key2 = rng.pick(keys);
      const cur = state.keys.get(key)?.value;
      const c: Compare = { key, target: 'value', op: '=', operand: cur !== undefined && rng.chance(0.7) ? cur : `v${rng.intn(nextValue + 1)}` };
      const success = key2 === key ? [{ type: 'put' as const, key, value: `v${nextValue++}` }] :
        [{ type: 'put' as const, key, value: `v${nextValue++}` }, { type: 'delete' as const, key: key2 }];
      return { type: 'txn', compare: [c], success, failure: [] };
    }
    if (!o.leases || r < 90) return { type: 'put', key, value: `v${nextValue++}` };
    if (r < 93) {
      const id = nextLease++;
      return { type: 'leaseGrant', id };
    }
    if (r < 98 && leases.length) return { type: 'put', key, value: `v${nextValue++}`, lease: rng.pick(leases) };
    if (leases.length) return { type: 'leaseRevoke', id: rng.pick(leases) };
    return { type: 'range', key };
  };

  for (let n = 0; n < o.operations; n++) {
    L += 10;
    let free = slots.filter((s) => s.busyUntil < L);
    if (free.length === 0) {
      L = Math.min(...slots.map((s) => s.busyUntil)) + 1;
      free = slots.filter((s) => s.busyUntil < L);
    }
    const slot = rng.pick(free);
    const call = Math.max(slot.busyUntil + 1, L - rng.intn(window + 1));
    const ret = L + rng.intn(window + 1);
    const input = randomInput();
    if (input.type === 'leaseGrant') leases.push(input.id);
    const isWrite = input.type !== 'range';
    const fails = isWrite && rng.chance(pFail);
    const takesEffect = !fails || rng.chance(0.5);
    const before = state;
    const r = apply(state, input);
    if (takesEffect) state = r.state;
    if (state.revision > before.revision) {
      committed.push({ revision: state.revision, events: diff(before, state) });
    }
    if (fails) {
      history.push({ client: slot.client, call, ret: Infinity, input, output: undefined });
      slot.client = nextClient++;
      slot.busyUntil = call;
    } else {
      const output = { ...r.output } as Output & { pastRead?: true };
      if (output.pastRead) {
        // A read at a past revision: the simulation knows the state then.
        const rin = input as Extract<Input, { type: 'range' }>;
        const past = stateAt(committed, rin.revision!);
        const full = apply(past, { ...rin, revision: past.revision }).output as { kvs: KeyValue[]; count: number; more: boolean };
        Object.assign(output, { kvs: full.kvs, count: full.count, more: full.more });
        delete output.pastRead;
      }
      history.push({ client: slot.client, call, ret, input, output });
      slot.busyUntil = ret;
    }
  }
  return { history, committed, final: state, keys };
}

function diff(before: EtcdState, after: EtcdState): CommittedEvent[] {
  const out: CommittedEvent[] = [];
  const all = new Set([...before.keys.keys(), ...after.keys.keys()]);
  for (const k of [...all].sort()) {
    const a = after.keys.get(k);
    if (a && a.modRevision === after.revision) out.push({ type: 'put', key: k, value: a.value, lease: a.lease });
    else if (!a && before.keys.has(k)) out.push({ type: 'delete', key: k });
  }
  return out;
}

/** The state at a revision, rebuilt from the committed history (slow; test support only). */
function stateAt(committed: readonly CommittedRevision[], rev: number): EtcdState {
  const replay = new Replay(committed.filter((c) => c.revision <= rev));
  return replay.snapshot(rev, replay.keys);
}

/**
 * A correct watch log for `request` over the committed history: a created response at `createdRevision`, events
 * from the first expected revision up to `upTo`, a few revisions per response, progress notifications in between
 * when requested.
 */
export function watchLog(replay: Replay, request: WatchRequest, opts: { rng: Rng; createdRevision: number; upTo?: number; member?: string }): WatchLog {
  const responses: WatchResponse[] = [{ revision: opts.createdRevision, events: [], created: true }];
  const from = request.startRevision ? request.startRevision : opts.createdRevision + 1;
  const upTo = opts.upTo ?? replay.lastRevision;
  let batch: WatchResponse | undefined;
  for (let rev = Math.max(from, 2); rev <= upTo; rev++) {
    const evs = replay.eventsAt(rev).filter((e) => {
      if (e.key < request.key) return false;
      if (request.rangeEnd === undefined) return e.key === request.key;
      if (request.rangeEnd !== '\0' && e.key >= request.rangeEnd) return false;
      if (e.type === 'put' && request.filters?.includes('noput')) return false;
      if (e.type === 'delete' && request.filters?.includes('nodelete')) return false;
      return true;
    });
    if (evs.length) {
      if (!batch || opts.rng.chance(0.4)) {
        batch = { revision: Math.max(rev, Math.min(upTo, rev + opts.rng.intn(3))), events: [] };
        responses.push(batch);
      }
      batch.revision = Math.max(batch.revision, rev);
      for (const e of evs) {
        batch.events.push({
          type: e.type,
          kv: e.type === 'put' ? { ...e.kv! } : { key: e.key, value: '', modRevision: rev },
          ...(request.prevKv ? { prevKv: e.prevKv ? { ...e.prevKv } : null } : {}),
        });
      }
    }
    if (request.progressNotify && rev >= from - 1 && opts.rng.chance(0.1)) {
      responses.push({ revision: rev, events: [] });
      batch = undefined;
    }
  }
  if (request.progressNotify && upTo >= from - 1) responses.push({ revision: upTo, events: [] });
  return { member: opts.member, request, responses };
}
