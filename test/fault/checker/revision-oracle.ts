// The revision-oracle check (faults.md §5.3 (c)): given the committed order of writes (Replay), check a client
// history in O(n log n) without any search:
//
// 1. every acknowledged write is in the committed history exactly once, at the revision it reported, and that
//    revision holds exactly the writes the model derives from the state at revision-1 (so a Txn's compares, a
//    Delete's count and a revoke's keys are checked too);
// 2. nothing un-issued is committed: every committed revision belongs to one issued request (by its unique put
//    values, or, for delete-only revisions, to an acknowledged request at that revision or an indeterminate one
//    that would write exactly those deletes there); an indeterminate write found this way gets that revision;
// 3. every read (and every request that did not write) equals the replay state at its header revision; a read
//    at an explicit revision R equals the state at R;
// 4. real time: if A returned before B was called, rev(B) >= rev(A), and rev(B) > rev(A) if B wrote.
//
// It trusts the committed history (a member's watch or the WAL), so keep the WGL check as the independent one.

import {
  describeOperation,
  describeOutput,
  type History,
  type Input,
  isError,
  isWriteInput,
  type Operation,
  prepareHistory,
  type Time,
} from './history';
import { apply, outputMatches } from './model';
import { type CommittedEvent, type Replay } from './replay';

export type OracleViolationKind =
  | 'committed-history'
  | 'lost-write'
  | 'duplicate-write'
  | 'phantom-write'
  | 'write-mismatch'
  | 'read-mismatch'
  | 'beyond-history'
  | 'real-time';

export interface OracleViolation {
  kind: OracleViolationKind;
  message: string;
  /** Index into `operations`. */
  op?: number;
  revision?: number;
}

export interface OracleReport {
  ok: boolean;
  operations: Operation[];
  violations: OracleViolation[];
  /** Per operation: its revision (write revision, or header revision), if known. */
  revisions: (number | undefined)[];
  /** Per operation: whether it wrote. */
  wrote: boolean[];
}

