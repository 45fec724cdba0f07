// MvccStore against a real LevelDB directory: ranges, revisions, transactions, compaction, restart, aux
// buckets, hashes and snapshots.

import t from 'tap';
import { Level } from 'level';
import { prefixEnd } from '../../src/util/bytes';
import { isDomainError } from '../../src/util/errors';
import { MvccStore, type MvccOptions, type TxnWrite } from '../../src/mvcc';
import { metaKey, metaNames } from '../../src/mvcc/backend';
import { revToBytes } from '../../src/mvcc/revision';
import type { KeyValue, LeaseAttacher } from '../../src/mvcc/types';

const b = (s: string) => Buffer.from(s);
const all = Buffer.alloc(0);

class FakeLessor implements LeaseAttacher {
  readonly leases = new Map<string, bigint>();
  readonly log: string[] = [];
  getLease(key: Buffer): bigint {
    return this.leases.get(key.toString()) ?? 0n;
  }
  attach(lease: bigint, key: Buffer): void {
    this.leases.set(key.toString(), lease);
    this.log.push(`attach ${lease} ${key.toString()}`);
  }
  detach(lease: bigint, key: Buffer): void {
    if (this.leases.get(key.toString()) === lease) this.leases.delete(key.toString());
    this.log.push(`detach ${lease} ${key.toString()}`);
  }
}

const quiet = { info() {}, warn() {} };

async function open(dir: string, extra: Partial<MvccOptions> = {}): Promise<{ s: MvccStore; lessor: FakeLessor }> {
  const lessor = new FakeLessor();
  const s = await MvccStore.open({ dir, lessor, logger: quiet, ...extra });
  return { s, lessor };
}

/** Applies writes with increasing Raft indexes. */
class Applier {
  index: number;
  constructor(
    private readonly s: MvccStore,
    start = 0,
  ) {
    this.index = start;
  }
  txn(f: (tw: TxnWrite) => void): number {
    const tw = this.s.write(++this.index);
    f(tw);
    tw.end();
    return tw.rev;
  }
  put(key: string, value: string, lease = 0n): number {
    return this.txn((tw) => tw.put(b(key), b(value), lease));
  }
  del(key: string, end: Buffer | null = null): number {
    let n = 0;
    this.txn((tw) => {
      n = tw.deleteRange(b(key), end);
    });
    return n;
  }
}

function brief(kvs: KeyValue[]): string[] {
  return kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.createRevision}/${kv.modRevision}/v${kv.version}`);
}

async function keysOf(s: MvccStore, key: Buffer, end: Buffer | null, rev = 0): Promise<string[]> {
  return (await s.range(key, end, { rev })).kvs.map((kv) => kv.key.toString());
}

async function isMvccError(t: Tap, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}`);
  } catch (err) {
    t.ok(isDomainError(err, code), `${msg}: ${code}`);
  }
}

type Tap = { ok(v: unknown, m: string): unknown; fail(m: string): unknown };

t.test('an empty store starts at revision 1', async (t) => {
  const { s } = await open(t.testdir());
  t.equal(s.currentRev, 1);
  t.equal(s.compactMainRev, -1);
  t.equal(s.consistentIndex(), 0);
  const r = await s.range(b('a'), all);
  t.strictSame(r, { kvs: [], rev: 1, count: 0 });
  await s.close();
});

t.test('put, versions, create revisions, re-create after delete', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  t.equal(a.put('foo', 'v1'), 2, 'first write gets revision 2');
  t.equal(a.put('foo', 'v2'), 3);
  t.equal(a.put('bar', 'x'), 4);
  t.strictSame(brief((await s.range(b('foo'), null)).kvs), ['foo=v2@2/3/v2']);
  t.equal(a.del('foo'), 1);
  t.equal(s.currentRev, 5);
  t.strictSame((await s.range(b('foo'), null)).kvs, []);
  t.equal(a.put('foo', 'v3'), 6);
  t.strictSame(brief((await s.range(b('foo'), null)).kvs), ['foo=v3@6/6/v1'], 'new create_revision, version 1');
  const r = await s.range(b('foo'), null);
  t.equal(r.rev, 6, 'header revision is the current revision');
  t.equal(r.kvs[0]!.lease, 0n);
  await s.close();
});

