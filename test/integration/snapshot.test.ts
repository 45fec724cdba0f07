// Snapshots and log truncation: every --snapshot-count applied entries a member records a snapshot marker, compacts
// its in-memory Raft log and releases WAL segments; a restart replays only the WAL after the marker; a follower
// that fell behind the leader's log receives the backend as a snapshot stream, one that did not catches up from log
// entries only (the server's snapshotStats says which).

import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startTestCluster } from '../helpers/cluster';
import { startTestMember, rawClient, call } from '../helpers/member';
import { RawWatch } from '../helpers/watch';
import { until } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);

async function putMany(endpoint: string, prefix: string, n: number): Promise<void> {
  const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
  try {
    for (let i = 0; i < n; i++) await call(kv, 'Put', { key: b(`${prefix}${String(i).padStart(5, '0')}`), value: b(`v${i}`) });
  } finally {
    kv.close();
  }
}

async function rangeAll(endpoint: string, serializable = false): Promise<{ kvs: Array<[string, string]>; rev: number }> {
  const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
  try {
    const r = await call(kv, 'Range', { key: b('\0'), range_end: b('\0'), serializable });
    return { kvs: r.kvs.map((x: any) => [x.key.toString(), x.value.toString()]), rev: Number(r.header.revision) };
  } finally {
    kv.close();
  }
}

async function hashKv(endpoint: string, rev: number): Promise<string> {
  const mt = rawClient(endpoint, 'etcdserverpb', 'Maintenance');
  try {
    return String((await call(mt, 'HashKV', { revision: rev })).hash);
  } finally {
    mt.close();
  }
}


t.test('a single member takes snapshots, compacts its log, and restarts from the newest marker', async (t) => {
  const m = await startTestMember({ snapshotCount: 50, snapshotCatchupEntries: 10, maxSnapshots: 2 });
  t.teardown(() => m.destroy());
  await putMany(m.endpoint, 'k', 230);
  const stats = m.server.snapshotStats;
  t.ok(stats.taken >= 4, `snapshots taken: ${stats.taken}`);
  const snapDir = path.join(m.dataDir, 'member', 'snap');
  const markers = (await fs.readdir(snapDir)).filter((f) => f.endsWith('.snap'));
  t.equal(markers.length, 2, '--max-snapshots markers are kept');
  const st = m.server.raftStatus();
  const before = await rangeAll(m.endpoint);
  t.equal(before.kvs.length, 230);
  await m.close();

  // Another instance's volume: refused, naming whose it is.
  await t.rejects(startTestMember({ name: 'other', snapshotCount: 50 }, m.dataDir), /belongs to member "test"/, 'a data dir of another member refuses to start');
  const again = await startTestMember({ snapshotCount: 50, snapshotCatchupEntries: 10 }, m.dataDir);
  t.teardown(() => again.close());
  const after = await rangeAll(again.endpoint);
  t.same(after.kvs, before.kvs, 'every key survives the restart');
  t.ok(after.rev >= before.rev, 'the revision never moves backwards');
  t.ok(again.server.raftStatus().applied >= st.applied, 'applied index restored');
  await putMany(again.endpoint, 'z', 5);
  t.equal((await rangeAll(again.endpoint)).kvs.length, 235, 'writes go on after the restart');
});

