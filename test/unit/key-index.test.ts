// keyIndex and treeIndex, ported from etcd mvcc/key_index_test.go and index_test.go, plus a property check
// of compaction against a naive model.

import t from 'tap';
import { Generation, KeyIndex, type RemovedRevision } from '../../src/mvcc/key-index';
import { TreeIndex } from '../../src/mvcc/tree-index';
import type { Revision } from '../../src/mvcc/types';
import { revString } from '../../src/mvcc/revision';

const r = (main: number, sub = 0): Revision => ({ main, sub });

function gen(created: Revision, ver: number, revs: Revision[]): Generation {
  const g = new Generation();
  g.created = created;
  g.ver = ver;
  g.revs = revs;
  return g;
}

function empty(): Generation {
  return new Generation();
}

function shape(ki: KeyIndex): unknown {
  return {
    key: ki.key.toString(),
    modified: ki.modified,
    generations: ki.generations.map((g) => ({ created: g.created, ver: g.ver, revs: g.revs })),
  };
}

function want(modified: Revision, gens: Generation[]): unknown {
  return { key: 'foo', modified, generations: gens.map((g) => ({ created: g.created, ver: g.ver, revs: g.revs })) };
}

// key: "foo"; generations: {empty} {14.0, 14.1, 16.0(t)} {8.0, 10.0, 12.0(t)} {2.0, 4.0, 6.0(t)}
function newTestKeyIndex(): KeyIndex {
  const ki = new KeyIndex(Buffer.from('foo'));
  ki.put(2, 0);
  ki.put(4, 0);
  ki.tombstone(6, 0);
  ki.put(8, 0);
  ki.put(10, 0);
  ki.tombstone(12, 0);
  ki.put(14, 0);
  ki.put(14, 1);
  ki.tombstone(16, 0);
  return ki;
}

function cloneKeyIndex(ki: KeyIndex): KeyIndex {
  const c = new KeyIndex(ki.key);
  c.modified = ki.modified;
  c.generations = ki.generations.map((g) => gen(g.created, g.ver, g.revs.slice()));
  return c;
}

t.test('get (TestKeyIndexGet)', async (t) => {
  const ki = newTestKeyIndex();
  ki.compact(4, new Set(), null);
  const cases: Array<[number, Revision | null, Revision | null, number]> = [
    [17, null, null, 0],
    [16, null, null, 0],
    [15, r(14, 1), r(14), 2],
    [14, r(14, 1), r(14), 2],
    [13, null, null, 0],
    [12, null, null, 0],
    [11, r(10), r(8), 2],
    [10, r(10), r(8), 2],
    [9, r(8), r(8), 1],
    [8, r(8), r(8), 1],
    [7, null, null, 0],
    [6, null, null, 0],
    [5, r(4), r(2), 2],
    [4, r(4), r(2), 2],
    [3, null, null, 0],
    [2, null, null, 0],
    [1, null, null, 0],
    [0, null, null, 0],
  ];
  for (const [rev, mod, created, ver] of cases) {
    const got = ki.get(rev);
    if (mod === null) t.equal(got, null, `get(${rev}) not found`);
    else t.strictSame(got, { modified: mod, created, version: ver }, `get(${rev})`);
  }
});

t.test('since (TestKeyIndexSince)', async (t) => {
  const ki = newTestKeyIndex();
  ki.compact(4, new Set(), null);
  const all = [r(4), r(6), r(8), r(10), r(12), r(14, 1), r(16)];
  const cases: Array<[number, Revision[]]> = [
    [17, []],
    [16, all.slice(6)],
    [15, all.slice(6)],
    [14, all.slice(5)],
    [13, all.slice(5)],
    [12, all.slice(4)],
    [11, all.slice(4)],
    [10, all.slice(3)],
    [9, all.slice(3)],
    [8, all.slice(2)],
    [7, all.slice(2)],
    [6, all.slice(1)],
    [5, all.slice(1)],
    [4, all],
    [3, all],
    [2, all],
    [1, all],
    [0, all],
  ];
  for (const [rev, revs] of cases) t.strictSame(ki.since(rev), revs, `since(${rev})`);
});

