// The Raft log (etcd raft log.go): the stable entries in Storage followed by the unstable ones, with the commit and
// apply cursors.

import { assert } from '../util/assert';
import { isDomainError } from '../util/errors';
import { CompactedError } from './errors';
import type { Logger } from './logger';
import { Unstable } from './log-unstable';
import type { Storage } from './storage';
import type { Entry, Snapshot } from './types';
import { limitSize, noLimit } from './util';

export class RaftLog {
  /** All stable entries since the last snapshot. */
  readonly storage: Storage;
  /** Entries (and possibly a snapshot) not yet persisted; they will be saved into storage. */
  readonly unstable: Unstable;
  /**
   * The highest log position known to be committed (in stable storage on a quorum of nodes).
   * Invariant: committed <= lastIndex().
   */
  committed: number;
  /**
   * The highest log position the application has been instructed to apply to its state machine.
   * Invariant: applied <= committed.
   */
  applied: number;
  /** Bound on the total size of the entries returned by nextEnts (MaxCommittedSizePerReady). */
  readonly maxNextEntsSize: number;

  constructor(
    storage: Storage,
    private readonly logger: Logger,
    maxNextEntsSize: number = noLimit,
  ) {
    this.storage = storage;
    this.maxNextEntsSize = maxNextEntsSize;
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new Unstable(lastIndex + 1, logger);
    // Initialize the committed and applied pointers to the time of the last compaction.
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, len(unstable.Entries)=${this.unstable.entries.length}`;
  }

  /**
   * Appends the entries of a MsgApp whose preceding entry is (index, logTerm), if that entry matches ours; returns the
   * last index of the new entries, or undefined if it does not match (the leader must back off). Also commits up to
   * min(committed, that last index).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastnewi = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci === 0) {
      // Nothing new.
    } else {
      assert(ci > this.committed, `entry ${ci} conflict with committed entry [committed(${this.committed})]`);
      const offset = index + 1;
      this.append(ents.slice(ci - offset));
    }
    this.commitTo(Math.min(committed, lastnewi));
    return lastnewi;
  }

  /** Appends entries (truncating any conflicting unstable suffix); returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    assert(after >= this.committed, `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of ents that conflicts with the log (same index, different term), or, if none
   * conflicts, the index of the first entry beyond the log, or 0 if the log already holds all of them.
   * ents must be contiguous.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const ne of ents) {
      if (!this.matchTerm(ne.index, ne.term)) {
        if (ne.index <= this.lastIndex()) {
          this.logger.info(
            `found conflict at index ${ne.index} [existing term: ${this.zeroTermOnErrCompacted(ne.index)}, conflicting term: ${ne.term}]`,
          );
        }
        return ne.index;
      }
    }
    return 0;
  }

  /** A copy of the unstable entries (the node loop persists them). */
  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /**
   * The committed entries not yet applied, at most maxNextEntsSize (at least one). If applied is below the snapshot,
   * the entries after the snapshot.
   */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSize);
    return [];
  }

  /** Whether nextEnts() would return anything. */
  hasNextEnts(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /** The latest snapshot: the unstable one if any, else Storage's (which may throw). */
  snapshot(): Snapshot {
    if (this.unstable.snapshot !== undefined) return this.unstable.snapshot;
    return this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Raises the commit index (never lowers it). Committing beyond the log means the log was lost: assert. */
  commitTo(tocommit: number): void {
    if (this.committed < tocommit) {
      assert(
        this.lastIndex() >= tocommit,
        `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
      );
      this.committed = tocommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    assert(
      this.committed >= i && i >= this.applied,
      `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`,
    );
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /**
   * The term of entry i; 0 when i is outside [firstIndex() - 1, lastIndex()] (as etcd's raftLog.term, which returns
   * (0, nil) there). Throws CompactedError only if Storage does (it cannot when used from a single thread).
   */
  term(i: number): number {
    // The valid term range is [index of dummy entry, last index].
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** Entries from i to the end, at most maxSizeBytes (at least one). Throws CompactedError if i is compacted. */
  entries(i: number, maxSizeBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSizeBytes);
  }

  /** All entries in the log. */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), noLimit);
  }

  /**
   * Whether a log ending at (lasti, term) is at least as up-to-date as ours: a later last term wins; with equal last
   * terms, the longer log wins (Raft §5.4.1).
   */
  isUpToDate(lasti: number, term: number): boolean {
    const lastTerm = this.lastTerm();
    return term > lastTerm || (term === lastTerm && lasti >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    let t: number;
    try {
      t = this.term(i);
    } catch (err) {
      if (isDomainError(err, 'ErrCompacted') || isDomainError(err, 'ErrUnavailable')) return false;
      throw err;
    }
    return t === term;
  }

  /**
   * Commits up to maxIndex if that entry is of `term` (the leader's current term): a leader commits entries of
   * earlier terms only indirectly, by committing one of its own (Raft §5.4.2).
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnErrCompacted(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Replaces the log with a snapshot; everything up to its index is committed. */
  restore(s: Snapshot): void {
    this.logger.info(`log [${this.toString()}] starts to restore snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries [lo, hi), at most maxSizeBytes (at least one). Throws CompactedError if lo is compacted. */
  slice(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const offset = this.unstable.offset;
    if (lo < offset) {
      const storedHi = Math.min(hi, offset);
      const stored = this.storage.entries(lo, storedHi, maxSizeBytes);
      // Storage cut the range to the size limit: return what we have.
      if (stored.length < storedHi - lo) return stored;
      ents = stored;
    }
    if (hi > offset) {
      const unstable = this.unstable.slice(Math.max(lo, offset), hi);
      ents = ents.length > 0 ? ents.concat(unstable) : unstable;
    }
    return limitSize(ents, maxSizeBytes);
  }

  /** Requires firstIndex() <= lo <= hi <= lastIndex() + 1; throws CompactedError if lo < firstIndex(). */
  private mustCheckOutOfBounds(lo: number, hi: number): void {
    assert(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError();
    const length = this.lastIndex() + 1 - fi;
    assert(hi <= fi + length, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }

  /** The term of entry i, or 0 if Storage reports it compacted (etcd zeroTermOnErrCompacted). */
  zeroTermOnErrCompacted(i: number): number {
    try {
      return this.term(i);
    } catch (err) {
      if (isDomainError(err, 'ErrCompacted')) return 0;
      throw err;
    }
  }
}
