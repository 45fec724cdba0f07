// Faults on a three-member cluster. With real bin/etcd processes: kill -9 the leader under write load → a new
// leader within two election timeouts and no acknowledged write lost. In process: a member cut off from its
// peers serves no stale linearizable read (it times out instead), while the majority goes on.

import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, runEtcd, type EtcdProcess } from '../helpers/process';
import { tempDir, rawClient, call } from '../helpers/member';
import { startTestCluster } from '../helpers/cluster';

const b = (s: string) => Buffer.from(s);
const ELECTION_MS = 1000; // etcd's default --election-timeout, which bin/etcd uses here

async function status(endpoint: string): Promise<any> {
  const mt = rawClient(endpoint, 'etcdserverpb', 'Maintenance');
  try {
    return await call(mt, 'Status', {});
  } finally {
    mt.close();
  }
}

t.test('kill -9 the leader under write load', async (t) => {
  const root = await tempDir('tsetcd-kill-');
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const names = ['a', 'b', 'c'];
  const peer = await Promise.all(names.map(() => freePort()));
  const client = await Promise.all(names.map(() => freePort()));
  const cluster = names.map((n, i) => `${n}=http://127.0.0.1:${peer[i]}`).join(',');
  const args = (i: number, state: string) => [
    '--name', names[i]!, '--data-dir', path.join(root, names[i]!),
    '--listen-client-urls', `http://127.0.0.1:${client[i]}`, '--advertise-client-urls', `http://127.0.0.1:${client[i]}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer[i]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer[i]}`,
    '--initial-cluster', cluster, '--initial-cluster-token', 'kill-test', '--initial-cluster-state', state,
  ];
  const procs: EtcdProcess[] = names.map((_, i) => runEtcd(args(i, 'new')));
  t.teardown(() => procs.forEach((p) => p.proc.kill('SIGKILL')));
  await Promise.all(procs.map((p) => p.waitFor('ready to serve client requests')));
  const endpoints = client.map((p) => `http://127.0.0.1:${p}`);
  const st = await status(endpoints[0]!);
  const leaderIdx = await (async () => {
    for (let i = 0; i < 3; i++) if ((await status(endpoints[i]!)).header.member_id === st.leader) return i;
    throw new Error('leader not found');
  })();

  // Writers on every member; a failed write is indeterminate, an acknowledged one must survive.
  const acked = new Map<string, number>();
  let stop = false;
  const writers = Array.from({ length: 9 }, async (_, w) => {
    const kv = rawClient(endpoints[w % 3]!, 'etcdserverpb', 'KV');
    for (let i = 0; !stop; i++) {
      const key = `w/${w}/${i}`;
      try {
        const r = await call(kv, 'Put', { key: b(key), value: b(key) });
        acked.set(key, Number(r.header.revision));
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    kv.close();
  });
  await new Promise((r) => setTimeout(r, 1000));
  const killedAt = Date.now();
  procs[leaderIdx]!.proc.kill('SIGKILL');
  const others = [0, 1, 2].filter((i) => i !== leaderIdx);
  let elected = 0;
  while (!elected) {
    for (const i of others) {
      try {
        const s = await status(endpoints[i]!);
        if (s.leader !== '0' && s.leader !== st.leader) elected = Date.now();
      } catch {
        // busy member
      }
    }
    if (Date.now() - killedAt > 10 * ELECTION_MS) break;
    if (!elected) await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(elected > 0, 'a new leader was elected');
  t.ok(elected - killedAt <= 2 * ELECTION_MS + 200, `new leader after ${elected - killedAt} ms (two election timeouts: ${2 * ELECTION_MS} ms, + polling)`);
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await Promise.all(writers);
  t.ok(acked.size > 100, `${acked.size} writes acknowledged`);

  procs[leaderIdx] = runEtcd(args(leaderIdx, 'existing'));
  await procs[leaderIdx]!.waitFor('ready to serve client requests');
  for (let i = 0; i < 3; i++) {
    const kv = rawClient(endpoints[i]!, 'etcdserverpb', 'KV');
    const all = await call(kv, 'Range', { key: b('w/'), range_end: b('w0'), keys_only: true });
    const have = new Set(all.kvs.map((k: any) => k.key.toString()));
    const lost = [...acked.keys()].filter((k) => !have.has(k));
    t.same(lost, [], `member ${i} has every acknowledged write`);
    kv.close();
  }
  for (const p of procs) p.proc.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
});

t.test('a member cut off from its peers serves no stale linearizable read', async (t) => {
  const c = await startTestCluster(3);
  t.teardown(() => c.destroy());
  // Cut a follower off: stop its peer transport (clients can still reach it).
  const st = await status(c.members[0]!.endpoint);
  const f = c.members.findIndex((m) => m.server.memberId.toString() !== st.leader);
  const isolated = c.members[f]!;
  await (isolated.server as any).transport.stop();
  const other = c.members[(f + 1) % 3]!;
  const kv = rawClient(other.endpoint, 'etcdserverpb', 'KV');
  const w = await call(kv, 'Put', { key: b('fresh'), value: b('new') });
  t.ok(Number(w.header.revision) > 1, 'the majority still takes writes');
  kv.close();
  const ikv = rawClient(isolated.endpoint, 'etcdserverpb', 'KV');
  try {
    const r = await call(ikv, 'Range', { key: b('fresh') });
    t.fail(`a linearizable read on the isolated member returned ${JSON.stringify(r.kvs)}`);
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: request timed out', 'the read fails rather than returning stale data');
  }
  const s = await call(ikv, 'Range', { key: b('fresh'), serializable: true });
  t.equal(s.kvs.length, 0, 'a serializable read is local, and may be stale: that is what it promises');
  ikv.close();
});