t.test('put (TestKeyIndexPut)', async (t) => {
  const ki = new KeyIndex(Buffer.from('foo'));
  ki.put(5, 0);
  t.strictSame(shape(ki), want(r(5), [gen(r(5), 1, [r(5)])]));
  ki.put(7, 0);
  t.strictSame(shape(ki), want(r(7), [gen(r(5), 2, [r(5), r(7)])]));
  t.throws(() => ki.put(7, 0), /smaller revision/, 'a put must move forward');
  t.throws(() => ki.put(6, 3), /smaller revision/);
});

t.test('restore (TestKeyIndexRestore)', async (t) => {
  const ki = new KeyIndex(Buffer.from('foo'));
  ki.restore(r(5), r(7), 2);
  t.strictSame(shape(ki), want(r(7), [gen(r(5), 2, [r(7)])]));
});

t.test('tombstone (TestKeyIndexTombstone)', async (t) => {
  const ki = new KeyIndex(Buffer.from('foo'));
  ki.put(5, 0);
  t.equal(ki.tombstone(7, 0), true);
  t.strictSame(shape(ki), want(r(7), [gen(r(5), 2, [r(5), r(7)]), empty()]));
  ki.put(8, 0);
  ki.put(9, 0);
  t.equal(ki.tombstone(15, 0), true);
  t.strictSame(
    shape(ki),
    want(r(15), [gen(r(5), 2, [r(5), r(7)]), gen(r(8), 3, [r(8), r(9), r(15)]), empty()]),
  );
  t.equal(ki.tombstone(16, 0), false, 'tombstone on an empty generation is ErrRevisionNotFound');
});

t.test('compact and keep (TestKeyIndexCompactAndKeep)', async (t) => {
  const g1 = (revs: Revision[]) => gen(r(2), 3, revs);
  const g2 = (revs: Revision[]) => gen(r(8), 3, revs);
  const g3 = (revs: Revision[]) => gen(r(14), 3, revs);
  const full1 = [r(2), r(4), r(6)];
  const full2 = [r(8), r(10), r(12)];
  const full3 = [r(14), r(14, 1), r(16)];
  const cases: Array<{ compact: number; gens: Generation[]; am: Revision[] }> = [
    { compact: 1, gens: [g1(full1), g2(full2), g3(full3), empty()], am: [] },
    { compact: 2, gens: [g1(full1), g2(full2), g3(full3), empty()], am: [r(2)] },
    { compact: 3, gens: [g1(full1), g2(full2), g3(full3), empty()], am: [r(2)] },
    { compact: 4, gens: [g1([r(4), r(6)]), g2(full2), g3(full3), empty()], am: [r(4)] },
    { compact: 5, gens: [g1([r(4), r(6)]), g2(full2), g3(full3), empty()], am: [r(4)] },
    { compact: 6, gens: [g2(full2), g3(full3), empty()], am: [] },
    { compact: 7, gens: [g2(full2), g3(full3), empty()], am: [] },
    { compact: 8, gens: [g2(full2), g3(full3), empty()], am: [r(8)] },
    { compact: 9, gens: [g2(full2), g3(full3), empty()], am: [r(8)] },
    { compact: 10, gens: [g2([r(10), r(12)]), g3(full3), empty()], am: [r(10)] },
    { compact: 11, gens: [g2([r(10), r(12)]), g3(full3), empty()], am: [r(10)] },
    { compact: 12, gens: [g3(full3), empty()], am: [] },
    { compact: 13, gens: [g3(full3), empty()], am: [] },
    { compact: 14, gens: [g3([r(14, 1), r(16)]), empty()], am: [r(14, 1)] },
    { compact: 15, gens: [g3([r(14, 1), r(16)]), empty()], am: [r(14, 1)] },
    { compact: 16, gens: [empty()], am: [] },
  ];
  const check = (t: { strictSame(a: unknown, b: unknown, m: string): unknown }, ki: KeyIndex, tt: (typeof cases)[number], label: string) => {
    const am = new Set<string>();
    const before = cloneKeyIndex(ki);
    ki.keep(tt.compact, am);
    t.strictSame(shape(ki), shape(before), `${label}: keep(${tt.compact}) changes nothing`);
    t.strictSame([...am].sort(), tt.am.map(revString).sort(), `${label}: keep(${tt.compact})`);
    const am2 = new Set<string>();
    ki.compact(tt.compact, am2, null);
    t.strictSame(shape(ki), want(r(16), tt.gens), `${label}: compact(${tt.compact})`);
    t.strictSame([...am2].sort(), tt.am.map(revString).sort(), `${label}: available after compact(${tt.compact})`);
  };

  // Continuous compaction.
  let ki = newTestKeyIndex();
  for (const tt of cases) check(t, ki, tt, 'continuous');
  // Jump compaction.
  ki = newTestKeyIndex();
  cases.forEach((tt, i) => {
    if ((i % 2 === 0 && i < 6) || (i % 2 === 1 && i > 6)) check(t, ki, tt, 'jump');
  });
  // Once.
  for (const tt of cases) check(t, newTestKeyIndex(), tt, 'once');
});

