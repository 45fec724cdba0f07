// --force-new-cluster: the volume of a single surviving member of a three-member cluster becomes a one-member
// cluster with every committed write, the other members removed (and refused if they come back).

import t from 'tap';
import { startTestCluster } from '../helpers/cluster';
import { startTestMember, rawClient, call } from '../helpers/member';

const b = (s: string) => Buffer.from(s);

t.test('a surviving volume restarts as a one-member cluster with every committed write', async (t) => {
  const c = await startTestCluster(3, { snapshotCount: 100, snapshotCatchupEntries: 20 });
  t.teardown(() => c.destroy());
  const kv = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'KV');
  const acked = new Map<string, number>();
  for (let i = 0; i < 250; i++) {
    const r = await call(kv, 'Put', { key: b(`k/${i}`), value: b(`v${i}`) });
    acked.set(`k/${i}`, Number(r.header.revision));
  }
  kv.close();
  const lastRev = Math.max(...acked.values());
  // Lose two zones at once, then the third member's instance: only its volume is left.
  await Promise.all([c.stop(1), c.stop(2)]);
  await c.stop(0);

  const m = await startTestMember({ ...c.configs[0], forceNewCluster: true }, c.dataDirs[0]);
  t.teardown(() => m.close());
  const cl = rawClient(m.endpoint, 'etcdserverpb', 'Cluster');
  const list = await call(cl, 'MemberList', {});
  cl.close();
  t.equal(list.members.length, 1, 'one member left');
  t.equal(list.members[0].name, 'm0');
  const kv2 = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const r = await call(kv2, 'Range', { key: b('k/'), range_end: b('k0') });
  const got = new Map<string, number>(r.kvs.map((x: any) => [x.key.toString(), Number(x.mod_revision)]));
  t.equal(got.size, acked.size, 'every committed key is there');
  t.ok([...acked].every(([k, rev]) => got.get(k) === rev), 'with its revision');
  t.ok(Number(r.header.revision) >= lastRev, 'the revision did not move backwards');
  const p = await call(kv2, 'Put', { key: b('after'), value: b('x') });
  t.ok(Number(p.header.revision) > lastRev, 'the one-member cluster takes writes');
  kv2.close();
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  const st = await call(mt, 'Status', {});
  mt.close();
  t.equal(st.leader, st.header.member_id, 'it leads itself');
  t.equal(st.header.cluster_id, list.header.cluster_id, 'the cluster ID is kept');

  // Restarted again without the flag, it stays a one-member cluster.
  await m.close();
  const again = await startTestMember({ ...c.configs[0] }, c.dataDirs[0]);
  t.teardown(() => again.close());
  const kv3 = rawClient(again.endpoint, 'etcdserverpb', 'KV');
  const r3 = await call(kv3, 'Range', { key: b('after') });
  t.equal(r3.kvs[0]?.value.toString(), 'x', 'state kept across a normal restart');
  kv3.close();
});
