// KV service end to end through real gRPC: every RangeRequest field, Put/DeleteRange options, Txn rules and
// etcd's exact errors. The raw client shows codes and messages exactly as a Go client would see them.

import t from 'tap';
import { status } from '@grpc/grpc-js';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';

const b = (s: string) => Buffer.from(s);
let m: TestMember;
let kv: any;

t.before(async () => {
  m = await startTestMember();
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
});
t.teardown(async () => {
  kv.close();
  await m.destroy();
});

async function put(key: string, value: string, extra: object = {}) {
  return call(kv, 'Put', { key: b(key), value: b(value), ...extra });
}
async function range(req: object) {
  return call(kv, 'Range', req);
}
async function rejects(p: Promise<unknown>, code: number, details: string, tt: any) {
  try {
    await p;
    tt.fail(`expected ${details}`);
  } catch (err: any) {
    tt.equal(err.code, code, `code for ${details}`);
    tt.equal(err.details, details);
  }
}

t.test('fresh store: revision 1, absent key', async (t) => {
  const r = await range({ key: b('absent'), limit: 1 });
  t.equal(r.header.revision, '1');
  t.equal(r.count, '0');
  t.same(r.kvs, []);
  t.not(r.header.cluster_id, '0');
  t.not(r.header.member_id, '0');
  t.not(r.header.raft_term, '0');
});

t.test('put creates, updates, re-creates with etcd bookkeeping', async (t) => {
  const p1 = await put('a', 'v1');
  t.equal(p1.header.revision, '2');
  const r1 = await range({ key: b('a') });
  t.equal(r1.kvs[0].create_revision, '2');
  t.equal(r1.kvs[0].mod_revision, '2');
  t.equal(r1.kvs[0].version, '1');
  const p2 = await put('a', 'v2', { prev_kv: true });
  t.equal(p2.prev_kv.value.toString(), 'v1');
  const r2 = await range({ key: b('a') });
  t.equal(r2.kvs[0].version, '2');
  t.equal(r2.kvs[0].create_revision, '2');
  t.equal(r2.kvs[0].mod_revision, '3');
  const d = await call(kv, 'DeleteRange', { key: b('a'), prev_kv: true });
  t.equal(d.deleted, '1');
  t.equal(d.prev_kvs[0].value.toString(), 'v2');
  t.equal(d.header.revision, '4');
  await put('a', 'v3');
  const r3 = await range({ key: b('a') });
  t.equal(r3.kvs[0].version, '1');
  t.equal(r3.kvs[0].create_revision, '5');
  // Deleting nothing creates no revision.
  const d2 = await call(kv, 'DeleteRange', { key: b('nothing') });
  t.equal(d2.deleted, '0');
  t.equal(d2.header.revision, '5');
});

t.test('range forms, limit, count, more, sort, filters, keys_only, count_only', async (t) => {
  for (const k of ['r/1', 'r/2', 'r/3', 'r/4', 'r0']) await put(k, 'val-' + k);
  const pre = await range({ key: b('r/'), range_end: b('r0') });
  t.same(pre.kvs.map((x: any) => x.key.toString()), ['r/1', 'r/2', 'r/3', 'r/4']);
  t.equal(pre.count, '4');
  t.equal(pre.more, false);
  const lim = await range({ key: b('r/'), range_end: b('r0'), limit: 2 });
  t.equal(lim.kvs.length, 2);
  t.equal(lim.count, '4');
  t.equal(lim.more, true);
  const from = await range({ key: b('r/3'), range_end: Buffer.from([0]) });
  t.same(from.kvs.map((x: any) => x.key.toString()), ['r/3', 'r/4', 'r0']);
  const all = await range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
  t.equal(all.kvs.length, 0);
  t.ok(Number(all.count) >= 5);
  const desc = await range({ key: b('r/'), range_end: b('r0'), sort_order: 2, sort_target: 0, limit: 3 });
  t.same(desc.kvs.map((x: any) => x.key.toString()), ['r/4', 'r/3', 'r/2']);
  t.equal(desc.more, true);
  const byMod = await range({ key: b('r/'), range_end: b('r0'), sort_target: 3 });
  t.same(byMod.kvs.map((x: any) => x.key.toString()), ['r/1', 'r/2', 'r/3', 'r/4'], 'non-key target sorts ascending by default');
  const r2 = byMod.kvs[1].mod_revision;
  const minMod = await range({ key: b('r/'), range_end: b('r0'), min_mod_revision: r2 });
  t.same(minMod.kvs.map((x: any) => x.key.toString()), ['r/2', 'r/3', 'r/4']);
  t.equal(minMod.count, '4', 'filters do not change count');
  const maxCreate = await range({ key: b('r/'), range_end: b('r0'), max_create_revision: r2 });
  t.same(maxCreate.kvs.map((x: any) => x.key.toString()), ['r/1', 'r/2']);
  const ko = await range({ key: b('r/'), range_end: b('r0'), keys_only: true });
  t.equal(ko.kvs[0].value.length, 0);
  t.equal(ko.kvs[0].key.toString(), 'r/1');
  const ser = await range({ key: b('r/1'), serializable: true });
  t.equal(ser.kvs[0].value.toString(), 'val-r/1');
});