t.test('compact reports the removed revisions with their tombstone marks', async (t) => {
  const cases: Array<[number, string[]]> = [
    [1, []],
    [4, ['2_0']],
    [6, ['2_0', '4_0', '6_0t']],
    [13, ['2_0', '4_0', '6_0t', '8_0', '10_0', '12_0t']],
    [14, ['2_0', '4_0', '6_0t', '8_0', '10_0', '12_0t', '14_0']],
    [16, ['2_0', '4_0', '6_0t', '8_0', '10_0', '12_0t', '14_0', '14_1', '16_0t']],
    [100, ['2_0', '4_0', '6_0t', '8_0', '10_0', '12_0t', '14_0', '14_1', '16_0t']],
  ];
  for (const [at, removedWant] of cases) {
    const ki = newTestKeyIndex();
    const removed: RemovedRevision[] = [];
    ki.compact(at, null, removed);
    t.strictSame(
      removed.map((x) => revString(x.rev) + (x.tombstone ? 't' : '')),
      removedWant,
      `compact(${at}) removes`,
    );
  }
});

t.test('compact on a revision above the last modification (TestKeyIndexCompactOnFurtherRev)', async (t) => {
  const ki = new KeyIndex(Buffer.from('foo'));
  ki.put(1, 0);
  ki.put(2, 0);
  const am = new Set<string>();
  ki.compact(3, am, null);
  t.strictSame(shape(ki), want(r(2), [gen(r(1), 2, [r(2)])]));
  t.strictSame([...am], ['2_0']);
});

t.test('isEmpty, findGeneration, walk', async (t) => {
  const e = new KeyIndex(Buffer.from('foo'));
  e.generations = [empty()];
  t.equal(e.isEmpty(), true);
  const ne = new KeyIndex(Buffer.from('foo'));
  ne.restore(r(1), r(2), 2);
  t.equal(ne.isEmpty(), false);

  const ki = newTestKeyIndex();
  const cases: Array<[number, number | null]> = [
    [0, null], [1, null], [2, 0], [3, 0], [4, 0], [5, 0], [6, null], [7, null],
    [8, 1], [9, 1], [10, 1], [11, 1], [12, null], [13, null],
  ];
  for (const [rev, gi] of cases) {
    const g = ki.findGeneration(rev);
    t.equal(g, gi === null ? null : ki.generations[gi], `findGeneration(${rev})`);
  }

  const g = gen(r(2), 3, [r(2), r(4), r(6)]);
  const walks: Array<[(rev: Revision) => boolean, number]> = [
    [(x) => x.main >= 7, 2],
    [(x) => x.main >= 6, 1],
    [(x) => x.main >= 5, 1],
    [(x) => x.main >= 4, 0],
    [(x) => x.main >= 3, 0],
    [(x) => x.main >= 2, -1],
  ];
  for (const [f, wi] of walks) t.equal(g.walk(f), wi);
});

t.test('isKeptAt agrees with keep', async (t) => {
  for (let at = 0; at <= 17; at++) {
    const ki = newTestKeyIndex();
    const am = new Set<string>();
    ki.keep(at, am);
    for (const rv of [r(2), r(4), r(6), r(8), r(10), r(12), r(14), r(14, 1), r(16)]) {
      t.equal(ki.isKeptAt(at, rv), am.has(revString(rv)), `isKeptAt(${at}, ${revString(rv)})`);
    }
  }
});

