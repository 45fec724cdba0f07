// Regression for the fault run mixed seed 62 (leaseExpiry: "lease ... expired early: TimeToLive on n3 found no
// lease"): a member without a leader answered LeaseTimeToLive from its own lessor, which may lack a grant the
// cluster committed while it was cut off. Like etcd (waitLeader) it must wait for a leader and forward, or fail
// with "no leader" once the request timeout has passed.

import t from 'tap';
import { startTestCluster } from '../helpers/cluster';
import { call, rawClient } from '../helpers/member';
import { until } from '../helpers/poll';

t.test('F19 mixed, seed 62: a leaderless member does not answer LeaseTimeToLive itself', async (t) => {
  const c = await startTestCluster(3);
  t.teardown(() => c.destroy());
  const lease = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Lease');
  const mt = rawClient(c.members[0]!.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(() => {
    lease.close();
    mt.close();
  });
  const g = await call(lease, 'LeaseGrant', { TTL: 60 });
  await c.stop(1);
  await c.stop(2);
  await until('member 0 to lose its leader', async () => (await call(mt, 'Status', {})).leader === '0', 10_000);

  const started = Date.now();
  const err = await call(lease, 'LeaseTimeToLive', { ID: g.ID }).then(() => undefined, (e: { details?: string }) => e);
  t.equal(err?.details, 'etcdserver: no leader');
  t.ok(Date.now() - started >= 4000, 'it waited for a leader first');

  // A leader that turns up while it waits gets the request.
  const pending = call(lease, 'LeaseTimeToLive', { ID: g.ID });
  await c.restart(1);
  const r = await pending;
  t.ok(Number(r.TTL) > 0 && Number(r.TTL) <= 60, `TTL from the new leader: ${r.TTL}`);
});