t.test('range end forms, limit and count', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  for (const k of ['a', 'ab', 'abc', 'b', 'c', 'c\xff', 'd']) a.put(k, k.toUpperCase());
  t.strictSame(await keysOf(s, b('ab'), null), ['ab'], 'single key');
  t.strictSame(await keysOf(s, b('zz'), null), [], 'absent single key');
  t.strictSame(await keysOf(s, b('a'), prefixEnd(b('a'))), ['a', 'ab', 'abc'], 'prefix');
  t.strictSame(await keysOf(s, b('ab'), b('c')), ['ab', 'abc', 'b'], '[ab, c)');
  t.strictSame(await keysOf(s, b('c'), all), ['c', 'c\xff', 'd'], 'from key');
  t.strictSame(await keysOf(s, Buffer.from([0]), all), ['a', 'ab', 'abc', 'b', 'c', 'c\xff', 'd'], '"\\0" + empty end = everything');
  t.strictSame(await keysOf(s, b('d'), b('a')), [], 'end before key');

  const limited = await s.range(Buffer.from([0]), all, { limit: 2 });
  t.strictSame(limited.kvs.map((kv) => kv.key.toString()), ['a', 'ab']);
  t.equal(limited.count, 7, 'count ignores the limit');
  const counted = await s.range(b('a'), prefixEnd(b('a')), { count: true });
  t.strictSame(counted, { kvs: [], rev: s.currentRev, count: 3 });
  const limit0 = await s.range(Buffer.from([0]), all, { limit: 0 });
  t.equal(limit0.kvs.length, 7, 'limit 0 = all');
  await s.close();
});

t.test('reads at old revisions, ErrFutureRev and ErrCompacted boundaries', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  a.put('a', '1'); // 2
  a.put('b', '1'); // 3
  a.put('a', '2'); // 4
  a.del('b'); // 5
  a.put('c', '1'); // 6
  t.strictSame(brief((await s.range(b('a'), all, { rev: 3 })).kvs), ['a=1@2/2/v1', 'b=1@3/3/v1'], 'as of 3');
  t.strictSame(brief((await s.range(b('a'), all, { rev: 4 })).kvs), ['a=2@2/4/v2', 'b=1@3/3/v1'], 'as of 4');
  t.strictSame(await keysOf(s, b('a'), all, 5), ['a'], 'b deleted at 5');
  t.equal((await s.range(b('a'), all, { rev: 2 })).count, 1);
  t.equal((await s.range(b('a'), all, { rev: 1 })).count, 0, 'nothing at revision 1');
  t.equal((await s.range(b('a'), all, { rev: 3 })).rev, 6, 'header is the current revision');

  await s.range(b('a'), null, { rev: 6 });
  await isMvccError(t, s.range(b('a'), null, { rev: 7 }), 'ErrFutureRev', 'rev = current + 1');

  await isMvccError(t, s.compact(7, a.index), 'ErrFutureRev', 'compact above current');
  const { done } = await s.compact(4, ++a.index);
  t.equal(s.compactMainRev, 4);
  t.strictSame(brief((await s.range(b('a'), all, { rev: 4 })).kvs), ['a=2@2/4/v2', 'b=1@3/3/v1'], 'rev == compactMainRev readable');
  await isMvccError(t, s.range(b('a'), all, { rev: 3 }), 'ErrCompacted', 'rev < compactMainRev');
  await isMvccError(t, s.compact(4, ++a.index), 'ErrCompacted', 'compact at the same revision');
  await isMvccError(t, s.compact(3, ++a.index), 'ErrCompacted', 'compact below');
  await done;
  t.strictSame(brief((await s.range(b('a'), all, { rev: 4 })).kvs), ['a=2@2/4/v2', 'b=1@3/3/v1'], 'still readable after deletion');
  t.strictSame(brief((await s.range(b('a'), all, { rev: 5 })).kvs), ['a=2@2/4/v2']);
  try {
    await s.range(b('a'), null, { rev: 2 });
  } catch (err) {
    t.equal((err as Error).message, 'mvcc: required revision has been compacted', 'etcd message');
  }
  await s.close();
});

