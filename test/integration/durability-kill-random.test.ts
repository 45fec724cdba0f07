// Durability, issue #4: kill -9 a random member of a three-member cluster of real bin/etcd processes, again and
// again, under write load, restarting it with the same flags and data dir (--initial-cluster-state new and existing
// alternately: a volume with a WAL ignores it). After each restart the cluster takes writes again, every
// acknowledged write is on every member at the revision its Put returned (linearizable reads), and no response ever
// shows a revision below one the client saw before.

import t from 'tap';
import { ProcessCluster, RevisionMonitor, WriteLoad, checkAcked, seededRandom, sleep, waitForProgress } from '../helpers/process-cluster';

const ITERATIONS = 4;

t.test('kill -9 a random member under write load, restart it, repeat', async (t) => {
  const rnd = seededRandom();
  t.comment(`seed ${rnd.seed} (set DURABILITY_SEED to replay)`);
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-kill-random-' });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 6 }).start();
  t.teardown(() => load.stop());
  const victims = new Set<number>();
  for (let it = 1; it <= ITERATIONS; it++) {
    await sleep(500 + Math.floor(rnd.next() * 1000));
    const victim = Math.floor(rnd.next() * 3);
    victims.add(victim);
    await c.kill(victim);
    await sleep(Math.floor(rnd.next() * 1000));
    // The same flags and data dir; --initial-cluster-state does not matter once the volume has a WAL.
    const state = it % 2 === 0 ? 'existing' : 'new';
    await c.restart(victim, state);
    const progress = await waitForProgress(load, 50, `after restarting ${c.names[victim]}`);
    t.ok(progress >= 50, `iteration ${it}: writes are acknowledged again after the restart`);
    await checkAcked(t, c, load, `iteration ${it} (killed ${c.names[victim]}, restarted with --initial-cluster-state ${state})`);
  }
  await load.stop();
  await checkAcked(t, c, load, 'end');
  t.comment(`${load.acked.size} writes acknowledged, ${load.failures} failed (indeterminate); victims ${[...victims].map((i) => c.names[i]).join(' ')}`);
});
