// Membership with real bin/etcd processes, driven by the real etcdctl (3.4) as an operator would:
// `member add --learner`, start the new member with --initial-cluster-state existing, let it catch up (it serves
// serializable reads only), `member promote` (retried while it is not yet in sync), then it serves linearizable
// reads and writes; `move-leader` to each of the four members in turn, checking with Status on every member that
// the leader really is that member; finally kill -9 one of the original members: the remaining three (the
// promoted one among them) are exactly a quorum of four, so a new leader and a committed write prove it votes.
// Then `member remove` of the running promoted member: it stops by itself and its process exits 0.
// Skipped when etcdctl is not installed (.ci/run installs it).

import t from 'tap';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { freePort, runEtcd, type EtcdProcess } from '../helpers/process';
import { startProcessCluster, agreedLeader, statusOf, type ProcessCluster } from '../helpers/etcd-cluster';

interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(endpoints: string[], ...args: string[]): Promise<CtlResult> {
  return new Promise((resolve) => {
    execFile(
      'etcdctl',
      ['--endpoints', endpoints.join(','), '--command-timeout', '10s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

/** Runs etcdctl until it succeeds, retrying while its error matches `retryable`. */
async function etcdctlRetry(endpoints: string[], retryable: RegExp, args: string[], timeoutMs = 60_000): Promise<CtlResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await etcdctl(endpoints, ...args);
    if (r.code === 0) return r;
    if (!retryable.test(r.stderr) || Date.now() > deadline) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function haveEtcdctl(): Promise<boolean> {
  return (await etcdctl([], 'version')).code === 0;
}

const hex = (decimalId: string) => BigInt(decimalId).toString(16);

/** `p`, or 'still running' if it has not settled within 30 s (the timer does not keep the test process alive). */
function orStillRunning<T>(p: Promise<T>): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'still running'>((r) => {
    timer = setTimeout(() => r('still running'), 30_000);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

t.test('learner added with etcdctl, caught up, promoted; move-leader to every member', async (t) => {
  if (!(await haveEtcdctl())) {
    t.pass('membership test', { skip: 'etcdctl is not installed' });
    return;
  }
  let c: ProcessCluster | undefined;
  let learner: EtcdProcess | undefined;
  t.teardown(async () => {
    if (learner && learner.proc.exitCode === null && learner.proc.signalCode === null) {
      learner.proc.kill('SIGKILL');
      await learner.exited;
    }
    await c?.killAll();
  });
  c = await startProcessCluster({ token: 'membership-test' });
  const cluster = c;
  const voters = cluster.endpoints;
  for (let i = 0; i < 20; i++) {
    const r = await etcdctl(voters, 'put', `key/${i}`, `value-${i}`);
    t.equal(r.code, 0, `put key/${i}`) || t.comment(r.stderr);
  }

  // member add --learner: refused while the cluster is not yet healthy (peers connected for 5 s), then accepted.
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const clientUrl = `http://127.0.0.1:${await freePort()}`;
  const add = await etcdctlRetry(voters, /unhealthy cluster/, ['member', 'add', 'd', '--learner', `--peer-urls=${peerUrl}`]);
  const added = add.stdout.match(/Member\s+([0-9a-f]+) added to cluster\s+([0-9a-f]+)/);
  t.ok(added, `member add output: ${add.stdout.split('\n')[0]}`);
  const learnerId = added![1]!;
  const initialCluster = add.stdout.match(/ETCD_INITIAL_CLUSTER="([^"]+)"/)?.[1];
  t.ok(initialCluster?.includes(`d=${peerUrl}`), 'etcdctl printed the --initial-cluster to start the new member with');
  t.match(add.stdout, /ETCD_INITIAL_CLUSTER_STATE="existing"/);
  // The simple format (-w json prints 64-bit IDs as JSON numbers, which JavaScript cannot hold exactly):
  // "ID, started|unstarted, name, peer URLs, client URLs, isLearner".
  const listed = (await etcdctl(voters, 'member', 'list')).stdout.split('\n').find((l) => l.startsWith(`${learnerId},`));
  t.match(listed, /, unstarted, , .*, , true$/, `member list shows the new member as an unstarted learner: ${listed}`);

  learner = runEtcd([
    '--name', 'd', '--data-dir', path.join(cluster.root, 'd'),
    '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', initialCluster!, '--initial-cluster-token', 'membership-test', '--initial-cluster-state', 'existing',
  ]);
  await learner.waitFor('ready to serve client requests', 60_000);
  const st = await statusOf(clientUrl);
  t.equal(hex(st.header.member_id), learnerId, 'the new member took the ID the cluster assigned');
  t.equal(st.isLearner, true, 'Status on the new member says learner');

  // It catches up (serializable reads are served from its own state) but refuses linearizable ones.
  const deadline = Date.now() + 60_000;
  let got = '';
  while (Date.now() < deadline) {
    got = (await etcdctl([clientUrl], 'get', '--consistency=s', '--print-value-only', 'key/19')).stdout;
    if (got === 'value-19\n') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(got, 'value-19\n', 'the learner caught up (serializable get)');
  const lin = await etcdctl([clientUrl], 'get', 'key/19');
  t.not(lin.code, 0, 'a linearizable get on the learner fails');
  t.match(lin.stderr, /rpc not supported for learner/, 'with etcd\'s "rpc not supported for learner"');

  // Promote, retried while the leader does not consider it in sync yet.
  const promote = await etcdctlRetry(voters, /in sync with leader|unhealthy cluster/, ['member', 'promote', learnerId]);
  t.match(promote.stdout, new RegExp(`Member\\s+${learnerId} promoted in cluster`), 'member promote');
  const all = [...voters, clientUrl];
  const names = [...cluster.names, 'd'];
  // The promoted member learns of its promotion when it applies it, a moment after the leader did.
  let stillLearner = true;
  for (const deadline = Date.now() + 10000; stillLearner && Date.now() < deadline; ) {
    stillLearner = (await statusOf(clientUrl)).isLearner;
    if (stillLearner) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(stillLearner, false, 'Status no longer says learner');
  const linAfter = await etcdctlRetry([clientUrl], /not supported for learner/, ['get', '--print-value-only', 'key/19']);
  t.equal(linAfter.stdout, 'value-19\n', 'the promoted member serves linearizable reads');
  t.equal((await etcdctl([clientUrl], 'put', 'from-d', 'x')).code, 0, 'and writes');

  // move-leader to each member in turn (starting after the current leader, so that every move is real).
  const ids = await Promise.all(all.map(async (e) => (await statusOf(e)).header.member_id as string));
  const first = await agreedLeader(all, [0, 1, 2, 3]);
  for (let k = 1; k <= 4; k++) {
    const target = (first + k) % 4;
    const r = await etcdctlRetry(all, /timed out|no leader|not leader/, ['move-leader', hex(ids[target]!)]);
    t.match(r.stdout, /Leadership transferred from ([0-9a-f]+) to ([0-9a-f]+)/, `move-leader to ${names[target]}`);
    const leader = await agreedLeader(all, [0, 1, 2, 3]);
    t.equal(leader, target, `every member's Status names ${names[target]} as the leader`);
  }

  // The promoted member votes: make an original member leader and kill -9 it. The three left are exactly a
  // quorum of four, so the election can only be won with the promoted member's vote.
  const victim = 0;
  if ((await agreedLeader(all, [0, 1, 2, 3])) !== victim) {
    await etcdctlRetry(all, /timed out|no leader|not leader/, ['move-leader', hex(ids[victim]!)]);
  }
  t.equal(await agreedLeader(all, [0, 1, 2, 3]), victim, `${names[victim]} leads before the kill`);
  await cluster.kill(victim, 'SIGKILL');
  const rest = [1, 2, 3];
  const leader = await agreedLeader(all, rest, 60_000);
  t.ok(rest.includes(leader), `a new leader among the remaining three (${names[leader]}), elected with the promoted member's vote`);
  const w = await etcdctlRetry([all[rest[0]!]!], /timed out|no leader|unavailable/i, ['put', 'after-kill', 'y']);
  t.equal(w.code, 0, 'a write commits with the promoted member as part of the quorum');
  const read = await etcdctlRetry([clientUrl], /timed out|no leader/, ['get', '--print-value-only', 'after-kill']);
  t.equal(read.stdout, 'y\n');

  // Remove the promoted member while it runs: it stops by itself and bin/etcd exits 0, as etcd does; the
  // remaining two of the three voters are a quorum and go on.
  const survivors = [1, 2];
  await etcdctlRetry(survivors.map((i) => all[i]!), /unhealthy cluster|timed out/, ['member', 'remove', learnerId]);
  const code = await orStillRunning(learner.exited);
  t.equal(code, 0, 'the removed member exited with status 0');
  t.match(learner.output(), /the member has been permanently removed from the cluster/, 'and said why');
  const after = await agreedLeader(all, survivors, 60_000);
  t.ok(survivors.includes(after), `the two left agree on a leader (${names[after]})`);
  const w2 = await etcdctlRetry([all[survivors[0]!]!], /timed out|no leader|unavailable/i, ['put', 'after-remove', 'z']);
  t.equal(w2.code, 0, 'and take writes');
});
