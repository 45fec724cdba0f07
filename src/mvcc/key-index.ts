// keyIndex: the revision history of one key, as etcd's mvcc/key_index.go.
//
// A keyIndex has at least one generation. A generation is the life of the key from a creation to a deletion:
// the revisions of its puts, then the revision of the tombstone that ended it. A tombstone appends its
// revision to the current generation and opens a new, empty one. Every revision points to one entry of the
// key bucket in the backend (the tombstone to a tombstone entry).
//
// Worked example: put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0) on key "foo" gives
//
//   key:      "foo"
//   modified: 5.0
//   generations:
//     {empty}                  <- current generation: the key does not exist now
//     {4.0, 5.0(t)}            created 4.0, ver 2 (the tombstone counts as a version, as in etcd)
//     {1.0, 2.0, 3.0(t)}       created 1.0, ver 3
//
// get(atRev) finds the generation alive at atRev and the last revision <= atRev in it: get(2) gives
// modified 2.0, created 1.0, version 2; get(3) finds nothing (the key was deleted at 3).
//
// Compaction at rev removes every revision <= rev except the largest one of the generation alive at rev (the
// value a read at rev needs). If that largest one is a tombstone, it goes too, with its generation; a
// generation left empty is removed, and a keyIndex left with only the empty current generation is removed
// from the tree index.
//
//   compact(2): {empty} {4.0, 5.0(t)} {2.0, 3.0(t)}
//   compact(4): {empty} {4.0, 5.0(t)}
//   compact(5): {empty}                 -> the keyIndex is removed
//
// Revisions are only ever appended in increasing order (assert), so every array here is sorted.

import { assert } from '../util/assert';
import type { Revision } from './types';
import { revGreaterThan, revString, zeroRevision } from './revision';

export class Generation {
  /** Number of revisions ever put in this generation, including compacted ones (and the tombstone). */
  ver = 0;
  /** The revision of the put that created the generation (etcd: "put in first revision"). */
  created: Revision = zeroRevision;
  /** Ascending. Invariant: only the last revision of a non-current generation is a tombstone. */
  revs: Revision[] = [];

  isEmpty(): boolean {
    return this.revs.length === 0;
  }

  /**
   * Walks the revisions in descending order while `f` returns true; returns the position where it stopped,
   * or -1 after walking them all.
   */
  walk(f: (rev: Revision) => boolean): number {
    for (let i = this.revs.length - 1; i >= 0; i--) {
      if (!f(this.revs[i]!)) return i;
    }
    return -1;
  }
}

/** A revision removed by KeyIndex.compact; `tombstone` says which key-bucket entry (the 't'-marked one). */
export interface RemovedRevision {
  rev: Revision;
  tombstone: boolean;
}

export interface KeyIndexGetResult {
  modified: Revision;
  created: Revision;
  version: number;
}

export class KeyIndex {
  /** The last revision that modified the key (put or tombstone). */
  modified: Revision = zeroRevision;
  /** Oldest first; the last one is the current generation. */
  generations: Generation[] = [];

  constructor(readonly key: Buffer) {}

  /** Appends a put revision; it must be greater than every revision already present. */
  put(main: number, sub: number): void {
    const rev: Revision = { main, sub };
    assert(revGreaterThan(rev, this.modified), "keyIndex 'put' with an unexpected smaller revision");
    if (this.generations.length === 0) this.generations.push(new Generation());
    const g = this.generations[this.generations.length - 1]!;
    if (g.revs.length === 0) g.created = rev;
    g.revs.push(rev);
    g.ver++;
    this.modified = rev;
  }

  /** Rebuilds a keyIndex from the first key-bucket entry seen for it (etcd restore). */
  restore(created: Revision, modified: Revision, ver: number): void {
    assert(this.generations.length === 0, "keyIndex 'restore' got an unexpected non-empty generations");
    this.modified = modified;
    const g = new Generation();
    g.created = created;
    g.ver = ver;
    g.revs = [modified];
    this.generations.push(g);
  }

  /**
   * Appends a tombstone revision and opens a new empty generation. Returns false (etcd ErrRevisionNotFound)
   * when the current generation is already empty: there is nothing to delete.
   */
  tombstone(main: number, sub: number): boolean {
    assert(!this.isEmpty(), "keyIndex 'tombstone' got an unexpected empty keyIndex");
    if (this.generations[this.generations.length - 1]!.isEmpty()) return false;
    this.put(main, sub);
    this.generations.push(new Generation());
    return true;
  }

  /** The modified and created revisions and the version of the key as of atRev, or null if absent then. */
  get(atRev: number): KeyIndexGetResult | null {
    assert(!this.isEmpty(), "keyIndex 'get' got an unexpected empty keyIndex");
    const g = this.findGeneration(atRev);
    if (g === null || g.isEmpty()) return null;
    // g.walk((rev) => rev.main > atRev), without the closure: this is the hot path of every range.
    const revs = g.revs;
    for (let n = revs.length - 1; n >= 0; n--) {
      const rev = revs[n]!;
      if (rev.main <= atRev) return { modified: rev, created: g.created, version: g.ver - (revs.length - n - 1) };
    }
    return null;
  }

