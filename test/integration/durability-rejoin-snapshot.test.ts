// Durability, issue #4: a follower of a cluster of real bin/etcd processes is down (kill -9) while 10,000 writes
// happen, and the leader snapshots every 500 entries and keeps only 100 entries behind each snapshot
// (--snapshot-count 500 --experimental-snapshot-catchup-entries 100 --max-snapshots 2), so its log no longer holds
// what the follower misses. The restarted follower receives the database as a snapshot, installs it, and ends with
// every acknowledged write; the flags reach the server (the log lines carry their values).

import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ProcessCluster, RevisionMonitor, WriteLoad, checkAcked, logLines } from '../helpers/process-cluster';

const WRITES = 10_000;

t.test('a follower down for 10,000 writes catches up with a snapshot when the leader truncated its log', async (t) => {
  const c = await ProcessCluster.start(t, {
    prefix: 'tsetcd-rejoin-snap-',
    extraArgs: ['--snapshot-count', '500', '--experimental-snapshot-catchup-entries', '100', '--max-snapshots', '2'],
  });
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

  const leaderLog = c.allOutput(leader);
  const triggered = logLines(leaderLog, 'triggering snapshot');
  t.ok(triggered.length >= WRITES / 500 - 2, `the leader snapshotted every 500 entries (${triggered.length} snapshots)`);
  t.ok(triggered.every((l) => l['local-member-snapshot-count'] === 500), '--snapshot-count reached the server');
  const compacted = logLines(leaderLog, 'compacted Raft logs');
  const saved = logLines(leaderLog, 'saved snapshot');
  t.ok(compacted.length >= 1, 'the leader compacted its Raft log');
  const lastSaved = saved[saved.length - 1]!;
  const lastCompacted = compacted[compacted.length - 1]!;
  t.equal(lastCompacted['compact-index'], (lastSaved['snapshot-index'] as number) - 100, '--experimental-snapshot-catchup-entries reached the server');
  const markers = (await fs.readdir(path.join(c.dataDirs[leader]!, 'member', 'snap'))).filter((f) => f.endsWith('.snap'));
  t.equal(markers.length, 2, `--max-snapshots reached the server (${markers.join(' ')})`);

  await c.restart(follower);
  await checkAcked(t, c, load, `after ${c.names[follower]} rejoined`);

  const all = [0, 1, 2].map((i) => c.allOutput(i));
  t.ok(logLines(all[leader]!, 'sending merged snapshot').length >= 1, 'the leader sent a snapshot');
  const received = logLines(all[follower]!, 'received and saved database snapshot');
  const applied = logLines(all[follower]!, 'applied snapshot');
  t.ok(received.length >= 1, 'the follower received and saved the database snapshot');
  t.ok(applied.length >= 1, 'and applied it');
});