t.test('followers: behind the leader log -> snapshot stream; within it -> log entries only', async (t) => {
  const c = await startTestCluster(3, { snapshotCount: 40, snapshotCatchupEntries: 20 });
  t.teardown(() => c.destroy());
  // Find a follower to stop.
  const leaderId = c.members[0]!.server.leader();
  const fi = c.members.findIndex((m) => m.server.memberId !== leaderId);
  const li = c.members.findIndex((m) => m.server.memberId === leaderId);
  const live = c.members[(fi + 1) % 3 === li ? (fi + 2) % 3 : (fi + 1) % 3]!;
  t.not(fi, li);

  // 1. Down for a few entries (fewer than the catch-up window): entries only.
  await c.stop(fi);
  await putMany(live.endpoint, 'a', 5);
  let f = await c.restart(fi);
  await until('the follower to catch up from the log', async () => (await rangeAll(f.endpoint, true)).kvs.length === 5);
  t.equal(f.server.snapshotStats.applied, 0, 'no snapshot was needed');
  t.equal(f.server.snapshotStats.received, 0);

  // 2. Down while the leader snapshots and compacts far past it: a snapshot stream.
  await c.stop(fi);
  await putMany(live.endpoint, 'b', 300);
  const sentBefore = c.members.reduce((n, m, i) => (i === fi ? n : n + m.server.snapshotStats.sent), 0);
  f = await c.restart(fi);
  await until('the follower to catch up through a snapshot', async () => (await rangeAll(f.endpoint, true)).kvs.length === 305);
  t.ok(f.server.snapshotStats.received >= 1, 'the follower received a snapshot');
  t.ok(f.server.snapshotStats.applied >= 1, 'and installed it');
  const sentAfter = c.members.reduce((n, m, i) => (i === fi ? n : n + m.server.snapshotStats.sent), 0);
  t.ok(sentAfter > sentBefore, 'the leader sent it');
  const metrics = await (await fetch(`${f.endpoint}/metrics`)).text();
  t.match(metrics, /etcd_network_snapshot_receive_success\{From="[0-9a-f]+"\} [1-9]/, 'the follower counts it in /metrics');
  t.match(metrics, /tsetcd_snapshots_applied_total [1-9]/);

  // Same state everywhere, and the follower keeps applying after the install.
  await putMany(live.endpoint, 'c', 20);
  const want = await rangeAll(live.endpoint);
  await until('every member at the same revision', async () => {
    for (const m of c.members) if ((await rangeAll(m.endpoint, true)).rev !== want.rev) return false;
    return true;
  });
  const hashes = await Promise.all(c.members.map((m) => hashKv(m.endpoint, want.rev)));
  t.equal(new Set(hashes).size, 1, `HashKV agrees on every member at ${want.rev}`);
  t.same((await rangeAll(f.endpoint)).kvs, want.kvs, 'the snapshot-restored member reads the same keys');

  // The installed snapshot survives a restart of that member.
  await c.stop(fi);
  f = await c.restart(fi);
  t.same((await rangeAll(f.endpoint, true)).kvs.length, want.kvs.length, 'restart after the install keeps the state');
});

t.test('a watcher on a member that installs a snapshot sees every event in order', async (t) => {
  const c = await startTestCluster(3, { snapshotCount: 30, snapshotCatchupEntries: 10 });
  t.teardown(() => c.destroy());
  const leaderId = c.members[0]!.server.leader();
  const fi = c.members.findIndex((m) => m.server.memberId !== leaderId);
  const live = c.members[(fi + 1) % 3]!.server.memberId === leaderId ? c.members[(fi + 2) % 3]! : c.members[(fi + 1) % 3]!;
  // Isolate the follower's peer traffic by stopping it, write, restart, watch from an old revision while it is
  // catching up.
  const start = (await rangeAll(live.endpoint)).rev;
  await c.stop(fi);
  await putMany(live.endpoint, 'w', 200);
  const f = await c.restart(fi);
  // Created right away: the member may still be installing the snapshot; the watcher catches up either way.
  const w = new RawWatch(f.endpoint);
  t.teardown(() => w.close());
  w.create({ key: b('w'), range_end: b('x'), start_revision: start + 1 });
  const created = await w.next(10000);
  t.ok(created.created, 'watch created');
  const events = (await w.events(200, 20000)).map((ev: any) => Number(ev.kv.mod_revision));
  t.equal(events.length, 200, 'all 200 events arrived');
  t.ok(events.every((r, i) => i === 0 || r > events[i - 1]!), 'in revision order');
  t.ok(f.server.snapshotStats.applied >= 1, 'the member caught up through a snapshot');
});
