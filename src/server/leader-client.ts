// Requests that only the leader can answer (lease keep-alive and time-to-live, member promotion), forwarded
// from a follower to the leader's client URL over gRPC. etcd forwards these over its peer HTTP API; we reuse
// the leader's client endpoint, with our own client TLS material when the leader serves https.

import * as grpc from '@grpc/grpc-js';
import { loadApi } from '../api/proto';
import type { TlsMaterial } from './tls';

type AnyClient = grpc.Client & Record<string, any>;

export class LeaderClient {
  private target = '';
  private kv: { lease: AnyClient; cluster: AnyClient } | undefined;
  private keepAlive: grpc.ClientDuplexStream<{ ID: string }, { ID: string; TTL: string }> | undefined;
  private pending: Array<{ id: string; resolve(ttl: number): void; reject(e: unknown): void }> = [];

  constructor(private readonly tls: TlsMaterial | undefined) {}

  /** Point at the leader's client URLs; a change of leader drops the old connection. */
  private clients(urls: string[]): { lease: AnyClient; cluster: AnyClient } {
    const url = urls[0];
    if (!url) throw new Error('the leader has not published its client URLs yet');
    if (url !== this.target || !this.kv) {
      this.close();
      const u = new URL(url);
      const secure = u.protocol === 'https:' || u.protocol === 'unixs:';
      const creds = secure
        ? grpc.credentials.createSsl(this.tls?.ca ?? null, this.tls?.clientKey ?? null, this.tls?.clientCert ?? null, this.tls?.selfSigned ? { checkServerIdentity: () => undefined } : undefined)
        : grpc.credentials.createInsecure();
      const address = u.protocol.startsWith('unix') ? `unix:${u.host}${u.pathname}` : u.host;
      const api = loadApi().grpcObject as any;
      this.kv = {
        lease: new api.etcdserverpb.Lease(address, creds) as AnyClient,
        cluster: new api.etcdserverpb.Cluster(address, creds) as AnyClient,
      };
      this.target = url;
    }
    return this.kv;
  }

  /** LeaseKeepAlive on the leader: resolves to the TTL (0 for an unknown lease, as etcd answers). */
  renew(urls: string[], id: bigint): Promise<number> {
    const c = this.clients(urls);
    if (!this.keepAlive) {
      const s = c.lease.LeaseKeepAlive() as grpc.ClientDuplexStream<{ ID: string }, { ID: string; TTL: string }>;
      s.on('data', (r) => {
        const i = this.pending.findIndex((p) => p.id === r.ID);
        if (i >= 0) this.pending.splice(i, 1)[0]!.resolve(Number(r.TTL));
      });
      const fail = (err: unknown) => {
        if (this.keepAlive === s) this.keepAlive = undefined;
        for (const p of this.pending.splice(0)) p.reject(err);
      };
      s.on('error', fail);
      s.on('end', () => fail(new Error('leader closed the keep-alive stream')));
      this.keepAlive = s;
    }
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ id: id.toString(), resolve, reject });
      this.keepAlive!.write({ ID: id.toString() });
    });
  }

  unary<T>(urls: string[], service: 'lease' | 'cluster', method: string, req: object, timeoutMs: number): Promise<T> {
    const c = this.clients(urls)[service];
    return new Promise<T>((resolve, reject) => {
      c[method]!(req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
    });
  }

  close(): void {
    this.keepAlive?.cancel();
    this.keepAlive = undefined;
    if (this.kv) {
      this.kv.lease.close();
      this.kv.cluster.close();
    }
    this.kv = undefined;
    this.target = '';
  }
}
