// The Raft log's stable part, held in memory (etcd-io/raft MemoryStorage). The node loop appends here
// only after the entries are durable in the WAL, so everything in it is on disk.
//
// Contract (as raft's Storage): indexes are 1-based; entries(lo, hi) returns [lo, hi) and the caller must
// not mutate the returned array; firstIndex() is the first index still available (snapshot.index + 1).

import { assert } from '../util/assert';
import type { Entry, HardState, SnapshotMeta } from './types';
import { emptyHardState } from './types';

export class MemoryStorage {
  hardState: HardState = emptyHardState;
  snapshot: SnapshotMeta = { index: 0, term: 0 };
  // Invariant: ents[i].index === snapshot.index + 1 + i.
  private ents: Entry[] = [];

  firstIndex(): number {
    return this.snapshot.index + 1;
  }

  lastIndex(): number {
    return this.snapshot.index + this.ents.length;
  }

  /** The term of entry i; undefined when i is compacted away or beyond the log. */
  term(i: number): number | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    if (i < this.snapshot.index) return undefined;
    return this.ents[i - this.snapshot.index - 1]?.term;
  }

  entries(lo: number, hi: number): Entry[] {
    assert(lo >= this.firstIndex(), `entries(${lo}): compacted (first index ${this.firstIndex()})`);
    assert(hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}): beyond last index ${this.lastIndex()}`);
    const offset = this.snapshot.index + 1;
    return this.ents.slice(lo - offset, hi - offset);
  }

  /** Append entries, truncating any conflicting suffix (a later write of index i replaces i and after). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first >= this.firstIndex(), `append at ${first}: below first index ${this.firstIndex()}`);
    assert(first <= this.lastIndex() + 1, `append at ${first}: gap after last index ${this.lastIndex()}`);
    this.ents.length = first - this.snapshot.index - 1;
    for (const e of entries) this.ents.push(e);
  }

  /** Drop entries up to and including index (after a snapshot at index). */
  compact(index: number, term: number): void {
    if (index <= this.snapshot.index) return;
    assert(index <= this.lastIndex(), `compact(${index}) beyond last index ${this.lastIndex()}`);
    this.ents = this.ents.slice(index - this.snapshot.index);
    this.snapshot = { index, term };
  }
}
