// The disk-corruption nemesis's file edits against the real WAL and snapshot code, offline: torn tail damage is
// repaired on open, a bit flip in the middle of the WAL or in a marker is refused (faults.md §4.5). The fault runs
// check the same through a member's restart; this pins down that the edits do what their names say.

import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wal } from '../../../src/wal/wal';
import { ErrWalCorrupt } from '../../../src/wal/errors';
import { EntryType } from '../../../src/raft/types';
import { isDomainError } from '../../../src/util/errors';
import { ErrSnapCorrupt, Snapshotter } from '../../../src/server/snap';
import { corrupt, lastSegment, newestMarker, walFrames } from './nemesis-disk';
import { Rng } from './rng';

const logger = { info() {}, warn() {}, error() {} };
const COUNT = 40;
const SEGMENT = 1024 * 1024;

async function dataDirWithWal(t: { teardown(f: () => void): void }): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-nemesis-disk-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'member', 'snap'), { recursive: true });
  const wal = await Wal.create(path.join(dir, 'member', 'wal'), Buffer.from('meta'), { logger, segmentSizeBytes: SEGMENT });
  for (let i = 1; i <= COUNT; i++) {
    await wal.save({ term: 1, vote: 1n, commit: i - 1 }, [{ index: i, term: 1, type: EntryType.Normal, data: Buffer.alloc(50 + i * 7, i) }]);
  }
  await wal.close();
  return dir;
}

const open = (dir: string) => Wal.open(path.join(dir, 'member', 'wal'), { logger, segmentSizeBytes: SEGMENT });

/** The error code `p` rejected with ('resolved' if it did not). */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isDomainError(err, ErrWalCorrupt) ? ErrWalCorrupt : isDomainError(err, ErrSnapCorrupt) ? ErrSnapCorrupt : String(err);
  }
}

t.test('walFrames finds every record of a segment', async (t) => {
  const dir = await dataDirWithWal(t);
  // CRC, metadata, a snapshot record, then an entry and a HardState per save.
  t.equal(walFrames(fs.readFileSync(lastSegment(dir))).length, 3 + 2 * COUNT);
});

for (const kind of ['truncate-tail', 'zero-last-sector'] as const) {
  t.test(`torn ${kind}: only the last record is damaged, and open repairs it`, async (t) => {
    for (let seed = 1; seed <= 8; seed++) {
      const dir = await dataDirWithWal(t);
      const did = corrupt(dir, kind, new Rng(seed), { torn: true });
      const r = await open(dir);
      // The last record is the final HardState: every entry survives.
      t.equal(r.entries.length, COUNT, `seed ${seed}: ${did}`);
      await r.wal.close();
    }
  });
  t.test(`durable ${kind}: records before the last are cut, open still treats it as a torn tail`, async (t) => {
    let fewer = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const dir = await dataDirWithWal(t);
      corrupt(dir, kind, new Rng(seed), { torn: false });
      const r = await open(dir);
      if (r.entries.length < COUNT) fewer++;
      await r.wal.close();
    }
    t.ok(fewer > 0, `${fewer} of 8 lost entries the WAL had made durable`);
  });
}

t.test('flip-middle: open refuses (never a silent truncation)', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const dir = await dataDirWithWal(t);
    const did = corrupt(dir, 'flip-middle', new Rng(seed));
    t.equal(await failure(open(dir)), ErrWalCorrupt, `seed ${seed}: ${did}`);
  }
});

t.test('flip-snapshot: the newest marker no longer loads', async (t) => {
  for (let seed = 1; seed <= 10; seed++) {
    const dir = await dataDirWithWal(t);
    const snap = new Snapshotter(path.join(dir, 'member', 'snap'));
    await snap.save({ term: 1, index: 10 });
    await snap.save({ term: 1, index: 30 });
    const marker = await newestMarker(dir);
    t.equal(marker, snap.markerPath({ term: 1, index: 30 }));
    const did = corrupt(dir, 'flip-snapshot', new Rng(seed), { marker });
    t.equal(await failure(snap.load({ term: 1, index: 30 })), ErrSnapCorrupt, `seed ${seed}: ${did}`);
  }
});
