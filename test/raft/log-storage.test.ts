// Ports of etcd raft's log_test.go, log_unstable_test.go and storage_test.go (selection), plus the tracker
// (inflights, progress) and quorum tests, with a naive oracle for the majority commit index.

import t from 'tap';
import { RaftLog } from '../../src/raft/log';
import { Unstable } from '../../src/raft/log-unstable';
import { MemoryStorage } from '../../src/raft/storage';
import { discardLogger } from '../../src/raft/logger';
import { Inflights } from '../../src/raft/tracker/inflights';
import { Progress, ProgressStateType } from '../../src/raft/tracker/progress';
import { MajorityConfig, VoteResult } from '../../src/raft/quorum/majority';
import { decodeConfChange, encodeConfChange } from '../../src/raft/confchange/codec';
import { ConfChangeType, type Entry, type Snapshot } from '../../src/raft/types';
import { entrySizeBytes, limitSize, noLimit } from '../../src/raft/util';
import { Xoshiro128 } from '../../src/util/prng';
import { ent } from './helpers';

const newLog = (s: MemoryStorage = new MemoryStorage()): RaftLog => new RaftLog(s, discardLogger);
const ti = (ents: Entry[]) => ents.map((e) => [e.term, e.index]);
const snapAt = (index: number, term: number): Snapshot => ({ metadata: { index, term, confState: { voters: [1n], learners: [] } } });

t.test('TestFindConflict', async (t) => {
  const previousEnts = [ent(1, 1), ent(2, 2), ent(3, 3)];
  const tests: Array<[Entry[], number]> = [
    // No conflict, empty ent.
    [[], 0],
    // No conflict.
    [[ent(1, 1), ent(2, 2), ent(3, 3)], 0],
    [[ent(2, 2), ent(3, 3)], 0],
    [[ent(3, 3)], 0],
    // No conflict, but new entries.
    [[ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(4, 5)], 4],
    [[ent(2, 2), ent(3, 3), ent(4, 4), ent(4, 5)], 4],
    [[ent(3, 3), ent(4, 4), ent(4, 5)], 4],
    [[ent(4, 4), ent(4, 5)], 4],
    // Conflicts with existing entries.
    [[ent(4, 1), ent(4, 2)], 1],
    [[ent(1, 2), ent(4, 3), ent(4, 4)], 2],
    [[ent(1, 3), ent(2, 4), ent(4, 5), ent(4, 6)], 3],
  ];
  tests.forEach(([ents, w], i) => {
    const l = newLog();
    l.append(previousEnts);
    t.equal(l.findConflict(ents), w, `#${i}`);
  });
});

t.test('TestIsUpToDate', async (t) => {
  const l = newLog();
  l.append([ent(1, 1), ent(2, 2), ent(3, 3)]);
  const li = l.lastIndex();
  const tests: Array<[number, number, boolean]> = [
    // Greater term, ignore lastIndex.
    [li - 1, 4, true],
    [li, 4, true],
    [li + 1, 4, true],
    // Smaller term, ignore lastIndex.
    [li - 1, 2, false],
    [li, 2, false],
    [li + 1, 2, false],
    // Equal term: equal or larger lastIndex wins.
    [li - 1, 3, false],
    [li, 3, true],
    [li + 1, 3, true],
  ];
  for (const [lastIndex, term, w] of tests) t.equal(l.isUpToDate(lastIndex, term), w);
});

t.test('TestAppend', async (t) => {
  const previousEnts = [ent(1, 1), ent(2, 2)];
  const tests: Array<[Entry[], number, Entry[], number]> = [
    [[], 2, [ent(1, 1), ent(2, 2)], 3],
    [[ent(2, 3)], 3, [ent(1, 1), ent(2, 2), ent(2, 3)], 3],
    // Conflicts with index 1.
    [[ent(2, 1)], 1, [ent(2, 1)], 1],
    // Conflicts with index 2.
    [[ent(3, 2), ent(3, 3)], 3, [ent(1, 1), ent(3, 2), ent(3, 3)], 2],
  ];
  tests.forEach(([ents, windex, wents, wunstable], i) => {
    const storage = new MemoryStorage();
    storage.append(previousEnts);
    const l = newLog(storage);
    t.equal(l.append(ents), windex, `#${i}`);
    t.same(ti(l.entries(1, noLimit)), ti(wents));
    t.equal(l.unstable.offset, wunstable);
  });
});