  /**
   * The revisions at or after `rev`, ascending; of several revisions sharing a main revision only the one with
   * the largest sub is returned (the others are not visible outside their transaction).
   */
  since(rev: number): Revision[] {
    assert(!this.isEmpty(), "keyIndex 'since' got an unexpected empty keyIndex");
    const since: Revision = { main: rev, sub: 0 };
    let gi = this.generations.length - 1;
    for (; gi > 0; gi--) {
      const g = this.generations[gi]!;
      if (g.isEmpty()) continue;
      if (revGreaterThan(since, g.created)) break;
    }
    const revs: Revision[] = [];
    let last = 0;
    for (; gi < this.generations.length; gi++) {
      for (const r of this.generations[gi]!.revs) {
        if (revGreaterThan(since, r)) continue;
        if (r.main === last) {
          revs[revs.length - 1] = r;
          continue;
        }
        revs.push(r);
        last = r.main;
      }
    }
    return revs;
  }

  /**
   * Removes the revisions <= atRev except the largest one of the generation alive at atRev (unless that is a
   * tombstone), and the generations left empty. `available` collects the kept revision <= atRev (etcd's
   * available map, as revString); `removed` collects every revision removed, for the physical deletion.
   */
  compact(atRev: number, available: Set<string> | null, removed: RemovedRevision[] | null): void {
    assert(!this.isEmpty(), "keyIndex 'compact' got an unexpected empty keyIndex");
    const position = this.doCompact(atRev, available);
    let genIdx = position.genIdx;
    const revIndex = position.revIndex;
    if (removed !== null) {
      for (let i = 0; i < genIdx; i++) {
        const revs = this.generations[i]!.revs;
        for (let j = 0; j < revs.length; j++) removed.push({ rev: revs[j]!, tombstone: j === revs.length - 1 });
      }
    }
    const g = this.generations[genIdx]!;
    if (!g.isEmpty()) {
      if (revIndex !== -1) {
        if (removed !== null) {
          for (let j = 0; j < revIndex; j++) removed.push({ rev: g.revs[j]!, tombstone: false });
        }
        g.revs = g.revs.slice(revIndex);
      }
      // A generation left with only its tombstone is dropped with it.
      if (g.revs.length === 1 && genIdx !== this.generations.length - 1) {
        const tomb = g.revs[0]!;
        if (available !== null) available.delete(revString(tomb));
        if (removed !== null && tomb.main <= atRev) removed.push({ rev: tomb, tombstone: true });
        genIdx++;
      }
    }
    this.generations = this.generations.slice(genIdx);
  }

  /** Collects into `available` the revision that compact(atRev) would keep, without changing anything. */
  keep(atRev: number, available: Set<string>): void {
    if (this.isEmpty()) return;
    const { genIdx, revIndex } = this.doCompact(atRev, available);
    const g = this.generations[genIdx]!;
    if (!g.isEmpty() && revIndex === g.revs.length - 1 && genIdx !== this.generations.length - 1) {
      available.delete(revString(g.revs[revIndex]!));
    }
  }

  /** Whether compact(atRev) keeps `rev` (the allocation-free form of keep, for hashing). */
  isKeptAt(atRev: number, rev: Revision): boolean {
    if (this.isEmpty() || rev.main > atRev) return false;
    const { genIdx, revIndex } = this.doCompact(atRev, null);
    const g = this.generations[genIdx]!;
    if (g.isEmpty() || revIndex === -1) return false;
    if (revIndex === g.revs.length - 1 && genIdx !== this.generations.length - 1) return false;
    const kept = g.revs[revIndex]!;
    return kept.main === rev.main && kept.sub === rev.sub;
  }

  private doCompact(atRev: number, available: Set<string> | null): { genIdx: number; revIndex: number } {
    let genIdx = 0;
    let g = this.generations[0]!;
    // Find the first generation that includes atRev or was created after it.
    while (genIdx < this.generations.length - 1) {
      assert(!g.isEmpty(), 'keyIndex has an empty generation before the current one');
      if (g.revs[g.revs.length - 1]!.main > atRev) break;
      genIdx++;
      g = this.generations[genIdx]!;
    }
    const revIndex = g.walk((rev) => {
      if (rev.main <= atRev) {
        if (available !== null) available.add(revString(rev));
        return false;
      }
      return true;
    });
    return { genIdx, revIndex };
  }

  isEmpty(): boolean {
    return this.generations.length === 1 && this.generations[0]!.isEmpty();
  }

  /**
   * The generation alive at `rev`, or null when the key did not exist at `rev` (before its first creation, or
   * in the gap between a tombstone and the next put).
   */
  findGeneration(rev: number): Generation | null {
    const lastg = this.generations.length - 1;
    for (let cg = lastg; cg >= 0; cg--) {
      const g = this.generations[cg]!;
      if (g.revs.length === 0) continue;
      if (cg !== lastg && g.revs[g.revs.length - 1]!.main <= rev) return null;
      if (g.revs[0]!.main <= rev) return g;
    }
    return null;
  }

  toString(): string {
    return this.generations
      .map((g) => `g: created[${revString(g.created)}] ver[${g.ver}], revs [${g.revs.map(revString).join(' ')}]`)
      .join('\n');
  }
}
