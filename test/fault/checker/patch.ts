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
// Deletes, revokes and put-less txns are not unique. For them: the delete-only revisions that no completed request
// wrote (per the revision oracle) are the only places they could have written. If none fits (the model, applied
// at r-1, deletes exactly what r holds), the request had no effect: drop it (applied to absent keys it is a
// no-op, the same as not applied; a revoke is kept, since it also ends its lease). If exactly one revision fits, and it fits no other open request, it took
// effect there: resolve it as above. Otherwise it stays indeterminate (the harness keeps few in flight).
//
// A LeaseGrant has no revision and no value. An indeterminate grant of a lease that no other request names and no
// committed key carries is dropped: whether such a lease exists cannot be observed, so "never granted" is as good
// a linearization as any (the harness's clients never use a lease whose grant failed). Otherwise it stays open.
// The patched history is only as trustworthy as the committed history; the unpatched check does not depend on
// it but may need a budget.

import { type History, isError, type Operation, prepareHistory, type Time, type TxnInput } from './history';
import type { Replay } from './replay';
import { checkRevisionOracle, committedEvents, modelWrite, sameEvents } from './revision-oracle';

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

  // Delete-only revisions that no completed request wrote, and which open put-less writes fit each.
  const oracle = checkRevisionOracle(ops, replay);
  const owned = new Set<number>();
  ops.forEach((op, i) => {
    if (op.output !== undefined && oracle.wrote[i] && oracle.revisions[i] !== undefined) owned.add(oracle.revisions[i]!);
  });
  const unowned: number[] = [];
  for (let rev = 2; rev <= replay.lastRevision; rev++) {
    if (owned.has(rev)) continue;
    const evs = replay.eventsAt(rev);
    if (evs.length > 0 && evs.every((e) => e.type === 'delete')) unowned.push(rev);
  }
  const fits = new Map<Operation, number[]>();
  const fitCount = new Map<number, number>();
  for (const op of ops) {
    if (op.output !== undefined) continue;
    const i = op.input;
    const branches = i.type === 'txn' ? [i.success, i.failure] : i.type === 'delete' || i.type === 'leaseRevoke' ? [[i]] : [];
    if (branches.length === 0 || branches.some((b) => b.some((o) => o.type === 'put'))) continue;
    const revs = unowned.filter((rev) => {
      const w = modelWrite(replay, op.input, rev);
      return w !== undefined && sameEvents(w.events, committedEvents(replay, rev));
    });
    fits.set(op, revs);
    for (const r of revs) fitCount.set(r, (fitCount.get(r) ?? 0) + 1);
  }

  const namedLeases = new Set<bigint>();
  for (const op of ops) {
    const i = op.input;
    if (i.type === 'leaseRevoke') namedLeases.add(i.id);
    const puts = i.type === 'put' ? [i] : i.type === 'txn' ? [...i.success, ...i.failure] : [];
    for (const p of puts) if (p.type === 'put' && p.lease) namedLeases.add(p.lease);
    if (i.type === 'txn') for (const c of i.compare) if (c.target === 'lease') namedLeases.add(c.operand as bigint);
  }
  for (let rev = 2; rev <= replay.lastRevision; rev++) {
    for (const e of replay.eventsAt(rev)) if (e.kv?.lease) namedLeases.add(e.kv.lease);
  }

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
    if (i.type === 'leaseGrant' && i.id !== 0n && !namedLeases.has(i.id)) {
      dropped++;
      continue;
    }
    const fit = fits.get(op);
    if (fit) {
      // A revoke also ends its lease, an effect without a revision: it is never dropped.
      if (fit.length === 0 && i.type !== 'leaseRevoke') {
        dropped++;
        continue;
      }
      const rev = fit[0];
      if (rev === undefined || fit.length > 1 || fitCount.get(rev) !== 1) {
        out.push(op);
        open++;
        continue;
      }
      const bound = earliestReturnAtOrAfter(rev);
      out.push({ ...op, output: modelWrite(replay, i, rev)!.output, ret: bound !== undefined && bound > op.call ? justBefore(bound) : Infinity });
      resolved++;
      continue;
    }
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
