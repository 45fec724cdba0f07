// The sequential etcd model the linearizability checker steps through (faults.md §2.7; etcd's
// tests/robustness/model/deterministic.go, in our own words).
//
// State: the global revision (1 on an empty store), the compaction revision, per key {value, mod_revision,
// create_revision, version, lease}, and the set of live leases. A state is immutable: `apply` returns a new state
// (or the same object when nothing changed) and never mutates its argument, as WGL requires.
//
// Rules (etcd 3.4/3.5):
// - every txn that writes something (Put, DeleteRange that deletes, Txn whose branch writes, LeaseRevoke that
//   deletes keys) adds exactly 1 to the revision; all its writes share that revision;
// - a Put sets mod_revision = the new revision, keeps create_revision and adds 1 to version, or starts a key at
//   create_revision = mod_revision and version 1; it attaches the key to its lease (or detaches it);
// - a Put naming a lease that does not exist fails with "lease not found" (a whole txn fails);
// - Range at revision 0 reads the latest state; at r > current it fails ErrFutureRev, at r < compact revision
//   ErrCompacted; at a past revision only the header is checked here (the content is the revision oracle's job,
//   which has the full history) unless r is the current revision;
// - LeaseGrant never changes the revision; LeaseRevoke deletes the lease's keys in one revision;
// - Compact(r): r <= compact revision → ErrCompacted, r > current → ErrFutureRev, else compact revision = r;
// - every response's header revision is the revision after the request.
// Not modelled: lease expiry (the harness uses long TTLs), auth, serializable ranges.

import {
  type Compare,
  type Input,
  inRange,
  isError,
  type KeyValue,
  type LeaseGrantOutput,
  type LeaseId,
  type Output,
  type PutInput,
  type RangeInput,
  type RangeOutput,
  type TxnOutput,
  type TxnRequestOp,
  type TxnResponseOp,
} from './history';

export interface KeyState {
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: LeaseId;
}

export class EtcdState {
  /** Lazily computed. */
  private hashValue: number | undefined;
  /** Keys in sorted order, lazily computed. */
  private sorted: string[] | undefined;
  constructor(
    readonly revision: number,
    readonly compactRevision: number,
    readonly keys: ReadonlyMap<string, KeyState>,
    readonly leases: ReadonlySet<LeaseId>,
  ) {}

  static empty(): EtcdState {
    return new EtcdState(1, 0, new Map(), new Set());
  }

  sortedKeys(): string[] {
    if (!this.sorted) this.sorted = [...this.keys.keys()].sort();
    return this.sorted;
  }

  hash(): number {
    if (this.hashValue === undefined) {
      let h = mix(mix(0x811c9dc5, this.revision), this.compactRevision);
      // Order-independent over keys and leases, so equal maps built in different orders hash alike.
      let acc = 0;
      for (const [k, v] of this.keys) {
        let e = strHash(k);
        e = mix(e, strHash(v.value));
        e = mix(e, v.modRevision);
        e = mix(e, v.createRevision);
        e = mix(e, v.version);
        e = mix(e, Number(v.lease & 0xffffffffn));
        acc = (acc + e) | 0;
      }
      h = mix(h, acc);
      let la = 0;
      for (const l of this.leases) la = (la + mix(0x9e3779b9, Number(l & 0xffffffffn))) | 0;
      this.hashValue = mix(h, la);
    }
    return this.hashValue;
  }

  equals(o: EtcdState): boolean {
    if (this === o) return true;
    if (this.revision !== o.revision || this.compactRevision !== o.compactRevision) return false;
    if (this.keys.size !== o.keys.size || this.leases.size !== o.leases.size) return false;
    for (const [k, v] of this.keys) {
      const w = o.keys.get(k);
      if (!w) return false;
      if (v.value !== w.value || v.modRevision !== w.modRevision || v.createRevision !== w.createRevision) return false;
      if (v.version !== w.version || v.lease !== w.lease) return false;
    }
    for (const l of this.leases) if (!o.leases.has(l)) return false;
    return true;
  }

  describe(): string {
    const kvs = this.sortedKeys().map((k) => {
      const v = this.keys.get(k)!;
      return `${k}=${JSON.stringify(v.value)}(mod ${v.modRevision}, create ${v.createRevision}, ver ${v.version}${v.lease ? `, lease ${v.lease}` : ''})`;
    });
    const leases = [...this.leases].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `rev ${this.revision}${this.compactRevision ? ` compact ${this.compactRevision}` : ''} {${kvs.join(', ')}}${leases.length ? ` leases [${leases.join(', ')}]` : ''}`;
  }
}

