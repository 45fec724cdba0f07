// Durability, issue #4: kill -9 all three members of a cluster of real bin/etcd processes at the same moment, under
// write load, and restart them from their data dirs; again and again. After each restart the cluster elects a leader
// and takes writes, every acknowledged write is on every member at the revision its Put returned (linearizable
// reads), and no response ever shows a revision below one the client saw before: a write acknowledged before the
// crash was durable on a majority. Snapshots every 200 entries: the crashes fall around snapshot markers, log
// compaction and their WAL records.

import t from 'tap';
import { ProcessCluster, RevisionMonitor, WriteLoad, checkAcked, waitForProgress } from '../helpers/process-cluster';

const ITERATIONS = 3;
const SNAPSHOT_FLAGS = ['--snapshot-count', '200', '--experimental-snapshot-catchup-entries', '50'];

t.test('kill -9 all three members at once under write load, restart them, repeat', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-kill-all-', extraArgs: SNAPSHOT_FLAGS });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  for (let it = 1; it <= ITERATIONS; it++) {
    await waitForProgress(load, 200, `before crash ${it}`);
    await c.killMany([0, 1, 2]);
    const ackedAtCrash = load.acked.size;
    await Promise.all([0, 1, 2].map((i) => c.restart(i)));
    await c.leader();
    await waitForProgress(load, 50, `after restarting all members`);
    t.ok(load.acked.size > ackedAtCrash, `iteration ${it}: the cluster takes writes after a full restart`);
    await checkAcked(t, c, load, `iteration ${it} (killed all)`);
  }
  await load.stop();
  await checkAcked(t, c, load, 'end');
  t.comment(`${load.acked.size} writes acknowledged, ${load.failures} failed (indeterminate)`);
});
