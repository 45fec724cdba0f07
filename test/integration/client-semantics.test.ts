// Client-facing cluster semantics, as etcd's interceptors and membership enforce them (in-process clusters):
//   - hasleader=true metadata (clientv3.WithRequireLeader): a member without a leader refuses such requests with
//     "etcdserver: no leader", and cancels such watch streams after three election timeouts without a leader,
//     while streams that did not ask stay open (etcd v3rpc/interceptor.go, monitorLeader);
//   - a learner serves only Status and serializable Range, and no stream ("rpc not supported for learner");
//   - a removed member shuts itself down, and one that comes back (it was down when removed) is refused by its
//     former peers and stops too, without disturbing the leader or the term of the rest.

import t, { type Test } from 'tap';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startTestCluster, type TestCluster } from '../helpers/cluster';
import { rawClient, call, startTestMember, type TestMember } from '../helpers/member';
import { freePort } from '../helpers/process';
import { RawWatch } from '../helpers/watch';
import { until, untilHealthy } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);
const REQUIRE_LEADER = { hasleader: 'true' };

/** `p`, or 'still running' if it has not settled within 30 s (the timer does not keep the test process alive). */
function orStillRunning<T>(p: Promise<T>): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'still running'>((r) => {
    timer = setTimeout(() => r('still running'), 30_000);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function statusOf(endpoint: string): Promise<any> {
  const mt = rawClient(endpoint, 'etcdserverpb', 'Maintenance');
  try {
    return await call(mt, 'Status', {});
  } finally {
    mt.close();
  }
}

/** A unary call with metadata and a deadline. */
function callMd<T = any>(client: any, method: string, req: object, metadata: Record<string, string> = {}, timeoutMs = 10_000): Promise<T> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve, reject) => {
    client[method](req, md, { deadline: Date.now() + timeoutMs }, (err: any, res: T) => (err ? reject(err) : resolve(res)));
  });
}


async function leaderIndex(c: TestCluster, among: number[] = c.members.map((_, i) => i)): Promise<number> {
  return until('a leader', async () => {
    for (const i of among) {
      const s = await statusOf(c.members[i]!.endpoint).catch(() => undefined);
      if (s && s.leader !== '0' && s.leader === s.header.member_id) return i + 1;
    }
    return undefined;
  }).then((i) => i - 1);
}

/** Expects `p` to fail with exactly etcd's status and message. */
async function rejects(t: Test, p: Promise<unknown>, code: grpc.status, details: string, what: string): Promise<void> {
  try {
    const r = await p;
    t.fail(`${what}: expected "${details}", got a response ${JSON.stringify(r)?.slice(0, 200)}`);
  } catch (err: any) {
    t.equal(err.details, details, `${what}: ${details}`);
    t.equal(err.code, code, `${what}: status ${grpc.status[code]}`);
  }
}


t.test('hasleader: refused without a leader; require-leader watches are cancelled, others stay', async (t) => {
  const c = await startTestCluster(3);
  t.teardown(() => c.destroy());
  const li = await leaderIndex(c);
  const f = (li + 1) % 3;
  const member = c.members[f]!;
  const kv = rawClient(member.endpoint, 'etcdserverpb', 'KV');
  t.teardown(() => kv.close());
  await call(kv, 'Put', { key: b('k'), value: b('v') });

  // With a leader, the metadata changes nothing.
  const ok = await callMd(kv, 'Range', { key: b('k') }, REQUIRE_LEADER);
  t.equal(ok.kvs[0]?.value.toString(), 'v', 'a require-leader read succeeds while there is a leader');
  const requiring = new RawWatch(member.endpoint, REQUIRE_LEADER);
  const plain = new RawWatch(member.endpoint);
  t.teardown(() => {
    requiring.close();
    plain.close();
  });
  requiring.create({ key: b('k') });
  plain.create({ key: b('k') });
  t.ok((await requiring.next()).created, 'a require-leader watch opens while there is a leader');
  t.ok((await plain.next()).created, 'a plain watch opens');

  // Cut the follower off from its peers: it loses its leader (pre-candidate), clients still reach it.
  await (member.server as any).transport.stop();
  await until('the isolated member to lose its leader', async () => (await statusOf(member.endpoint)).leader === '0');

  await rejects(t, callMd(kv, 'Range', { key: b('k'), serializable: true }, REQUIRE_LEADER), grpc.status.UNAVAILABLE, 'etcdserver: no leader', 'require-leader serializable Range');
  await rejects(t, callMd(kv, 'Put', { key: b('k'), value: b('x') }, REQUIRE_LEADER), grpc.status.UNAVAILABLE, 'etcdserver: no leader', 'require-leader Put');
  // Only the exact value "true" asks for a leader (etcd compares the first value).
  const other = await callMd(kv, 'Range', { key: b('k'), serializable: true }, { hasleader: 'false' });
  t.equal(other.kvs[0]?.value.toString(), 'v', 'hasleader=false is no requirement');
  const local = await call(kv, 'Range', { key: b('k'), serializable: true });
  t.equal(local.kvs[0]?.value.toString(), 'v', 'without the metadata a serializable read is still served');

  // A new require-leader stream is refused at once.
  const late = new RawWatch(member.endpoint, REQUIRE_LEADER);
  t.teardown(() => late.close());
  await until('the new require-leader watch to be refused', async () => late.error);
  t.equal(late.error.details, 'etcdserver: no leader', 'a require-leader watch opened without a leader is refused');
  t.equal(late.error.code, grpc.status.UNAVAILABLE);

  // The open one is cancelled after three election timeouts without a leader (monitorLeader).
  await until('the require-leader watch to be cancelled', async () => requiring.error);
  t.equal(requiring.error.details, 'etcdserver: no leader', 'the open require-leader watch is cancelled with "no leader"');
  t.equal(requiring.error.code, grpc.status.UNAVAILABLE);
  t.notOk(plain.error, 'a watch that did not require a leader stays open');
  t.notOk(plain.ended, 'a watch that did not require a leader is not ended');
  plain.send({ progress_request: {} });
  const progress = await plain.next(5000);
  t.ok(progress.header, 'the plain watch still answers (a progress notification)');
});