export function checkRevisionOracle(history: History, replay: Replay): OracleReport {
  const ops = prepareHistory(history);
  const violations: OracleViolation[] = [];
  for (const p of replay.problems) violations.push({ kind: 'committed-history', message: p });
  const resolved: (number | undefined)[] = new Array(ops.length).fill(undefined);
  const wrote: boolean[] = new Array(ops.length).fill(false);
  const owner = new Map<number, number>(); // revision -> op
  const describe = (i: number): string => describeOperation(ops[i]!, i);

  const valueOwner = new Map<string, number>();
  ops.forEach((op, i) => {
    const puts = op.input.type === 'put' ? [op.input] : op.input.type === 'txn' ? [...op.input.success, ...op.input.failure] : [];
    for (const p of puts) {
      if (p.type !== 'put') continue;
      const had = valueOwner.get(p.value);
      if (had !== undefined && had !== i) throw new Error(`history: value ${JSON.stringify(p.value)} is written by two requests (#${had} and #${i}); values must be unique`);
      valueOwner.set(p.value, i);
    }
  });

  const relevantKeys = (input: Input): string[] => relevantKeysOf(replay, input);
  const modelWriteAt = (input: Input, rev: number) => modelWrite(replay, input, rev);
  const describeEvents = (evs: readonly CommittedEvent[]): string =>
    '[' + evs.map((e) => (e.type === 'put' ? `put ${e.key}=${JSON.stringify(e.value)}${e.lease ? ` lease ${e.lease}` : ''}` : `delete ${e.key}`)).join(', ') + ']';

  // 1 and 3: operations with a definite answer.
  const revokesAt: number[] = [];
  ops.forEach((op, i) => {
    const out = op.output;
    if (out === undefined || isError(out)) return;
    const r = (out as { revision: number }).revision;
    const input = op.input;
    if (input.type === 'range' && input.revision) {
      resolved[i] = r;
      if (r < input.revision) violations.push({ kind: 'read-mismatch', op: i, message: `${describe(i)}: header revision ${r} is below the requested revision ${input.revision}` });
      if (input.revision > replay.lastRevision) {
        violations.push({ kind: 'beyond-history', op: i, message: `${describe(i)}: reads revision ${input.revision}, beyond the committed history (${replay.lastRevision})` });
        return;
      }
      const st = replay.snapshot(input.revision, relevantKeys(input));
      const want = apply(st, { ...input }).output;
      if (!outputMatches(input, { ...want, revision: r } as typeof want, out)) {
        violations.push({ kind: 'read-mismatch', op: i, message: `${describe(i)}: the committed history at revision ${input.revision} gives ${describeOutput(want)}` });
      }
      return;
    }
    if (r > replay.lastRevision) {
      const kind = isWriteInput(input) ? 'lost-write' : 'beyond-history';
      violations.push({ kind, op: i, revision: r, message: `${describe(i)}: revision ${r} is beyond the committed history, which ends at ${replay.lastRevision}` });
      return;
    }
    if (input.type === 'leaseGrant' || input.type === 'compact') {
      resolved[i] = r;
      return;
    }
    // Either it wrote at r (the model, applied at r-1, writes exactly what revision r holds), or it did not
    // write and its answer matches the state at r.
    const w = isWriteInput(input) ? modelWriteAt(input, r) : undefined;
    const committedAtR = (): CommittedEvent[] => committedEvents(replay, r);
    const writeFits = w !== undefined && outputMatches(input, w.output, out);
    if (writeFits && sameEvents(w.events, committedAtR())) {
      // A revoke's answer does not say what it deleted. If deleting nothing at r also explains it (its keys were
      // gone by r), another request (a delete of the same keys) may own r and the revoke came after it: decide
      // once every request with a definite write has claimed its revision.
      if (input.type === 'leaseRevoke') {
        const st = replay.snapshot(r, relevantKeys(input));
        if (apply(st, input).state.revision === st.revision) {
          revokesAt.push(i);
          resolved[i] = r;
          return;
        }
      }
      const prevOwner = owner.get(r);
      if (prevOwner !== undefined) {
        violations.push({ kind: 'duplicate-write', op: i, revision: r, message: `${describe(i)} and ${describe(prevOwner)} both claim revision ${r}` });
      }
      owner.set(r, i);
      resolved[i] = r;
      wrote[i] = true;
      return;
    }
    const st = replay.snapshot(r, relevantKeys(input));
    const m = apply(st, input);
    if (m.state.revision === st.revision && outputMatches(input, m.output, out)) {
      resolved[i] = r;
      return;
    }
    resolved[i] = r;
    if (writeFits) {
      const committed = committedAtR();
      const elsewhere = w.events.filter((e) => e.type === 'put').map((e) => replay.valueRevisions.get(e.value!)?.filter((x) => x !== r) ?? []).flat();
      violations.push({
        kind: elsewhere.length ? 'duplicate-write' : 'lost-write',
        op: i,
        revision: r,
        message: `${describe(i)}: revision ${r} holds ${describeEvents(committed)}, expected ${describeEvents(w.events)}` +
          (elsewhere.length ? ` (its value is committed at revision ${elsewhere.join(', ')})` : ''),
      });
      wrote[i] = true;
      return;
    }
    violations.push({
      kind: isWriteInput(input) ? 'write-mismatch' : 'read-mismatch',
      op: i,
      revision: r,
      message: `${describe(i)}: at revision ${r} the committed history gives ${describeOutput(m.output)}` +
        (w ? `; as a write at ${r} it would give ${describeOutput(w.output)}` : '') + ` (state ${st.describe()})`,
    });
    wrote[i] = m.state.revision !== st.revision;
  });

  // A revoke that fits both ways wrote at r only if no other request did.
  for (const i of revokesAt) {
    const r = resolved[i]!;
    if (owner.has(r)) continue;
    owner.set(r, i);
    wrote[i] = true;
  }

  // 2: every committed revision belongs to one issued request.
  const candidates = ops.map((_, i) => i).filter((i) => ops[i]!.output === undefined && isWriteInput(ops[i]!.input));
  for (let rev = 2; rev <= replay.lastRevision; rev++) {
    if (owner.has(rev)) continue;
    const events = replay.eventsAt(rev);
    if (events.length === 0) continue; // reported as a committed-history problem
    const values = events.filter((e) => e.type === 'put').map((e) => e.kv!.value);
    const committed = events.map((e): CommittedEvent => (e.type === 'put' ? { type: 'put', key: e.key, value: e.kv!.value, lease: e.kv!.lease } : { type: 'delete', key: e.key }));
    if (values.length > 0) {
      const owners = new Set(values.map((v) => valueOwner.get(v)));
      if (owners.has(undefined)) {
        const v = values.find((x) => valueOwner.get(x) === undefined)!;
        violations.push({ kind: 'phantom-write', revision: rev, message: `revision ${rev} writes value ${JSON.stringify(v)}, which no client issued` });
        continue;
      }
      if (owners.size > 1) {
        violations.push({ kind: 'phantom-write', revision: rev, message: `revision ${rev} mixes writes of requests ${[...owners].map((o) => '#' + o).join(', ')}` });
        continue;
      }
      const i = [...owners][0]!;
      const op = ops[i]!;
      if (op.output !== undefined) {
        if (isError(op.output)) {
          violations.push({ kind: 'phantom-write', op: i, revision: rev, message: `${describe(i)} failed, but its write is committed at revision ${rev}` });
        } else if (resolved[i] !== rev) {
          violations.push({ kind: 'duplicate-write', op: i, revision: rev, message: `${describe(i)} was acknowledged at revision ${resolved[i]}, but its write is (also) committed at revision ${rev}` });
        }
        continue;
      }
      if (resolved[i] !== undefined) {
        violations.push({ kind: 'duplicate-write', op: i, revision: rev, message: `${describe(i)} is committed twice, at revisions ${resolved[i]} and ${rev}` });
        continue;
      }
      const w = modelWriteAt(op.input, rev);
      if (!w || !sameEvents(w.events, committed)) {
        violations.push({
          kind: 'write-mismatch',
          op: i,
          revision: rev,
          message: `${describe(i)} is committed at revision ${rev} as ${describeEvents(committed)}, but applied at revision ${rev - 1} it writes ${w ? describeEvents(w.events) : 'nothing'}`,
        });
      }
      resolved[i] = rev;
      wrote[i] = true;
      owner.set(rev, i);
      continue;
    }
    // Delete-only revision from an indeterminate request: the earliest-called unused one that fits.
    let found: number | undefined;
    for (const i of candidates) {
      if (resolved[i] !== undefined) continue;
      const w = modelWriteAt(ops[i]!.input, rev);
      if (w && sameEvents(w.events, committed)) {
        found = i;
        break;
      }
    }
    if (found === undefined) {
      violations.push({ kind: 'phantom-write', revision: rev, message: `revision ${rev} (${describeEvents(committed)}) matches no issued request` });
      continue;
    }
    resolved[found] = rev;
    wrote[found] = true;
    owner.set(rev, found);
  }

  // 4: real-time order. Completed operations sorted by return, with the running maximum revision.
  const done = ops.map((_, i) => i).filter((i) => ops[i]!.output !== undefined && resolved[i] !== undefined);
  done.sort((a, b) => (ops[a]!.ret < ops[b]!.ret ? -1 : ops[a]!.ret > ops[b]!.ret ? 1 : 0));
  const rets: Time[] = done.map((i) => ops[i]!.ret);
  const maxRev: number[] = [];
  const maxOp: number[] = [];
  done.forEach((i, j) => {
    const prev = j > 0 ? maxRev[j - 1]! : -Infinity;
    if (resolved[i]! > prev) {
      maxRev.push(resolved[i]!);
      maxOp.push(i);
    } else {
      maxRev.push(prev);
      maxOp.push(maxOp[j - 1]!);
    }
  });
  ops.forEach((op, i) => {
    const rev = resolved[i];
    if (rev === undefined) return;
    // Number of completed operations that returned strictly before op.call.
    let lo = 0;
    let hi = rets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rets[mid]! < op.call) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return;
    const m = maxRev[lo - 1]!;
    if (wrote[i] ? rev <= m : rev < m) {
      const a = maxOp[lo - 1]!;
      violations.push({
        kind: 'real-time',
        op: i,
        revision: rev,
        message: `${describe(i)} is at revision ${rev}${wrote[i] ? ' (a write)' : ''}, but ${describe(a)} returned before it was called, at revision ${m}`,
      });
    }
  });

  return { ok: violations.length === 0, operations: ops, violations, revisions: resolved, wrote };
}

