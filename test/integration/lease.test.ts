// Lease end to end: grant (given and generated IDs, minimum TTL), keep-alive stream, time-to-live with keys,
// leases list, revoke deleting every attached key in one revision, and expiry through the log with DELETE
// events that carry prev_kv.

import t from 'tap';
import { status } from '@grpc/grpc-js';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';
import { RawWatch } from '../helpers/watch';

const b = (s: string) => Buffer.from(s);
let m: TestMember;
let kv: any;
let lease: any;

t.before(async () => {
  m = await startTestMember();
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
});
t.teardown(async () => {
  kv.close();
  lease.close();
  await m.destroy();
});

t.test('grant, attach, time-to-live, leases, revoke', async (t) => {
  const before = (await call(kv, 'Range', { key: b('x') })).header.revision;
  const g = await call(lease, 'LeaseGrant', { TTL: 3660 });
  t.not(g.ID, '0');
  t.ok(Number(g.ID) < 2 ** 53, 'generated IDs stay exact in JavaScript');
  t.equal(g.TTL, '3660');
  t.equal((await call(kv, 'Range', { key: b('x') })).header.revision, before, 'grant creates no revision');
  const given = await call(lease, 'LeaseGrant', { TTL: 0, ID: '9223372036854775807' });
  t.equal(given.ID, '9223372036854775807', 'int64 IDs survive');
  t.ok(Number(given.TTL) >= 1, 'TTL raised to the minimum');
  try {
    await call(lease, 'LeaseGrant', { TTL: 10, ID: '9223372036854775807' });
    t.fail('duplicate lease');
  } catch (err: any) {
    t.equal(err.code, status.FAILED_PRECONDITION);
    t.equal(err.details, 'etcdserver: lease already exists');
  }
  for (const k of ['l/b', 'l/a', 'l/c']) await call(kv, 'Put', { key: b(k), value: b('v'), lease: g.ID });
  const r = await call(kv, 'Range', { key: b('l/a') });
  t.equal(r.kvs[0].lease, g.ID);
  const ttl = await call(lease, 'LeaseTimeToLive', { ID: g.ID, keys: true });
  t.equal(ttl.grantedTTL, '3660');
  t.ok(Number(ttl.TTL) > 3600);
  t.same(ttl.keys.map((k: Buffer) => k.toString()).sort(), ['l/a', 'l/b', 'l/c']);
  const list = await call(lease, 'LeaseLeases', {});
  t.ok(list.leases.some((l: any) => l.ID === g.ID));
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('l/'), range_end: b('l0'), prev_kv: true });
  await w.next();
  await call(lease, 'LeaseRevoke', { ID: g.ID });
  const resp = await w.next();
  t.equal(resp.events.length, 3, 'all attached keys deleted in one revision');
  t.same(resp.events.map((e: any) => e.kv.key.toString()), ['l/a', 'l/b', 'l/c'], 'sorted');
  t.ok(resp.events.every((e: any) => e.type === 1 && e.prev_kv));
  w.close();
  const gone = await call(lease, 'LeaseTimeToLive', { ID: g.ID });
  t.equal(gone.TTL, '-1');
  try {
    await call(lease, 'LeaseRevoke', { ID: g.ID });
    t.fail('revoke twice');
  } catch (err: any) {
    t.equal(err.code, status.NOT_FOUND);
    t.equal(err.details, 'etcdserver: requested lease not found');
  }
});

t.test('keep-alive stream renews; expiry deletes keys with prev_kv events', async (t) => {
  const g = await call(lease, 'LeaseGrant', { TTL: 2 });
  await call(kv, 'Put', { key: b('e/k'), value: b('v'), lease: g.ID });
  await call(kv, 'Put', { key: b('e/kept'), value: b('v'), lease: g.ID });
  await call(kv, 'Put', { key: b('e/kept'), value: b('v2') }); // re-put without lease detaches
  const ka = lease.LeaseKeepAlive();
  const resp = await new Promise<any>((resolve) => {
    ka.once('data', resolve);
    ka.write({ ID: g.ID });
  });
  t.equal(resp.ID, g.ID);
  t.equal(resp.TTL, '2');
  const unknown = await new Promise<any>((resolve) => {
    ka.once('data', resolve);
    ka.write({ ID: 424242 });
  });
  t.equal(unknown.TTL, '0', 'unknown lease renews to TTL 0');
  ka.end();
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('e/'), range_end: b('e0'), prev_kv: true });
  await w.next();
  const start = Date.now();
  const ev = await w.next(6000);
  t.ok(Date.now() - start >= 1000, 'not expired early');
  t.equal(ev.events.length, 1);
  t.equal(ev.events[0].type, 1);
  t.equal(ev.events[0].kv.key.toString(), 'e/k');
  t.equal(ev.events[0].prev_kv.value.toString(), 'v');
  t.equal((await call(kv, 'Range', { key: b('e/kept') })).kvs.length, 1);
  w.close();
  try {
    await call(kv, 'Put', { key: b('e/new'), value: b('v'), lease: g.ID });
    t.fail('put with expired lease');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: requested lease not found');
  }
});