t.test('deleteRange counts and creates one revision only when it deletes', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  for (const k of ['p/1', 'p/2', 'p/3', 'q']) a.put(k, 'x');
  const before = s.currentRev;
  t.equal(a.del('p/', prefixEnd(b('p/'))), 3);
  t.equal(s.currentRev, before + 1, 'one revision for three deletions');
  t.equal(a.del('p/', prefixEnd(b('p/'))), 0);
  t.equal(a.del('nothing'), 0);
  t.equal(s.currentRev, before + 1, 'deleting nothing creates no revision');
  t.strictSame(await keysOf(s, Buffer.from([0]), all), ['q']);
  t.equal(a.del('\0', all), 1);
  await s.close();
});

t.test('a transaction reads its own writes and creates exactly one revision', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  a.put('k', 'old'); // 2
  const tw = s.write(++a.index);
  t.equal(tw.rev, 3);
  t.strictSame(brief((await tw.range(b('k'), null)).kvs), ['k=old@2/2/v1'], 'before any change');
  tw.put(b('k'), b('new'), 0n);
  tw.put(b('k2'), b('x'), 0n);
  const own = await tw.range(b('k'), all);
  t.strictSame(brief(own.kvs), ['k=new@2/3/v2', 'k2=x@3/3/v1'], 'sees its own writes');
  t.equal(own.rev, 3);
  t.strictSame(brief((await tw.range(b('k'), null, { rev: 2 })).kvs), ['k=old@2/2/v1'], 'older revision');
  tw.put(b('k'), b('newer'), 0n);
  t.strictSame(brief((await tw.range(b('k'), null)).kvs), ['k=newer@2/3/v3'], 'second put in the same txn');
  t.equal(tw.deleteRange(b('k2'), null), 1, 'deletes its own put');
  t.strictSame(await keysOf(s, b('k'), all), ['k'], 'the store does not see the open txn');
  t.equal(s.currentRev, 2);
  t.equal(tw.changes().length, 4);
  tw.end();
  t.equal(s.currentRev, 3, 'one revision for the whole txn');
  t.strictSame(brief((await s.range(b('k'), all)).kvs), ['k=newer@2/3/v3']);
  t.throws(() => tw.end(), /twice/);

  // Read-only and empty transactions create no revision but persist the consistent index.
  const ro = s.write(++a.index);
  await ro.range(b('k'), null);
  ro.end();
  s.write(++a.index).end();
  t.equal(s.currentRev, 3);
  t.equal(s.consistentIndex(), a.index);
  t.throws(() => {
    s.write(a.index + 1);
    s.write(a.index + 2);
  }, /already open/);
  await s.close().catch(() => {});
});

t.test('leases are detached and attached through the LeaseAttacher', async (t) => {
  const dir = t.testdir();
  const { s, lessor } = await open(dir);
  const a = new Applier(s);
  a.put('k', 'v', 7n);
  a.put('k', 'v2', 8n);
  a.put('j', 'v', 7n);
  a.del('j');
  t.strictSame(lessor.log, ['attach 7 k', 'detach 7 k', 'attach 8 k', 'attach 7 j', 'detach 7 j']);
  t.equal((await s.range(b('k'), null)).kvs[0]!.lease, 8n);
  await s.close();
  const re = await open(dir);
  t.strictSame(re.lessor.log, ['attach 8 k'], 'restore re-attaches live keys only');
  await re.s.close();
});