t.test('TestLogMaybeAppend', async (t) => {
  const previousEnts = [ent(1, 1), ent(2, 2), ent(3, 3)];
  const lastindex = 3;
  const lastterm = 3;
  const commit = 1;
  const tests: Array<[number, number, number, Entry[], number | undefined, number, boolean]> = [
    // Not match: term is different.
    [lastterm - 1, lastindex, lastindex, [ent(4, lastindex + 1)], undefined, commit, false],
    // Not match: index out of bound.
    [lastterm, lastindex + 1, lastindex, [ent(4, lastindex + 2)], undefined, commit, false],
    // Match with the last existing entry.
    [lastterm, lastindex, lastindex, [], lastindex, lastindex, false],
    [lastterm, lastindex, lastindex + 1, [], lastindex, lastindex, false], // Do not commit beyond lastnewi.
    [lastterm, lastindex, lastindex - 1, [], lastindex, lastindex - 1, false], // Commit up to the message's commit.
    [lastterm, lastindex, 0, [], lastindex, commit, false], // Commit does not decrease.
    [0, 0, lastindex, [], 0, commit, false], // Commit does not decrease.
    [lastterm, lastindex, lastindex, [ent(4, lastindex + 1)], lastindex + 1, lastindex, false],
    [lastterm, lastindex, lastindex + 1, [ent(4, lastindex + 1)], lastindex + 1, lastindex + 1, false],
    [lastterm, lastindex, lastindex + 2, [ent(4, lastindex + 1)], lastindex + 1, lastindex + 1, false],
    [lastterm, lastindex, lastindex + 2, [ent(4, lastindex + 1), ent(4, lastindex + 2)], lastindex + 2, lastindex + 2, false],
    // Match with the entry in the middle.
    [lastterm - 1, lastindex - 1, lastindex, [ent(4, lastindex)], lastindex, lastindex, false],
    [lastterm - 2, lastindex - 2, lastindex, [ent(4, lastindex - 1)], lastindex - 1, lastindex - 1, false],
    [lastterm - 3, lastindex - 3, lastindex, [ent(4, lastindex - 2)], lastindex - 2, lastindex - 2, true], // Conflicts with a committed entry.
    [lastterm - 2, lastindex - 2, lastindex, [ent(4, lastindex - 1), ent(4, lastindex)], lastindex, lastindex, false],
  ];
  tests.forEach(([logTerm, index, committed, ents, wlasti, wcommit, wpanic], i) => {
    const l = newLog();
    l.append(previousEnts);
    l.committed = commit;
    if (wpanic) {
      t.throws(() => l.maybeAppend(index, logTerm, committed, ents), { name: 'AssertionError' }, `#${i} conflicts with committed`);
      return;
    }
    const glasti = l.maybeAppend(index, logTerm, committed, ents);
    t.equal(glasti, wlasti, `#${i} lasti`);
    t.equal(l.committed, wcommit, `#${i} commit`);
    if (glasti !== undefined && ents.length !== 0) {
      t.same(ti(l.slice(l.lastIndex() - ents.length + 1, l.lastIndex() + 1, noLimit)), ti(ents));
    }
  });
});

t.test('TestCompactionSideEffects', async (t) => {
  // 1000 entries: 750 in stable storage and 250 unstable.
  const lastIndex = 1000;
  const unstableIndex = 750;
  const storage = new MemoryStorage();
  for (let i = 1; i <= unstableIndex; i++) storage.append([ent(i, i)]);
  const l = newLog(storage);
  for (let i = unstableIndex; i < lastIndex; i++) l.append([ent(i + 1, i + 1)]);
  t.ok(l.maybeCommit(lastIndex, lastIndex));
  l.appliedTo(l.committed);
  const offset = 500;
  storage.compact(offset);
  t.equal(l.lastIndex(), lastIndex);
  for (let j = offset; j <= l.lastIndex(); j++) {
    if (l.term(j) !== j) t.fail(`term(${j})`);
    if (!l.matchTerm(j, j)) t.fail(`matchTerm(${j})`);
  }
  const unstableEnts = l.unstableEntries();
  t.equal(unstableEnts.length, 250);
  t.equal(unstableEnts[0]!.index, 751);
  const prev = l.lastIndex();
  l.append([ent(l.lastIndex() + 1, l.lastIndex() + 1)]);
  t.equal(l.lastIndex(), prev + 1);
  t.equal(l.entries(l.lastIndex(), noLimit).length, 1);
});