t.test('reads at a past revision and their errors', async (t) => {
  const p1 = await put('h', 'one');
  await put('h', 'two');
  await call(kv, 'DeleteRange', { key: b('h') });
  const old = await range({ key: b('h'), revision: p1.header.revision });
  t.equal(old.kvs[0].value.toString(), 'one');
  const cur = await range({ key: b('h') });
  t.equal(cur.kvs.length, 0);
  const future = Number(cur.header.revision) + 10;
  await rejects(range({ key: b('h'), revision: future }), status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision', t);
  await rejects(range({ key: b('h'), revision: '9223372036854775807' }), status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision', t);
  await rejects(range({ key: Buffer.alloc(0) }), status.INVALID_ARGUMENT, 'etcdserver: key is not provided', t);
});

t.test('values are bytes, not strings', async (t) => {
  const bin = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0xc3]);
  await call(kv, 'Put', { key: Buffer.from([0xff, 0x01]), value: bin });
  const r = await range({ key: Buffer.from([0xff, 0x01]) });
  t.ok(r.kvs[0].value.equals(bin));
});

t.test('put errors and options', async (t) => {
  await rejects(put('', 'x'), status.INVALID_ARGUMENT, 'etcdserver: key is not provided', t);
  await rejects(put('iv', 'x', { ignore_value: true }), status.INVALID_ARGUMENT, 'etcdserver: value is provided', t);
  await rejects(put('il', '', { ignore_lease: true, lease: 5 }), status.INVALID_ARGUMENT, 'etcdserver: lease is provided', t);
  await rejects(put('missing-iv', '', { ignore_value: true }), status.INVALID_ARGUMENT, 'etcdserver: key not found', t);
  await rejects(put('l', 'x', { lease: 12345 }), status.NOT_FOUND, 'etcdserver: requested lease not found', t);
  await put('iv2', 'keep');
  await put('iv2', '', { ignore_value: true });
  const r = await range({ key: b('iv2') });
  t.equal(r.kvs[0].value.toString(), 'keep');
  t.equal(r.kvs[0].version, '2');
  const before = (await range({ key: b('x') })).header.revision;
  await rejects(put('big', 'x'.repeat(1.6 * 1024 * 1024)), status.INVALID_ARGUMENT, 'etcdserver: request is too large', t);
  t.equal((await range({ key: b('x') })).header.revision, before, 'nothing written');
});

t.test('txn: compares, branches, nested, missing-key zero values', async (t) => {
  const created = await call(kv, 'Txn', {
    compare: [{ target: 2, result: 0, key: b('tx'), mod_revision: 0 }],
    success: [{ request_put: { key: b('tx'), value: b('1') } }],
    failure: [],
  });
  t.equal(created.succeeded, true);
  const rev = created.header.revision;
  const again = await call(kv, 'Txn', {
    compare: [{ target: 2, result: 0, key: b('tx'), mod_revision: 0 }],
    success: [{ request_put: { key: b('tx'), value: b('1') } }],
    failure: [],
  });
  t.equal(again.succeeded, false);
  t.same(again.responses, []);
  t.equal(again.header.revision, rev, 'a failed compare creates no revision');
  const upd = await call(kv, 'Txn', {
    compare: [{ target: 2, result: 0, key: b('tx'), mod_revision: rev }],
    success: [{ request_put: { key: b('tx'), value: b('2') } }],
    failure: [{ request_range: { key: b('tx') } }],
  });
  t.equal(upd.succeeded, true);
  const stale = await call(kv, 'Txn', {
    compare: [{ target: 2, result: 0, key: b('tx'), mod_revision: rev }],
    success: [{ request_put: { key: b('tx'), value: b('3') } }],
    failure: [{ request_range: { key: b('tx') } }],
  });
  t.equal(stale.succeeded, false);
  t.equal(stale.responses[0].response_range.kvs[0].value.toString(), '2');
  // VERSION == 0 with target and result both 0, absent on the wire: the compaction CAS of kube.
  const cas = await call(kv, 'Txn', {
    compare: [{ key: b('compact_rev_key'), version: 0 }],
    success: [{ request_put: { key: b('compact_rev_key'), value: b('0') } }],
    failure: [{ request_range: { key: b('compact_rev_key') } }],
  });
  t.equal(cas.succeeded, true);
  // VALUE compare on a missing key is always false.
  const val = await call(kv, 'Txn', { compare: [{ target: 3, result: 3, key: b('nokey'), value: b('x') }], success: [], failure: [] });
  t.equal(val.succeeded, false);
  // Range compare: all keys in [r/, r0) have version > 0.
  const rc = await call(kv, 'Txn', { compare: [{ target: 0, result: 1, key: b('r/'), range_end: b('r0'), version: 0 }], success: [], failure: [] });
  t.equal(rc.succeeded, true);
  // Nested txn and a range that sees the txn's own put. As in etcd, every compare (nested ones too) is
  // decided against the state before the txn: n1 does not exist yet for the nested compare.
  const nested = await call(kv, 'Txn', {
    compare: [],
    success: [
      { request_put: { key: b('n1'), value: b('a') } },
      { request_txn: { compare: [{ target: 0, result: 0, key: b('n1'), version: 0 }], success: [{ request_put: { key: b('n2'), value: b('b') } }], failure: [] } },
      { request_range: { key: b('n1') } },
    ],
    failure: [],
  });
  t.equal(nested.succeeded, true);
  t.equal(nested.responses[1].response_txn.succeeded, true);
  t.equal(nested.responses[2].response_range.kvs[0].value.toString(), 'a');
  const n2 = await range({ key: b('n2') });
  t.equal(n2.kvs[0].mod_revision, nested.header.revision, 'one txn, one revision');
});

