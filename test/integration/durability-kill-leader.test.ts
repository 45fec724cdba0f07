// Durability, issue #4: kill -9 the leader of a three-member cluster of real bin/etcd processes, again and again,
// under write load. After each restart a (new) leader takes writes, every acknowledged write is on every member at
// the revision its Put returned (linearizable reads), and no response ever shows a revision below one the client
// saw before. Snapshots every 300 entries with 50 kept behind them: the restarted old leader is usually caught up
// by a snapshot, and the members restart from snapshot markers.

import t from 'tap';
import { ProcessCluster, RevisionMonitor, WriteLoad, checkAcked, sleep, waitForProgress } from '../helpers/process-cluster';

const ITERATIONS = 4;
const SNAPSHOT_FLAGS = ['--snapshot-count', '300', '--experimental-snapshot-catchup-entries', '50'];

t.test('kill -9 the leader under write load, restart it, repeat', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-kill-leader-', extraArgs: SNAPSHOT_FLAGS });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  const leaders: string[] = [];
  for (let it = 1; it <= ITERATIONS; it++) {
    await sleep(1000);
    const leader = await c.leader();
    leaders.push(c.names[leader]!);
    await c.kill(leader);
    // The two others elect a leader among themselves and take writes while the old one is down.
    const next = await c.leader();
    t.not(next, leader, `iteration ${it}: a new leader (${c.names[next]}) after killing ${c.names[leader]}`);
    await waitForProgress(load, 20, `with ${c.names[leader]} down`);
    await c.restart(leader);
    await waitForProgress(load, 50, `after restarting ${c.names[leader]}`);
    await checkAcked(t, c, load, `iteration ${it} (killed leader ${c.names[leader]})`);
  }
  await load.stop();
  await checkAcked(t, c, load, 'end');
  t.comment(`${load.acked.size} writes acknowledged, ${load.failures} failed (indeterminate); leaders killed: ${leaders.join(' ')}`);
});