t.test('TestHasNextEnts / TestNextEnts', async (t) => {
  const ents = [ent(1, 4), ent(1, 5), ent(1, 6)];
  const tests: Array<[number, boolean, Entry[]]> = [
    [0, true, ents.slice(0, 2)],
    [3, true, ents.slice(0, 2)],
    [4, true, ents.slice(1, 2)],
    [5, false, []],
  ];
  for (const [applied, hasNext, wents] of tests) {
    const storage = new MemoryStorage();
    storage.applySnapshot(snapAt(3, 1));
    const l = newLog(storage);
    l.append(ents);
    l.maybeCommit(5, 1);
    l.appliedTo(applied);
    t.equal(l.hasNextEnts(), hasNext);
    t.same(ti(l.nextEnts()), ti(wents));
  }
});

t.test('TestUnstableEnts / TestStableTo', async (t) => {
  const previousEnts = [ent(1, 1), ent(2, 2)];
  for (const [unstable, wents] of [
    [3, []],
    [1, previousEnts],
  ] as Array<[number, Entry[]]>) {
    const storage = new MemoryStorage();
    storage.append(previousEnts.slice(0, unstable - 1));
    const l = newLog(storage);
    l.append(previousEnts.slice(unstable - 1));
    const got = l.unstableEntries();
    if (got.length > 0) l.stableTo(got[got.length - 1]!.index, got[got.length - 1]!.term);
    t.same(ti(got), ti(wents));
    t.equal(l.unstable.offset, 3);
  }
  const tests: Array<[number, number, number]> = [
    [1, 1, 2],
    [2, 2, 3],
    [2, 1, 1], // Bad term.
    [3, 1, 1], // Bad index.
  ];
  for (const [stablei, stablet, wunstable] of tests) {
    const l = newLog();
    l.append([ent(1, 1), ent(2, 2)]);
    l.stableTo(stablei, stablet);
    t.equal(l.unstable.offset, wunstable);
  }
});

t.test('TestStableToWithSnap', async (t) => {
  const snapi = 5;
  const snapt = 2;
  const tests: Array<[number, number, Entry[], number]> = [
    [snapi + 1, snapt, [], snapi + 1],
    [snapi, snapt, [], snapi + 1],
    [snapi - 1, snapt, [], snapi + 1],
    [snapi + 1, snapt + 1, [], snapi + 1],
    [snapi, snapt + 1, [], snapi + 1],
    [snapi - 1, snapt + 1, [], snapi + 1],
    [snapi + 1, snapt, [ent(snapt, snapi + 1)], snapi + 2],
    [snapi, snapt, [ent(snapt, snapi + 1)], snapi + 1],
    [snapi - 1, snapt, [ent(snapt, snapi + 1)], snapi + 1],
    [snapi + 1, snapt + 1, [ent(snapt, snapi + 1)], snapi + 1],
    [snapi, snapt + 1, [ent(snapt, snapi + 1)], snapi + 1],
    [snapi - 1, snapt + 1, [ent(snapt, snapi + 1)], snapi + 1],
  ];
  tests.forEach(([stablei, stablet, newEnts, wunstable], i) => {
    const s = new MemoryStorage();
    s.applySnapshot(snapAt(snapi, snapt));
    const l = newLog(s);
    l.append(newEnts);
    l.stableTo(stablei, stablet);
    t.equal(l.unstable.offset, wunstable, `#${i}`);
  });
});

