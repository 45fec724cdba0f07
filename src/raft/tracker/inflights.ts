// Flow control for one follower (etcd raft tracker/inflights.go, with etcd-io/raft v3.6's byte bound): the MsgApps
// sent but not yet acknowledged, each recorded by the index of its last entry and its payload bytes.

import { assert } from '../../util/assert';

/**
 * A ring buffer of in-flight appends. Callers check full() before add(), add indexes in increasing order, and free
 * with freeLE(index) when the follower acknowledges index.
 */
export class Inflights {
  // The ring: slots [start, start + count) (mod size) hold in-flight messages.
  // Invariant: 0 <= count <= size; bytes is the sum of the byte sizes of those messages.
  private start = 0;
  private count_ = 0;
  private bytes_ = 0;
  private indexes: number[] = [];
  private sizes: number[] = [];

  /**
   * @param size the maximum number of in-flight messages (MaxInflightMsgs), > 0.
   * @param maxBytes the maximum total payload bytes in flight (MaxInflightBytes); 0 for no limit. The bound is soft:
   *   a message may take the total above it, after which the window is full until enough is freed.
   */
  constructor(
    readonly size: number,
    readonly maxBytes = 0,
  ) {
    assert(size > 0, 'max inflight messages must be greater than 0');
    assert(maxBytes >= 0, 'max inflight bytes must not be negative');
  }

  clone(): Inflights {
    const c = new Inflights(this.size, this.maxBytes);
    c.start = this.start;
    c.count_ = this.count_;
    c.bytes_ = this.bytes_;
    c.indexes = this.indexes.slice();
    c.sizes = this.sizes.slice();
    return c;
  }

  /** Records a message whose last entry is `index`, carrying `bytes` of payload. full() must be false. */
  add(index: number, bytes: number): void {
    assert(!this.full(), 'cannot add into a Full inflights');
    let next = this.start + this.count_;
    if (next >= this.size) next -= this.size;
    if (this.count_ > 0) {
      const lastSlot = (this.start + this.count_ - 1) % this.size;
      assert(index >= this.indexes[lastSlot]!, `inflights: index ${index} added after ${this.indexes[lastSlot]}`);
    }
    this.indexes[next] = index;
    this.sizes[next] = bytes;
    this.count_++;
    this.bytes_ += bytes;
  }

  /** Frees the messages whose last index is <= to. */
  freeLE(to: number): void {
    if (this.count_ === 0 || to < this.indexes[this.start]!) return;
    let idx = this.start;
    let i = 0;
    let bytes = 0;
    for (; i < this.count_; i++) {
      // Found the first larger inflight.
      if (to < this.indexes[idx]!) break;
      bytes += this.sizes[idx]!;
      idx++;
      if (idx >= this.size) idx -= this.size;
    }
    this.count_ -= i;
    this.bytes_ -= bytes;
    this.start = idx;
    if (this.count_ === 0) {
      // Empty: reset the start so the buffer does not wander.
      this.start = 0;
    }
  }

  /** Frees the first in-flight message; a no-op if none. */
  freeFirstOne(): void {
    if (this.count_ === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  /** Whether no more messages may be sent: the count or the byte bound is reached. */
  full(): boolean {
    return this.count_ === this.size || (this.maxBytes !== 0 && this.bytes_ >= this.maxBytes);
  }

  count(): number {
    return this.count_;
  }

  bytes(): number {
    return this.bytes_;
  }

  /** Frees everything. */
  reset(): void {
    this.count_ = 0;
    this.bytes_ = 0;
    this.start = 0;
  }
}