t.test('a learner serves only Status and serializable Range; after promotion, everything', async (t) => {
  const c = await startTestCluster(3);
  let learner: TestMember | undefined;
  t.teardown(async () => {
    await learner?.close();
    await c.destroy();
  });
  const cl = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Cluster');
  t.teardown(() => cl.close());
  const kv0 = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'KV');
  t.teardown(() => kv0.close());
  await call(kv0, 'Put', { key: b('k'), value: b('v') });
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const clientUrl = `http://127.0.0.1:${await freePort()}`;
  const added = await untilHealthy(() => call(cl, 'MemberAdd', { peerURLs: [peerUrl], isLearner: true }));
  learner = await startTestMember(
    {
      ...c.configs[0],
      name: 'learner',
      listenPeerUrls: [peerUrl],
      initialAdvertisePeerUrls: [peerUrl],
      listenClientUrls: [clientUrl],
      advertiseClientUrls: [clientUrl],
      initialCluster: `${c.configs[0]!.initialCluster},learner=${peerUrl}`,
      initialClusterState: 'existing',
    },
    path.join(c.root, 'learner'),
  );
  const lkv = rawClient(learner.endpoint, 'etcdserverpb', 'KV');
  const lcl = rawClient(learner.endpoint, 'etcdserverpb', 'Cluster');
  const llease = rawClient(learner.endpoint, 'etcdserverpb', 'Lease');
  t.teardown(() => [lkv, lcl, llease].forEach((x) => x.close()));

  const st = await statusOf(learner.endpoint);
  t.equal(st.isLearner, true, 'Status is served, and says learner');
  const r = await until('the learner to catch up', async () => {
    const res = await call(lkv, 'Range', { key: b('k'), serializable: true });
    return res.kvs.length > 0 ? res : undefined;
  });
  t.equal(r.kvs[0].value.toString(), 'v', 'a serializable Range is served from the learner');
  const NOT = 'etcdserver: rpc not supported for learner';
  await rejects(t, call(lkv, 'Range', { key: b('k') }), grpc.status.UNAVAILABLE, NOT, 'linearizable Range');
  await rejects(t, call(lkv, 'Put', { key: b('k'), value: b('x') }), grpc.status.UNAVAILABLE, NOT, 'Put');
  await rejects(
    t,
    call(lkv, 'Txn', { compare: [], success: [{ request_range: { key: b('k'), serializable: true } }], failure: [] }),
    grpc.status.UNAVAILABLE,
    NOT,
    'a serializable read-only Txn (only Range itself is allowed)',
  );
  await rejects(t, call(lcl, 'MemberList', {}), grpc.status.UNAVAILABLE, NOT, 'MemberList');
  await rejects(t, call(llease, 'LeaseGrant', { TTL: 10 }), grpc.status.UNAVAILABLE, NOT, 'LeaseGrant');
  const w = new RawWatch(learner.endpoint);
  t.teardown(() => w.close());
  await until('the learner to refuse the watch stream', async () => w.error);
  t.equal(w.error.details, NOT, 'a Watch stream is refused');
  t.equal(w.error.code, grpc.status.UNAVAILABLE);

  let promoted = false;
  await until('the learner to be promoted', async () => {
    try {
      await call(cl, 'MemberPromote', { ID: added.member.ID });
      promoted = true;
      return true;
    } catch (err: any) {
      if (!/in sync with leader|unhealthy/.test(err.details)) throw err;
      return false;
    }
  });
  t.ok(promoted);
  const lin: any = await until('a linearizable Range on the promoted member', async () => call(lkv, 'Range', { key: b('k') }));
  t.equal(lin.kvs[0]?.value.toString(), 'v', 'the promoted member serves linearizable reads');
  const p = await call(lkv, 'Put', { key: b('k2'), value: b('v2') });
  t.ok(Number(p.header.revision) > 1, 'and writes');
  t.equal((await call(lcl, 'MemberList', {})).members.length, 4, 'and MemberList');
  t.equal((await statusOf(learner.endpoint)).isLearner, false);
  const w2 = new RawWatch(learner.endpoint);
  t.teardown(() => w2.close());
  w2.create({ key: b('k2'), start_revision: p.header.revision });
  t.ok((await w2.next()).created, 'and watches');
  const ev = await w2.events(1);
  t.equal(ev[0].kv.value.toString(), 'v2');
});

