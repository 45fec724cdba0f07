// The history format the fault harness records and the checkers read (issue #7).
//
// A history is a list of operations, one per client request, in any order:
//
//   { client, call, ret, input, output }
//
// - `client` identifies a sequential stream: one outstanding request at a time. After a failed *write* the client
//   must continue under a new id, because the write stays open until +∞ (etcd's AppendableHistory does the same).
// - `call` and `ret` come from one monotonic clock shared by all clients (process.hrtime.bigint() in the harness;
//   plain numbers in tests). Intervals are closed: [10,20] and [20,30] are concurrent.
// - A write whose outcome is unknown (timeout, connection lost, leader changed, ...) is *indeterminate*:
//   `ret = Infinity` and `output = undefined`. It may have taken effect at any time after its call, or never.
//   A failed read is simply dropped: it has no effect.
// - An operation may have an output *and* ret = Infinity: a write whose result is known from elsewhere (patch.ts
//   sets the revision of an indeterminate put found in the committed history) but whose return is not.
// - Outputs hold what the server answered, including the header revision. A definite domain error the server
//   returned (ErrCompacted, ErrFutureRev, lease not found) is an output too: `{ error: ... }`.
//
// Keys and values are strings compared by UTF-16 code unit, which equals etcd's byte order for ASCII keys; the
// harness should use ASCII keys. Every Put value must be unique in the history (a request id), so that a value
// identifies the write that produced it. Lease IDs are bigint, as elsewhere in the code base (0n = no lease).
//
// Ranges follow etcd: `rangeEnd` undefined means the single key `key`; `rangeEnd = '\0'` means every key >= key;
// otherwise the half-open interval [key, rangeEnd). Use `prefixEnd(p)` for a prefix.

export type Time = number | bigint;

export type LeaseId = bigint;

/** A key as the server returns it in a Range or in a watch event (kv or prev_kv). */
export interface KeyValue {
  key: string;
  value: string;
  modRevision: number;
  /** Optional in recorded outputs: an undefined field is not compared. */
  createRevision?: number;
  version?: number;
  lease?: LeaseId;
}

export interface RangeInput {
  type: 'range';
  key: string;
  rangeEnd?: string;
  /** 0 or undefined: the latest revision (a linearizable read). Otherwise a read at a past revision. */
  revision?: number;
  /** 0 or undefined: no limit. */
  limit?: number;
}
export interface PutInput {
  type: 'put';
  key: string;
  value: string;
  lease?: LeaseId;
}
export interface DeleteInput {
  type: 'delete';
  key: string;
  rangeEnd?: string;
}
export type CompareTarget = 'mod' | 'create' | 'version' | 'value' | 'lease';
export interface Compare {
  key: string;
  target: CompareTarget;
  op: '=' | '!=' | '<' | '>';
  /** A number for mod/create/version, a string for value, a bigint for lease. */
  operand: number | string | bigint;
}
export type TxnRequestOp = RangeInput | PutInput | DeleteInput;
export interface TxnInput {
  type: 'txn';
  compare: Compare[];
  success: TxnRequestOp[];
  failure: TxnRequestOp[];
}
export interface LeaseGrantInput {
  type: 'leaseGrant';
  /** The ID the client asked for; 0n lets the server choose (then an indeterminate grant has no effect we model). */
  id: LeaseId;
}
export interface LeaseRevokeInput {
  type: 'leaseRevoke';
  id: LeaseId;
}
export interface CompactInput {
  type: 'compact';
  revision: number;
}
export type Input = RangeInput | PutInput | DeleteInput | TxnInput | LeaseGrantInput | LeaseRevokeInput | CompactInput;

export type ErrorKind = 'compacted' | 'future' | 'lease-not-found';
export interface ErrorOutput {
  error: ErrorKind;
}
export interface RangeOutput {
  /** The response header's revision. */
  revision: number;
  kvs: KeyValue[];
  /** Undefined: not compared. */
  count?: number;
  more?: boolean;
}
export interface PutOutput {
  revision: number;
}
export interface DeleteOutput {
  revision: number;
  deleted: number;
}
export type TxnResponseOp =
  | { type: 'range'; kvs: KeyValue[]; count?: number; more?: boolean }
  | { type: 'put' }
  | { type: 'delete'; deleted: number };
export interface TxnOutput {
  revision: number;
  succeeded: boolean;
  /** Undefined: the branch's responses are not compared. */
  responses?: TxnResponseOp[];
}
export interface LeaseGrantOutput {
  revision: number;
  id: LeaseId;
}
export interface RevisionOutput {
  revision: number;
}
export type Output = RangeOutput | PutOutput | DeleteOutput | TxnOutput | LeaseGrantOutput | RevisionOutput | ErrorOutput;

export interface Operation<I = Input, O = Output> {
  client: number;
  call: Time;
  /** Infinity for an indeterminate operation. */
  ret: Time;
  input: I;
  /** undefined for an indeterminate operation. */
  output: O | undefined;
  /** Optional, for reports: the member that answered. */
  member?: string;
}

export type History = Operation[];

export function isError(o: Output | undefined): o is ErrorOutput {
  return o !== undefined && (o as ErrorOutput).error !== undefined;
}

export function isIndeterminate(op: Operation): boolean {
  return op.output === undefined;
}

/** True for requests that can change the store (Range is the only pure read; a txn may write). */
export function isWriteInput(i: Input): boolean {
  if (i.type === 'range') return false;
  if (i.type === 'txn') return [...i.success, ...i.failure].some((o) => o.type !== 'range');
  return true;
}