t.test('txn validation order and duplicate keys', async (t) => {
  const ops = Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b('k' + i), value: b('v') } }));
  await rejects(call(kv, 'Txn', { compare: [], success: ops, failure: [] }), status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request', t);
  await rejects(
    call(kv, 'Txn', { compare: [{ key: Buffer.alloc(0) }], success: [{ request_put: { key: b('a'), value: b('') } }, { request_put: { key: b('a'), value: b('') } }], failure: [] }),
    status.INVALID_ARGUMENT,
    'etcdserver: key is not provided',
    t,
  );
  await rejects(
    call(kv, 'Txn', { compare: [], success: [{ request_put: { key: b('a'), value: b('') } }, { request_put: { key: b('a'), value: b('') } }], failure: [] }),
    status.INVALID_ARGUMENT,
    'etcdserver: duplicate key given in txn request',
    t,
  );
  await rejects(
    call(kv, 'Txn', { compare: [], success: [{ request_delete_range: { key: b('a'), range_end: b('c') } }, { request_put: { key: b('b'), value: b('') } }], failure: [] }),
    status.INVALID_ARGUMENT,
    'etcdserver: duplicate key given in txn request',
    t,
  );
  await rejects(call(kv, 'Txn', { compare: [], success: [{}], failure: [] }), status.INVALID_ARGUMENT, 'etcdserver: key not found', t);
  // then/else of one nested txn may put the same key.
  const ok = await call(kv, 'Txn', {
    compare: [],
    success: [{ request_txn: { compare: [], success: [{ request_put: { key: b('dup'), value: b('1') } }], failure: [{ request_put: { key: b('dup'), value: b('2') } }] } }],
    failure: [],
  });
  t.equal(ok.succeeded, true);
  // A lease that does not exist fails the whole txn and writes nothing.
  const before = (await range({ key: b('x') })).header.revision;
  await rejects(
    call(kv, 'Txn', { compare: [], success: [{ request_put: { key: b('l1'), value: b('') } }, { request_put: { key: b('l2'), value: b(''), lease: 99 } }], failure: [] }),
    status.NOT_FOUND,
    'etcdserver: requested lease not found',
    t,
  );
  t.equal((await range({ key: b('l1') })).kvs.length, 0);
  t.equal((await range({ key: b('x') })).header.revision, before);
});

t.test('compaction', async (t) => {
  const p1 = await put('c', '1');
  const p2 = await put('c', '2');
  await put('other', 'x');
  const cur = Number((await range({ key: b('c') })).header.revision);
  await rejects(call(kv, 'Compact', { revision: cur + 5 }), status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision', t);
  const c = await call(kv, 'Compact', { revision: p2.header.revision, physical: true });
  t.equal(c.header.revision, String(cur), 'compaction creates no revision');
  await rejects(range({ key: b('c'), revision: p1.header.revision }), status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted', t);
  const at = await range({ key: b('c'), revision: p2.header.revision });
  t.equal(at.kvs[0].value.toString(), '2', 'reading at the compaction revision works');
  const old = await range({ key: b('r/1') });
  t.equal(old.kvs.length, 1, 'the latest version of long-unchanged keys survives');
  await rejects(call(kv, 'Compact', { revision: p1.header.revision }), status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted', t);
});
