// WAL append + fsync: Wal.save(hardState, entries) as the Raft loop calls it, one save at a time (each waits for
// its fdatasync) with 1, 10 and 100 entries per save, and 64 saves in flight (group commit: saves that arrive during
// an fdatasync share the next one). Entries carry 256 bytes of data, like a small Put request.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EntryType, type Entry } from '../../src/raft/types';
import { Wal } from '../../src/wal';
import { done, measure, silentLogger } from './harness';

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-micro-wal-'));
  try {
    const wal = await Wal.create(path.join(dir, 'wal'), Buffer.from('micro'), { logger: silentLogger });
    const data = Buffer.alloc(256, 7);
    let index = 0;
    const entries = (n: number): Entry[] => {
      const out: Entry[] = [];
      for (let i = 0; i < n; i++) out.push({ term: 1, index: ++index, type: EntryType.Normal, data });
      return out;
    };
    for (const n of [1, 10, 100]) {
      await measure(`wal save ${n} entr${n === 1 ? 'y' : 'ies'} + fdatasync`, 'entries', n, () => wal.save({ term: 1, vote: 0n, commit: index }, entries(n)));
    }
    await measure('wal 64 concurrent saves of 1 entry (group commit)', 'entries', 64, () =>
      Promise.all(Array.from({ length: 64 }, () => wal.save({ term: 1, vote: 0n, commit: index }, entries(1)))),
    );
    await wal.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  done();
}

void main();
