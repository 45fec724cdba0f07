// The unstable part of the log (etcd raft log_unstable.go): entries and possibly a snapshot that the node loop has not
// yet persisted to Storage.

import { assert } from '../util/assert';
import type { Logger } from './logger';
import type { Entry, Snapshot } from './types';

/**
 * entries[i] has log position i + offset. offset may be at or below Storage's last index: then the next write to
 * Storage must truncate the stable log before persisting these entries (Storage.append does).
 */
export class Unstable {
  /** The incoming snapshot, if any, not yet persisted. */
  snapshot: Snapshot | undefined = undefined;
  /** Entries not yet persisted. Replaced, never mutated in place, so arrays handed out stay valid. */
  entries: Entry[] = [];
  // Invariant: if snapshot is set, offset === snapshot.metadata.index + 1 or entries were appended after it.
  offset: number;

  constructor(
    offset: number,
    private readonly logger: Logger,
  ) {
    this.offset = offset;
  }

  /** The index of the first possible entry, if there is an unstable snapshot. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot !== undefined ? this.snapshot.metadata.index + 1 : undefined;
  }

  /** The last index, if there is at least one unstable entry or an unstable snapshot. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== undefined) return this.snapshot.metadata.index;
    return undefined;
  }

  /** The term of entry i, if the unstable part knows it. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]!.term;
  }

  /**
   * Entries up to (i, t) are now stable. Ignored unless the unstable entry at i still has term t: the entry persisted
   * may have been replaced meanwhile (by a new leader's append), and then the replacement is still unstable.
   */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return;
    // If i < offset the term matched the snapshot: only entries matter here.
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  /** The snapshot at index i is now stable. */
  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  /** Replaces everything with the snapshot; later entries are appended after it. */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  /** Appends ents (contiguous), first truncating any unstable entries at or after ents[0].index. */
  truncateAndAppend(ents: readonly Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      // The next index: append directly.
      this.entries = this.entries.concat(ents);
    } else if (after <= this.offset) {
      this.logger.info(`replace the unstable entries from index ${after}`);
      // The log is being truncated to before our current offset portion, so set the offset and replace the entries.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      // Truncate to after and append.
      this.logger.info(`truncate the unstable entries before index ${after}`);
      this.entries = this.slice(this.offset, after).concat(ents);
    }
  }

  /** Entries [lo, hi) as a new array. Both bounds must lie within the unstable entries. */
  slice(lo: number, hi: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    assert(lo <= hi, `invalid unstable.slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    assert(lo >= this.offset && hi <= upper, `unstable.slice[${lo},${hi}) out of bound [${this.offset},${upper}]`);
  }
}
