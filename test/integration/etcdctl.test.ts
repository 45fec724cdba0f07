// The real etcdctl (Debian's etcd-client, etcd 3.4) against a member: the CLI every operator uses.
// Skipped when etcdctl is not installed (.ci/run installs it).

import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestMember, type TestMember } from '../helpers/member';

const exec = promisify(execFile);
let m: TestMember;

// Endpoints with the scheme, as operators write them: etcdctl 3.4's `endpoint status` then sends
// "http://host:port" as the HTTP/2 :authority, which the client-port front (client-front.ts) accepts.
async function ctl(...args: string[]): Promise<string> {
  const { stdout } = await exec('etcdctl', ['--endpoints', m.endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  return stdout;
}

async function haveEtcdctl(): Promise<boolean> {
  try {
    await exec('etcdctl', ['version']);
    return true;
  } catch {
    return false;
  }
}

t.test('etcdctl', async (t: any) => {
  if (!(await haveEtcdctl())) {
    t.skip('etcdctl is not installed');
    return;
  }
  m = await startTestMember();
  t.teardown(() => m.destroy());

  t.equal(await ctl('put', 'foo', 'bar'), 'OK\n');
  t.equal(await ctl('get', 'foo'), 'foo\nbar\n');
  t.equal(await ctl('get', 'foo', '--print-value-only'), 'bar\n');
  await ctl('put', 'foo', 'baz');
  t.equal(await ctl('get', 'foo', '--rev', '2', '--print-value-only'), 'bar\n');
  const json = JSON.parse(await ctl('get', 'foo', '-w', 'json'));
  t.equal(json.count, 1);
  t.equal(Buffer.from(json.kvs[0].value, 'base64').toString(), 'baz');
  t.equal(await ctl('del', 'foo'), '1\n');

  const lease = (await ctl('lease', 'grant', '100')).match(/lease ([0-9a-f]+) granted with TTL\((\d+)s\)/);
  t.ok(lease, 'lease grant output');
  await ctl('put', 'leased', 'v', '--lease', lease![1]!);
  t.match(await ctl('lease', 'timetolive', lease![1]!, '--keys'), /attached keys\(\[leased\]\)/);
  t.match(await ctl('lease', 'list'), new RegExp(lease![1]!));
  t.match(await ctl('lease', 'keep-alive', '--once', lease![1]!), /keepalived with TTL\(100\)/);
  t.match(await ctl('lease', 'revoke', lease![1]!), /revoked/);
  t.equal(await ctl('get', 'leased'), '');

  // A transaction from stdin, as `etcdctl txn` reads it.
  const txn = await new Promise<string>((resolve, reject) => {
    const p = spawn('etcdctl', ['--endpoints', m.endpoint, 'txn']);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', () => resolve(out));
    p.stdin.end('version("k") = "0"\n\nput k v\n\nget k\n\n');
  });
  t.match(txn, /SUCCESS\n\nOK\n/);

  // A watch sees a put made after it started.
  const w = spawn('etcdctl', ['--endpoints', m.endpoint, 'watch', 'wk']);
  let wout = '';
  w.stdout.on('data', (d) => (wout += d));
  await new Promise((r) => setTimeout(r, 500));
  await ctl('put', 'wk', 'wv');
  for (let i = 0; i < 50 && !wout.includes('wv'); i++) await new Promise((r) => setTimeout(r, 100));
  w.kill();
  t.equal(wout, 'PUT\nwk\nwv\n');

  t.match(await ctl('endpoint', 'status'), /3\.5\.21/);
  t.match(await ctl('member', 'list'), /started, test, http:\/\/127\.0\.0\.1:2380/);
  const rev = JSON.parse(await ctl('get', 'k', '-w', 'json')).header.revision;
  t.match(await ctl('compaction', String(rev)), new RegExp(`compacted revision ${rev}`));
  t.match(await ctl('defrag'), /Finished defragmenting etcd member/);
});
