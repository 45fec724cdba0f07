// Matching watchers to changed keys (etcd mvcc/watcher_group.go).
//
// A group holds watchers in two structures:
//   - single-key watchers (end === null) in a Map from the key (as a latin1 string, a 1:1 byte mapping) to
//     the set of its watchers: O(1) per changed key;
//   - range watchers ([key, end), or [key, +inf) for an empty end) in an IntervalTree whose nodes are the
//     distinct intervals, each with the set of its watchers: O(log d + matches) per changed key, d = number
//     of distinct intervals. A list would cost O(range watchers) for every event; with thousands of watches
//     on a few prefixes (Kubernetes) the tree visits only the intervals that contain the key.

import { IntervalTree } from './interval-tree';

/** What the group needs to know about a watcher. */
export interface GroupMember {
  readonly key: Buffer;
  /** null = exactly `key`; empty = every key >= `key`; otherwise [key, end). */
  readonly end: Buffer | null;
}

export class WatcherGroup<W extends GroupMember> {
  private readonly keyWatchers = new Map<string, Set<W>>();
  private readonly ranges = new IntervalTree<W>();
  readonly watchers = new Set<W>();

  get size(): number {
    return this.watchers.size;
  }

  has(w: W): boolean {
    return this.watchers.has(w);
  }

  add(w: W): void {
    if (this.watchers.has(w)) throw new Error('watcher added twice to a group');
    this.watchers.add(w);
    if (w.end === null) {
      const id = w.key.toString('latin1');
      let set = this.keyWatchers.get(id);
      if (set === undefined) {
        set = new Set();
        this.keyWatchers.set(id, set);
      }
      set.add(w);
      return;
    }
    this.ranges.insert(w.key, w.end.length === 0 ? null : w.end, w);
  }

  /** Removes the watcher; false if it was not in the group. */
  delete(w: W): boolean {
    if (!this.watchers.delete(w)) return false;
    if (w.end === null) {
      const id = w.key.toString('latin1');
      const set = this.keyWatchers.get(id);
      if (set !== undefined) {
        set.delete(w);
        if (set.size === 0) this.keyWatchers.delete(id);
      }
      return true;
    }
    const found = this.ranges.delete(w.key, w.end.length === 0 ? null : w.end, w);
    if (!found) throw new Error('range watcher missing from the interval tree');
    return true;
  }

  /** Calls `f` for every watcher whose key or range contains `key` (each watcher once). */
  forEachMatch(key: Buffer, f: (w: W) => void): void {
    const set = this.keyWatchers.get(key.toString('latin1'));
    if (set !== undefined) for (const w of set) f(w);
    if (this.ranges.size > 0) this.ranges.stab(key, f);
  }

  /** Whether any watcher of the group matches `key`. */
  contains(key: Buffer): boolean {
    if (this.keyWatchers.has(key.toString('latin1'))) return true;
    let found = false;
    if (this.ranges.size > 0) {
      this.ranges.stab(key, () => {
        found = true;
      });
    }
    return found;
  }
}