t.test('reads see writes that are not in LevelDB yet', async (t) => {
  const { s } = await open(t.testdir());
  const a = new Applier(s);
  a.put('k', 'v1');
  a.put('k', 'v2');
  // Nothing has had a chance to commit: no await since the writes.
  t.ok(s.pendingBytes > 0, 'writes are pending');
  const p = s.range(b('k'), null);
  const old = s.range(b('k'), null, { rev: 2 });
  a.put('k', 'v3');
  t.strictSame(brief((await p).kvs), ['k=v2@2/3/v2']);
  t.strictSame(brief((await old).kvs), ['k=v1@2/2/v1']);
  t.strictSame(brief((await s.range(b('k'), null)).kvs), ['k=v3@2/4/v3']);
  await s.forceCommit();
  t.equal(s.pendingBytes, 0, 'all committed after forceCommit');
  t.strictSame(brief((await s.range(b('k'), null, { rev: 3 })).kvs), ['k=v2@2/3/v2'], 'now from LevelDB');
  await s.close();
});

t.test('group commit: many transactions in one tick share few batches', async (t) => {
  const dir = t.testdir();
  const { s } = await open(dir);
  const a = new Applier(s);
  const db = (s as unknown as { backend: { db: { batch: (...args: unknown[]) => Promise<void> } } }).backend.db;
  let batches = 0;
  const original = db.batch.bind(db);
  db.batch = (...args: unknown[]) => {
    batches++;
    return original(...args);
  };
  for (let i = 0; i < 500; i++) a.put(`k${i % 50}`, `v${i}`);
  await s.forceCommit();
  t.ok(batches <= 3, `500 writes in ${batches} batches`);
  t.equal((await s.range(Buffer.from([0]), all)).count, 50);
  await s.close();
  const re = await open(dir);
  t.equal(re.s.currentRev, 501);
  t.strictSame(brief((await re.s.range(b('k49'), null)).kvs), ['k49=v499@51/501/v10']);
  await re.s.close();
});

t.test('restart restores revisions, values, versions, compaction and the consistent index', async (t) => {
  const dir = t.testdir();
  const { s } = await open(dir);
  const a = new Applier(s);
  a.put('a', '1'); // 2
  a.put('a', '2'); // 3
  a.put('b', '1'); // 4
  a.del('b'); // 5
  a.put('b', '2'); // 6
  a.put('c', '1'); // 7
  a.del('c'); // 8
  const { done } = await s.compact(4, ++a.index);
  await done;
  const index = a.index;
  const hashBefore = await s.hashByRev(0);
  await s.close();

  const { s: r } = await open(dir);
  t.equal(r.currentRev, 8);
  t.equal(r.compactMainRev, 4);
  t.equal(r.consistentIndex(), index);
  t.strictSame(brief((await r.range(Buffer.from([0]), all)).kvs), ['a=2@2/3/v2', 'b=2@6/6/v1']);
  t.strictSame(brief((await r.range(Buffer.from([0]), all, { rev: 4 })).kvs), ['a=2@2/3/v2', 'b=1@4/4/v1']);
  t.strictSame(brief((await r.range(Buffer.from([0]), all, { rev: 7 })).kvs), ['a=2@2/3/v2', 'b=2@6/6/v1', 'c=1@7/7/v1']);
  await isMvccError(t, r.range(b('a'), null, { rev: 3 }), 'ErrCompacted', 'compaction point persisted');
  t.strictSame(await r.hashByRev(0), hashBefore, 'same hash after restart');
  const ra = new Applier(r, index);
  t.equal(ra.put('a', '3'), 9, 'revisions continue');
  t.strictSame(brief((await r.range(b('a'), null)).kvs), ['a=3@2/9/v3'], 'version continues across restart');
  await r.close();
});