t.test('TestCommitTo', async (t) => {
  const mk = (): RaftLog => {
    const l = newLog();
    l.append([ent(1, 1), ent(2, 2), ent(3, 3)]);
    l.committed = 2;
    return l;
  };
  let l = mk();
  l.commitTo(3);
  t.equal(l.committed, 3);
  l = mk();
  l.commitTo(1);
  t.equal(l.committed, 2, 'never decrease');
  t.throws(() => mk().commitTo(4), { name: 'AssertionError' }, 'commit out of range');
});

t.test('TestCompaction', async (t) => {
  const run = (lastIndex: number, compact: number[], wleft: number[]): void => {
    const storage = new MemoryStorage();
    for (let i = 1; i <= lastIndex; i++) storage.append([ent(0, i)]);
    const l = newLog(storage);
    l.maybeCommit(lastIndex, 0);
    l.appliedTo(l.committed);
    compact.forEach((c, j) => {
      storage.compact(c);
      t.equal(l.allEntries().length, wleft[j]);
    });
  };
  t.throws(() => run(1000, [1001], [-1]), { name: 'AssertionError' });
  run(1000, [300, 500, 800, 900], [700, 500, 200, 100]);
  t.throws(() => run(1000, [300, 299], [700, -1]), { code: 'ErrCompacted' });
});

t.test('TestLogRestore / TestTerm / TestTermWithUnstableSnapshot / TestIsOutOfBounds', async (t) => {
  const storage = new MemoryStorage();
  storage.applySnapshot(snapAt(1000, 1000));
  const l = newLog(storage);
  t.equal(l.allEntries().length, 0);
  t.equal(l.firstIndex(), 1001);
  t.equal(l.committed, 1000);
  t.equal(l.unstable.offset, 1001);
  t.equal(l.term(1000), 1000);

  const offset = 100;
  const num = 100;
  const s2 = new MemoryStorage();
  s2.applySnapshot(snapAt(offset, 1));
  const l2 = newLog(s2);
  for (let i = 1; i < num; i++) l2.append([ent(i, offset + i)]);
  for (const [index, w] of [
    [offset - 1, 0],
    [offset, 1],
    [offset + num / 2, num / 2],
    [offset + num - 1, num - 1],
    [offset + num, 0],
  ]) {
    t.equal(l2.term(index!), w);
  }

  const s3 = new MemoryStorage();
  s3.applySnapshot(snapAt(100, 1));
  const l3 = newLog(s3);
  l3.restore(snapAt(105, 1));
  for (const [index, w] of [
    [100, 0],
    [101, 0],
    [104, 0],
    [105, 1],
  ]) {
    t.equal(l3.term(index!), w);
  }

  const s4 = new MemoryStorage();
  s4.applySnapshot(snapAt(offset, 0));
  const l4 = newLog(s4);
  for (let i = 1; i <= num; i++) l4.append([ent(0, i + offset)]);
  const first = offset + 1;
  t.throws(() => l4.slice(first - 2, first + 1, noLimit), { code: 'ErrCompacted' });
  t.throws(() => l4.slice(first - 1, first + 1, noLimit), { code: 'ErrCompacted' });
  t.same(l4.slice(first, first, noLimit), []);
  t.same(l4.slice(first + num, first + num, noLimit), []);
  t.throws(() => l4.slice(first + num, first + num + 1, noLimit), { name: 'AssertionError' });
});

t.test('TestSlice (stable + unstable, size limits)', async (t) => {
  const offset = 100;
  const num = 100;
  const last = offset + num;
  const half = offset + num / 2;
  const halfe = ent(half, half);
  const storage = new MemoryStorage();
  storage.applySnapshot(snapAt(offset, 0));
  for (let i = 1; i < num / 2; i++) storage.append([ent(offset + i, offset + i)]);
  const l = newLog(storage);
  for (let i = num / 2; i < num; i++) l.append([ent(offset + i, offset + i)]);
  const tests: Array<[number, number, number, Entry[]]> = [
    [half - 1, half + 1, noLimit, [ent(half - 1, half - 1), ent(half, half)]],
    [half, half + 1, noLimit, [ent(half, half)]],
    [last - 1, last, noLimit, [ent(last - 1, last - 1)]],
    // At least one entry is always returned.
    [half - 1, half + 1, 0, [ent(half - 1, half - 1)]],
    [half - 2, half + 1, entrySizeBytes(halfe) + 1, [ent(half - 2, half - 2)]],
    [half - 1, half + 1, entrySizeBytes(halfe) + 1, [ent(half - 1, half - 1)]],
    [half - 1, half + 1, entrySizeBytes(halfe) * 2, [ent(half - 1, half - 1), ent(half, half)]],
    [half - 1, half + 2, entrySizeBytes(halfe) * 3, [ent(half - 1, half - 1), ent(half, half), ent(half + 1, half + 1)]],
    [half, half + 2, entrySizeBytes(halfe), [ent(half, half)]],
    [half, half + 2, entrySizeBytes(halfe) * 2, [ent(half, half), ent(half + 1, half + 1)]],
  ];
  tests.forEach(([from, to, limit, w], i) => t.same(ti(l.slice(from, to, limit)), ti(w), `#${i}`));
});

