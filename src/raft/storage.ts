// The Raft log's stable part (etcd raft storage.go): the Storage interface the core reads, and MemoryStorage, the
// in-memory implementation the node loop writes to after the entries are durable (in the WAL), so everything in it
// is on disk.
//
// Contract (as etcd's Storage):
// - Indexes are 1-based. The log holds a "dummy" position at firstIndex() - 1 (the last index covered by the
//   snapshot, or 0), whose term is kept for matching even though the entry itself is gone.
// - entries(lo, hi, maxSizeBytes) returns [lo, hi), cut to maxSizeBytes but at least one entry when the range is not
//   empty. The caller must not mutate the returned array or its entries.
// - term(i) is defined for i in [firstIndex() - 1, lastIndex()].
// - Errors are thrown as typed domain errors: CompactedError when lo (or i) predates the snapshot, UnavailableError
//   when entries beyond the log are requested from an empty log, SnapshotTemporarilyUnavailableError from snapshot()
//   when the application is still preparing one. Anything else thrown makes the node inoperable.
// - The core calls Storage only synchronously, from within its own methods.

import { assert } from '../util/assert';
import { CompactedError, SnapOutOfDateError, UnavailableError } from './errors';
import {
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Snapshot,
  emptyConfState,
  emptyHardState,
} from './types';
import { limitSize } from './util';

/** Read access to the stable log, the persisted HardState and the latest snapshot (etcd raft.Storage). */
export interface Storage {
  /** The persisted HardState and the ConfState of the latest snapshot (empty for none). */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at most maxSizeBytes (at least one). Throws CompactedError if lo <= the snapshot index. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** The term of entry i, for i in [firstIndex() - 1, lastIndex()]. Throws CompactedError / UnavailableError. */
  term(i: number): number;
  lastIndex(): number;
  /** The first index still available through entries() (the snapshot index + 1). */
  firstIndex(): number;
  /** The latest snapshot. May throw SnapshotTemporarilyUnavailableError. */
  snapshot(): Snapshot;
}

/**
 * Storage backed by arrays in memory (etcd MemoryStorage). The node loop appends entries here only after they are
 * durable, applies received snapshots with applySnapshot, and compacts with createSnapshot + compact.
 */
export class MemoryStorage implements Storage {
  /**
   * The persisted HardState. Public and assignable for the node loop (`storage.hardState = rd.hardState`); same as
   * setHardState().
   */
  hardState: HardState = emptyHardState;
  // The latest snapshot. Equal to the dummy position ents[0] after applySnapshot; createSnapshot records one without
  // compacting (then it is ahead of ents[0]); an application that compacts beyond its latest snapshot leaves it behind
  // (and cannot catch up followers that need the compacted entries).
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: emptyConfState() } };
  // ents[0] is the dummy entry at the snapshot's position; ents[i].index === ents[0].index + i.
  private ents: Entry[] = [{ index: 0, term: 0, type: EntryType.Normal, data: Buffer.alloc(0) }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError();
    assert(hi <= this.lastIndex() + 1, `entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    assert(lo <= hi, `invalid range [${lo}, ${hi})`);
    // Only the dummy entry.
    if (this.ents.length === 1) throw new UnavailableError();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new CompactedError();
    const e = this.ents[i - offset];
    if (e === undefined) throw new UnavailableError();
    return e.term;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Replaces the whole log with the snapshot (etcd ApplySnapshot): afterwards firstIndex() is the snapshot's index
   * + 1 and the log is empty. Throws SnapOutOfDateError if the snapshot is not newer than the current one.
   */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new SnapOutOfDateError();
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: EntryType.Normal, data: Buffer.alloc(0) }];
  }

  /**
   * Records a snapshot at index i (which must be in the log), with the ConfState in effect at i (pass the result of
   * the last applyConfChange at or before i; omitted keeps the previous ConfState) and the application's data
   * (etcd CreateSnapshot). It does not discard entries: call compact() for that. Throws SnapOutOfDateError if i is
   * not beyond the current snapshot.
   */
  createSnapshot(i: number, confState: ConfState | undefined, data?: Buffer): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapOutOfDateError();
    assert(i <= this.lastIndex(), `snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    const offset = this.ents[0]!.index;
    const snap: Snapshot = {
      metadata: { index: i, term: this.ents[i - offset]!.term, confState: confState ?? this.snap.metadata.confState },
    };
    if (data !== undefined) snap.data = data;
    this.snap = snap;
    return snap;
  }

  /**
   * Discards the entries up to compactIndex (etcd Compact): compactIndex becomes the dummy position (its term is
   * kept), so afterwards firstIndex() === compactIndex + 1. The application must not compact
   * beyond its applied index, and should compact only up to an index it has a snapshot for, or followers that lag
   * behind cannot be caught up. Throws CompactedError if compactIndex is not beyond the current first index - 1.
   */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) throw new CompactedError();
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const dummy = this.ents[i]!;
    this.ents = [{ index: dummy.index, term: dummy.term, type: EntryType.Normal, data: Buffer.alloc(0) }, ...this.ents.slice(i + 1)];
  }

  /**
   * Appends entries, replacing any existing suffix from entries[0].index on (etcd Append). Entries at or before the
   * dummy position are skipped. The first new entry must not leave a gap after lastIndex().
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    // Nothing new.
    if (last < first) return;
    // Drop the part already compacted away.
    let ents = entries;
    if (first > entries[0]!.index) ents = entries.slice(first - entries[0]!.index);
    const offset = ents[0]!.index - this.ents[0]!.index;
    assert(offset <= this.ents.length, `missing log entry [last: ${this.lastIndex()}, append at: ${ents[0]!.index}]`);
    this.ents.length = offset;
    for (const e of ents) this.ents.push(e);
  }
}
