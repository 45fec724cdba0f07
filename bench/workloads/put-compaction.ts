// put-compaction (ours, issue #5): Put latency while the server compacts a large history. prepare() writes
// --history-keys keys --history-versions times each (Txns of 100 puts of --history-val-size bytes); the clients
// then run put (as the `put` workload, under the prefix "p/"), and once --compact-after of the measured window
// has passed, the main thread sends Compact(revision = the end of the history, physical = true) and waits for
// it. Puts that start while the compaction runs are recorded as "put-during-compaction" (the headline), the
// others as "put", so the report shows both p99s side by side. Workers see the compaction through a
// SharedArrayBuffer flag.

import { Connection, type Transport } from '../lib/conn';
import { encode, messageType, methodPath, paths } from '../lib/proto';
import { nowUs, prng, putVarint, randBytes, sleep } from '../lib/util';
import type { Workload } from '../lib/workload';
import { decodeTxn, putRequest, txnRequest } from './common';

interface Prepared {
  value: Uint8Array;
  revision: number;
  flag: SharedArrayBuffer;
}

interface DriveData {
  compactMs: number;
  revisions: number;
  error: string;
}

export const putCompaction: Workload = {
  name: 'put-compaction',
  summary: 'Benchmark put while the server compacts a large history (Put p99 during compaction)',
  flags: [
    { name: 'key-size', kind: 'int', default: 8, help: 'Key size of put request' },
    { name: 'val-size', kind: 'int', default: 8, help: 'Value size of put request' },
    { name: 'key-space-size', kind: 'int', default: 1000, help: 'Maximum possible keys' },
    { name: 'history-keys', kind: 'int', default: 20000, help: 'Keys written before the run' },
    { name: 'history-versions', kind: 'int', default: 10, help: 'Versions of each history key (all but the last are compacted)' },
    { name: 'history-val-size', kind: 'int', default: 256, help: 'Value size of the history' },
    { name: 'compact-after', kind: 'duration', default: 1000, help: 'Time into the measured window at which the compaction starts' },
  ],
  async prepare(flags, endpoints) {
    const conn = new Connection(endpoints[0]!, flags.str('transport') as Transport);
    await conn.ready();
    const keys = flags.int('history-keys');
    const versions = flags.int('history-versions');
    const size = flags.int('history-val-size');
    let revision = 0;
    try {
      for (let v = 0; v < versions; v++) {
        for (let start = 0; start < keys; start += 100) {
          const ops = [];
          for (let i = start; i < Math.min(keys, start + 100); i++) ops.push({ put: { key: Buffer.from(`h/${i}`), value: randBytes(size) } });
          revision = decodeTxn(await conn.unary(paths.txn, txnRequest([], ops))).revision;
        }
      }
    } finally {
      conn.close();
    }
    return { value: randBytes(flags.int('val-size')), revision, flag: new SharedArrayBuffer(4) } satisfies Prepared;
  },
  async setup(ctx) {
    const { flags, recorder } = ctx;
    const p = ctx.prepared as Prepared;
    const compacting = new Int32Array(p.flag);
    const value = Buffer.from(p.value);
    const space = flags.int('key-space-size');
    const keySize = flags.int('key-size');
    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      const rand = prng(flags.int('seed') * 7919 + ci);
      const k = Buffer.alloc(keySize);
      return async (): Promise<void> => {
        const key = Buffer.concat([Buffer.from('p/'), putVarint(k, Math.floor(rand() * space))]);
        const label = Atomics.load(compacting, 0) === 1 ? 'put-during-compaction' : 'put';
        await recorder.time(label, () => conn.unary(paths.put, putRequest(key, value)));
      };
    });
    return { steps };
  },
  async drive(flags, endpoints, prepared, measureStartUs) {
    const p = prepared as Prepared;
    const compacting = new Int32Array(p.flag);
    const conn = new Connection(endpoints[0]!, flags.str('transport') as Transport);
    await conn.ready();
    const data: DriveData = { compactMs: 0, revisions: flags.int('history-keys') * (flags.int('history-versions') - 1), error: '' };
    try {
      const wait = measureStartUs + flags.int('compact-after') * 1000 - nowUs();
      if (wait > 0) await sleep(wait / 1000);
      const request = encode(messageType('etcdserverpb.CompactionRequest'), { revision: p.revision, physical: true });
      Atomics.store(compacting, 0, 1);
      const t0 = nowUs();
      try {
        await conn.unary(methodPath('KV', 'Compact'), request);
      } catch (err) {
        data.error = err instanceof Error ? err.message : String(err);
      }
      data.compactMs = (nowUs() - t0) / 1000;
    } finally {
      Atomics.store(compacting, 0, 0);
      conn.close();
    }
    return data;
  },
  finish(_workers, driveData) {
    const d = driveData as DriveData;
    return {
      notes: {
        'compaction ms': Math.round(d.compactMs),
        'revisions compacted': d.revisions,
        ...(d.error === '' ? {} : { 'compaction error': d.error }),
      },
    };
  },
  throughputLabels: ['put', 'put-during-compaction'],
  headlineLabel: 'put-during-compaction',
};
