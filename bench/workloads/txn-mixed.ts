// txn-mixed: etcd benchmark's `txn-mixed` — each Txn is either a read (a Range over every key with --limit) or a
// write (one Put, keys sequential over --key-space-size); a request is a read with probability r/(1+r) for
// --rw-ratio r. Reads and writes are reported separately, as etcd does.

import { paths } from '../lib/proto';
import { prng, putVarint, randBytes } from '../lib/util';
import type { Workload } from '../lib/workload';
import { txnRequest } from './common';

export const txnMixed: Workload = {
  name: 'txn-mixed',
  summary: 'Benchmark a mixed load of txn-put & txn-range',
  flags: [
    { name: 'key-size', kind: 'int', default: 8, help: 'Key size of mixed txn' },
    { name: 'val-size', kind: 'int', default: 8, help: 'Value size of mixed txn' },
    { name: 'limit', kind: 'int', default: 1000, help: 'Read operation range result limit' },
    { name: 'key-space-size', kind: 'int', default: 1, help: 'Maximum possible keys' },
    { name: 'consistency', kind: 'string', default: 'l', help: 'Linearizable(l) or Serializable(s)' },
    { name: 'rw-ratio', kind: 'float', default: 1, help: 'Read/write ops ratio' },
  ],
  async prepare(flags) {
    if (flags.int('key-space-size') <= 0) throw new Error(`expected positive --key-space-size, got (${flags.int('key-space-size')})`);
    const c = flags.str('consistency');
    if (c !== 'l' && c !== 's') throw new Error('--consistency must be l or s');
    return { value: randBytes(flags.int('val-size')) };
  },
  async setup(ctx) {
    const { flags } = ctx;
    const value = Buffer.from((ctx.prepared as { value: Uint8Array }).value);
    const space = flags.int('key-space-size');
    const keySize = flags.int('key-size');
    const ratio = flags.num('rw-ratio');
    const readShare = ratio / (1 + ratio);
    // clientv3 OpGet("", WithPrefix()) ranges over every key: key and range_end both "\0".
    const read = txnRequest([], [{ range: { key: Buffer.from([0]), rangeEnd: Buffer.from([0]), limit: flags.int('limit'), serializable: flags.str('consistency') === 's' } }]);
    const path = paths.txn;
    let i = ctx.workerIndex;
    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      const rand = prng(flags.int('seed') * 104729 + ci);
      return async (): Promise<void> => {
        const n = i;
        i += ctx.workers;
        if (rand() < readShare) {
          await ctx.recorder.time('read', () => conn.unary(path, read));
        } else {
          const req = txnRequest([], [{ put: { key: putVarint(Buffer.alloc(keySize), n % space), value } }]);
          await ctx.recorder.time('write', () => conn.unary(path, req));
        }
      };
    });
    return { steps };
  },
};