t.test('Unstable: truncateAndAppend keeps handed-out arrays intact', async (t) => {
  const u = new Unstable(5, discardLogger);
  u.truncateAndAppend([ent(1, 5), ent(1, 6), ent(1, 7)]);
  const handedOut = u.entries.slice();
  const ref = u.entries;
  u.truncateAndAppend([ent(1, 8)]);
  t.equal(ref.length, 3, 'appending creates a new array');
  u.truncateAndAppend([ent(2, 6)]);
  t.same(ti(u.entries), [
    [1, 5],
    [2, 6],
  ]);
  t.same(ti(handedOut), [
    [1, 5],
    [1, 6],
    [1, 7],
  ]);
  u.truncateAndAppend([ent(3, 4)]);
  t.equal(u.offset, 4);
  t.same(ti(u.entries), [[3, 4]]);
  u.restore(snapAt(10, 3));
  t.equal(u.maybeFirstIndex(), 11);
  t.equal(u.maybeLastIndex(), 10);
  t.equal(u.maybeTerm(10), 3);
  t.equal(u.maybeTerm(9), undefined);
  u.stableSnapTo(9);
  t.ok(u.snapshot);
  u.stableSnapTo(10);
  t.equal(u.snapshot, undefined);
});

t.test('MemoryStorage (storage_test.go)', async (t) => {
  const ents = [ent(3, 3), ent(4, 4), ent(5, 5)];
  const mk = (): MemoryStorage => {
    const s = new MemoryStorage();
    s.applySnapshot(snapAt(3, 3));
    s.append(ents.slice(1));
    return s;
  };
  // Term.
  let s = mk();
  t.throws(() => s.term(2), { code: 'ErrCompacted' });
  t.equal(s.term(3), 3);
  t.equal(s.term(4), 4);
  t.equal(s.term(5), 5);
  t.throws(() => s.term(6), { code: 'ErrUnavailable' });
  // Entries.
  t.throws(() => s.entries(2, 6, noLimit), { code: 'ErrCompacted' });
  t.throws(() => s.entries(3, 4, noLimit), { code: 'ErrCompacted' });
  t.same(ti(s.entries(4, 5, noLimit)), [[4, 4]]);
  t.same(ti(s.entries(4, 6, noLimit)), [
    [4, 4],
    [5, 5],
  ]);
  t.same(ti(s.entries(4, 6, 0)), [[4, 4]], 'at least one entry');
  t.same(ti(s.entries(4, 6, entrySizeBytes(ents[1]!) + entrySizeBytes(ents[2]!))), [
    [4, 4],
    [5, 5],
  ]);
  t.same(ti(s.entries(4, 6, entrySizeBytes(ents[1]!) + entrySizeBytes(ents[2]!) - 1)), [[4, 4]]);
  t.throws(() => s.entries(4, 7, noLimit), { name: 'AssertionError' });
  // First and last index.
  t.equal(s.firstIndex(), 4);
  t.equal(s.lastIndex(), 5);
  s.append([ent(6, 6)]);
  t.equal(s.lastIndex(), 6);
  // Compact.
  s = mk();
  t.throws(() => s.compact(2), { code: 'ErrCompacted' });
  t.throws(() => s.compact(3), { code: 'ErrCompacted' });
  s.compact(4);
  t.equal(s.firstIndex(), 5);
  t.equal(s.term(4), 4);
  s.compact(5);
  t.equal(s.firstIndex(), 6);
  t.equal(s.lastIndex(), 5);
  // CreateSnapshot.
  s = mk();
  const cs = { voters: [1n, 2n, 3n], learners: [] };
  const sn = s.createSnapshot(4, cs, Buffer.from('data'));
  t.equal(sn.metadata.index, 4);
  t.equal(sn.metadata.term, 4);
  t.same(sn.metadata.confState, cs);
  t.same(sn.data, Buffer.from('data'));
  t.throws(() => s.createSnapshot(4, cs), { code: 'ErrSnapOutOfDate' });
  // Append: truncation and overlap with the compacted part.
  const appendTests: Array<[Entry[], Array<[number, number]>]> = [
    [[ent(3, 3), ent(4, 4), ent(5, 5)], [[3, 3], [4, 4], [5, 5]]],
    [[ent(3, 3), ent(6, 4), ent(6, 5)], [[3, 3], [6, 4], [6, 5]]],
    [[ent(3, 3), ent(4, 4), ent(5, 5), ent(5, 6)], [[3, 3], [4, 4], [5, 5], [5, 6]]],
    // Truncate incoming entries, truncate the existing entries and append.
    [[ent(3, 2), ent(3, 3), ent(5, 4)], [[3, 3], [5, 4]]],
    // Truncate the existing entries and append.
    [[ent(5, 4)], [[3, 3], [5, 4]]],
    // Direct append.
    [[ent(5, 6)], [[3, 3], [4, 4], [5, 5], [5, 6]]],
  ];
  appendTests.forEach(([input, want], i) => {
    const st = mk();
    st.append(input);
    t.same([[st.snapshot().metadata.term, st.snapshot().metadata.index], ...ti(st.entries(st.firstIndex(), st.lastIndex() + 1, noLimit))], want, `append #${i}`);
  });
  t.throws(() => mk().append([ent(5, 7)]), { name: 'AssertionError' }, 'a gap is refused');
  // ApplySnapshot.
  s = new MemoryStorage();
  s.applySnapshot(snapAt(4, 4));
  t.throws(() => s.applySnapshot(snapAt(3, 3)), { code: 'ErrSnapOutOfDate' });
});

