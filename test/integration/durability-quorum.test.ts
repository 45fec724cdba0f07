// Durability, issue #4: losing quorum. kill -9 two of three members of a cluster of real bin/etcd processes under
// write load (the leader and a follower): the survivor takes no write. Restarting the two from their own data dirs
// brings the cluster back (one of them is enough for a majority): a leader, writes succeed, and every write
// acknowledged before the loss is on every member at its revision.

import t from 'tap';
import { rawClient } from '../helpers/member';
import { ProcessCluster, RevisionMonitor, WriteLoad, callWithDeadline, checkAcked, sleep, waitForProgress } from '../helpers/process-cluster';

t.test('kill -9 two of three under load, restart them with their volumes', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-quorum-' });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  await waitForProgress(load, 300, 'before the quorum loss');

  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader)!;
  const survivor = [0, 1, 2].find((i) => i !== leader && i !== follower)!;
  await c.killMany([leader, follower]);
  t.comment(`killed ${c.names[leader]} (leader) and ${c.names[follower]}; ${c.names[survivor]} survives`);
  const ackedAtLoss = load.acked.size;

  // Without a majority nothing commits: a write on the survivor fails (no leader, or it times out).
  const kv = rawClient(c.endpoints[survivor]!, 'etcdserverpb', 'KV');
  await sleep(1500);
  const lonely = await callWithDeadline(kv, 'Put', { key: Buffer.from('quorum/lonely'), value: Buffer.from('x') }, 4000).then(
    () => 'acknowledged',
    (err) => String(err.details ?? err.message),
  );
  kv.close();
  t.not(lonely, 'acknowledged', `a write without quorum is not acknowledged (${lonely})`);
  t.ok(load.acked.size - ackedAtLoss < 20, `no write load progress without quorum (${load.acked.size - ackedAtLoss} acknowledged after the kill, in flight before it)`);

  // One member back: a majority again.
  await c.restart(follower);
  const l1 = await c.leader();
  t.ok(l1 === follower || l1 === survivor, `a leader (${c.names[l1]}) with two of three members`);
  await waitForProgress(load, 50, 'with two members back');
  t.ok(load.acked.size > ackedAtLoss, 'writes succeed again');
  await checkAcked(t, c, load, 'two members');

  await c.restart(leader);
  await waitForProgress(load, 50, 'with all members back');
  await load.stop();
  await checkAcked(t, c, load, 'three members');
  const statuses = await Promise.all([0, 1, 2].map((i) => c.status(i)));
  t.equal(new Set(statuses.map((s) => s.leader)).size, 1, 'every member names the same leader');
});

t.test('--force-new-cluster: one surviving volume becomes a one-member cluster (real processes)', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-force-' });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  await waitForProgress(load, 300, 'before losing the cluster');
  await load.stop();
  // Every member has applied everything (the survivor's volume holds every committed write), then all die.
  const rev = (await c.rangePrefix(0, load.prefix)).rev;
  for (const i of [1, 2]) await c.rangePrefix(i, load.prefix);
  await c.killMany([0, 1, 2]);
  t.comment(`all three killed at revision ${rev}; only ${c.names[0]}'s volume is used again`);

  c.spawn(0, 'existing', { extraArgs: ['--force-new-cluster'] });
  await c.waitReady(0);
  t.match(c.output(0), 'forcing restart member', 'the member logs the forced restart');
  const cl = rawClient(c.endpoints[0]!, 'etcdserverpb', 'Cluster');
  const list = await callWithDeadline(cl, 'MemberList', {});
  cl.close();
  t.equal(list.members.length, 1, 'a one-member cluster');
  await checkAcked(t, c, load, 'after --force-new-cluster');
  const kv = rawClient(c.endpoints[0]!, 'etcdserverpb', 'KV');
  const put = await callWithDeadline(kv, 'Put', { key: Buffer.from('force/after'), value: Buffer.from('x') });
  kv.close();
  t.ok(Number(put.header.revision) > rev, 'it takes writes, at revisions after the old ones');
});
