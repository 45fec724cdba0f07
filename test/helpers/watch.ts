// A raw Watch stream for tests: send requests, await responses in order.

import { rawClient } from './member';

export class RawWatch {
  private client: any;
  private stream: any;
  private buffered: any[] = [];
  private waiters: Array<(r: any) => void> = [];
  ended = false;
  error: any;

  constructor(endpoint: string, metadata?: Record<string, string>) {
    this.client = rawClient(endpoint, 'etcdserverpb', 'Watch');
    const grpc = require('@grpc/grpc-js');
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
    this.stream = this.client.Watch(md);
    this.stream.on('data', (r: any) => {
      const w = this.waiters.shift();
      if (w) w(r);
      else this.buffered.push(r);
    });
    this.stream.on('error', (e: any) => {
      this.error = e;
    });
    this.stream.on('end', () => {
      this.ended = true;
    });
  }

  send(req: object): void {
    this.stream.write(req);
  }

  create(req: object): void {
    this.send({ create_request: req });
  }

  /** The next response, failing after timeoutMs. */
  next(timeoutMs = 3000): Promise<any> {
    const r = this.buffered.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no watch response within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (x: any) => {
        clearTimeout(t);
        resolve(x);
      };
      this.waiters.push(done);
    });
  }

  /** Resolves to null if nothing arrives within ms. */
  async none(ms = 300): Promise<any> {
    try {
      return await this.next(ms);
    } catch {
      return null;
    }
  }

  /** Collect events until `count` events arrived (across responses). */
  async events(count: number, timeoutMs = 3000): Promise<any[]> {
    const out: any[] = [];
    while (out.length < count) {
      const r = await this.next(timeoutMs);
      out.push(...r.events);
    }
    return out;
  }

  close(): void {
    this.stream.end();
    this.client.close();
  }
}
