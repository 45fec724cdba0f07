// A per-key register check, partitioned by key (faults.md §5.3 (a)): each key's sub-history is checked on its own
// against a register holding the key's value (or "absent") and lease, ignoring the global revision. Locality
// (Herlihy & Wing) makes this sound: the projection of a linearizable history onto one key is linearizable for
// this model, so any violation found here is a real one. It is weaker than the global check (header revisions,
// multi-key atomicity and cross-key real-time order are not checked) but it scales with the number of keys.
//
// Projection of each operation onto a key K:
// - Range at the latest revision: "K holds value v" or "K is absent" for every known key K in the range (only
//   keys up to the last returned one when the response says `more`). Ranges at past revisions are left to the
//   revision oracle; ranges that returned an error are skipped.
// - Put: write. A Put that failed with "lease not found" had no effect and is skipped.
// - Delete: write "absent"; a definite single-key delete also observes presence (deleted 1) or absence (0); a
//   range delete that deleted 0 keys observes absence of every key in it.
// - Txn: the compares on K, translated to the register where possible (value; mod/create/version = 0 means
//   absent; mod = R means "the value written at revision R", known from acknowledged writes and reads; lease),
//   else unconstrained; then the chosen branch's ops on K (reads checked against `responses` when recorded).
//   When the branch is unknown (indeterminate txn whose compares cannot be decided here), both branches remain
//   possible: the register state is a *set* of possible registers, as in etcd's NonDeterministicModel.
// - LeaseRevoke: deletes K if K is attached to that lease (projected onto every key).
// Keys are those named anywhere in the history (inputs and returned kvs).

import {
  type Compare,
  type History,
  inRange,
  isError,
  type KeyValue,
  type Operation,
  prepareHistory,
  describeOperation,
  type RangeOutput,
  type TxnOutput,
  type TxnRequestOp,
} from './history';
import { strHash } from './model';
import { type Budget, checkWgl, type Model, type TimedOperation } from './wgl';

/** One register: 'A' (absent) or `P<lease>|<value>`. A state is a sorted, duplicate-free list of registers. */
type Reg = string;
type RegSet = readonly Reg[];

const ABSENT = 'A';
function present(value: string, lease: bigint): Reg {
  return `P${lease}|${value}`;
}
function regValue(r: Reg): string | null {
  return r === ABSENT ? null : r.slice(r.indexOf('|') + 1);
}
function regLease(r: Reg): bigint {
  return r === ABSENT ? 0n : BigInt(r.slice(1, r.indexOf('|')));
}

/** A per-key operation: maps one register to the possible next registers (empty: illegal here). */
type KeyStep = (r: Reg) => Reg[];

const registerModel: Model<RegSet, KeyStep> = {
  init: () => [ABSENT],
  step(states, f) {
    const out = new Set<Reg>();
    for (const s of states) for (const n of f(s)) out.add(n);
    if (out.size === 0) return undefined;
    return [...out].sort();
  },
  hash: (s) => strHash(s.join('\u0001')),
  equal: (a, b) => a.length === b.length && a.every((x, i) => x === b[i]),
};

type Tri = true | false | undefined;

export interface RegisterReport {
  result: 'ok' | 'illegal' | 'unknown';
  /** Per-key results; `explanation` on the first illegal key. */
  keys: { key: string; result: 'ok' | 'illegal' | 'unknown'; operations: number; steps: number }[];
  key?: string;
  explanation?: string;
}