t.test('limitSize', async (t) => {
  const ents = [ent(1, 1, 'a'), ent(1, 2, 'bb'), ent(1, 3, 'ccc')];
  t.equal(limitSize(ents, noLimit), ents, 'unchanged array when nothing is cut');
  t.equal(limitSize(ents, 0).length, 1);
  t.equal(limitSize(ents, entrySizeBytes(ents[0]!) + entrySizeBytes(ents[1]!)).length, 2);
  // The encoded size matches protobuf: 3 tag bytes + varints + data field.
  t.equal(entrySizeBytes(ent(1, 1)), 6);
  t.equal(entrySizeBytes(ent(1, 300, 'hi')), 3 + 1 + 1 + 2 + 1 + 1 + 2);
});

t.test('Inflights (tracker/inflights_test.go)', async (t) => {
  const in1 = new Inflights(10);
  for (let i = 0; i < 5; i++) in1.add(i, 0);
  t.equal(in1.count(), 5);
  for (let i = 5; i < 10; i++) in1.add(i, 0);
  t.ok(in1.full());
  t.throws(() => in1.add(10, 0), 'adding into a full window');
  // Rotating case.
  const in2 = new Inflights(10);
  for (let i = 0; i < 5; i++) in2.add(i, 0);
  in2.freeLE(4);
  t.equal(in2.count(), 0);
  for (let i = 0; i < 10; i++) in2.add(i + 5, 0);
  t.equal(in2.count(), 10);
  in2.freeLE(9);
  t.equal(in2.count(), 5);
  in2.freeLE(8);
  t.equal(in2.count(), 5, 'stale free');
  in2.freeLE(14);
  t.equal(in2.count(), 0);
  // FreeFirstOne.
  const in3 = new Inflights(10);
  for (let i = 0; i < 10; i++) in3.add(i, 0);
  in3.freeFirstOne();
  t.equal(in3.count(), 9);
  // Byte bound: full once bytes reach the bound, freed with the messages.
  const in4 = new Inflights(10, 100);
  in4.add(1, 40);
  in4.add(2, 40);
  t.notOk(in4.full());
  in4.add(3, 40);
  t.ok(in4.full());
  t.equal(in4.bytes(), 120);
  in4.freeLE(1);
  t.equal(in4.bytes(), 80);
  t.notOk(in4.full());
  const c = in4.clone();
  in4.freeLE(3);
  t.equal(c.count(), 2, 'clones are independent');
  t.equal(in4.bytes(), 0);
});

