// MVCC store (src/mvcc MvccStore on LevelDB): write transactions with one Put each (write(index) → put → end, as
// apply does), and ranges of 1 key and of 100 keys with values, over 10,000 keys of 256 bytes.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MvccStore } from '../../src/mvcc';
import type { LeaseAttacher } from '../../src/mvcc/types';
import { done, measure, silentLogger } from './harness';

const noLeases: LeaseAttacher = { getLease: () => 0n, attach: () => undefined, detach: () => undefined };

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-micro-mvcc-'));
  try {
    const store = await MvccStore.open({ dir, lessor: noLeases, logger: silentLogger });
    const value = Buffer.alloc(256, 3);
    const keys = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`key-${String(i).padStart(6, '0')}`));
    let index = 0;
    let n = 0;
    await measure('mvcc put (write txn, 1 put)', 'puts', 100, async () => {
      for (let i = 0; i < 100; i++) {
        const tw = store.write(++index);
        tw.put(keys[n++ % keys.length]!, value, 0n);
        tw.end();
      }
      // Let the backend's batched LevelDB writes keep up, as the server's apply loop does between Ready batches.
      await new Promise((r) => setImmediate(r));
    });
    await store.forceCommit();
    let g = 0;
    await measure('mvcc range 1 key', 'ranges', 100, async () => {
      const ps = [];
      for (let i = 0; i < 100; i++) ps.push(store.range(keys[(g++ * 7919) % keys.length]!, null));
      await Promise.all(ps);
    });
    await measure('mvcc range 100 keys (limit 100)', 'ranges', 10, async () => {
      const ps = [];
      for (let i = 0; i < 10; i++) ps.push(store.range(keys[(g++ * 7919) % (keys.length - 200)]!, keys[keys.length - 1]!, { limit: 100 }));
      await Promise.all(ps);
    });
    await store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  done();
}

void main();
