// readCommittedLog: committed entries only, conflict truncation, a torn tail read as recovery reads it, and no writes.

import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EntryType, type Entry } from '../../../src/raft/types';
import { Wal } from '../../../src/wal';
import { readCommittedLog } from './wal-log';

const logger = { info: () => {}, warn: () => {}, error: () => {} };
const entry = (index: number, term: number, data: string): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(data) });

t.test('committed prefix, conflict truncation, torn tail', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wal-log-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const walDir = path.join(dir, 'wal');
  const wal = await Wal.create(walDir, Buffer.from('meta'), { logger, segmentSizeBytes: 1 << 16 });
  await wal.save({ term: 1, vote: 1n, commit: 2 }, [entry(1, 1, 'a'), entry(2, 1, 'b'), entry(3, 1, 'c')]);
  // Index 3 rewritten in term 2 (an uncommitted entry of the old leader replaced), then 4 appended.
  await wal.save({ term: 2, vote: 2n, commit: 3 }, [entry(3, 2, 'c2'), entry(4, 2, 'd')]);
  await wal.save({ term: 2, vote: 2n, commit: 4 }, []);
  await wal.close();

  const full = await readCommittedLog(walDir);
  t.equal(full.commit, 4);
  t.same(full.entries.map((e) => [e.index, e.term]), [[1, 1], [2, 1], [3, 2], [4, 2]]);
  t.equal(full.tornTail, undefined);
  t.not(full.entries[2]!.data, full.entries[3]!.data, 'entries are told apart by their data');

  // Tear the last record (the HardState with commit 4): recovery drops it, so commit falls back to 3.
  const [file] = (await fs.readdir(walDir)).filter((n) => n.endsWith('.wal'));
  const p = path.join(walDir, file!);
  const buf = await fs.readFile(p);
  let last = buf.length - 1;
  while (buf[last] === 0) last--;
  buf[last] = buf[last]! ^ 0xff;
  await fs.writeFile(p, buf);
  const torn = await readCommittedLog(walDir);
  t.equal(torn.commit, 3);
  t.same(torn.entries.map((e) => [e.index, e.term]), [[1, 1], [2, 1], [3, 2]]);
  t.match(torn.tornTail, /at offset \d+/);
  t.same(await fs.readFile(p), buf, 'the file is not repaired');

  // Damage that is not a torn tail (followed by data) is an error, not a silently shorter log.
  const mid = Buffer.from(buf);
  mid[200] = mid[200]! ^ 0xff;
  await fs.writeFile(p, mid);
  await t.rejects(readCommittedLog(walDir));
});

t.test('a snapshot marker past the last entry starts the log afresh', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wal-log-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const walDir = path.join(dir, 'wal');
  const wal = await Wal.create(walDir, Buffer.from('meta'), { logger, segmentSizeBytes: 1 << 16 });
  await wal.save({ term: 1, vote: 1n, commit: 2 }, [entry(1, 1, 'a'), entry(2, 1, 'b')]);
  // A follower that fell behind installs the leader's snapshot at 10 and goes on from 11.
  await wal.saveSnapshot({ index: 10, term: 3 });
  await wal.save({ term: 3, vote: 0n, commit: 12 }, [entry(11, 3, 'k'), entry(12, 3, 'l')]);
  await wal.close();
  const l = await readCommittedLog(walDir);
  t.same(l.entries.map((e) => [e.index, e.term]), [[11, 3], [12, 3]]);
});
