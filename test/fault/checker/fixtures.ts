// Hand-written histories for the checkers' tests, each with the committed history the server would have (for the
// revision oracle) and the verdict every checker must reach. Times are plain numbers; ∞ marks indeterminate
// writes.

import type { Compare, KeyValue, Operation, TxnRequestOp, TxnResponseOp } from './history';
import type { CommittedRevision } from './replay';

type Verdict = 'ok' | 'illegal';
export interface Fixture {
  name: string;
  history: Operation[];
  committed: CommittedRevision[];
  wgl: Verdict;
  perKey: Verdict;
  oracle: Verdict;
}

const I = Infinity;
export function kv(key: string, value: string, mod: number, create?: number, version?: number, lease?: bigint): KeyValue {
  return { key, value, modRevision: mod, createRevision: create ?? mod, version: version ?? 1, lease: lease ?? 0n };
}
export function put(client: number, call: number, ret: number, key: string, value: string, revision?: number, lease?: bigint): Operation {
  return { client, call, ret, input: { type: 'put', key, value, ...(lease ? { lease } : {}) }, output: revision === undefined ? undefined : { revision } };
}
export function get(client: number, call: number, ret: number, key: string, revision: number, kvs: KeyValue[]): Operation {
  return { client, call, ret, input: { type: 'range', key }, output: { revision, kvs, count: kvs.length } };
}
export function range(client: number, call: number, ret: number, key: string, rangeEnd: string, revision: number, kvs: KeyValue[], extra: { limit?: number; at?: number; count?: number; more?: boolean } = {}): Operation {
  return {
    client, call, ret,
    input: { type: 'range', key, rangeEnd, ...(extra.limit ? { limit: extra.limit } : {}), ...(extra.at ? { revision: extra.at } : {}) },
    output: { revision, kvs, count: extra.count ?? kvs.length, more: extra.more ?? false },
  };
}
/** A read of one key at revision `at` (a past revision, or the current one), answered with header `revision`. */
export function at(client: number, call: number, ret: number, key: string, at: number, revision: number, kvs: KeyValue[]): Operation {
  return { client, call, ret, input: { type: 'range', key, revision: at }, output: { revision, kvs, count: kvs.length, more: false } };
}
export function del(client: number, call: number, ret: number, key: string, revision: number | undefined, deleted = 1, rangeEnd?: string): Operation {
  return { client, call, ret, input: { type: 'delete', key, ...(rangeEnd ? { rangeEnd } : {}) }, output: revision === undefined ? undefined : { revision, deleted } };
}
export function txn(client: number, call: number, ret: number, compare: Compare[], success: TxnRequestOp[], failure: TxnRequestOp[], out?: { revision: number; succeeded: boolean; responses?: TxnResponseOp[] }): Operation {
  return { client, call, ret, input: { type: 'txn', compare, success, failure }, output: out };
}
export function cas(client: number, call: number, ret: number, key: string, mod: number, value: string, out?: { revision: number; succeeded: boolean; responses?: TxnResponseOp[] }): Operation {
  return txn(client, call, ret, [{ key, target: 'mod', op: '=', operand: mod }], [{ type: 'put', key, value }], [{ type: 'range', key }], out);
}
export function grant(client: number, call: number, ret: number, id: bigint, revision: number): Operation {
  return { client, call, ret, input: { type: 'leaseGrant', id }, output: { revision, id } };
}
export function revoke(client: number, call: number, ret: number, id: bigint, revision: number | 'lease-not-found'): Operation {
  return { client, call, ret, input: { type: 'leaseRevoke', id }, output: revision === 'lease-not-found' ? { error: revision } : { revision } };
}
export function c(revision: number, ...events: (['put', string, string] | ['put', string, string, bigint] | ['delete', string])[]): CommittedRevision {
  return {
    revision,
    events: events.map((e) => (e[0] === 'put' ? { type: 'put' as const, key: e[1], value: e[2], lease: e[3] ?? 0n } : { type: 'delete' as const, key: e[1] })),
  };
}

