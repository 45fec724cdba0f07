// The interval tree and watcher group that match range watchers to changed keys, checked against a naive
// list under a seeded random workload.

import t from 'tap';
import { IntervalTree } from '../../src/mvcc/interval-tree';
import { WatcherGroup } from '../../src/mvcc/watcher-group';

function lcg(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

const key = (n: number) => Buffer.from([n]);

t.test('interval tree matches a naive list', async (t) => {
  const rand = lcg(7);
  const tree = new IntervalTree<number>();
  const naive: Array<{ start: number; end: number | null; item: number }> = [];
  let nextItem = 0;
  for (let step = 0; step < 3000; step++) {
    if (naive.length === 0 || rand(3) !== 0) {
      const start = rand(40);
      const end = rand(6) === 0 ? null : start + 1 + rand(10);
      const item = nextItem++;
      tree.insert(key(start), end === null ? null : key(end), item);
      naive.push({ start, end, item });
    } else {
      const i = rand(naive.length);
      const { start, end, item } = naive[i]!;
      t.equal(tree.delete(key(start), end === null ? null : key(end), item), true);
      naive.splice(i, 1);
    }
    if (step % 150 === 0) {
      tree.checkInvariants();
      for (let p = 0; p < 55; p++) {
        const got: number[] = [];
        tree.stab(key(p), (x) => got.push(x));
        const wantItems = naive.filter((iv) => iv.start <= p && (iv.end === null || p < iv.end)).map((iv) => iv.item);
        t.strictSame(got.sort((a, b) => a - b), wantItems.sort((a, b) => a - b), `step ${step} stab ${p}`);
      }
    }
  }
  t.equal(tree.delete(key(1), key(2), -1), false, 'deleting an absent item');
  const distinct = new Set(naive.map((iv) => `${iv.start}-${iv.end}`));
  t.equal(tree.size, distinct.size, 'one node per distinct interval');
});

t.test('watcher group: single keys, ranges, from-key', async (t) => {
  const g = new WatcherGroup<{ key: Buffer; end: Buffer | null; name: string }>();
  const a = { key: Buffer.from('a'), end: null, name: 'a' };
  const ab = { key: Buffer.from('a'), end: Buffer.from('c'), name: 'a-c' };
  const ab2 = { key: Buffer.from('a'), end: Buffer.from('c'), name: 'a-c #2' };
  const fromB = { key: Buffer.from('b'), end: Buffer.alloc(0), name: 'b..' };
  const all = { key: Buffer.from([0]), end: Buffer.alloc(0), name: 'all' };
  for (const w of [a, ab, ab2, fromB, all]) g.add(w);
  t.throws(() => g.add(a), /twice/);
  const match = (k: string) => {
    const out: string[] = [];
    g.forEachMatch(Buffer.from(k), (w) => out.push(w.name));
    return out.sort();
  };
  t.strictSame(match('a'), ['a', 'a-c', 'a-c #2', 'all']);
  t.strictSame(match('b'), ['a-c', 'a-c #2', 'all', 'b..']);
  t.strictSame(match('c'), ['all', 'b..']);
  t.strictSame(match('zzz'), ['all', 'b..']);
  t.equal(g.contains(Buffer.from('c')), true);
  t.equal(g.delete(ab), true);
  t.equal(g.delete(ab), false);
  t.equal(g.delete(all), true);
  t.strictSame(match('a'), ['a', 'a-c #2']);
  t.strictSame(match('c'), ['b..']);
  t.equal(g.size, 3);
  g.delete(a);
  g.delete(ab2);
  g.delete(fromB);
  t.equal(g.contains(Buffer.from('b')), false);
});
