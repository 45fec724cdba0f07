// The in-memory key index (src/mvcc tree-index / key-index): inserting keys, updating them, and ranges with a limit
// and with counting, over 100,000 keys of the shape "/registry/pods/ns-NNN/pod-NNNNNN".

import { TreeIndex } from '../../src/mvcc/tree-index';
import { done, measure } from './harness';

const keys = 100_000;

function key(i: number): Buffer {
  return Buffer.from(`/registry/pods/ns-${String(i % 100).padStart(3, '0')}/pod-${String(i).padStart(6, '0')}`);
}

async function main(): Promise<void> {
  const all = Array.from({ length: keys }, (_, i) => key(i));
  let rev = 1;
  let index = new TreeIndex();
  let next = 0;
  await measure('tree-index insert (new keys)', 'keys', 1000, () => {
    if (next + 1000 > keys) {
      index = new TreeIndex();
      next = 0;
    }
    for (let i = 0; i < 1000; i++) index.put(all[next++]!, { main: ++rev, sub: 0 });
  });
  const full = new TreeIndex();
  for (const k of all) full.put(k, { main: ++rev, sub: 0 });
  let u = 0;
  await measure('tree-index put (existing keys)', 'keys', 1000, () => {
    for (let i = 0; i < 1000; i++) full.put(all[(u++ * 7919) % keys]!, { main: ++rev, sub: 0 });
  });
  let g = 0;
  await measure('tree-index get (single key)', 'keys', 1000, () => {
    for (let i = 0; i < 1000; i++) full.get(all[(g++ * 104729) % keys]!, rev);
  });
  const start = Buffer.from('/registry/pods/ns-042/');
  const end = Buffer.from('/registry/pods/ns-0420');
  await measure('tree-index range 1,000 keys, limit 500', 'ranges', 1, () => full.range(start, end, rev, 500), 'one namespace of 1,000 pods; count walks all');
  await measure('tree-index range all 100,000, limit 500', 'ranges', 1, () => full.range(Buffer.from('/registry/pods/'), Buffer.from('/registry/pods0'), rev, 500), 'count walks all 100,000');
  done();
}

void main();
