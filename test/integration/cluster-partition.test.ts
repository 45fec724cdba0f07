// A network partition of real bin/etcd processes, one per network namespace (test/helpers/netns.ts): blackhole
// routes cut a member off from its peers while the test's clients, on the host, still reach it.
//   - A follower cut off: the majority goes on taking writes; the isolated member serves no linearizable read
//     (it fails or times out instead of returning stale data), refuses require-leader requests once it has lost
//     its leader, cancels its require-leader watch (a plain watch stays open), and still serves serializable
//     reads (which may be stale: that is what they promise). After healing it catches up: its linearizable reads
//     are current and the plain watch delivers the write it missed.
//   - The leader cut off: the majority elects a new leader and goes on; the old leader serves no stale
//     linearizable read; after healing it rejoins as a follower and is current.
// Skipped, with the reason, where namespaces cannot be created (not root, no iproute2).

import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { createNetns, netnsUnavailable, type NetnsTopology } from '../helpers/netns';
import { startProcessCluster, agreedLeader, statusOf, callWithDeadline, type ProcessCluster } from '../helpers/etcd-cluster';
import { rawClient } from '../helpers/member';
import { RawWatch } from '../helpers/watch';
import { until } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);


t.test('partition a member from its peers: no stale linearizable read; it catches up after healing', async (t) => {
  const why = await netnsUnavailable();
  if (why) {
    t.pass('partition test', { skip: `network namespaces unavailable: ${why}` });
    return;
  }
  let net: NetnsTopology;
  try {
    net = await createNetns(3);
  } catch (err) {
    t.pass('partition test', { skip: `network namespaces unavailable: ${err instanceof Error ? err.message : String(err)}` });
    return;
  }
  let c: ProcessCluster | undefined;
  const clients: grpc.Client[] = [];
  // One teardown, in order: clients, then the processes (by PID), then the namespaces and the bridge.
  const watches: RawWatch[] = [];
  t.teardown(async () => {
    for (const w of watches) w.close();
    for (const cl of clients) cl.close();
    await c?.killAll();
    await net.destroy();
  });
  c = await startProcessCluster({
    hosts: [...net.addresses],
    netns: [...net.namespaces],
    clientPorts: [2379, 2379, 2379],
    peerPorts: [2380, 2380, 2380],
    token: `partition-${net.id}`,
  });
  const cluster = c;
  const kvs = cluster.endpoints.map((e) => {
    const kv = rawClient(e, 'etcdserverpb', 'KV');
    clients.push(kv);
    return kv;
  });
  const all = [0, 1, 2];
  const put = (i: number, value: string) => callWithDeadline(kvs[i], 'Put', { key: b('k'), value: b(value) }, 5000);
  const linearizable = (i: number, timeoutMs = 4000) => callWithDeadline(kvs[i], 'Range', { key: b('k') }, timeoutMs);
  const serializable = (i: number) => callWithDeadline(kvs[i], 'Range', { key: b('k'), serializable: true }, 4000);

  /** Isolate member `iso`, write `fresh` on the majority, check what `iso` serves, heal, check it caught up. */
  const round = async (iso: number, stale: string, fresh: string, isolatingLeader: boolean) => {
    const majority = all.filter((i) => i !== iso);
    // Watches on the member about to be cut off: one requires a leader (as kube-apiserver's do), one does not.
    const requiring = new RawWatch(cluster.endpoints[iso]!, { hasleader: 'true' });
    const plain = new RawWatch(cluster.endpoints[iso]!);
    watches.push(requiring, plain);
    requiring.create({ key: b('k') });
    plain.create({ key: b('k') });
    t.ok((await requiring.next(10_000)).created && (await plain.next(10_000)).created, 'two watches open on the member');
    await net.isolate(iso);
    if (isolatingLeader) {
      const nl = await agreedLeader(cluster.endpoints, majority, 60_000);
      t.not(nl, iso, `the majority elected a new leader (${cluster.names[nl]})`);
    }
    // Writes on the majority side go on (retried: the first may meet the election).
    const w = await until('a write on the majority side', () => put(majority[0]!, fresh));
    t.ok(Number(w.header.revision) > 1, `the majority took a write while ${cluster.names[iso]} was cut off`);
    const check = await linearizable(majority[1]!);
    t.equal(check.kvs[0]?.value.toString(), fresh, 'the other majority member reads it');

    // The isolated member serves no stale linearizable read: it must fail (time out, or refuse), never answer.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const r = await linearizable(iso);
        t.fail(`a linearizable read on the isolated member answered ${JSON.stringify(r.kvs.map((kv: any) => kv.value.toString()))}`);
      } catch (err: any) {
        t.ok(
          [grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAVAILABLE].includes(err.code),
          `a linearizable read on the isolated member fails (${grpc.status[err.code]}: ${err.details})`,
        );
      }
    }
    // Once it has lost its leader it says so, and refuses require-leader requests.
    await until('the isolated member to lose its leader', async () => (await statusOf(cluster.endpoints[iso]!)).leader === '0');
    try {
      const r = await callWithDeadline(kvs[iso], 'Range', { key: b('k'), serializable: true }, 4000, { hasleader: 'true' });
      t.fail(`a require-leader read on the leaderless member answered ${JSON.stringify(r.kvs)}`);
    } catch (err: any) {
      t.equal(err.details, 'etcdserver: no leader', 'a require-leader request is refused: no leader');
      t.equal(err.code, grpc.status.UNAVAILABLE);
    }
    // Without a leader for three election timeouts, the require-leader watch is cancelled; the other stays.
    await until('the require-leader watch to be cancelled', async () => requiring.error);
    t.equal(requiring.error.details, 'etcdserver: no leader', 'the require-leader watch is cancelled: no leader');
    t.notOk(plain.error || plain.ended, 'the plain watch stays open');
    // Serializable reads are local: the client still reaches the member, which answers with what it has.
    const s = await serializable(iso);
    t.equal(s.kvs[0]?.value.toString(), stale, 'a serializable read on the isolated member is served (stale, as it may be)');

    await net.heal();
    const caught = await until('the healed member to serve a current linearizable read', async () => {
      const r = await linearizable(iso);
      return r.kvs[0]?.value.toString() === fresh ? r : undefined;
    });
    t.equal(caught.kvs[0].value.toString(), fresh, `after healing, ${cluster.names[iso]} reads the write it missed`);
    const ev = await plain.events(1, 30_000);
    t.equal(ev[0].kv.value.toString(), fresh, 'the plain watch delivers the missed write after healing');
    const leader = await agreedLeader(cluster.endpoints, all, 60_000);
    t.ok(all.includes(leader), `all three agree on one leader (${cluster.names[leader]})`);
    return leader;
  };

  await until('the first write', () => put(0, 'v1'));
  const leader = await agreedLeader(cluster.endpoints, all, 60_000);
  const follower = (leader + 1) % 3;
  t.comment(`leader ${cluster.names[leader]}; isolating follower ${cluster.names[follower]}`);
  const leader2 = await round(follower, 'v1', 'v2', false);
  t.comment(`isolating the leader ${cluster.names[leader2]}`);
  await round(leader2, 'v2', 'v3', true);

  // Every member ends with the same data at the same revision.
  const final = await Promise.all(all.map((i) => linearizable(i)));
  t.same(new Set(final.map((r) => r.kvs[0]?.value.toString())), new Set(['v3']), 'every member reads the last write');
  const rev = final[0].header.revision;
  const hashes = await Promise.all(
    cluster.endpoints.map(async (e) => {
      const m = rawClient(e, 'etcdserverpb', 'Maintenance');
      clients.push(m);
      return (await callWithDeadline(m, 'HashKV', { revision: rev }, 5000)).hash;
    }),
  );
  t.equal(new Set(hashes).size, 1, `HashKV at revision ${rev} is the same on every member`);
});
