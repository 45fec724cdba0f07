// Maintenance and Cluster for one member: Status (version gate for kube), Hash/HashKV, Alarm, Defragment,
// Snapshot, MemberList; and the Election and Lock services.

import t from 'tap';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';

const b = (s: string) => Buffer.from(s);
let m: TestMember;
let kv: any;
let mt: any;

t.before(async () => {
  m = await startTestMember();
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
});
t.teardown(async () => {
  kv.close();
  mt.close();
  await m.destroy();
});

t.test('status', async (t) => {
  await call(kv, 'Put', { key: b('s'), value: b('1') });
  const s = await call(mt, 'Status', {});
  t.match(s.version, /^\d+\.\d+\.\d+$/, 'strict semver');
  const [maj, min, patch] = s.version.split('.').map(Number);
  t.ok(maj > 3 || (maj === 3 && (min > 5 || (min === 5 && patch >= 13))), 'kube enables RequestWatchProgress (>= 3.5.13)');
  t.ok(Number(s.dbSize) > 0);
  t.equal(s.leader, s.header.member_id);
  t.ok(Number(s.raftIndex) > 0);
  t.ok(Number(s.raftTerm) > 0);
  t.ok(Number(s.raftAppliedIndex) > 0);
  t.same(s.errors, []);
});

t.test('hash and hashkv are stable for the same state', async (t) => {
  const h1 = await call(mt, 'HashKV', { revision: 0 });
  const h2 = await call(mt, 'HashKV', { revision: 0 });
  t.equal(h1.hash, h2.hash);
  await call(kv, 'Put', { key: b('s'), value: b('2') });
  const h3 = await call(mt, 'HashKV', { revision: 0 });
  t.not(h3.hash, h1.hash);
  const atOld = await call(mt, 'HashKV', { revision: h1.header.revision });
  t.equal(atOld.hash, h1.hash, 'hash at a past revision is that revision\'s');
  const h = await call(mt, 'Hash', {});
  t.type(h.hash, 'number');
});

t.test('alarms: activate, list, deactivate', async (t) => {
  const id = (await call(mt, 'Status', {})).header.member_id;
  const a = await call(mt, 'Alarm', { action: 1, memberID: id, alarm: 1 });
  t.same(a.alarms.map((x: any) => x.alarm), [1]);
  const s = await call(mt, 'Status', {});
  t.equal(s.errors.length, 1);
  try {
    await call(kv, 'Put', { key: b('q'), value: b('1') });
    t.fail('put during NOSPACE');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: mvcc: database space exceeded');
  }
  const d = await call(kv, 'DeleteRange', { key: b('q') });
  t.ok(d.header, 'deletes are admitted during NOSPACE');
  const list = await call(mt, 'Alarm', { action: 0 });
  t.equal(list.alarms.length, 1);
  await call(mt, 'Alarm', { action: 2, memberID: id, alarm: 1 });
  t.same((await call(mt, 'Alarm', { action: 0 })).alarms, []);
  await call(kv, 'Put', { key: b('q'), value: b('1') });
});

t.test('defragment and snapshot', async (t) => {
  const d = await call(mt, 'Defragment', {});
  t.ok(d.header);
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = mt.Snapshot({});
    s.on('data', (r: any) => chunks.push(r.blob));
    s.on('end', resolve);
    s.on('error', reject);
  });
  const all = Buffer.concat(chunks);
  t.ok(all.length > 32, 'a snapshot with a trailing sha256');
});

t.test('member list', async (t) => {
  const cl = rawClient(m.endpoint, 'etcdserverpb', 'Cluster');
  const l = await call(cl, 'MemberList', {});
  t.equal(l.members.length, 1);
  t.equal(l.members[0].name, 'test');
  t.equal(l.members[0].ID, l.header.member_id);
  t.same(l.members[0].peerURLs, ['http://127.0.0.1:2380']);
  cl.close();
});

t.test('lock and election services', async (t) => {
  const lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
  const lock = rawClient(m.endpoint, 'v3lockpb', 'Lock');
  const el = rawClient(m.endpoint, 'v3electionpb', 'Election');
  const l1 = await call(lease, 'LeaseGrant', { TTL: 60 });
  const l2 = await call(lease, 'LeaseGrant', { TTL: 60 });
  const a = await call(lock, 'Lock', { name: b('mylock'), lease: l1.ID });
  t.match(a.key.toString(), /^mylock\//);
  let second = false;
  const p = call(lock, 'Lock', { name: b('mylock'), lease: l2.ID }).then((r) => {
    second = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  t.equal(second, false, 'second locker waits');
  await call(lock, 'Unlock', { key: a.key });
  const bLock = await p;
  t.equal(second, true);
  await call(lock, 'Unlock', { key: bLock.key });

  const c = await call(el, 'Campaign', { name: b('elect'), lease: l1.ID, value: b('me') });
  t.equal(c.leader.name.toString(), 'elect');
  const leader = await call(el, 'Leader', { name: b('elect') });
  t.equal(leader.kv.value.toString(), 'me');
  await call(el, 'Proclaim', { leader: c.leader, value: b('me2') });
  t.equal((await call(el, 'Leader', { name: b('elect') })).kv.value.toString(), 'me2');
  try {
    await call(el, 'Proclaim', { value: b('x') });
    t.fail('proclaim without leader');
  } catch (err: any) {
    t.equal(err.details, '"leader" field must be provided');
  }
  await call(el, 'Resign', { leader: c.leader });
  try {
    await call(el, 'Leader', { name: b('elect') });
    t.fail('no leader expected');
  } catch (err: any) {
    t.equal(err.details, 'election: no leader');
  }
  lease.close();
  lock.close();
  el.close();
});
