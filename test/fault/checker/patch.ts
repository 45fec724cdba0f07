// Resolving indeterminate writes from the committed history before the WGL search (etcd's patch_history.go, in
// our own words; faults.md §2.6 step 3). Every indeterminate operation stays pending until +∞, so each one
// widens the search; a few dozen make it intractable. With unique put values the committed history says what
// happened to most of them:
//
// - none of its put values was ever committed, and every branch that could write has a put: it had no effect
//   (it was never applied, or its compare chose a branch that writes nothing): drop it;
// - one of its put values was committed at revision r: it took effect at r. Its output becomes {revision: r}
//   (a txn's also says which branch ran), and its return moves to just before the earliest return of a
//   completed operation whose revision is >= r, since that operation saw (or followed) this write.
//
// Deletes, revokes and put-less txns are not unique and stay indeterminate (the harness keeps few in flight).
// The patched history is only as trustworthy as the committed history; the unpatched check does not depend on
// it but may need a budget.

import { type History, isError, type Operation, prepareHistory, type Time, type TxnInput } from './history';
import type { Replay } from './replay';

export interface PatchReport {
  history: Operation[];
  dropped: number;
  resolved: number;
  /** Indeterminate operations left as they were. */
  open: number;
}

function justBefore(t: Time): Time {
  if (typeof t === 'bigint') return t - 1n;
  // Half-way to the previous representable instant of interest: times are usually integers.
  return t - Math.max(1e-6, Math.abs(t) * 1e-12);
}

export function patchHistory(history: History, replay: Replay): PatchReport {
  const ops = prepareHistory(history);
  // Completed operations' revisions, sorted, with a suffix minimum of return times.
  const done = ops.filter((op) => op.output !== undefined && !isError(op.output)).map((op) => ({ rev: (op.output as { revision: number }).revision, ret: op.ret }));
  done.sort((a, b) => a.rev - b.rev);
  const suffixMinRet: Time[] = new Array(done.length);
  for (let j = done.length - 1; j >= 0; j--) {
    const r = done[j]!.ret;
    suffixMinRet[j] = j + 1 < done.length && suffixMinRet[j + 1]! < r ? suffixMinRet[j + 1]! : r;
  }
  const earliestReturnAtOrAfter = (rev: number): Time | undefined => {
    let lo = 0;
    let hi = done.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (done[mid]!.rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo < done.length ? suffixMinRet[lo] : undefined;
  };
  const committedAt = (value: string): number | undefined => {
    const revs = replay.valueRevisions.get(value);
    return revs && revs.length > 0 ? revs[0] : undefined;
  };

  const out: Operation[] = [];
  let dropped = 0;
  let resolved = 0;
  let open = 0;
  for (const op of ops) {
    if (op.output !== undefined) {
      out.push(op);
      continue;
    }
    const i = op.input;
    let branches: { puts: string[]; writes: boolean; succeeded?: boolean }[];
    if (i.type === 'put') branches = [{ puts: [i.value], writes: true }];
    else if (i.type === 'txn') {
      const b = (ops: TxnInput['success'], succeeded: boolean) => ({
        puts: ops.filter((o) => o.type === 'put').map((o) => (o as { value: string }).value),
        writes: ops.some((o) => o.type !== 'range'),
        succeeded,
      });
      branches = [b(i.success, true), b(i.failure, false)];
    } else {
      out.push(op);
      open++;
      continue;
    }
    let hit: { rev: number; succeeded?: boolean } | undefined;
    for (const b of branches) {
      for (const v of b.puts) {
        const rev = committedAt(v);
        if (rev !== undefined) hit = { rev, succeeded: b.succeeded };
      }
    }
    if (!hit) {
      if (branches.every((b) => !b.writes || b.puts.length > 0)) {
        dropped++;
        continue;
      }
      out.push(op);
      open++;
      continue;
    }
    const bound = earliestReturnAtOrAfter(hit.rev);
    const ret = bound !== undefined && bound > op.call ? justBefore(bound) : Infinity;
    const output = i.type === 'txn' ? { revision: hit.rev, succeeded: hit.succeeded! } : { revision: hit.rev };
    // With nothing completed at or after r (or a bound before the call, which the checkers will reject anyway),
    // it stays open until +∞, with its known output.
    out.push({ ...op, output, ret });
    resolved++;
  }
  return { history: out, dropped, resolved, open };
}
