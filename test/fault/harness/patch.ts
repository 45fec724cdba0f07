// Patching indeterminate writes from the committed history before the linearizability search, as etcd's
// robustness validation does (patch_history.go; faults.md §2.6 step 3, §5.4). Without it every failed write stays
// open until +∞ and the WGL search blows up after a few dozen of them (a kill run has 40+).
//
// For an indeterminate operation whose only possible writes are puts of unique values (a Put, or a Txn whose
// branches write nothing but puts):
//   - none of its values is in the committed history: it never wrote. It is dropped (a Txn that may have run its
//     read-only branch has no effect either; its unknown output is like a failed read's);
//   - its value is committed at revision R: it took effect at R. Every operation that returned with a revision
//     >= R (other than itself) proves R was committed before that return, so its return is at most the earliest
//     such return; its output becomes {revision: R} (a Txn: succeeded, responses not compared). If that bound is
//     not after its call (which only an anomaly can cause) or there is none, it is left indeterminate.
// Deletes (not unique) are left alone. The raw history is what history.jsonl keeps; only the search sees this.

import { type History, isError, type Operation, type Output, type TxnInput } from '../checker/history';
import type { Replay } from '../checker/replay';

export interface PatchReport {
  history: History;
  dropped: number;
  patched: number;
  left: number;
}

function putValues(op: Operation): { values: string[]; onlyPuts: boolean; succeededIf?: boolean } {
  const i = op.input;
  if (i.type === 'put') return { values: [i.value], onlyPuts: true };
  if (i.type === 'txn') {
    const t = i as TxnInput;
    const writes = [...t.success, ...t.failure].filter((x) => x.type !== 'range');
    return { values: writes.flatMap((x) => (x.type === 'put' ? [x.value] : [])), onlyPuts: writes.every((x) => x.type === 'put') };
  }
  return { values: [], onlyPuts: false };
}

export function patchHistory(history: History, replay: Replay): PatchReport {
  const revOf = (op: Operation): number | undefined => {
    const o = op.output;
    if (!o || isError(o)) return undefined;
    return (o as { revision: number }).revision;
  };
  // Earliest return among operations that saw revision >= R, for every R: sort by revision, suffix minimum.
  const seen = history.filter((op) => revOf(op) !== undefined).map((op) => ({ rev: revOf(op)!, ret: Number(op.ret) })).sort((a, b) => a.rev - b.rev);
  const suffixMin: number[] = new Array(seen.length);
  let m = Infinity;
  for (let k = seen.length - 1; k >= 0; k--) {
    m = Math.min(m, seen[k]!.ret);
    suffixMin[k] = m;
  }
  const earliestReturnAtOrAfter = (rev: number): number => {
    let lo = 0;
    let hi = seen.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seen[mid]!.rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo < seen.length ? suffixMin[lo]! : Infinity;
  };
  const out: History = [];
  let dropped = 0;
  let patched = 0;
  let left = 0;
  for (const op of history) {
    if (op.output !== undefined || op.input.type === 'range') {
      out.push(op);
      continue;
    }
    const { values, onlyPuts } = putValues(op);
    if (!onlyPuts || values.length === 0) {
      left++;
      out.push(op);
      continue;
    }
    const revs = new Set(values.flatMap((v) => replay.valueRevisions.get(v) ?? []));
    if (revs.size === 0) {
      dropped++;
      continue;
    }
    const rev = revs.size === 1 ? [...revs][0]! : undefined;
    const bound = rev === undefined ? Infinity : earliestReturnAtOrAfter(rev);
    if (rev === undefined || bound === Infinity || !(bound > Number(op.call))) {
      left++;
      out.push(op);
      continue;
    }
    const output: Output = op.input.type === 'txn' ? { revision: rev, succeeded: true } : { revision: rev };
    out.push({ ...op, ret: bound, output });
    patched++;
  }
  return { history: out, dropped, patched, left };
}
