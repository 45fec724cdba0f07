// Failpoints with real processes: for each crash point etcd names (raftBeforeSave, raftAfterSave, beforeApply,
// afterApply, walBeforeSync, walAfterSync, beforeSnapshot, afterSnapshot), a member under writes is made to crash
// there (set through GOFAIL_HTTP while it runs), is restarted without failpoints, and must hold every write it
// acknowledged, with its revision, and a current revision no lower than any it reported. Also: a sleep failpoint
// stalls without losing anything, and GOFAIL_FAILPOINTS at start works.

import t, { type Test } from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, runEtcd, type EtcdProcess } from '../helpers/process';
import { tempDir, rawClient, call } from '../helpers/member';

const b = (s: string) => Buffer.from(s);

interface Node {
  dir: string;
  client: number;
  peer: number;
  fp: number;
}

async function newNode(root: string, name: string): Promise<Node> {
  return { dir: path.join(root, name), client: await freePort(), peer: await freePort(), fp: await freePort() };
}

function start(n: Node, extra: string[] = [], env: NodeJS.ProcessEnv = {}): EtcdProcess {
  return runEtcd(
    [
      '--name', 'fp', '--data-dir', n.dir,
      '--listen-client-urls', `http://127.0.0.1:${n.client}`, '--advertise-client-urls', `http://127.0.0.1:${n.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${n.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${n.peer}`,
      '--initial-cluster', `fp=http://127.0.0.1:${n.peer}`,
      ...extra,
    ],
    { GOFAIL_HTTP: `127.0.0.1:${n.fp}`, ...env },
  );
}

async function setFailpoint(n: Node, name: string, term: string): Promise<void> {
  const r = await fetch(`http://127.0.0.1:${n.fp}/${name}`, { method: 'PUT', body: term });
  if (r.status !== 204) throw new Error(`setting failpoint ${name}: HTTP ${r.status} ${await r.text()}`);
}

/** Writes until the process dies; returns the acknowledged writes (key -> revision) and the highest revision seen. */
async function writeUntilDeath(endpoint: string, p: EtcdProcess, prefix: string, acked: Map<string, number>): Promise<number> {
  let maxRev = 0;
  let dead = false;
  void p.exited.then(() => (dead = true));
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
    try {
      for (let i = 0; !dead && i < 100000; i++) {
        const key = `${prefix}/${w}/${i}`;
        try {
          const r = await call(kv, 'Put', { key: b(key), value: b(key) });
          acked.set(key, Number(r.header.revision));
          maxRev = Math.max(maxRev, Number(r.header.revision));
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    } finally {
      kv.close();
    }
  });
  await Promise.all(writers);
  return maxRev;
}

async function checkAll(t: Test, endpoint: string, acked: Map<string, number>, maxRev: number): Promise<void> {
  const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
  try {
    const r = await call(kv, 'Range', { key: b('\0'), range_end: b('\0') });
    const got = new Map<string, number>(r.kvs.map((x: any) => [x.key.toString(), Number(x.mod_revision)]));
    let missing = 0;
    let wrongRev = 0;
    for (const [k, rev] of acked) {
      if (!got.has(k)) missing++;
      else if (got.get(k) !== rev) wrongRev++;
    }
    t.equal(missing, 0, `no acknowledged write lost (${acked.size} acknowledged)`);
    t.equal(wrongRev, 0, 'every acknowledged write keeps its revision');
    t.ok(Number(r.header.revision) >= maxRev, `revision ${r.header.revision} >= highest acknowledged ${maxRev}`);
  } finally {
    kv.close();
  }
}

const CRASH_POINTS = ['raftBeforeSave', 'raftAfterSave', 'beforeApply', 'afterApply', 'walBeforeSync', 'walAfterSync', 'beforeSnapshot', 'afterSnapshot'];

for (const name of CRASH_POINTS) {
  t.test(`crash at ${name}: nothing acknowledged is lost`, async (t) => {
    const root = await tempDir('tsetcd-fp-');
    t.teardown(() => fs.rm(root, { recursive: true, force: true }));
    const n = await newNode(root, 'm');
    // Small --snapshot-count so that the snapshot points are reached within a few writes.
    const flags = ['--snapshot-count', '25', '--experimental-snapshot-catchup-entries', '5'];
    let p = start(n, flags);
    t.teardown(() => p.proc.kill('SIGKILL'));
    await p.waitFor('ready to serve client requests');
    const endpoint = `http://127.0.0.1:${n.client}`;
    const acked = new Map<string, number>();
    // Some history first, then the crash point (after a few passes, so that it fires mid-stream).
    const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
    for (let i = 0; i < 30; i++) {
      const r = await call(kv, 'Put', { key: b(`pre/${i}`), value: b('x') });
      acked.set(`pre/${i}`, Number(r.header.revision));
    }
    kv.close();
    await setFailpoint(n, name, 'panic');
    const maxRev = Math.max(...acked.values(), await writeUntilDeath(endpoint, p, 'w', acked));
    const code = await p.exited;
    t.not(code, 0, `the member crashed at ${name}`);
    t.match(p.output(), `panic: failpoint ${name}`, 'the crash names the failpoint');

    p = start(n, flags);
    await p.waitFor('ready to serve client requests');
    await checkAll(t, endpoint, acked, maxRev);
    p.proc.kill('SIGKILL');
    await p.exited;
  });
}

t.test('GOFAIL_FAILPOINTS at start; sleep stalls the WAL without losing writes; bad terms are refused', async (t) => {
  const root = await tempDir('tsetcd-fp-');
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const n = await newNode(root, 'm');
  const p = start(n, [], { GOFAIL_FAILPOINTS: 'walBeforeSync=sleep(50)' });
  t.teardown(() => p.proc.kill('SIGKILL'));
  await p.waitFor('ready to serve client requests');
  t.match(p.output(), 'failpoints enabled', 'the enabled failpoints are logged');
  const listed = await (await fetch(`http://127.0.0.1:${n.fp}/`)).text();
  t.equal(listed, 'walBeforeSync=sleep(50)\n', 'GET / lists it');
  const endpoint = `http://127.0.0.1:${n.client}`;
  const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
  for (let i = 0; i < 5; i++) await call(kv, 'Put', { key: b(`s/${i}`), value: b('v') });
  const r = await call(kv, 'Range', { key: b('s/'), range_end: b('s0') });
  t.equal(r.kvs.length, 5, 'writes succeed through the stalled sync');
  kv.close();
  const bad = await fetch(`http://127.0.0.1:${n.fp}/walBeforeSync`, { method: 'PUT', body: 'explode' });
  t.equal(bad.status, 400, 'an unknown action is refused');
  const del = await fetch(`http://127.0.0.1:${n.fp}/walBeforeSync`, { method: 'DELETE' });
  t.equal(del.status, 204);
  t.equal((await fetch(`http://127.0.0.1:${n.fp}/walBeforeSync`)).status, 404, 'cleared');
});