export function mix(h: number, x: number): number {
  h = Math.imul(h ^ (x | 0), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

export function strHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/** The keys of `state` in the range, in key order. */
export function keysInRange(state: EtcdState, key: string, rangeEnd: string | undefined): string[] {
  if (rangeEnd === undefined || rangeEnd === '') return state.keys.has(key) ? [key] : [];
  return state.sortedKeys().filter((k) => inRange(k, key, rangeEnd));
}

export function toKeyValue(key: string, v: KeyState): KeyValue {
  return { key, value: v.value, modRevision: v.modRevision, createRevision: v.createRevision, version: v.version, lease: v.lease };
}

function compareHolds(state: EtcdState, c: Compare): boolean {
  const kv = state.keys.get(c.key);
  let actual: number | string | bigint;
  if (!kv) {
    // etcd applyCompare: a value compare on a missing key always fails; other targets compare against zero.
    if (c.target === 'value') return false;
    actual = c.target === 'lease' ? 0n : 0;
  } else {
    switch (c.target) {
      case 'mod': actual = kv.modRevision; break;
      case 'create': actual = kv.createRevision; break;
      case 'version': actual = kv.version; break;
      case 'value': actual = kv.value; break;
      case 'lease': actual = kv.lease; break;
    }
  }
  const operand = c.operand;
  switch (c.op) {
    case '=': return actual === operand;
    case '!=': return actual !== operand;
    case '<': return actual < operand;
    case '>': return actual > operand;
  }
}

/** The model's answer to a request, before comparing it with the recorded output. */
export type ModelOutput = Output & { pastRead?: true };

/**
 * Applies one request to a state. Returns the next state and the response the model gives. A read at a past
 * revision (not the current one) yields `pastRead: true`: only its header revision is meaningful.
 */
export function apply(state: EtcdState, input: Input): { state: EtcdState; output: ModelOutput } {
  switch (input.type) {
    case 'range': {
      if (input.revision && input.revision > state.revision) return { state, output: { error: 'future' } };
      if (input.revision && input.revision < state.compactRevision) return { state, output: { error: 'compacted' } };
      if (input.revision && input.revision !== state.revision) return { state, output: { revision: state.revision, kvs: [], pastRead: true } };
      const r = readRange(state, input);
      return { state, output: { revision: state.revision, kvs: r.kvs, count: r.count, more: r.more } };
    }
    case 'put':
    case 'delete':
      return applyTxn(state, { type: 'txn', compare: [], success: [input], failure: [] }, true);
    case 'txn':
      return applyTxn(state, input, false);
    case 'leaseGrant': {
      if (input.id === 0n || state.leases.has(input.id)) return { state, output: { revision: state.revision, id: input.id } };
      const leases = new Set(state.leases);
      leases.add(input.id);
      return { state: new EtcdState(state.revision, state.compactRevision, state.keys, leases), output: { revision: state.revision, id: input.id } };
    }
    case 'leaseRevoke': {
      if (!state.leases.has(input.id)) return { state, output: { error: 'lease-not-found' } };
      const leases = new Set(state.leases);
      leases.delete(input.id);
      let keys: Map<string, KeyState> | undefined;
      for (const [k, v] of state.keys) {
        if (v.lease !== input.id) continue;
        if (!keys) keys = new Map(state.keys);
        keys.delete(k);
      }
      const revision = keys ? state.revision + 1 : state.revision;
      return { state: new EtcdState(revision, state.compactRevision, keys ?? state.keys, leases), output: { revision } };
    }
    case 'compact': {
      if (input.revision <= state.compactRevision) return { state, output: { error: 'compacted' } };
      if (input.revision > state.revision) return { state, output: { error: 'future' } };
      return { state: new EtcdState(state.revision, input.revision, state.keys, state.leases), output: { revision: state.revision } };
    }
  }
}

function readRange(state: EtcdState, r: RangeInput): { kvs: KeyValue[]; count: number; more: boolean } {
  const keys = keysInRange(state, r.key, r.rangeEnd);
  const limited = r.limit && r.limit > 0 && keys.length > r.limit ? keys.slice(0, r.limit) : keys;
  return { kvs: limited.map((k) => toKeyValue(k, state.keys.get(k)!)), count: keys.length, more: limited.length < keys.length };
}

function applyTxn(state: EtcdState, txn: { type: 'txn'; compare: Compare[]; success: TxnRequestOp[]; failure: TxnRequestOp[] }, single: boolean): { state: EtcdState; output: ModelOutput } {
  const succeeded = txn.compare.every((c) => compareHolds(state, c));
  const ops = succeeded ? txn.success : txn.failure;
  // A Put naming a missing lease fails the whole request before anything is applied (etcd checkTxnReqs /
  // checkPutReq in the applier).
  for (const op of ops) if (op.type === 'put' && op.lease && !state.leases.has(op.lease)) return { state, output: { error: 'lease-not-found' } };
  const revision = state.revision + 1; // if anything is written
  let keys: Map<string, KeyState> | undefined;
  const responses: TxnResponseOp[] = [];
  let deletedTotal = 0;
  for (const op of ops) {
    const cur: ReadonlyMap<string, KeyState> = keys ?? state.keys;
    if (op.type === 'range') {
      // A read inside a txn sees the txn's earlier writes (etcd applies a txn's ops in order).
      const view = keys ? new EtcdState(revision, state.compactRevision, keys, state.leases) : state;
      const r = readRange(view, op);
      responses.push({ type: 'range', kvs: r.kvs, count: r.count, more: r.more });
    } else if (op.type === 'put') {
      keys ??= new Map(state.keys);
      keys.set(op.key, putKey(cur.get(op.key), op, revision));
      responses.push({ type: 'put' });
    } else {
      const view = keys ? new EtcdState(revision, state.compactRevision, keys, state.leases) : state;
      const victims = keysInRange(view, op.key, op.rangeEnd);
      if (victims.length > 0) {
        keys ??= new Map(state.keys);
        for (const k of victims) keys.delete(k);
      }
      deletedTotal += victims.length;
      responses.push({ type: 'delete', deleted: victims.length });
    }
  }
  const wrote = ops.some((o) => o.type === 'put') || deletedTotal > 0;
  const next = wrote ? new EtcdState(revision, state.compactRevision, keys!, state.leases) : state;
  if (single) {
    const only = ops[0]!;
    if (only.type === 'delete') return { state: next, output: { revision: next.revision, deleted: deletedTotal } };
    return { state: next, output: { revision: next.revision } };
  }
  return { state: next, output: { revision: next.revision, succeeded, responses } };
}

function putKey(prev: KeyState | undefined, op: PutInput, revision: number): KeyState {
  return {
    value: op.value,
    modRevision: revision,
    createRevision: prev ? prev.createRevision : revision,
    version: prev ? prev.version + 1 : 1,
    lease: op.lease ?? 0n,
  };
}

/** Compares a recorded KeyValue with the model's; undefined optional fields in `got` are not compared. */
export function kvMatches(want: KeyValue, got: KeyValue): boolean {
  if (want.key !== got.key || want.value !== got.value || want.modRevision !== got.modRevision) return false;
  if (got.createRevision !== undefined && got.createRevision !== want.createRevision) return false;
  if (got.version !== undefined && got.version !== want.version) return false;
  if (got.lease !== undefined && (got.lease ?? 0n) !== (want.lease ?? 0n)) return false;
  return true;
}

export function kvsMatch(want: readonly KeyValue[], got: readonly KeyValue[]): boolean {
  if (want.length !== got.length) return false;
  for (let i = 0; i < want.length; i++) if (!kvMatches(want[i]!, got[i]!)) return false;
  return true;
}

function rangeMatches(want: { kvs: KeyValue[]; count?: number; more?: boolean }, got: { kvs: KeyValue[]; count?: number; more?: boolean }): boolean {
  if (!kvsMatch(want.kvs, got.kvs)) return false;
  if (got.count !== undefined && got.count !== want.count) return false;
  if (got.more !== undefined && got.more !== want.more) return false;
  return true;
}

/** Whether a recorded output equals the model's (ignoring fields the recording left undefined). */
export function outputMatches(input: Input, want: ModelOutput, got: Output): boolean {
  if (isError(want) || isError(got)) return isError(want) && isError(got) && want.error === got.error;
  const w = want as unknown as Record<string, unknown>;
  const g = got as unknown as Record<string, unknown>;
  if (w.revision !== g.revision) return false;
  switch (input.type) {
    case 'range':
      if (want.pastRead) return true;
      return rangeMatches(want as RangeOutput, got as RangeOutput);
    case 'put':
    case 'compact':
    case 'leaseRevoke':
      return true;
    case 'delete':
      return w.deleted === g.deleted;
    case 'leaseGrant':
      return input.id === 0n || g.id === input.id;
    case 'txn': {
      const wt = want as TxnOutput;
      const gt = got as TxnOutput;
      if (wt.succeeded !== gt.succeeded) return false;
      if (gt.responses === undefined) return true;
      const wr = wt.responses ?? [];
      if (wr.length !== gt.responses.length) return false;
      for (let i = 0; i < wr.length; i++) {
        const a = wr[i]!;
        const b = gt.responses[i]!;
        if (a.type !== b.type) return false;
        if (a.type === 'range' && !rangeMatches(a, b as typeof a)) return false;
        if (a.type === 'delete' && a.deleted !== (b as typeof a).deleted) return false;
      }
      return true;
    }
  }
}

/**
 * One WGL step: the next state if `input` with recorded `output` is legal in `state`, else undefined. An
 * indeterminate operation (output undefined) is legal in every state and takes effect; "did not take effect" is
 * the WGL search placing it after every other operation (its return is at +∞).
 */
export function step(state: EtcdState, input: Input, output: Output | undefined): EtcdState | undefined {
  if (input.type === 'leaseGrant' && input.id === 0n && output !== undefined && !isError(output)) {
    input = { type: 'leaseGrant', id: (output as LeaseGrantOutput).id }; // the server chose the ID
  }
  const r = apply(state, input);
  if (output === undefined) return r.state;
  return outputMatches(input, r.output, output) ? r.state : undefined;
}