export function checkPerKey(history: History, budget: Budget = {}): RegisterReport {
  const ops = prepareHistory(history);
  const keys = new Set<string>();
  // (key, mod_revision) -> value, from acknowledged writes and from reads.
  const valueAt = new Map<string, Map<number, string>>();
  const conflicts: string[] = [];
  const learn = (key: string, rev: number, value: string): void => {
    let m = valueAt.get(key);
    if (!m) valueAt.set(key, (m = new Map()));
    const had = m.get(rev);
    if (had !== undefined && had !== value) conflicts.push(`key ${JSON.stringify(key)} has two values at revision ${rev}: ${JSON.stringify(had)} and ${JSON.stringify(value)}`);
    m.set(rev, value);
  };
  const learnKvs = (kvs: readonly KeyValue[]): void => {
    for (const kv of kvs) {
      keys.add(kv.key);
      learn(kv.key, kv.modRevision, kv.value);
    }
  };
  const noteInputKeys = (o: TxnRequestOp): void => {
    if (o.type === 'put' || o.rangeEnd === undefined) keys.add(o.key);
  };
  for (const op of ops) {
    const i = op.input;
    if (i.type === 'txn') {
      for (const c of i.compare) keys.add(c.key);
      for (const o of [...i.success, ...i.failure]) noteInputKeys(o);
    } else if (i.type === 'range' || i.type === 'put' || i.type === 'delete') noteInputKeys(i);
    const out = op.output;
    if (!out || isError(out)) continue;
    if (i.type === 'range' && !i.revision) learnKvs((out as RangeOutput).kvs);
    if (i.type === 'put') learn(i.key, (out as { revision: number }).revision, i.value);
    if (i.type === 'txn') {
      const t = out as TxnOutput;
      const branch = t.succeeded ? i.success : i.failure;
      for (const o of branch) if (o.type === 'put') learn(o.key, t.revision, o.value);
      for (const r of t.responses ?? []) if (r.type === 'range') learnKvs(r.kvs);
    }
  }
  if (conflicts.length) {
    return { result: 'illegal', keys: [], explanation: conflicts.slice(0, 5).join('\n') };
  }

  const compareOnKey = (c: Compare, r: Reg): Tri => {
    const v = regValue(r);
    switch (c.target) {
      case 'value':
        if (v === null) return false;
        return cmp(v, c.op, c.operand as string);
      case 'lease':
        return cmp(regLease(r), c.op, c.operand as bigint);
      case 'mod':
      case 'create':
      case 'version': {
        const n = c.operand as number;
        if (v === null) return cmp(0, c.op, n); // etcd compares a missing key's revisions and version as 0
        if (n === 0) return cmp(1, c.op, 0); // a present key's revisions and version are all >= 1
        if (c.target === 'mod' && (c.op === '=' || c.op === '!=')) {
          const written = valueAt.get(c.key)?.get(n);
          if (written === undefined) return undefined;
          return c.op === '=' ? v === written : v !== written;
        }
        return undefined;
      }
    }
  };

  // Applies the ops of one branch that touch `key`, checking recorded responses; returns the next register or
  // undefined when a recorded read disagrees.
  const applyBranch = (key: string, branch: readonly TxnRequestOp[], responses: TxnOutput['responses'], r: Reg): Reg | undefined => {
    for (let j = 0; j < branch.length; j++) {
      const o = branch[j]!;
      if (o.type === 'put') {
        if (o.key === key) r = present(o.value, o.lease ?? 0n);
      } else if (o.type === 'delete') {
        if (inRange(key, o.key, o.rangeEnd)) {
          const resp = responses?.[j];
          if (resp && resp.type === 'delete' && o.rangeEnd === undefined && resp.deleted !== (r === ABSENT ? 0 : 1)) return undefined;
          if (resp && resp.type === 'delete' && resp.deleted === 0 && r !== ABSENT) return undefined;
          r = ABSENT;
        }
      } else if (inRange(key, o.key, o.rangeEnd)) {
        const resp = responses?.[j];
        if (resp && resp.type === 'range' && !o.revision && !observes(key, resp, r)) return undefined;
      }
    }
    return r;
  };

  const project = (op: Operation, key: string): KeyStep | undefined => {
    const i = op.input;
    const out = op.output;
    if (out && isError(out)) return undefined;
    switch (i.type) {
      case 'range': {
        if (i.revision || !out || !inRange(key, i.key, i.rangeEnd)) return undefined;
        const o = out as RangeOutput;
        if (o.more && o.kvs.length > 0 && key > o.kvs[o.kvs.length - 1]!.key) return undefined;
        return (r) => (observes(key, o, r) ? [r] : []);
      }
      case 'put':
        if (i.key !== key) return undefined;
        return () => [present(i.value, i.lease ?? 0n)];
      case 'delete': {
        if (!inRange(key, i.key, i.rangeEnd)) return undefined;
        const deleted = (out as { deleted?: number } | undefined)?.deleted;
        return (r) => {
          if (deleted !== undefined && i.rangeEnd === undefined && deleted !== (r === ABSENT ? 0 : 1)) return [];
          if (deleted === 0 && r !== ABSENT) return [];
          return [ABSENT];
        };
      }
      case 'leaseRevoke':
        return (r) => [regLease(r) === i.id && r !== ABSENT ? ABSENT : r];
      case 'txn': {
        const touches = (o: TxnRequestOp): boolean => (o.type === 'put' ? o.key === key : inRange(key, o.key, o.rangeEnd));
        const mine = i.compare.filter((c) => c.key === key);
        const onlyMine = mine.length === i.compare.length;
        if (mine.length === 0 && !i.success.some(touches) && !i.failure.some(touches)) return undefined;
        const t = out as TxnOutput | undefined;
        return (r) => {
          const evals = mine.map((c) => compareOnKey(c, r));
          const allTrue = evals.every((x) => x === true);
          const anyFalse = evals.some((x) => x === false);
          if (t) {
            if (t.succeeded && anyFalse) return [];
            if (!t.succeeded && onlyMine && allTrue) return [];
            const n = applyBranch(key, t.succeeded ? i.success : i.failure, t.responses, r);
            return n === undefined ? [] : [n];
          }
          // Indeterminate: the branch the server would take, or both when it cannot be decided here.
          const res: Reg[] = [];
          if (!anyFalse) res.push(applyBranch(key, i.success, undefined, r)!);
          if (!(onlyMine && allTrue)) res.push(applyBranch(key, i.failure, undefined, r)!);
          return res;
        };
      }
      case 'leaseGrant':
      case 'compact':
        return undefined;
    }
  };

  const report: RegisterReport = { result: 'ok', keys: [] };
  for (const key of [...keys].sort()) {
    const sub: TimedOperation<KeyStep>[] = [];
    const origin: number[] = [];
    ops.forEach((op, idx) => {
      const f = project(op, key);
      if (f) {
        sub.push({ call: op.call, ret: op.ret, op: f });
        origin.push(idx);
      }
    });
    const r = checkWgl(registerModel, sub, budget);
    report.keys.push({ key, result: r.result, operations: sub.length, steps: r.steps });
    if (r.result === 'unknown' && report.result === 'ok') report.result = 'unknown';
    if (r.result === 'illegal' && report.result !== 'illegal') {
      report.result = 'illegal';
      report.key = key;
      const lines = [
        `key ${JSON.stringify(key)} is not a linearizable register: longest prefix ${r.longestPrefix.length} of ${sub.length} operations on it.`,
        `register after it: ${r.state.map((x) => (x === ABSENT ? 'absent' : JSON.stringify(regValue(x)))).join(' or ')}`,
        `operation that could not be linearized: ${describeOperation(ops[origin[r.blocked]!]!, origin[r.blocked]!)}`,
      ];
      for (const p of r.pending.filter((x) => x !== r.blocked).slice(0, 10)) lines.push(`  pending: ${describeOperation(ops[origin[p]!]!, origin[p]!)}`);
      report.explanation = lines.join('\n');
    }
  }
  return report;
}

function observes(key: string, o: { kvs: readonly KeyValue[] }, r: Reg): boolean {
  const kv = o.kvs.find((x) => x.key === key);
  if (!kv) return r === ABSENT;
  if (regValue(r) !== kv.value) return false;
  return kv.lease === undefined || kv.lease === regLease(r);
}

function cmp<T extends number | string | bigint>(a: T, op: Compare['op'], b: T): boolean {
  switch (op) {
    case '=': return a === b;
    case '!=': return a !== b;
    case '<': return a < b;
    case '>': return a > b;
  }
}
