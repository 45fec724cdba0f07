// Power loss: a member under writes is killed, and its data dir is then turned into what a machine that lost power
// at that instant could hold (test/helpers/powerloss.ts: everything not fsynced is undone, the last write torn,
// LevelDB's unsynced log tail dropped). Restarted from that, it must hold every write it acknowledged, with its
// revision, and never report a revision below one it reported before. Repeated, with snapshots and WAL release in
// play (small --snapshot-count).

import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, runEtcd, type EtcdProcess } from '../helpers/process';
import { tempDir, rawClient, call } from '../helpers/member';
import { powerLoss } from '../helpers/powerloss';
import { Xoshiro128 } from '../../src/util/prng';

const b = (s: string) => Buffer.from(s);
const SHIM = path.join(__dirname, '..', 'helpers', 'powerloss.js');
const ROUNDS = 6;

t.test('power loss at random instants loses no acknowledged write', async (t) => {
  const seed = Number(process.env.POWERLOSS_SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed} (POWERLOSS_SEED=${seed} replays the same tears and kill times)`);
  const rand = new Xoshiro128(seed);
  const root = await tempDir('tsetcd-powerloss-');
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const dataDir = path.join(root, 'data');
  const journal = path.join(root, 'journal');
  const client = await freePort();
  const peer = await freePort();
  const endpoint = `http://127.0.0.1:${client}`;
  const start = (): EtcdProcess =>
    runEtcd(
      [
        '--name', 'pl', '--data-dir', dataDir,
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `pl=http://127.0.0.1:${peer}`,
        '--snapshot-count', '40', '--experimental-snapshot-catchup-entries', '10',
      ],
      { NODE_OPTIONS: `--require ${SHIM}`, TSETCD_POWERLOSS_JOURNAL: journal, TSETCD_POWERLOSS_ROOT: dataDir },
    );

  const acked = new Map<string, { rev: number; value: string }>();
  let maxRev = 0;
  let p = start();
  t.teardown(() => p.proc.kill('SIGKILL'));
  for (let round = 0; round < ROUNDS; round++) {
    await p.waitFor('ready to serve client requests');
    // Everything acknowledged so far survived the previous power loss.
    const kv = rawClient(endpoint, 'etcdserverpb', 'KV');
    const r = await call(kv, 'Range', { key: b('\0'), range_end: b('\0') });
    kv.close();
    const got = new Map<string, { rev: number; value: string }>(r.kvs.map((x: any) => [x.key.toString(), { rev: Number(x.mod_revision), value: x.value.toString() }]));
    // A key's value is its last acknowledged write, or a later write that was in flight when the power went
    // (indeterminate: it may or may not have been made durable).
    const lost = [...acked].filter(([k, v]) => {
      const g = got.get(k);
      return g === undefined || g.rev < v.rev || (g.rev === v.rev && g.value !== v.value);
    });
    t.equal(lost.length, 0, `round ${round}: all ${acked.size} keys hold their last acknowledged write or a later one${lost.length ? ` (lost e.g. ${lost[0]![0]})` : ''}`);
    t.ok(Number(r.header.revision) >= maxRev, `round ${round}: revision ${r.header.revision} >= ${maxRev}, the highest acknowledged`);

    // Writes (overwrites of a small key set, so revisions and values both matter) until the power goes.
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      const c = rawClient(endpoint, 'etcdserverpb', 'KV');
      for (let i = 0; !stop; i++) {
        const key = `k/${w}/${i % 25}`;
        const value = `${round}-${i}`;
        try {
          const res = await call(c, 'Put', { key: b(key), value: b(value) });
          const rev = Number(res.header.revision);
          if (!acked.has(key) || acked.get(key)!.rev < rev) acked.set(key, { rev, value });
          maxRev = Math.max(maxRev, rev);
        } catch {
          break; // the member is gone: this write is indeterminate
        }
      }
      c.close();
    });
    await new Promise((r) => setTimeout(r, 200 + rand.intn(1200)));
    p.proc.kill('SIGKILL');
    await p.exited;
    stop = true;
    await Promise.all(writers);
    const report = powerLoss(journal, dataDir, () => rand.intn(1e9) / 1e9);
    t.comment(`round ${round}: ${JSON.stringify(report)}`);
    p = start();
  }
  await p.waitFor('ready to serve client requests');
  p.proc.kill('SIGKILL');
  await p.exited;
});
