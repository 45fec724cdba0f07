// Durability, issue #4: a follower of a cluster of real bin/etcd processes is down (kill -9) while 10,000 writes
// happen. The leader keeps enough log (--experimental-snapshot-catchup-entries 20000, above the 10,000 entries
// written; a snapshot is still taken at --snapshot-count 10000), so the restarted follower catches up from log
// entries alone: no snapshot is sent or received, and it ends with every acknowledged write.

import t from 'tap';
import { ProcessCluster, RevisionMonitor, WriteLoad, checkAcked, logLines } from '../helpers/process-cluster';

const WRITES = 10_000;

t.test('a follower down for 10,000 writes catches up from the log when the leader kept it', async (t) => {
  const c = await ProcessCluster.start(t, { prefix: 'tsetcd-rejoin-log-', extraArgs: ['--experimental-snapshot-catchup-entries', '20000'] });
  const leader = await c.leader();
  const follower = (leader + 1) % 3;
  await c.kill(follower);
  const live = c.endpoints.filter((_, i) => i !== follower);
  // A few more than WRITES are issued, so that a rare timed-out write does not leave fewer than WRITES entries.
  const load = new WriteLoad(() => live, new RevisionMonitor(), { writers: 64, maxWrites: WRITES + 100, timeoutMs: 10000 }).start();
  t.teardown(() => load.stop());
  await load.done();
  t.equal(load.acked.size + load.failures, WRITES + 100, `${WRITES + 100} writes issued`);
  t.ok(load.acked.size >= WRITES, `${load.acked.size} acknowledged while ${c.names[follower]} was down`);

  await c.restart(follower);
  await checkAcked(t, c, load, `after ${c.names[follower]} rejoined`);

  const all = [0, 1, 2].map((i) => c.allOutput(i));
  t.ok(logLines(all[leader]!, 'triggering snapshot').length >= 1, 'the leader took a snapshot at --snapshot-count (10000)');
  t.same(logLines(all[leader]!, 'compacted Raft logs'), [], 'and kept its whole log (catch-up entries 20000)');
  for (let i = 0; i < 3; i++) t.same(logLines(all[i]!, 'sending merged snapshot'), [], `${c.names[i]} sent no snapshot`);
  t.same(logLines(all[follower]!, 'received and saved database snapshot'), [], 'the follower received no snapshot');
  t.same(logLines(all[follower]!, 'applied snapshot'), [], 'and applied none: it caught up from log entries');
});