t.test('Progress (tracker/progress_test.go)', async (t) => {
  const mk = (state: ProgressStateType, match: number, next: number): Progress => {
    const p = new Progress({ match, next, inflights: new Inflights(256) });
    p.state = state;
    return p;
  };
  // IsPaused.
  for (const [state, probeSent, w] of [
    [ProgressStateType.StateProbe, false, false],
    [ProgressStateType.StateProbe, true, true],
    [ProgressStateType.StateReplicate, false, false],
    [ProgressStateType.StateReplicate, true, false],
    [ProgressStateType.StateSnapshot, false, true],
    [ProgressStateType.StateSnapshot, true, true],
  ] as Array<[ProgressStateType, boolean, boolean]>) {
    const p = mk(state, 0, 1);
    p.probeSent = probeSent;
    t.equal(p.isPaused(), w, `${state} probeSent=${probeSent}`);
  }
  // Resume: MaybeUpdate and MaybeDecrTo reset probeSent.
  let p = mk(ProgressStateType.StateProbe, 0, 2);
  p.probeSent = true;
  p.maybeDecrTo(1, 1);
  t.notOk(p.probeSent);
  p.probeSent = true;
  p.maybeUpdate(2);
  t.notOk(p.probeSent);
  // BecomeProbe.
  for (const [pr, wnext] of [
    [mk(ProgressStateType.StateReplicate, 1, 5), 2],
    [Object.assign(mk(ProgressStateType.StateSnapshot, 1, 5), { pendingSnapshot: 10 }), 11],
    [Object.assign(mk(ProgressStateType.StateSnapshot, 1, 5), { pendingSnapshot: 0 }), 2],
  ] as Array<[Progress, number]>) {
    pr.becomeProbe();
    t.equal(pr.state, ProgressStateType.StateProbe);
    t.equal(pr.next, wnext);
  }
  p = mk(ProgressStateType.StateProbe, 1, 5);
  p.becomeReplicate();
  t.equal(p.next, 2);
  p = mk(ProgressStateType.StateProbe, 1, 5);
  p.becomeSnapshot(10);
  t.equal(p.pendingSnapshot, 10);
  // MaybeUpdate.
  const prevM = 3;
  const prevN = 5;
  for (const [update, wm, wn, wok] of [
    [prevM - 1, prevM, prevN, false], // Do not decrease match, next.
    [prevM, prevM, prevN, false],
    [prevM + 1, prevM + 1, prevN, true], // Increase match, do not decrease next.
    [prevM + 2, prevM + 2, prevN + 1, true], // Increase match, next.
  ] as Array<[number, number, number, boolean]>) {
    p = mk(ProgressStateType.StateProbe, prevM, prevN);
    t.equal(p.maybeUpdate(update), wok);
    t.equal(p.match, wm);
    t.equal(p.next, wn);
  }
  // MaybeDecrTo.
  for (const [state, m, n, rejected, last, w, wn] of [
    // State replicate and rejected is not greater than match.
    [ProgressStateType.StateReplicate, 5, 10, 5, 5, false, 10],
    [ProgressStateType.StateReplicate, 5, 10, 4, 4, false, 10],
    // State replicate and rejected is greater than match: directly decrease to match+1.
    [ProgressStateType.StateReplicate, 5, 10, 9, 9, true, 6],
    // Next-1 != rejected is always false.
    [ProgressStateType.StateProbe, 0, 0, 0, 0, false, 0],
    [ProgressStateType.StateProbe, 0, 10, 5, 5, false, 10],
    // Next > 1: decrease by 1.
    [ProgressStateType.StateProbe, 0, 10, 9, 9, true, 9],
    [ProgressStateType.StateProbe, 0, 2, 1, 1, true, 1],
    [ProgressStateType.StateProbe, 0, 1, 0, 0, true, 1], // Next = 1 stays 1.
    // Decrease to min(rejected, last+1).
    [ProgressStateType.StateProbe, 0, 10, 9, 2, true, 3],
    [ProgressStateType.StateProbe, 0, 10, 9, 0, true, 1], // Rejected < 1: reset to 1.
  ] as Array<[ProgressStateType, number, number, number, number, boolean, number]>) {
    p = mk(state, m, n);
    t.equal(p.maybeDecrTo(rejected, last), w);
    t.equal(p.match, m, 'match unchanged');
    t.equal(p.next, wn);
  }
});