/** The keys a request reads or writes that ever existed in the committed history. */
function relevantKeysOf(replay: Replay, input: Input): string[] {
  const ks = new Set<string>();
  const addRange = (key: string, rangeEnd: string | undefined): void => {
    for (const k of replay.keysInRange(key, rangeEnd)) ks.add(k);
  };
  switch (input.type) {
    case 'range':
    case 'delete':
      addRange(input.key, input.rangeEnd);
      break;
    case 'put':
      ks.add(input.key);
      break;
    case 'txn':
      for (const c of input.compare) ks.add(c.key);
      for (const o of [...input.success, ...input.failure]) {
        if (o.type === 'put') ks.add(o.key);
        else addRange(o.key, o.rangeEnd);
      }
      break;
    case 'leaseRevoke':
      for (const k of replay.keys) ks.add(k);
      break;
    default:
  }
  return [...ks];
}

/** The writes the model makes when `input` is applied at revision rev-1, if it writes at rev. */
export function modelWrite(replay: Replay, input: Input, rev: number): { events: CommittedEvent[]; output: ReturnType<typeof apply>['output'] } | undefined {
  if (rev < 2) return undefined;
  const keys = relevantKeysOf(replay, input);
  const before = replay.snapshot(rev - 1, keys);
  const r = apply(before, input);
  if (r.state.revision !== rev) return undefined;
  const events: CommittedEvent[] = [];
  for (const k of keys) {
    const a = r.state.keys.get(k);
    if (a && a.modRevision === rev) events.push({ type: 'put', key: k, value: a.value, lease: a.lease });
    else if (!a && before.keys.has(k)) events.push({ type: 'delete', key: k });
  }
  return { events, output: r.output };
}

/** Equal as sets (a txn writes each key at most once). */
export function sameEvents(a: readonly CommittedEvent[], b: readonly CommittedEvent[]): boolean {
  if (a.length !== b.length) return false;
  const norm = (e: CommittedEvent): string => `${e.key}\u0000${e.type}\u0000${e.type === 'put' ? `${e.value}\u0000${e.lease ?? 0n}` : ''}`;
  const x = a.map(norm).sort();
  const y = b.map(norm).sort();
  return x.every((s, i) => s === y[i]);
}

/** The committed events of one revision. */
export function committedEvents(replay: Replay, rev: number): CommittedEvent[] {
  return replay.eventsAt(rev).map((e): CommittedEvent => (e.type === 'put' ? { type: 'put', key: e.key, value: e.kv!.value, lease: e.kv!.lease } : { type: 'delete', key: e.key }));
}
