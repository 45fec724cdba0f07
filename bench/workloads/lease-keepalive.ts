// lease-keepalive: etcd benchmark's `lease-keepalive` — every client grants a lease (TTL 100 s) before the run, then
// keeps it alive over and over. etcd's tool calls clientv3 KeepAliveOnce, which opens a LeaseKeepAlive stream,
// sends one request, reads one response and closes the stream; that is the default here too (closed by a
// half-close rather than a cancel, see below). With
// --reuse-stream each client keeps one stream open and pings over it (how clientv3 KeepAlive behaves).

import type { BidiStream } from '../lib/conn';
import { encode, int64Text, paths, pb } from '../lib/proto';
import type { Workload } from '../lib/workload';
import { bytes } from './common';

const ignore = (): void => undefined;

function once(stream: BidiStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer): void => {
      cleanup();
      resolve(b);
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('keepalive stream ended'));
    };
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('error', onError);
      stream.off('end', onEnd);
    };
    stream.on('data', onData);
    stream.on('error', onError);
    stream.on('end', onEnd);
  });
}

export const leaseKeepalive: Workload = {
  name: 'lease-keepalive',
  summary: 'Benchmark lease keepalive',
  flags: [{ name: 'reuse-stream', kind: 'bool', default: false, help: 'Keep one LeaseKeepAlive stream per client instead of one per request' }],
  async setup(ctx) {
    const t = pb();
    const reuse = ctx.flags.bool('reuse-stream');
    const streams: Array<BidiStream> = [];
    const steps = await Promise.all(
      ctx.clientIndices.map(async (ci) => {
        const conn = ctx.connOf(ci);
        const granted = t.LeaseGrantResponse.decode(await conn.unary(paths.leaseGrant, encode(t.LeaseGrantRequest, { TTL: 100 }))) as unknown as { ID: unknown; error?: string };
        if (granted.error) throw new Error(`lease grant: ${granted.error}`);
        // The ID is an int64 above 2^53: passed on as text, never as a number.
        const request = bytes(t.LeaseKeepAliveRequest.encode({ ID: int64Text(granted.ID) }).finish());
        let stream: BidiStream | null = null;
        if (reuse) {
          stream = conn.bidi(paths.leaseKeepAlive);
          streams.push(stream);
        }
        return async (): Promise<void> => {
          await ctx.recorder.time('keepalive', async () => {
            const s = stream ?? conn.bidi(paths.leaseKeepAlive);
            const reply = once(s);
            s.write(request);
            const res = await reply;
            if (stream === null) {
              // clientv3 KeepAliveOnce cancels its stream (RST_STREAM) once it has the answer. We half-close it
              // instead and let the server end it: Node's HTTP/2 server treats a flood of RST_STREAMs as an
              // attack (rapid reset) and drops the connection, which would measure that defence, not leases.
              s.on('error', ignore);
              s.end();
            }
            return res;
          });
        };
      }),
    );
    return {
      steps,
      async teardown() {
        for (const s of streams) {
          s.on('error', ignore);
          s.cancel();
        }
        return undefined;
      },
    };
  },
};
