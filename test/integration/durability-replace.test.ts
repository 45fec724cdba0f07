// Durability, issue #4: rebuilding a member from scratch, the way the README's Operations section describes it
// (etcd's MemberReplace). Under write load: MemberRemove a follower, stop it, delete its data dir, MemberAdd the same
// peer URL, start bin/etcd with --initial-cluster-state existing and an empty data dir. The new member joins with a
// new ID, catches up, and has every acknowledged write; the old ID stays removed.

import t from 'tap';
import fs from 'node:fs/promises';
import { rawClient } from '../helpers/member';
import { ProcessCluster, RevisionMonitor, WriteLoad, callWithDeadline, checkAcked, until, waitForProgress } from '../helpers/process-cluster';

t.test('remove a member, wipe its data dir, add it again, start it with --initial-cluster-state existing', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-replace-', extraArgs: ['--snapshot-count', '500', '--experimental-snapshot-catchup-entries', '100'] });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  await waitForProgress(load, 300, 'before the replacement');
  const leader = await c.leader();
  const f = (leader + 1) % 3;
  const oldId = c.memberIds[f]!;
  const cl = rawClient(c.endpoints[leader]!, 'etcdserverpb', 'Cluster');
  t.teardown(() => cl.close());

  await until('MemberRemove', async () => {
    await callWithDeadline(cl, 'MemberRemove', { ID: oldId });
    return true;
  });
  await c.kill(f);
  await fs.rm(c.dataDirs[f]!, { recursive: true, force: true });
  await waitForProgress(load, 200, 'with two members');

  let added: any;
  await until('MemberAdd', async () => {
    added = await callWithDeadline(cl, 'MemberAdd', { peerURLs: [c.peerUrl(f)] });
    return true;
  });
  const newId = String(added.member.ID);
  t.not(newId, oldId, `the new member has a new ID (${BigInt(newId).toString(16)}, was ${BigInt(oldId).toString(16)})`);
  c.forgetMemberId(f);
  await c.restart(f, 'existing');
  t.equal((await c.status(f)).header.member_id, newId, 'the started process is the added member');
  await waitForProgress(load, 200, 'after the rebuilt member joined');
  await load.stop();
  await checkAcked(t, c, load, 'rebuilt member');

  const list = await callWithDeadline(cl, 'MemberList', {});
  const ids = list.members.map((m: any) => String(m.ID)).sort();
  t.equal(ids.length, 3, 'three members');
  t.ok(ids.includes(newId) && !ids.includes(oldId), 'the old ID is gone, the new one is in');
  t.ok(list.members.every((m: any) => m.name !== '' && !m.isLearner), 'every member started and published its name');
});
