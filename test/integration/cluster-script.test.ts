// `npm run cluster` (scripts/cluster.js): three bin/etcd processes on loopback with their own data dirs and logs
// form one cluster; SIGTERM to the script stops all three. Run here on free ports and a temp dir.

import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { freePort } from '../helpers/process';
import { rawClient, call, tempDir } from '../helpers/member';
import { statusOf } from '../helpers/etcd-cluster';

const SCRIPT = path.join(__dirname, '..', '..', '..', 'scripts', 'cluster.js');
const b = (s: string) => Buffer.from(s);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('npm run cluster: three members, own data dirs and logs, stopped together', async (t) => {
  const dir = await tempDir('tsetcd-script-');
  const clientPorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const peerPorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const proc = spawn(process.execPath, [SCRIPT, '--dir', dir, '--client-ports', clientPorts.join(','), '--peer-ports', peerPorts.join(',')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  let pids: number[] = [];
  t.teardown(async () => {
    // Whatever happened, leave no process behind (by PID), then remove the data.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the script did not report ready within 60 s:\n${out}`)), 60_000);
    const check = () => {
      if (out.includes('cluster is ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the script exited (${code}) before the cluster was ready:\n${out}`));
    });
  });
  pids = [...out.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
  t.equal(pids.length, 3, 'three member processes');
  t.match(out, new RegExp(`--etcd-servers=http://127.0.0.1:${clientPorts[0]},http://127.0.0.1:${clientPorts[1]},http://127.0.0.1:${clientPorts[2]}`), 'prints the kube-apiserver flag');

  const endpoints = clientPorts.map((p) => `http://127.0.0.1:${p}`);
  const kv0 = rawClient(endpoints[0]!, 'etcdserverpb', 'KV');
  const kv2 = rawClient(endpoints[2]!, 'etcdserverpb', 'KV');
  const cl = rawClient(endpoints[1]!, 'etcdserverpb', 'Cluster');
  t.teardown(() => [kv0, kv2, cl].forEach((c) => c.close()));
  await call(kv0, 'Put', { key: b('hello'), value: b('cluster') });
  const r = await call(kv2, 'Range', { key: b('hello') });
  t.equal(r.kvs[0]?.value.toString(), 'cluster', 'a write through one member is read through another');
  const list = await call(cl, 'MemberList', {});
  t.same(list.members.map((m: any) => m.name).sort(), ['infra1', 'infra2', 'infra3'], 'one cluster of infra1..3');
  const ss = await Promise.all(endpoints.map((e) => statusOf(e)));
  t.equal(new Set(ss.map((s) => s.header.cluster_id)).size, 1, 'same cluster ID everywhere');
  for (const name of ['infra1', 'infra2', 'infra3']) {
    const st = await fs.stat(path.join(dir, name, 'member'));
    t.ok(st.isDirectory(), `${name} has its own data dir`);
    const log = await fs.readFile(path.join(dir, `${name}.log`), 'utf8');
    t.match(log, /ready to serve client requests/, `${name} logs to ${name}.log`);
  }

  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'the script exits 0 on SIGTERM');
  t.match(out, /cluster stopped/);
  t.same(pids.filter(alive), [], 'every member process has exited');
});