t.test('tree index: range forms, count, limit, tombstones', async (t) => {
  const ti = new TreeIndex();
  const b = (s: string) => Buffer.from(s);
  ti.put(b('a'), r(2));
  ti.put(b('b'), r(3));
  ti.put(b('c'), r(4));
  ti.put(b('b'), r(5));
  t.equal(ti.tombstone(b('c'), r(6)), true);
  t.equal(ti.tombstone(b('zz'), r(6, 1)), false, 'unknown key');

  const keys = (res: { keys: Buffer[] }) => res.keys.map((k) => k.toString());
  t.strictSame(keys(ti.range(b('b'), null, 6)), ['b']);
  t.strictSame(ti.range(b('b'), null, 6).revs, [r(5)]);
  t.strictSame(keys(ti.range(b('a'), b('c'), 6)), ['a', 'b'], '[a, c)');
  t.strictSame(keys(ti.range(b('a'), Buffer.alloc(0), 6)), ['a', 'b'], 'from a, c is deleted at 6');
  t.strictSame(keys(ti.range(b('a'), Buffer.alloc(0), 5)), ['a', 'b', 'c'], 'c alive at 5');
  t.strictSame(keys(ti.range(Buffer.from([0]), Buffer.alloc(0), 3)), ['a', 'b']);
  t.strictSame(ti.range(b('b'), null, 4).revs, [r(3)], 'b as of 4');
  t.strictSame(keys(ti.range(b('c'), b('a'), 6)), [], 'end before key: empty');
  const limited = ti.range(b('a'), Buffer.alloc(0), 5, 2);
  t.strictSame(keys(limited), ['a', 'b']);
  t.equal(limited.count, 3, 'count ignores the limit');
  t.strictSame(ti.rangeSince(b('a'), Buffer.alloc(0), 3), [r(3), r(4), r(5), r(6)]);

  // Chunked compaction removes the fully deleted key and reports its revisions.
  const removed: Array<{ key: Buffer; rev: Revision; tombstone: boolean }> = [];
  let cursor: Buffer | null = null;
  let chunks = 0;
  do {
    cursor = ti.compactChunk(6, cursor, 1, removed);
    chunks++;
  } while (cursor !== null);
  t.ok(chunks >= 3, 'one key per chunk');
  t.strictSame(
    removed.map((x) => `${x.key.toString()}@${revString(x.rev)}${x.tombstone ? 't' : ''}`).sort(),
    ['b@3_0', 'c@4_0', 'c@6_0t'],
  );
  t.equal(ti.size, 2, 'c removed from the index');
  t.strictSame(keys(ti.range(b('a'), Buffer.alloc(0), 6)), ['a', 'b']);
});

// A naive model of compaction: for each key, its (rev, isTombstone) list; keep(atRev) is the last revision
// <= atRev if it is not a tombstone.
t.test('property: compaction keeps exactly what reads at or above the compaction revision need', async (t) => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const ki = new KeyIndex(Buffer.from('k'));
    const history: Array<{ rev: Revision; tomb: boolean }> = [];
    let main = 1;
    let alive = false;
    const steps = 1 + rand(20);
    for (let i = 0; i < steps; i++) {
      main += 1 + rand(3);
      if (alive && rand(4) === 0) {
        ki.tombstone(main, 0);
        history.push({ rev: r(main), tomb: true });
        alive = false;
      } else {
        const subs = 1 + rand(2);
        for (let s = 0; s < subs; s++) {
          ki.put(main, s);
          history.push({ rev: r(main, s), tomb: false });
        }
        alive = true;
      }
    }
    const reads: Array<[number, string | null]> = [];
    for (let at = 0; at <= main + 1; at++) reads.push([at, ki.get(at) === null ? null : revString(ki.get(at)!.modified)]);
    const at = rand(main + 2);
    const removed: RemovedRevision[] = [];
    const wasEmptyAfter = (() => {
      ki.compact(at, null, removed);
      return ki.isEmpty();
    })();
    // Every read at >= at gives the same answer as before.
    for (const [rev, before] of reads) {
      if (rev < at || wasEmptyAfter) continue;
      const now = ki.get(rev);
      t.equal(now === null ? null : revString(now.modified), before, `round ${round}: get(${rev}) after compact(${at})`);
    }
    // Removed = history <= at minus the single kept revision.
    const lastAtOrBelow = history.filter((h) => h.rev.main <= at).pop();
    const kept = lastAtOrBelow !== undefined && !lastAtOrBelow.tomb ? revString(lastAtOrBelow.rev) : null;
    const wantRemoved = history
      .filter((h) => h.rev.main <= at && revString(h.rev) !== kept)
      .map((h) => revString(h.rev) + (h.tomb ? 't' : ''));
    t.strictSame(
      removed.map((x) => revString(x.rev) + (x.tombstone ? 't' : '')).sort(),
      wantRemoved.sort(),
      `round ${round}: removed by compact(${at})`,
    );
  }
});