export const fixtures: Fixture[] = [
  {
    name: 'sequential puts and gets',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      get(0, 20, 30, 'a', 2, [kv('a', 'v1', 2)]),
      put(1, 40, 50, 'a', 'v2', 3),
      get(1, 60, 70, 'a', 3, [kv('a', 'v2', 3, 2, 2)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'concurrent puts linearized against call order, reads in between',
    history: [
      put(0, 0, 100, 'a', 'v1', 3),
      put(1, 10, 50, 'a', 'v2', 2),
      get(2, 60, 70, 'a', 2, [kv('a', 'v2', 2)]),
      get(2, 110, 120, 'a', 3, [kv('a', 'v1', 3, 2, 2)]),
    ],
    committed: [c(2, ['put', 'a', 'v2']), c(3, ['put', 'a', 'v1'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'indeterminate put that took effect',
    history: [put(0, 0, I, 'a', 'v1'), get(1, 50, 60, 'a', 2, [kv('a', 'v1', 2)])],
    committed: [c(2, ['put', 'a', 'v1'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'indeterminate put that never took effect',
    history: [put(0, 0, I, 'a', 'v1'), put(1, 10, 20, 'b', 'v2', 2), get(1, 30, 40, 'a', 2, [])],
    committed: [c(2, ['put', 'b', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'indeterminate put that took effect late',
    history: [put(0, 0, I, 'a', 'v1'), get(1, 10, 20, 'a', 1, []), get(1, 30, 40, 'a', 2, [kv('a', 'v1', 2)])],
    committed: [c(2, ['put', 'a', 'v1'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'CAS race: one wins, the other fails and reads the winner',
    history: [
      put(2, 0, 5, 'a', 'v1', 2),
      cas(0, 10, 30, 'a', 2, 'v2', { revision: 3, succeeded: true, responses: [{ type: 'put' }] }),
      cas(1, 15, 35, 'a', 2, 'v3', { revision: 3, succeeded: false, responses: [{ type: 'range', kvs: [kv('a', 'v2', 3, 2, 2)], count: 1 }] }),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'CAS race: both succeed on the same mod_revision',
    history: [
      put(2, 0, 5, 'a', 'v1', 2),
      cas(0, 10, 30, 'a', 2, 'v2', { revision: 3, succeeded: true }),
      cas(1, 15, 35, 'a', 2, 'v3', { revision: 4, succeeded: true }),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2']), c(4, ['put', 'a', 'v3'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'indeterminate CAS observed by a later read',
    history: [put(0, 0, 10, 'a', 'v1', 2), cas(1, 20, I, 'a', 2, 'v2'), get(2, 30, 40, 'a', 3, [kv('a', 'v2', 3, 2, 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'indeterminate CAS whose compare was false, yet its write is observed',
    history: [put(0, 0, 10, 'a', 'v1', 2), cas(1, 20, I, 'a', 5, 'v2'), get(2, 30, 40, 'a', 3, [kv('a', 'v2', 3, 2, 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    // Per key, mod_revision 5 names no known write, so the compare is undecidable there: accepted.
    wgl: 'illegal', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'planted stale read (old header and value after a newer write returned)',
    history: [put(0, 0, 10, 'a', 'v1', 2), put(1, 20, 30, 'a', 'v2', 3), get(2, 40, 50, 'a', 2, [kv('a', 'v1', 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'planted stale value under a current header',
    history: [put(0, 0, 10, 'a', 'v1', 2), put(1, 20, 30, 'a', 'v2', 3), get(2, 40, 50, 'a', 3, [kv('a', 'v1', 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'planted lost write (the server reuses its revision)',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(1, 20, 30, 'b', 'v2', 2),
      range(2, 40, 50, '\0', '\0', 2, [kv('b', 'v2', 2)]),
    ],
    committed: [c(2, ['put', 'b', 'v2'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'planted read whose header revision does not match its contents',
    history: [put(0, 0, 10, 'a', 'v1', 2), put(0, 20, 30, 'a', 'v2', 3), get(1, 40, 50, 'a', 2, [kv('a', 'v2', 3, 2, 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'illegal', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'planted wrong contents of a read at a past revision',
    history: [put(0, 0, 10, 'a', 'v1', 2), put(0, 20, 30, 'a', 'v2', 3), range(1, 40, 50, 'a', '', 3, [kv('a', 'v2', 3, 2, 2)], { at: 2 })],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    // As in etcd's model, WGL checks only the header of a past read; the oracle checks its contents.
    wgl: 'ok', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'read at a past revision, correct',
    history: [put(0, 0, 10, 'a', 'v1', 2), put(0, 20, 30, 'a', 'v2', 3), range(1, 40, 50, 'a', '', 3, [kv('a', 'v1', 2)], { at: 2 })],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted real-time violation (a later write gets a lower revision)',
    history: [put(0, 0, 10, 'a', 'v1', 3), put(1, 20, 30, 'b', 'v2', 2)],
    committed: [c(2, ['put', 'b', 'v2']), c(3, ['put', 'a', 'v1'])],
    wgl: 'illegal', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'lease: revoke deletes the attached key',
    history: [
      grant(0, 0, 10, 7n, 1),
      put(0, 20, 30, 'a', 'v1', 2, 7n),
      put(1, 22, 32, 'b', 'v2', 3),
      revoke(0, 40, 50, 7n, 4),
      range(1, 60, 70, '\0', '\0', 4, [kv('b', 'v2', 3)]),
      { client: 0, call: 80, ret: 90, input: { type: 'put', key: 'c', value: 'v3', lease: 7n }, output: { error: 'lease-not-found' } },
      revoke(1, 80, 90, 7n, 'lease-not-found'),
    ],
    committed: [c(2, ['put', 'a', 'v1', 7n]), c(3, ['put', 'b', 'v2']), c(4, ['delete', 'a'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'lease: a key survives its revoke',
    history: [
      grant(0, 0, 10, 7n, 1),
      put(0, 20, 30, 'a', 'v1', 2, 7n),
      revoke(0, 40, 50, 7n, 3),
      get(1, 60, 70, 'a', 3, [kv('a', 'v1', 2, 2, 1, 7n)]),
    ],
    committed: [c(2, ['put', 'a', 'v1', 7n]), c(3, ['delete', 'a'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'prefix range with limit, range delete, indeterminate delete',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(0, 20, 30, 'b', 'v2', 3),
      put(0, 40, 50, 'c', 'v3', 4),
      range(1, 60, 70, 'a', '\0', 4, [kv('a', 'v1', 2), kv('b', 'v2', 3)], { limit: 2, count: 3, more: true }),
      del(1, 80, 90, 'a', 5, 2, 'c'),
      del(2, 85, I, 'c', undefined),
      range(1, 100, 110, '\0', '\0', 5, [kv('c', 'v3', 4)]),
      range(1, 120, 130, '\0', '\0', 6, []),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'b', 'v2']), c(4, ['put', 'c', 'v3']), c(5, ['delete', 'a'], ['delete', 'b']), c(6, ['delete', 'c'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted phantom write (a value no client wrote)',
    history: [put(0, 0, 10, 'a', 'v1', 2), get(1, 20, 30, 'a', 3, [kv('a', 'vX', 3, 2, 2)])],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'vX'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
  {
    name: 'multi-key txn: atomic put and delete',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      txn(0, 20, 30, [{ key: 'a', target: 'value', op: '=', operand: 'v1' }], [{ type: 'put', key: 'b', value: 'v2' }, { type: 'delete', key: 'a' }], [],
        { revision: 3, succeeded: true, responses: [{ type: 'put' }, { type: 'delete', deleted: 1 }] }),
      range(1, 25, 35, '\0', '\0', 3, [kv('b', 'v2', 3)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'b', 'v2'], ['delete', 'a'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted partial txn (a read sees the put but not the delete)',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      txn(0, 20, 30, [{ key: 'a', target: 'value', op: '=', operand: 'v1' }], [{ type: 'put', key: 'b', value: 'v2' }, { type: 'delete', key: 'a' }], [],
        { revision: 3, succeeded: true }),
      range(1, 25, 35, '\0', '\0', 3, [kv('a', 'v1', 2), kv('b', 'v2', 3)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'b', 'v2'], ['delete', 'a'])],
    // Per key each half is plausible on its own; atomicity across keys is beyond a per-key check.
    wgl: 'illegal', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'reads at past revisions see the state at their revision',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(0, 20, 30, 'a', 'v2', 3),
      put(0, 40, 50, 'b', 'w1', 4),
      at(1, 60, 70, 'a', 2, 4, [kv('a', 'v1', 2)]),
      range(1, 80, 90, '\0', '\0', 4, [kv('a', 'v2', 3, 2, 2)], { at: 3 }),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2']), c(4, ['put', 'b', 'w1'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted wrong past-revision read (the value of a later revision)',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(0, 20, 30, 'a', 'v2', 3),
      put(0, 40, 50, 'b', 'w1', 4),
      at(1, 60, 70, 'a', 2, 4, [kv('a', 'v2', 3, 2, 2)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2']), c(4, ['put', 'b', 'w1'])],
    // The model checks only the header of a read below the current revision (etcd's model does the same), and the
    // per-key register leaves past reads out: the contents are the revision oracle's to check.
    wgl: 'ok', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'a past-revision read below an acknowledged compaction is ErrCompacted',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(0, 20, 30, 'a', 'v2', 3),
      { client: 0, call: 40, ret: 50, input: { type: 'compact', revision: 3 }, output: { revision: 3 } },
      { client: 1, call: 60, ret: 70, input: { type: 'range', key: 'a', revision: 2 }, output: { error: 'compacted' } },
      at(1, 80, 90, 'a', 3, 3, [kv('a', 'v2', 3, 2, 2)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted read of a compacted revision (it answered with the old contents)',
    history: [
      put(0, 0, 10, 'a', 'v1', 2),
      put(0, 20, 30, 'a', 'v2', 3),
      { client: 0, call: 40, ret: 50, input: { type: 'compact', revision: 3 }, output: { revision: 3 } },
      at(1, 60, 70, 'a', 2, 3, [kv('a', 'v1', 2)]),
    ],
    committed: [c(2, ['put', 'a', 'v1']), c(3, ['put', 'a', 'v2'])],
    // The contents are right for revision 2 (the oracle knows no compaction); the model knows it was compacted.
    wgl: 'illegal', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'kube-apiserver shapes: create, optimistic update and delete, pinned pages, compaction CAS',
    history: [
      txn(0, 0, 10, [{ key: 'k/p', target: 'mod', op: '=', operand: 0 }], [{ type: 'put', key: 'k/p', value: 'v1' }], [], { revision: 2, succeeded: true, responses: [{ type: 'put' }] }),
      txn(0, 20, 30, [{ key: 'k/q', target: 'mod', op: '=', operand: 0 }], [{ type: 'put', key: 'k/q', value: 'w1' }], [], { revision: 3, succeeded: true, responses: [{ type: 'put' }] }),
      cas(0, 40, 50, 'k/p', 2, 'v2', { revision: 4, succeeded: true, responses: [{ type: 'put' }] }),
      cas(1, 60, 70, 'k/p', 2, 'v3', { revision: 4, succeeded: false, responses: [{ type: 'range', kvs: [kv('k/p', 'v2', 4, 2, 2)], count: 1, more: false }] }),
      txn(1, 80, 90, [{ key: 'k/q', target: 'mod', op: '=', operand: 0 }], [{ type: 'put', key: 'k/q', value: 'w2' }], [], { revision: 4, succeeded: false, responses: [] }),
      range(2, 100, 110, 'k/', 'k0', 4, [kv('k/p', 'v2', 4, 2, 2)], { limit: 1, count: 2, more: true }),
      txn(0, 120, 130, [{ key: 'k/p', target: 'mod', op: '=', operand: 4 }], [{ type: 'delete', key: 'k/p' }], [{ type: 'range', key: 'k/p' }], { revision: 5, succeeded: true, responses: [{ type: 'delete', deleted: 1 }] }),
      range(2, 140, 150, 'k/p\0', 'k0', 5, [kv('k/q', 'w1', 3)], { limit: 1, at: 4, count: 1, more: false }),
      txn(3, 160, 170, [{ key: 'k/c', target: 'version', op: '=', operand: 0 }], [{ type: 'put', key: 'k/c', value: '0/x' }], [{ type: 'range', key: 'k/c' }], { revision: 6, succeeded: true, responses: [{ type: 'put' }] }),
      txn(4, 165, 175, [{ key: 'k/c', target: 'version', op: '=', operand: 0 }], [{ type: 'put', key: 'k/c', value: '0/y' }], [{ type: 'range', key: 'k/c' }], { revision: 6, succeeded: false, responses: [{ type: 'range', kvs: [kv('k/c', '0/x', 6)], count: 1, more: false }] }),
      { client: 3, call: 180, ret: 190, input: { type: 'compact', revision: 5 }, output: { revision: 6 } },
    ],
    committed: [c(2, ['put', 'k/p', 'v1']), c(3, ['put', 'k/q', 'w1']), c(4, ['put', 'k/p', 'v2']), c(5, ['delete', 'k/p']), c(6, ['put', 'k/c', '0/x'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted pinned page that reads the current state instead of its revision',
    history: [
      txn(0, 0, 10, [{ key: 'k/p', target: 'mod', op: '=', operand: 0 }], [{ type: 'put', key: 'k/p', value: 'v1' }], [], { revision: 2, succeeded: true, responses: [{ type: 'put' }] }),
      txn(0, 20, 30, [{ key: 'k/q', target: 'mod', op: '=', operand: 0 }], [{ type: 'put', key: 'k/q', value: 'w1' }], [], { revision: 3, succeeded: true, responses: [{ type: 'put' }] }),
      range(2, 40, 50, 'k/', 'k0', 3, [kv('k/p', 'v1', 2)], { limit: 1, count: 2, more: true }),
      txn(0, 60, 70, [{ key: 'k/q', target: 'mod', op: '=', operand: 3 }], [{ type: 'delete', key: 'k/q' }], [{ type: 'range', key: 'k/q' }], { revision: 4, succeeded: true, responses: [{ type: 'delete', deleted: 1 }] }),
      range(2, 80, 90, 'k/p\0', 'k0', 4, [], { limit: 1, at: 3, count: 0, more: false }),
    ],
    committed: [c(2, ['put', 'k/p', 'v1']), c(3, ['put', 'k/q', 'w1']), c(4, ['delete', 'k/q'])],
    wgl: 'ok', perKey: 'ok', oracle: 'illegal',
  },
  {
    name: 'lease: a revoke that finds its key already deleted answers at the delete\'s revision',
    history: [
      grant(0, 0, 10, 7n, 1),
      put(0, 20, 30, 'a', 'v1', 2, 7n),
      revoke(1, 50, 60, 7n, 3),
      del(2, 35, 45, 'a', 3),
    ],
    committed: [c(2, ['put', 'a', 'v1', 7n]), c(3, ['delete', 'a'])],
    wgl: 'ok', perKey: 'ok', oracle: 'ok',
  },
  {
    name: 'planted delete of a key its lease revoke had already deleted',
    history: [
      grant(0, 0, 10, 7n, 1),
      put(0, 20, 30, 'a', 'v1', 2, 7n),
      revoke(1, 35, 45, 7n, 3),
      del(2, 50, 60, 'a', 3),
    ],
    committed: [c(2, ['put', 'a', 'v1', 7n]), c(3, ['delete', 'a'])],
    wgl: 'illegal', perKey: 'illegal', oracle: 'illegal',
  },
];