/** etcd's clientv3.GetPrefixRangeEnd: the smallest key greater than every key with this prefix. */
export function prefixEnd(prefix: string): string {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xffff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return '\0'; // every key
}

/** Whether `key` is in the etcd range (key, rangeEnd); see the header comment. */
export function inRange(key: string, start: string, rangeEnd: string | undefined): boolean {
  if (rangeEnd === undefined || rangeEnd === '') return key === start;
  if (rangeEnd === '\0') return key >= start;
  return key >= start && key < rangeEnd;
}

export function compareTime(a: Time, b: Time): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Normalizes a recorded history the way etcd's validate.go does before checking, and checks its assumptions:
 * failed reads dropped (the harness may pass them with `output: undefined`), indeterminate writes with
 * ret = Infinity, ret >= call, and no overlapping operations within a client. Returns the cleaned history, or
 * throws an Error naming the first broken assumption (a harness bug, not a server bug).
 */
export function prepareHistory(ops: readonly Operation[]): Operation[] {
  const out: Operation[] = [];
  for (const op of ops) {
    if (op.output === undefined) {
      if (!isWriteInput(op.input)) continue; // failed read: no side effect
      out.push(op.ret === Infinity ? op : { ...op, ret: Infinity });
      continue;
    }
    if (op.ret < op.call) throw new Error(`operation of client ${op.client} returns (${op.ret}) before its call (${op.call})`);
    out.push(op);
  }
  const byClient = new Map<number, Operation[]>();
  for (const op of out) {
    let l = byClient.get(op.client);
    if (!l) byClient.set(op.client, (l = []));
    l.push(op);
  }
  for (const [client, l] of byClient) {
    l.sort((a, b) => compareTime(a.call, b.call));
    for (let i = 1; i < l.length; i++) {
      const prev = l[i - 1]!;
      if (!(prev.ret < l[i]!.call)) {
        throw new Error(`client ${client} has overlapping operations (call ${l[i]!.call} before the previous ret ${prev.ret}); ` +
          'a client must have one outstanding request, and take a new id after a failed write');
      }
    }
  }
  return out;
}

function describeRange(key: string, rangeEnd: string | undefined): string {
  if (rangeEnd === undefined || rangeEnd === '') return JSON.stringify(key);
  if (rangeEnd === '\0') return `[${JSON.stringify(key)}, ∞)`;
  return `[${JSON.stringify(key)}, ${JSON.stringify(rangeEnd)})`;
}

export function describeInput(i: Input): string {
  switch (i.type) {
    case 'range':
      return `range ${describeRange(i.key, i.rangeEnd)}${i.revision ? ` @${i.revision}` : ''}${i.limit ? ` limit ${i.limit}` : ''}`;
    case 'put':
      return `put ${JSON.stringify(i.key)}=${JSON.stringify(i.value)}${i.lease ? ` lease ${i.lease}` : ''}`;
    case 'delete':
      return `delete ${describeRange(i.key, i.rangeEnd)}`;
    case 'txn': {
      const cmp = i.compare.map((c) => `${c.target}(${JSON.stringify(c.key)}) ${c.op} ${typeof c.operand === 'string' ? JSON.stringify(c.operand) : c.operand}`);
      return `txn if [${cmp.join(', ')}] then [${i.success.map(describeInput).join('; ')}] else [${i.failure.map(describeInput).join('; ')}]`;
    }
    case 'leaseGrant':
      return `lease grant ${i.id}`;
    case 'leaseRevoke':
      return `lease revoke ${i.id}`;
    case 'compact':
      return `compact ${i.revision}`;
  }
}

export function describeKvs(kvs: readonly KeyValue[]): string {
  return '[' + kvs.map((kv) => `${kv.key}=${JSON.stringify(kv.value)}(mod ${kv.modRevision}${kv.createRevision !== undefined ? `, create ${kv.createRevision}` : ''}${kv.version !== undefined ? `, ver ${kv.version}` : ''}${kv.lease ? `, lease ${kv.lease}` : ''})`).join(', ') + ']';
}

export function describeOutput(o: Output | undefined): string {
  if (o === undefined) return '?';
  if (isError(o)) return `error ${o.error}`;
  const r = o as unknown as Record<string, unknown>;
  const parts = [`rev ${r.revision}`];
  if ('succeeded' in r) parts.push(r.succeeded ? 'succeeded' : 'failed');
  if ('deleted' in r) parts.push(`deleted ${r.deleted}`);
  if ('id' in r) parts.push(`id ${r.id}`);
  if ('kvs' in r) parts.push(describeKvs(r.kvs as KeyValue[]));
  if (r.count !== undefined) parts.push(`count ${r.count}`);
  if (r.more) parts.push('more');
  if (Array.isArray(r.responses)) {
    parts.push('[' + (r.responses as TxnResponseOp[]).map((x) => x.type === 'range' ? describeKvs(x.kvs) : x.type === 'delete' ? `deleted ${x.deleted}` : 'put').join('; ') + ']');
  }
  return parts.join(' ');
}

export function describeOperation(op: Operation, index?: number): string {
  const ret = op.ret === Infinity ? '∞' : String(op.ret);
  return `${index !== undefined ? `#${index} ` : ''}client ${op.client} [${op.call}, ${ret}]${op.member ? ` on ${op.member}` : ''}: ${describeInput(op.input)} -> ${describeOutput(op.output)}`;
}
