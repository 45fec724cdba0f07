// put: etcd benchmark's `put` — one Put per request, keys numbered 0..key-space-size-1 (random, or sequential with
// --sequential-keys), encoded as a Go varint into --key-size bytes, after an optional --prefix.

import { paths } from '../lib/proto';
import { prng, putVarint, randBytes } from '../lib/util';
import type { Workload } from '../lib/workload';
import { putRequest } from './common';

export const put: Workload = {
  name: 'put',
  summary: 'Benchmark put',
  flags: [
    { name: 'key-size', kind: 'int', default: 8, help: 'Key size of put request' },
    { name: 'val-size', kind: 'int', default: 8, help: 'Value size of put request' },
    { name: 'key-space-size', kind: 'int', default: 1, help: 'Maximum possible keys' },
    { name: 'sequential-keys', kind: 'bool', default: false, help: 'Use sequential keys' },
    { name: 'prefix', kind: 'string', default: '', help: 'Prefix for keys' },
  ],
  async prepare(flags) {
    if (flags.int('key-space-size') <= 0) throw new Error(`expected positive --key-space-size, got (${flags.int('key-space-size')})`);
    return { value: randBytes(flags.int('val-size')) };
  },
  async setup(ctx) {
    const { flags, recorder } = ctx;
    const value = Buffer.from((ctx.prepared as { value: Uint8Array }).value);
    const space = flags.int('key-space-size');
    const sequential = flags.bool('sequential-keys');
    const prefix = Buffer.from(flags.str('prefix'));
    const keySize = flags.int('key-size');
    const path = paths.put;
    // Sequential numbering is global: worker w takes numbers w, w+W, w+2W... as etcd's single feeder would hand them out.
    let seq = ctx.workerIndex;
    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      const rand = prng(flags.int('seed') * 7919 + ci);
      const k = Buffer.alloc(keySize);
      return async (): Promise<void> => {
        let n: number;
        if (sequential) {
          n = seq % space;
          seq += ctx.workers;
        } else n = Math.floor(rand() * space);
        const key = Buffer.concat([prefix, putVarint(k, n)]);
        await recorder.time('put', () => conn.unary(path, putRequest(key, value)));
      };
    });
    return { steps };
  },
};
