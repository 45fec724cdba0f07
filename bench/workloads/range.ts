// range: etcd benchmark's `range key [end-range]` — the same Range over and over: linearizable or serializable
// (--consistency l|s), optionally with --limit, --count-only, --keys-only, or over every key with the prefix --prefix.

import { paths } from '../lib/proto';
import { prefixEnd } from '../lib/util';
import type { Workload } from '../lib/workload';
import { rangeRequest } from './common';

export const range: Workload = {
  name: 'range',
  summary: 'Benchmark range (args: key [end-range])',
  flags: [
    { name: 'consistency', kind: 'string', default: 'l', help: 'Linearizable(l) or Serializable(s)' },
    { name: 'limit', kind: 'int', default: 0, help: 'Maximum number of results to return from range request (0 is no limit)' },
    { name: 'count-only', kind: 'bool', default: false, help: 'Only returns the count of keys' },
    { name: 'keys-only', kind: 'bool', default: false, help: 'Only returns the keys' },
    { name: 'prefix', kind: 'bool', default: false, help: 'Range over all keys with the given key as prefix' },
  ],
  async prepare(flags) {
    const args = flags.args;
    if (args.length > 2 || (args.length === 0 && !flags.bool('prefix'))) throw new Error('usage: range key [end-range]');
    const c = flags.str('consistency');
    if (c !== 'l' && c !== 's') throw new Error('--consistency must be l or s');
    if (flags.bool('count-only') && flags.bool('keys-only')) throw new Error('`--keys-only` and `--count-only` cannot be set at the same time');
    let key: Buffer = Buffer.from(args[0] ?? '');
    let rangeEnd: Buffer = args[1] !== undefined ? Buffer.from(args[1]) : Buffer.alloc(0);
    if (flags.bool('prefix')) {
      // clientv3.WithPrefix: an empty key means every key (key and end both "\0").
      if (key.length === 0) {
        key = Buffer.from([0]);
        rangeEnd = Buffer.from([0]);
      } else rangeEnd = prefixEnd(key);
    }
    return {
      request: rangeRequest({
        key,
        rangeEnd,
        limit: flags.int('limit'),
        serializable: c === 's',
        countOnly: flags.bool('count-only'),
        keysOnly: flags.bool('keys-only'),
      }),
    };
  },
  async setup(ctx) {
    // The request never changes, so it is encoded once.
    const request = Buffer.from((ctx.prepared as { request: Uint8Array }).request);
    const path = paths.range;
    const steps = ctx.clientIndices.map((ci) => {
      const conn = ctx.connOf(ci);
      return async (): Promise<void> => {
        await ctx.recorder.time('range', () => conn.unary(path, request));
      };
    });
    return { steps };
  },
};
