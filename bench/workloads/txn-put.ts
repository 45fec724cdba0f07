// txn-put: etcd benchmark's `txn-put` — Txns with no compare and --txn-ops Puts each, keys sequential over
// --key-space-size.

import { paths } from '../lib/proto';
import { putVarint, randBytes } from '../lib/util';
import type { Workload } from '../lib/workload';
import { txnRequest, type TxnOp } from './common';

export const txnPut: Workload = {
  name: 'txn-put',
  summary: 'Benchmark txn-put',
  flags: [
    { name: 'key-size', kind: 'int', default: 8, help: 'Key size of txn put' },
    { name: 'val-size', kind: 'int', default: 8, help: 'Value size of txn put' },
    { name: 'txn-ops', kind: 'int', default: 1, help: 'Number of puts per txn' },
    { name: 'key-space-size', kind: 'int', default: 1, help: 'Maximum possible keys' },
  ],
  async prepare(flags) {
    if (flags.int('key-space-size') <= 0) throw new Error(`expected positive --key-space-size, got (${flags.int('key-space-size')})`);
    return { value: randBytes(flags.int('val-size')) };
  },
  async setup(ctx) {
    const { flags } = ctx;
    const value = Buffer.from((ctx.prepared as { value: Uint8Array }).value);
    const space = flags.int('key-space-size');
    const ops = flags.int('txn-ops');
    const keySize = flags.int('key-size');
    const path = paths.txn;
    let i = ctx.workerIndex;
    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      return async (): Promise<void> => {
        const puts: TxnOp[] = [];
        for (let j = 0; j < ops; j++) puts.push({ put: { key: putVarint(Buffer.alloc(keySize), (i * ops + j) % space), value } });
        i += ctx.workers;
        await ctx.recorder.time('txn-put', () => conn.unary(path, txnRequest([], puts)));
      };
    });
    return { steps };
  },
};