t.test('compaction keeps the latest version of long-unchanged keys and deletes the rest', async (t) => {
  const dir = t.testdir();
  const { s } = await open(dir, { compactionBatchLimit: 3 });
  const a = new Applier(s);
  a.put('stable', 'forever'); // 2
  for (let i = 0; i < 20; i++) a.put(`hot${i % 4}`, `${i}`); // 3..22
  a.put('gone', 'x'); // 23
  a.del('gone'); // 24
  const records = async () => {
    let n = 0;
    for await (const chunk of s.snapshot()) n += chunk.length;
    return n;
  };
  const sizeBefore = await records();
  const hashBefore = await s.hashByRev(0);
  const { done } = await s.compact(s.currentRev, ++a.index);
  const hashAtCut = await s.hashByRev(0);
  await done;
  const hashAfter = await s.hashByRev(0);
  t.strictSame(hashAfter, hashAtCut, 'HashKV does not depend on the physical deletion');
  t.not(hashAfter.hash, hashBefore.hash, 'compaction changes what is hashed');
  t.equal(hashAfter.compactRev, 24);
  t.ok((await records()) < sizeBefore, 'history deleted');
  t.strictSame(brief((await s.range(b('stable'), null, { rev: 24 })).kvs), ['stable=forever@2/2/v1']);
  t.strictSame(
    brief((await s.range(Buffer.from([0]), all)).kvs),
    ['hot0=16@3/19/v5', 'hot1=17@4/20/v5', 'hot2=18@5/21/v5', 'hot3=19@6/22/v5', 'stable=forever@2/2/v1'],
  );
  t.equal(s.indexSize, 5, 'the deleted key left the index');
  // Only the five kept entries remain in the key bucket.
  let entries = 0;
  const db = (s as unknown as { backend: { scanKeyBucket(a: number, b: number): AsyncGenerator<unknown> } }).backend;
  for await (const _ of db.scanKeyBucket(0, 1000)) entries++;
  t.equal(entries, 5);
  await s.close();
  const { s: r } = await open(dir);
  t.equal(r.currentRev, 24, 'current revision survives even though its entry was deleted');
  t.equal(r.compactMainRev, 24);
  t.equal(new Applier(r, 1000).put('n', 'n'), 25);
  await r.close();
});

t.test('an interrupted compaction resumes on open', async (t) => {
  const dir = t.testdir();
  const { s } = await open(dir);
  const a = new Applier(s);
  for (let i = 0; i < 10; i++) a.put('k', `${i}`); // 2..11
  await s.close();
  // Simulate a crash right after the scheduled revision was persisted.
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  await db.put(metaKey(metaNames.scheduledCompactRev), revToBytes({ main: 8, sub: 0 }));
  await db.close();
  const { s: r } = await open(dir);
  t.equal(r.compactMainRev, 8, 'the scheduled compaction is installed');
  await r.compactionDone();
  await isMvccError(t, r.range(b('k'), null, { rev: 7 }), 'ErrCompacted', 'below the resumed compaction');
  t.strictSame(brief((await r.range(b('k'), null, { rev: 8 })).kvs), ['k=6@2/8/v7']);
  await r.close();
  const db2 = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db2.open();
  const finished = await db2.get(metaKey(metaNames.finishedCompactRev));
  t.ok(finished !== undefined && finished.equals(revToBytes({ main: 8, sub: 0 })), 'finishedCompactRev persisted');
  const kept = await db2.keys({ gte: Buffer.from('k'), lt: Buffer.from('l') }).all();
  t.equal(kept.length, 4, 'revisions 8..11 remain');
  await db2.close();
});

