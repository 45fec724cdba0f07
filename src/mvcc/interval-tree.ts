// An interval tree of half-open byte-key intervals [start, end) for matching range watchers to a changed key
// (etcd watcher_group.go uses adt.IntervalTree for the same job).
//
// Structure: an AVL tree ordered by (start, end), each node augmented with the largest `end` in its subtree
// (`maxEnd`). A stab query for point p visits only subtrees whose maxEnd > p and whose starts can be <= p, so
// it costs O(log n + matches) where n is the number of DISTINCT intervals: watchers on the same interval share
// one node (a Set of items), which is the common case for Kubernetes (thousands of watches on a handful of
// resource prefixes). `end === null` is +infinity (a from-key watch, etcd's empty range end).

import { assert } from '../util/assert';

interface Node<T> {
  start: Buffer;
  end: Buffer | null;
  items: Set<T>;
  maxEnd: Buffer | null;
  height: number;
  left: Node<T> | null;
  right: Node<T> | null;
}

/** Compares interval ends where null is +infinity. */
function compareEnd(a: Buffer | null, b: Buffer | null): number {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  return Buffer.compare(a, b);
}

function maxOfEnds(a: Buffer | null, b: Buffer | null): Buffer | null {
  return compareEnd(a, b) >= 0 ? a : b;
}

function height<T>(n: Node<T> | null): number {
  return n === null ? 0 : n.height;
}

function update<T>(n: Node<T>): void {
  n.height = 1 + Math.max(height(n.left), height(n.right));
  let m = n.end;
  if (n.left !== null) m = maxOfEnds(m, n.left.maxEnd);
  if (n.right !== null) m = maxOfEnds(m, n.right.maxEnd);
  n.maxEnd = m;
}

function rotateRight<T>(n: Node<T>): Node<T> {
  const l = n.left!;
  n.left = l.right;
  l.right = n;
  update(n);
  update(l);
  return l;
}

function rotateLeft<T>(n: Node<T>): Node<T> {
  const r = n.right!;
  n.right = r.left;
  r.left = n;
  update(n);
  update(r);
  return r;
}

function balance<T>(n: Node<T>): Node<T> {
  update(n);
  const bf = height(n.left) - height(n.right);
  if (bf > 1) {
    if (height(n.left!.left) < height(n.left!.right)) n.left = rotateLeft(n.left!);
    return rotateRight(n);
  }
  if (bf < -1) {
    if (height(n.right!.right) < height(n.right!.left)) n.right = rotateRight(n.right!);
    return rotateLeft(n);
  }
  return n;
}

export class IntervalTree<T> {
  private root: Node<T> | null = null;
  private intervalCount = 0;

  /** Number of distinct intervals. */
  get size(): number {
    return this.intervalCount;
  }

  /** Adds `item` to the interval [start, end); end null = +infinity. Requires start < end. */
  insert(start: Buffer, end: Buffer | null, item: T): void {
    assert(end === null || Buffer.compare(start, end) < 0, 'interval must not be empty');
    this.root = this.insertAt(this.root, start, end, item);
  }

  /** Removes `item` from the interval; the interval goes when its last item does. Returns whether found. */
  delete(start: Buffer, end: Buffer | null, item: T): boolean {
    let found = false;
    this.root = this.deleteAt(this.root, start, end, item, () => {
      found = true;
    });
    return found;
  }

  /** Calls `f` with the items of every interval containing `point`. */
  stab(point: Buffer, f: (item: T) => void): void {
    this.stabAt(this.root, point, f);
  }

  /** Checks the AVL and maxEnd invariants (tests). */
  checkInvariants(): void {
    const walk = (n: Node<T> | null): number => {
      if (n === null) return 0;
      const hl = walk(n.left);
      const hr = walk(n.right);
      assert(Math.abs(hl - hr) <= 1, 'AVL balance violated');
      assert(n.height === 1 + Math.max(hl, hr), 'height is stale');
      let m = n.end;
      if (n.left !== null) m = maxOfEnds(m, n.left.maxEnd);
      if (n.right !== null) m = maxOfEnds(m, n.right.maxEnd);
      assert(compareEnd(m, n.maxEnd) === 0, 'maxEnd is stale');
      assert(n.items.size > 0, 'empty interval node');
      return n.height;
    };
    walk(this.root);
  }

  private compareInterval(aStart: Buffer, aEnd: Buffer | null, n: Node<T>): number {
    const c = Buffer.compare(aStart, n.start);
    if (c !== 0) return c;
    return compareEnd(aEnd, n.end);
  }

  private insertAt(n: Node<T> | null, start: Buffer, end: Buffer | null, item: T): Node<T> {
    if (n === null) {
      this.intervalCount++;
      return { start, end, items: new Set([item]), maxEnd: end, height: 1, left: null, right: null };
    }
    const c = this.compareInterval(start, end, n);
    if (c === 0) {
      n.items.add(item);
      return n;
    }
    if (c < 0) n.left = this.insertAt(n.left, start, end, item);
    else n.right = this.insertAt(n.right, start, end, item);
    return balance(n);
  }

  private deleteAt(n: Node<T> | null, start: Buffer, end: Buffer | null, item: T, onFound: () => void): Node<T> | null {
    if (n === null) return null;
    const c = this.compareInterval(start, end, n);
    if (c < 0) {
      n.left = this.deleteAt(n.left, start, end, item, onFound);
      return balance(n);
    }
    if (c > 0) {
      n.right = this.deleteAt(n.right, start, end, item, onFound);
      return balance(n);
    }
    if (!n.items.delete(item)) return n;
    onFound();
    if (n.items.size > 0) return n;
    this.intervalCount--;
    if (n.left === null) return n.right;
    if (n.right === null) return n.left;
    // Replace the node by the smallest node of its right subtree.
    let min = n.right;
    while (min.left !== null) min = min.left;
    const right = this.removeMin(n.right);
    min.left = n.left;
    min.right = right;
    return balance(min);
  }

  private removeMin(n: Node<T>): Node<T> | null {
    if (n.left === null) return n.right;
    n.left = this.removeMin(n.left);
    return balance(n);
  }

  private stabAt(n: Node<T> | null, p: Buffer, f: (item: T) => void): void {
    if (n === null) return;
    // Every interval below ends at or before p: none contains it.
    if (n.maxEnd !== null && Buffer.compare(n.maxEnd, p) <= 0) return;
    this.stabAt(n.left, p, f);
    // This node and its right subtree start after p.
    if (Buffer.compare(n.start, p) > 0) return;
    if (n.end === null || Buffer.compare(p, n.end) < 0) {
      for (const item of n.items) f(item);
    }
    this.stabAt(n.right, p, f);
  }
}
