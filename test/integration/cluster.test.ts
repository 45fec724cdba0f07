// A three-member cluster in one process over loopback: replication, linearizable reads on followers,
// proposals forwarded to the leader, leader failure and re-election, restart from the member's own data dir,
// membership RPCs with etcd's errors, MoveLeader, and lease TTLs that survive a leader change.

import t from 'tap';
import { status } from '@grpc/grpc-js';
import { startTestCluster, type TestCluster } from '../helpers/cluster';
import { rawClient, call } from '../helpers/member';
import { untilHealthy } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);
let c: TestCluster;

async function statusOf(endpoint: string): Promise<any> {
  const mt = rawClient(endpoint, 'etcdserverpb', 'Maintenance');
  try {
    return await call(mt, 'Status', {});
  } finally {
    mt.close();
  }
}

async function leaderIndex(): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    for (let i = 0; i < c.members.length; i++) {
      try {
        const s = await statusOf(c.members[i]!.endpoint);
        if (s.leader !== '0' && s.leader === s.header.member_id) return i;
      } catch {
        // stopped member
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no leader');
}

t.before(async () => {
  c = await startTestCluster(3);
});
t.teardown(async () => {
  await c.destroy();
});

t.test('one leader, same cluster ID, member list', async (t) => {
  const ss = await Promise.all(c.members.map((m) => statusOf(m.endpoint)));
  t.equal(new Set(ss.map((s) => s.header.cluster_id)).size, 1);
  t.equal(new Set(ss.map((s) => s.leader)).size, 1, 'everyone agrees on the leader');
  const cl = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Cluster');
  const list = await call(cl, 'MemberList', {});
  t.equal(list.members.length, 3);
  t.same(list.members.map((m: any) => m.name).sort(), ['m0', 'm1', 'm2']);
  t.ok(list.members.every((m: any) => m.clientURLs.length === 1), 'every member published its client URLs');
  cl.close();
});

t.test('writes on any member, linearizable reads on every member', async (t) => {
  for (let i = 0; i < 3; i++) {
    const kv = rawClient(c.members[i]!.endpoint, 'etcdserverpb', 'KV');
    const p = await call(kv, 'Put', { key: b('k' + i), value: b('v' + i) });
    for (let j = 0; j < 3; j++) {
      const kvj = rawClient(c.members[j]!.endpoint, 'etcdserverpb', 'KV');
      const r = await call(kvj, 'Range', { key: b('k' + i) });
      t.equal(r.kvs[0]?.value.toString(), 'v' + i, `member ${j} reads the write made through member ${i}`);
      t.ok(Number(r.header.revision) >= Number(p.header.revision));
      kvj.close();
    }
    kv.close();
  }
});

t.test('leader failure: a new leader, no acknowledged write lost, restart rejoins', async (t) => {
  const li = await leaderIndex();
  const other = (li + 1) % 3;
  const kv = rawClient(c.members[other]!.endpoint, 'etcdserverpb', 'KV');
  const before = await call(kv, 'Put', { key: b('before'), value: b('x') });
  await c.stop(li);
  const nl = await leaderIndex();
  t.not(nl, li, 'a new leader was elected');
  const after = await call(kv, 'Put', { key: b('after'), value: b('y') });
  t.ok(Number(after.header.revision) > Number(before.header.revision));
  const r = await call(kv, 'Range', { key: b('before') });
  t.equal(r.kvs[0].value.toString(), 'x');
  kv.close();
  const m = await c.restart(li);
  const kvr = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const got = await call(kvr, 'Range', { key: b('after') });
  t.equal(got.kvs[0]?.value.toString(), 'y', 'the restarted member caught up');
  kvr.close();
});


t.test('membership RPCs and their errors', async (t) => {
  const cl = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Cluster');
  const list = await call(cl, 'MemberList', {});
  try {
    await untilHealthy(() => call(cl, 'MemberAdd', { peerURLs: list.members[0].peerURLs }));
    t.fail('duplicate peer URL');
  } catch (err: any) {
    t.equal(err.code, status.FAILED_PRECONDITION);
    t.equal(err.details, 'etcdserver: Peer URLs already exists');
  }
  try {
    await call(cl, 'MemberRemove', { ID: '12345' });
    t.fail('unknown member');
  } catch (err: any) {
    t.equal(err.code, status.NOT_FOUND);
    t.equal(err.details, 'etcdserver: member not found');
  }
  const added = await untilHealthy(() => call(cl, 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'], isLearner: true }));
  t.equal(added.member.isLearner, true);
  t.equal(added.members.length, 4);
  try {
    await call(cl, 'MemberPromote', { ID: added.member.ID });
    t.fail('promote a learner that never started');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: can only promote a learner member which is in sync with leader');
  }
  await untilHealthy(() => call(cl, 'MemberRemove', { ID: added.member.ID }));
  t.equal((await call(cl, 'MemberList', {})).members.length, 3);
  const upd = await call(cl, 'MemberUpdate', { ID: list.members[0].ID, peerURLs: list.members[0].peerURLs });
  t.equal(upd.members.length, 3);
  cl.close();
});

t.test('MoveLeader transfers leadership', async (t) => {
  const li = await leaderIndex();
  const target = (li + 1) % 3;
  const targetId = (await statusOf(c.members[target]!.endpoint)).header.member_id;
  const mt = rawClient(c.members[li]!.endpoint, 'etcdserverpb', 'Maintenance');
  await call(mt, 'MoveLeader', { targetID: targetId });
  mt.close();
  t.equal(await leaderIndex(), target);
  const fm = rawClient(c.members[li]!.endpoint, 'etcdserverpb', 'Maintenance');
  try {
    await call(fm, 'MoveLeader', { targetID: targetId });
    t.fail('MoveLeader on a follower');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: not leader');
  }
  fm.close();
});

t.test('lease TTL survives a leader change; keep-alive through a follower', async (t) => {
  const li = await leaderIndex();
  const f = (li + 1) % 3;
  const lease = rawClient(c.members[f]!.endpoint, 'etcdserverpb', 'Lease');
  const g = await call(lease, 'LeaseGrant', { TTL: 60 });
  const ka = lease.LeaseKeepAlive();
  const resp = await new Promise<any>((resolve) => {
    ka.once('data', resolve);
    ka.write({ ID: g.ID });
  });
  t.equal(resp.TTL, '60', 'a follower forwards keep-alive to the leader');
  ka.end();
  const ttl1 = await call(lease, 'LeaseTimeToLive', { ID: g.ID });
  t.ok(Number(ttl1.TTL) > 50);
  await c.stop(li);
  await leaderIndex();
  const ttl2 = await call(lease, 'LeaseTimeToLive', { ID: g.ID });
  t.ok(Number(ttl2.TTL) > 40 && Number(ttl2.TTL) <= 60, `TTL after the leader change: ${ttl2.TTL}`);
  lease.close();
  await c.restart(li);
});

t.test('add a learner, let it join and catch up, promote it; MoveLeader to each member', async (t) => {
  const { freePort } = await import('../helpers/process');
  const { startTestMember } = await import('../helpers/member');
  const path = await import('node:path');
  const cl = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Cluster');
  const peerPort = await freePort();
  const clientPort = await freePort();
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const added = await untilHealthy(() => call(cl, 'MemberAdd', { peerURLs: [peerUrl], isLearner: true }));
  const initialCluster = `${c.configs[0]!.initialCluster},m3=${peerUrl}`;
  const learner = await startTestMember(
    {
      ...c.configs[0],
      name: 'm3',
      listenPeerUrls: [peerUrl],
      initialAdvertisePeerUrls: [peerUrl],
      listenClientUrls: [`http://127.0.0.1:${clientPort}`],
      advertiseClientUrls: [`http://127.0.0.1:${clientPort}`],
      initialCluster,
      initialClusterState: 'existing',
    },
    path.join(c.root, 'm3'),
  );
  t.teardown(() => learner.close());
  t.equal(learner.memberId, BigInt(added.member.ID).toString(16), 'the joining member learned its ID from the cluster');
  const kv = rawClient(learner.endpoint, 'etcdserverpb', 'KV');
  const r = await call(kv, 'Range', { key: b('k0'), serializable: true });
  t.equal(r.kvs[0]?.value.toString(), 'v0', 'the learner replicated the log');
  kv.close();
  let promoted: any;
  for (let i = 0; i < 100 && !promoted; i++) {
    try {
      promoted = await call(cl, 'MemberPromote', { ID: added.member.ID });
    } catch (err: any) {
      if (!/in sync with leader|unhealthy/.test(err.details)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.ok(promoted, 'promoted once in sync');
  t.equal(promoted.members.find((m: any) => m.ID === added.member.ID).isLearner, false);
  const all = [...c.members, learner];
  for (let i = 0; i < all.length; i++) {
    const li = await leaderIndex();
    const leader = li;
    const targetId = (await statusOf(all[i]!.endpoint)).header.member_id;
    const mt = rawClient(c.members[leader]!.endpoint, 'etcdserverpb', 'Maintenance');
    await call(mt, 'MoveLeader', { targetID: targetId });
    mt.close();
    const s = await statusOf(all[i]!.endpoint);
    t.equal(s.leader, targetId, `leadership moved to member ${i}`);
  }
  cl.close();
});