t.test('MajorityConfig.committedIndex and voteResult agree with naive oracles', async (t) => {
  const rand = new Xoshiro128(7);
  for (let round = 0; round < 2000; round++) {
    const n = rand.intn(7);
    const ids = Array.from({ length: n }, (_, i) => BigInt(i + 1));
    const cfg = new MajorityConfig(ids);
    const acked = new Map<bigint, number>();
    for (const id of ids) if (rand.intn(4) !== 0) acked.set(id, rand.intn(20));
    // Oracle: the largest index i such that a majority acked >= i.
    let want = 0;
    if (n === 0) want = Number.MAX_SAFE_INTEGER;
    else {
      for (let i = 0; i <= 20; i++) {
        const c = ids.filter((id) => (acked.get(id) ?? 0) >= i).length;
        if (c >= Math.floor(n / 2) + 1) want = i;
      }
    }
    if (cfg.committedIndex((id) => acked.get(id)) !== want) t.fail(`round ${round}: committedIndex`);
    const votes = new Map<bigint, boolean>();
    for (const id of ids) {
      const r = rand.intn(3);
      if (r < 2) votes.set(id, r === 0);
    }
    const yes = [...votes.values()].filter((v) => v).length;
    const no = [...votes.values()].filter((v) => !v).length;
    const q = Math.floor(n / 2) + 1;
    const wantVote = n === 0 || yes >= q ? VoteResult.VoteWon : n - no >= q ? VoteResult.VotePending : VoteResult.VoteLost;
    if (cfg.voteResult(votes) !== wantVote) t.fail(`round ${round}: voteResult`);
  }
  t.pass('2000 random configurations');
  // etcd quorum/testdata/majority_commit.txt, first cases.
  t.equal(new MajorityConfig([1n]).committedIndex(() => undefined), 0);
  t.equal(new MajorityConfig([1n]).committedIndex(() => 12), 12);
  t.equal(new MajorityConfig([1n, 2n]).committedIndex((id) => (id === 1n ? 12 : undefined)), 0);
  t.equal(new MajorityConfig([1n, 2n]).committedIndex((id) => (id === 1n ? 12 : 5)), 5);
  t.equal(new MajorityConfig([1n, 2n]).describe((id) => (id === 1n ? 12 : 5)), '      idx\nx>     12    (id=1)\n>       5    (id=2)\n');
});

t.test('ConfChange codec is byte-compatible with etcd raftpb.ConfChange', async (t) => {
  // etcd: pb.ConfChange{ID: 1, Type: ConfChangeAddNode, NodeID: 2}.Marshal() = 08 01 10 00 18 02.
  t.same([...encodeConfChange({ id: 1n, type: ConfChangeType.AddNode, nodeId: 2n, context: Buffer.alloc(0) })], [0x08, 0x01, 0x10, 0x00, 0x18, 0x02]);
  const big = { id: 0xdeadbeefcafef00dn, type: ConfChangeType.AddLearnerNode, nodeId: (1n << 64n) - 1n, context: Buffer.from('{"name":"m"}') };
  const round = decodeConfChange(encodeConfChange(big));
  t.same(round, big);
  t.throws(() => decodeConfChange(Buffer.from([0x08])), /truncated/);
});
