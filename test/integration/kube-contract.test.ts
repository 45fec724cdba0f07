// The operations kube-apiserver performs (shared/docs/kube-contract.md), each through a real etcd client
// library (the `etcd3` npm package): Txn create/update/delete on mod_revision, paginated lists pinned to a
// revision, watch with prev_kv and progress, and compaction through the compact_rev_key CAS.

import t from 'tap';
import { Etcd3 } from 'etcd3';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';
import { RawWatch } from '../helpers/watch';

let m: TestMember;
let client: Etcd3;

t.before(async () => {
  m = await startTestMember();
  client = new Etcd3({ hosts: m.endpoint });
});
t.teardown(async () => {
  client.close();
  await m.destroy();
});

const PODS = '/registry/pods/';

async function create(key: string, value: string) {
  return client.if(key, 'Mod', '==', 0).then(client.put(key).value(value)).commit();
}

t.test('create / update / delete by mod_revision (§4)', async (t) => {
  const c = await create(PODS + 'default/a', 'v1');
  t.equal(c.succeeded, true);
  const rev = c.header.revision;
  const got = await client.get(PODS + 'default/a').exec();
  t.equal(got.kvs[0]!.mod_revision, rev);
  t.equal(got.kvs[0]!.create_revision, rev);
  t.equal(got.kvs[0]!.version, '1');
  const again = await create(PODS + 'default/a', 'v1');
  t.equal(again.succeeded, false);
  t.same(again.responses, []);
  const upd = await client.if(PODS + 'default/a', 'Mod', '==', rev).then(client.put(PODS + 'default/a').value('v2')).else(client.get(PODS + 'default/a')).commit();
  t.equal(upd.succeeded, true);
  const stale = await client.if(PODS + 'default/a', 'Mod', '==', rev).then(client.put(PODS + 'default/a').value('v3')).else(client.get(PODS + 'default/a')).commit();
  t.equal(stale.succeeded, false);
  t.equal(stale.responses[0]!.response_range!.kvs[0]!.value.toString(), 'v2');
  t.equal(stale.responses[0]!.response_range!.kvs[0]!.mod_revision, upd.header.revision);
  const missing = await client.if(PODS + 'default/none', 'Mod', '==', 5).then(client.delete().key(PODS + 'default/none')).else(client.get(PODS + 'default/none')).commit();
  t.equal(missing.succeeded, false);
  t.same(missing.responses[0]!.response_range!.kvs, [], 'missing key: an empty but present response_range');
  const del = await client.if(PODS + 'default/a', 'Mod', '==', upd.header.revision).then(client.delete().key(PODS + 'default/a')).else(client.get(PODS + 'default/a')).commit();
  t.equal(del.succeeded, true);
  const re = await create(PODS + 'default/a', 'v4');
  const after = await client.get(PODS + 'default/a').exec();
  t.equal(after.kvs[0]!.version, '1');
  t.equal(after.kvs[0]!.create_revision, re.header.revision);
});

t.test('paginated list pinned to the first page revision (§3)', async (t) => {
  const ns = ['default-2', 'default.x', 'default', 'defaultz'];
  for (const n of ns) for (let i = 0; i < 5; i++) await create(`${PODS}${n}/p${i}`, `${n}-${i}`);
  // The namespaced list of default/ holds only default/ keys, in bytewise order.
  const nsList = await client.getAll().prefix(PODS + 'default/').keys();
  const expected = [`${PODS}default/a`, ...[0, 1, 2, 3, 4].map((i) => `${PODS}default/p${i}`)];
  t.same(nsList, expected);
  const first = await client.getAll().prefix(PODS).limit(4).exec();
  const withRev = first.header.revision;
  t.equal(first.more, true);
  t.equal(first.count, '21');
  const seen = first.kvs.map((k) => k.key.toString());
  // Later writes must not show up in the pinned pages.
  await create(PODS + 'default-2/late', 'x');
  let last = first.kvs[first.kvs.length - 1]!.key.toString();
  for (;;) {
    const page = await client.getAll().inRange({ start: last + '\x00', end: prefixEnd(PODS) }).limit(4).revision(withRev).exec();
    seen.push(...page.kvs.map((k: any) => k.key.toString()));
    if (!page.more) break;
    t.ok(page.kvs.length > 0, 'more=true never comes with an empty page');
    last = page.kvs[page.kvs.length - 1]!.key.toString();
  }
  t.equal(seen.length, 21, 'every key exactly once');
  t.equal(new Set(seen).size, 21);
  t.same(seen, [...seen].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), 'bytewise order');
  t.notOk(seen.includes(PODS + 'default-2/late'));
  const count = await client.getAll().prefix(PODS).count();
  t.equal(count, 22);
});