t.test('aux buckets round-trip, before and after commit and restart', async (t) => {
  const dir = t.testdir();
  const { s } = await open(dir);
  const a = new Applier(s);
  a.txn((tw) => {
    tw.auxPut('lease', b('1'), b('ttl=10'));
    tw.auxPut('lease', b('2'), b('ttl=20'));
    tw.auxPut('leases', b('0'), b('other bucket'));
    tw.auxPut('a', b('x'), b('short bucket name'));
  });
  t.equal(s.currentRev, 1, 'aux writes create no revision');
  t.strictSame((await s.auxGetAll('lease')).map(([k, v]) => `${k}=${v}`), ['1=ttl=10', '2=ttl=20'], 'visible before commit');
  await s.forceCommit();
  a.txn((tw) => {
    tw.auxDelete('lease', b('1'));
    tw.auxPut('lease', b('3'), b('ttl=30'));
  });
  t.strictSame((await s.auxGetAll('lease')).map(([k, v]) => `${k}=${v}`), ['2=ttl=20', '3=ttl=30'], 'delete visible before commit');
  t.strictSame((await s.auxGetAll('leases')).map(([k]) => `${k}`), ['0']);
  t.strictSame((await s.auxGetAll('a')).map(([k]) => `${k}`), ['x']);
  t.strictSame(await s.auxGetAll('none'), []);
  await s.close();
  let seen: string[] = [];
  const { s: r } = await open(dir, {
    beforeRestore: async (aux) => {
      seen = (await aux.auxGetAll('lease')).map(([k]) => `${k}`);
    },
  });
  t.strictSame(seen, ['2', '3'], 'beforeRestore can read aux buckets');
  t.strictSame((await r.auxGetAll('lease')).map(([k, v]) => `${k}=${v}`), ['2=ttl=20', '3=ttl=30']);
  t.equal(r.consistentIndex(), a.index);
  await r.close();
});

t.test('hashByRev is deterministic and validates revisions', async (t) => {
  const dir = t.testdir({ one: {}, two: {} });
  const { s: s1 } = await open(`${dir}/one`);
  const { s: s2 } = await open(`${dir}/two`);
  for (const s of [s1, s2]) {
    const a = new Applier(s);
    a.put('a', '1');
    a.put('b', '2');
    a.del('a');
    a.put('c', '3');
  }
  const h1 = await s1.hashByRev(0);
  t.strictSame(await s2.hashByRev(0), h1);
  t.equal(h1.rev, 5);
  t.strictSame(await s1.hashByRev(5), h1, 'rev 0 = current');
  t.not((await s1.hashByRev(4)).hash, h1.hash);
  await isMvccError(t, s1.hashByRev(6), 'ErrFutureRev', 'future');
  await (await s1.compact(3, 100)).done;
  await isMvccError(t, s1.hashByRev(2), 'ErrCompacted', 'below compaction');
  t.equal((await s1.hashByRev(3)).compactRev, 3, 'rev == compactRev is hashable');
  t.equal(typeof (await s1.hash()), 'number');
  await s1.close();
  await s2.close();
});

t.test('snapshot streams the whole database and restores into an identical store', async (t) => {
  const dir = t.testdir({ src: {}, dst: {}, bad: {} });
  const { s } = await open(`${dir}/src`);
  const a = new Applier(s);
  for (let i = 0; i < 300; i++) a.put(`key-${i % 70}`, 'v'.repeat(2000) + i);
  a.txn((tw) => tw.auxPut('lease', b('9'), b('x')));
  await (await s.compact(100, ++a.index)).done;
  a.put('after', 'compaction');
  const chunks: Buffer[] = [];
  for await (const c of s.snapshot()) chunks.push(c);
  t.ok(chunks.length > 2, 'several chunks');
  const hash = await s.hashByRev(0);
  const whole = await s.hash();
  await s.close();

  async function* replay(): AsyncGenerator<Buffer> {
    // Re-chunk at odd boundaries to exercise the parser.
    const all = Buffer.concat(chunks);
    for (let off = 0; off < all.length; off += 777) yield all.subarray(off, off + 777);
  }
  const { records } = await MvccStore.restoreSnapshot(`${dir}/dst`, replay());
  t.ok(records > 70);
  const { s: r } = await open(`${dir}/dst`);
  t.equal(r.currentRev, 302);
  t.equal(r.compactMainRev, 100);
  t.strictSame(await r.hashByRev(0), hash);
  t.equal(await r.hash(), whole);
  t.strictSame((await r.auxGetAll('lease')).length, 1);
  await r.close();

  async function* truncated(): AsyncGenerator<Buffer> {
    const all = Buffer.concat(chunks);
    yield all.subarray(0, all.length - 5);
  }
  await isMvccError(t, MvccStore.restoreSnapshot(`${dir}/bad`, truncated()), 'ErrSnapshotCorrupt', 'truncated stream');
});