t.test('a removed member stops itself; a removed member that comes back is refused and stops', async (t) => {
  // etcd's default timing, so that a spurious election on a busy machine is unlikely to move the term.
  const c = await startTestCluster(4, { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 });
  t.teardown(() => c.destroy());
  const li = await leaderIndex(c);
  const [x, y] = [1, 2, 3].map((d) => (li + d) % 4) as [number, number];
  const rest = [0, 1, 2, 3].filter((i) => i !== x && i !== y);
  const cl = rawClient(c.members[li]!.endpoint, 'etcdserverpb', 'Cluster');
  t.teardown(() => cl.close());
  const before = await statusOf(c.members[li]!.endpoint);

  // 1. Removed while running: it applies its own removal and shuts down, clients included.
  const xm = c.members[x]!;
  const xId = (await statusOf(xm.endpoint)).header.member_id;
  await untilHealthy(() => call(cl, 'MemberRemove', { ID: xId }));
  const reason = await orStillRunning(xm.done);
  t.equal(reason, 'removed', 'the removed member stopped itself');
  await until('the removed member to stop serving clients', async () => {
    try {
      await statusOf(xm.endpoint);
      return false;
    } catch (err: any) {
      return err.code === grpc.status.UNAVAILABLE;
    }
  });

  // 2. Removed while down: when it comes back from its data dir, its former peers refuse it, and it stops.
  const yId = (await statusOf(c.members[y]!.endpoint)).header.member_id;
  await c.stop(y);
  await untilHealthy(() => call(cl, 'MemberRemove', { ID: yId }));
  // Without pre-vote its first campaign would carry a higher term: the refusal must keep it away anyway.
  const back = startTestMember({ ...c.configs[y], initialClusterState: 'existing', preVote: false }, c.dataDirs[y]);
  let stoppedWith = '';
  try {
    const m = await back;
    t.teardown(() => m.close());
    stoppedWith = await orStillRunning(m.done);
  } catch (err) {
    stoppedWith = String(err);
  }
  t.match(stoppedWith, /removed|server stopped/, `the returning removed member stopped (${stoppedWith})`);

  // The rest kept their leader and term, and still take writes.
  const after = await Promise.all(rest.map((i) => statusOf(c.members[i]!.endpoint)));
  for (const s of after) {
    t.equal(s.leader, before.leader, `member ${s.header.member_id} kept the leader`);
    t.equal(s.raftTerm, before.raftTerm, `member ${s.header.member_id} kept the term`);
  }
  const kv = rawClient(c.members[li]!.endpoint, 'etcdserverpb', 'KV');
  t.teardown(() => kv.close());
  const p = await call(kv, 'Put', { key: b('after'), value: b('removal') });
  t.ok(Number(p.header.revision) > 1, 'the remaining members take writes');
  const list = await call(cl, 'MemberList', {});
  t.equal(list.members.length, 2, 'two members remain');
});

t.test('removing the leader: it stops, the other two elect a leader and go on', async (t) => {
  const c = await startTestCluster(3);
  t.teardown(() => c.destroy());
  const li = await leaderIndex(c);
  const lm = c.members[li]!;
  const others = [0, 1, 2].filter((i) => i !== li);
  const leaderId = (await statusOf(lm.endpoint)).header.member_id;
  const cl = rawClient(lm.endpoint, 'etcdserverpb', 'Cluster');
  t.teardown(() => cl.close());
  const res = await untilHealthy(() => call(cl, 'MemberRemove', { ID: leaderId }));
  t.equal(res.members.length, 2, 'the removal is answered, with the two members left');
  const reason = await orStillRunning(lm.done);
  t.equal(reason, 'removed', 'the removed leader stopped itself');
  const nl = await leaderIndex(c, others);
  t.ok(others.includes(nl), 'one of the other two leads');
  const kv = rawClient(c.members[others[0]!]!.endpoint, 'etcdserverpb', 'KV');
  t.teardown(() => kv.close());
  const p: any = await until('a write after the removal', () => call(kv, 'Put', { key: b('after'), value: b('leader-removal') }));
  t.ok(Number(p.header.revision) > 1, 'the two take writes');
  const ss = await Promise.all(others.map((i) => statusOf(c.members[i]!.endpoint)));
  t.equal(new Set(ss.map((s) => s.leader)).size, 1, 'and agree on the leader');
});