t.test('watch with prev_kv from current+1 and progress requests (§7)', async (t) => {
  const cur = await client.get('/registry/pods').exec();
  const startRev = Number(cur.header.revision) + 1;
  const w = new RawWatch(m.endpoint, { hasleader: 'true' });
  w.create({ key: Buffer.from(PODS), range_end: Buffer.from(prefixEnd(PODS)), start_revision: startRev, prev_kv: true, progress_notify: true });
  const created = await w.next();
  t.equal(created.created, true);
  const c = await create(PODS + 'default/w', 'one');
  await client.if(PODS + 'default/w', 'Mod', '==', c.header.revision).then(client.put(PODS + 'default/w').value('two')).commit();
  const evs = await w.events(2);
  t.equal(evs[0].kv.create_revision, evs[0].kv.mod_revision, 'IsCreate');
  t.equal(evs[1].prev_kv.value.toString(), 'one', 'prev_kv on update');
  w.send({ progress_request: {} });
  const p = await w.next();
  t.equal(p.watch_id, '-1');
  t.same(p.events, []);
  t.equal(p.header.revision, evs[1].kv.mod_revision, 'progress revision is the current revision, after the events');
  w.close();
});

t.test('compaction through the compact_rev_key CAS (§5)', async (t) => {
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const cas = (expectVersion: number, rev: number) =>
    call(kv, 'Txn', {
      compare: [{ key: Buffer.from('compact_rev_key'), version: expectVersion }],
      success: [{ request_put: { key: Buffer.from('compact_rev_key'), value: Buffer.from(String(rev)) } }],
      failure: [{ request_range: { key: Buffer.from('compact_rev_key') } }],
    });
  const w = new RawWatch(m.endpoint);
  const r0 = await cas(0, 0);
  t.equal(r0.succeeded, true);
  w.create({ key: Buffer.from('compact_rev_key'), start_revision: r0.header.revision });
  await w.next();
  t.equal((await w.next()).events[0].kv.value.toString(), '0');
  const r1 = await cas(1, Number(r0.header.revision));
  t.equal(r1.succeeded, true);
  const ev = await w.next();
  t.equal(ev.events[0].kv.value.toString(), r0.header.revision);
  const loser = await cas(1, 99);
  t.equal(loser.succeeded, false);
  t.equal(loser.responses[0].response_range.kvs[0].version, '2');
  await call(kv, 'Compact', { revision: r0.header.revision, physical: false });
  try {
    await call(kv, 'Range', { key: Buffer.from('/registry/'), range_end: Buffer.from('/registry0'), revision: Number(r0.header.revision) - 1 });
    t.fail('below the compaction point');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: mvcc: required revision has been compacted');
  }
  const at = await call(kv, 'Range', { key: Buffer.from(PODS), range_end: Buffer.from(prefixEnd(PODS)), revision: r0.header.revision, count_only: true });
  t.ok(Number(at.count) > 0, 'reading exactly at the compaction revision works');
  w.close();
  kv.close();
});

t.test('lease for events: grant 3660 s, attach many keys (§8)', async (t) => {
  const lease = client.lease(3660, { autoKeepAlive: false });
  const id = await lease.grant();
  t.ok(id, 'a lease ID');
  await lease.put('/registry/events/default/e1').value('x');
  await lease.put('/registry/events/default/e2').value('y');
  const kvs = await client.getAll().prefix('/registry/events/').exec();
  t.ok(kvs.kvs.every((k) => k.lease !== '0'));
  await lease.revoke();
  t.equal(await client.getAll().prefix('/registry/events/').count(), 0);
});

function prefixEnd(p: string): string {
  const b = Buffer.from(p);
  b[b.length - 1]! += 1;
  return b.toString();
}