t.test('sizes, defrag, forceCommit, prevKvs', async (t) => {
  const { s } = await open(t.testdir(), { sizer: async () => 12345 });
  const a = new Applier(s);
  for (let i = 0; i < 100; i++) a.put(`k${i}`, 'x'.repeat(100));
  a.put('k1', 'changed');
  a.del('k2');
  await s.forceCommit();
  await s.defrag();
  t.equal(await s.dbSize(), 12345, 'injected sizer');
  t.ok((await s.dbSizeInUse()) >= 0);
  const prev = await s.prevKvs([
    { type: 0, kv: { key: b('k1'), modRevision: 102, createRevision: 3, version: 2, value: b('changed'), lease: 0n } },
    { type: 1, kv: { key: b('k2'), modRevision: 103, createRevision: 0, version: 0, value: all, lease: 0n } },
    { type: 0, kv: { key: b('k5'), modRevision: 7, createRevision: 7, version: 1, value: all, lease: 0n } },
  ]);
  t.strictSame(prev.map((kv) => (kv === null ? null : `${kv.key}@${kv.modRevision}=${kv.value.length}`)), ['k1@3=100', 'k2@4=100', null]);
  await s.close();
});

t.test('reads, writes and watch catch-up flow during a long compaction', async (t) => {
  const { s } = await open(t.testdir(), { compactionBatchLimit: 10 });
  const a = new Applier(s);
  const live = new Map<string, string>();
  for (let v = 0; v < 5; v++) {
    for (let k = 0; k < 200; k++) {
      a.put(`k${k}`, `${v}`);
      live.set(`k${k}`, `${v}`);
    }
  }
  const compactRev = s.currentRev;
  const atCut = brief((await s.range(Buffer.from([0]), all, { rev: compactRev })).kvs);
  const { done } = await s.compact(compactRev, ++a.index);
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  const sink: string[] = [];
  const ws = s.newWatchStream((r) => {
    for (const e of r.events) sink.push(`${e.kv.key.toString()}@${e.kv.modRevision}`);
    return true;
  });
  ws.watch({ id: 1, key: Buffer.from([0]), end: all, startRev: compactRev + 1 });
  let rounds = 0;
  const written: string[] = [];
  while (!finished) {
    rounds++;
    const k = `k${(rounds * 7) % 200}`;
    const rev = a.put(k, `new${rounds}`);
    live.set(k, `new${rounds}`);
    written.push(`${k}@${rev}`);
    t.strictSame(brief((await s.range(Buffer.from([0]), all, { rev: compactRev })).kvs), atCut, `round ${rounds}: the cut is stable`);
    const now = await s.range(Buffer.from([0]), all);
    t.equal(now.kvs.length, 200);
    for (const kv of now.kvs) if (live.get(kv.key.toString()) !== kv.value.toString()) t.fail(`round ${rounds}: ${kv.key} stale`);
    await s.syncWatchers();
    t.ok(rounds < 10_000, 'compaction finishes');
  }
  while ((await s.syncWatchers()) > 0);
  t.ok(rounds > 3, `${rounds} rounds of traffic interleaved with the compaction`);
  t.strictSame(sink, written, 'the watcher saw every write after the cut, once, in order');
  ws.close();
  await s.close();
});
