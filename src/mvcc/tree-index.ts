// The in-memory key index (etcd mvcc/index.go treeIndex): a B+ tree from key bytes (compared with
// Buffer.compare, i.e. bytewise) to the key's KeyIndex. It answers every range from memory; the backend is
// only asked for the values of the revisions found here.
//
// Range end forms (etcd's): end === null means exactly `key`; an empty end means every key >= `key`;
// otherwise the half-open interval [key, end).

import BTree from 'sorted-btree';
import { assert } from '../util/assert';
import type { Revision } from './types';
import { KeyIndex, type KeyIndexGetResult, type RemovedRevision } from './key-index';

export interface RemovedKeyRevision extends RemovedRevision {
  key: Buffer;
}

export interface IndexRangeResult {
  /** Keys in ascending order, at most `limit` of them (0 = no limit). */
  keys: Buffer[];
  /** revs[i] is the revision of keys[i] at the read revision. */
  revs: Revision[];
  /** The number of keys alive in the range at the read revision, ignoring the limit. */
  count: number;
}

export class TreeIndex {
  private readonly tree = new BTree<Buffer, KeyIndex>(undefined, (a, b) => Buffer.compare(a, b));

  /** Number of keyIndexes (live keys plus deleted keys whose history is not compacted away). */
  get size(): number {
    return this.tree.size;
  }

  /** Records a put of `key` at `rev`. The key is copied when it enters the index. */
  put(key: Buffer, rev: Revision): void {
    let ki = this.tree.get(key);
    if (ki === undefined) {
      ki = new KeyIndex(Buffer.from(key));
      this.tree.set(ki.key, ki);
    }
    ki.put(rev.main, rev.sub);
  }

  get(key: Buffer, atRev: number): KeyIndexGetResult | null {
    const ki = this.tree.get(key);
    if (ki === undefined) return null;
    return ki.get(atRev);
  }

  keyIndex(key: Buffer): KeyIndex | undefined {
    return this.tree.get(key);
  }

  insert(ki: KeyIndex): void {
    this.tree.set(ki.key, ki);
  }

  /** Records a deletion of `key` at `rev`; false when the key has no live generation (etcd ErrRevisionNotFound). */
  tombstone(key: Buffer, rev: Revision): boolean {
    const ki = this.tree.get(key);
    if (ki === undefined) return false;
    return ki.tombstone(rev.main, rev.sub);
  }

  /** Calls `f` for every keyIndex in the range, in key order. */
  visit(key: Buffer, end: Buffer | null, f: (ki: KeyIndex) => void): void {
    if (end === null) {
      const ki = this.tree.get(key);
      if (ki !== undefined) f(ki);
      return;
    }
    if (end.length === 0) {
      const high = this.tree.maxKey();
      if (high === undefined || Buffer.compare(key, high) > 0) return;
      this.tree.forRange(key, high, true, (_k, ki) => f(ki));
      return;
    }
    if (Buffer.compare(key, end) >= 0) return;
    this.tree.forRange(key, end, false, (_k, ki) => f(ki));
  }

  /**
   * The keys alive at atRev in the range with their revisions, at most `limit` of them (0 = all), and the
   * count of all of them (etcd Revisions/Range; counting needs the walk over the whole range either way).
   */
  range(key: Buffer, end: Buffer | null, atRev: number, limit = 0): IndexRangeResult {
    const keys: Buffer[] = [];
    const revs: Revision[] = [];
    let count = 0;
    this.visit(key, end, (ki) => {
      const got = ki.get(atRev);
      if (got === null) return;
      count++;
      if (limit <= 0 || keys.length < limit) {
        keys.push(ki.key);
        revs.push(got.modified);
      }
    });
    return { keys, revs, count };
  }

  /** Every revision at or after `rev` of every key in the range, sorted by revision (etcd RangeSince). */
  rangeSince(key: Buffer, end: Buffer | null, rev: number): Revision[] {
    const revs: Revision[] = [];
    this.visit(key, end, (ki) => {
      for (const r of ki.since(rev)) revs.push(r);
    });
    revs.sort((a, b) => (a.main !== b.main ? a.main - b.main : a.sub - b.sub));
    return revs;
  }

  /**
   * Compacts the keyIndexes after `afterKey` (exclusive; null = from the first key) at atRev, at most
   * `maxKeys` of them, removing those left empty. Appends every removed revision to `removed`. Returns the
   * last key compacted, or null when the end of the index was reached. Synchronous: a chunk is atomic with
   * respect to writes, and writes between chunks only add revisions above atRev.
   */
  compactChunk(atRev: number, afterKey: Buffer | null, maxKeys: number, removed: RemovedKeyRevision[], maxRemoved = Infinity): Buffer | null {
    assert(maxKeys > 0, 'compactChunk needs a positive chunk size');
    const low = afterKey ?? this.tree.minKey();
    const high = this.tree.maxKey();
    if (low === undefined || high === undefined) return null;
    let processed = 0;
    let last: Buffer | null = null;
    const found: RemovedRevision[] = [];
    this.tree.editRange(low, high, true, (k, ki) => {
      if (afterKey !== null && Buffer.compare(k, afterKey) === 0) return;
      // A key's revisions are never split across chunks, so a chunk may pass maxRemoved by one key's worth.
      if (processed >= maxKeys || removed.length >= maxRemoved) return { break: 0 };
      processed++;
      last = k;
      found.length = 0;
      ki.compact(atRev, null, found);
      for (const r of found) removed.push({ key: k, rev: r.rev, tombstone: r.tombstone });
      if (ki.isEmpty()) return { delete: true };
      return;
    });
    return processed < maxKeys && removed.length < maxRemoved ? null : last;
  }

  /** Compacts the whole index at once and returns the kept revisions (etcd Compact; for tests). */
  compactAll(atRev: number): Set<string> {
    const available = new Set<string>();
    const empty: Buffer[] = [];
    this.tree.forEach((ki, k) => {
      ki.compact(atRev, available, null);
      if (ki.isEmpty()) empty.push(k);
    });
    for (const k of empty) this.tree.delete(k);
    return available;
  }

  /** The revisions a compaction at `atRev` would keep (etcd Keep). */
  keep(atRev: number): Set<string> {
    const available = new Set<string>();
    this.tree.forEach((ki) => ki.keep(atRev, available));
    return available;
  }

  /** Iterates every keyIndex in key order. */
  forEach(f: (ki: KeyIndex) => void): void {
    this.tree.forEach((ki) => f(ki));
  }
}
