// The client-facing gRPC server: every etcd v3 service on every --listen-client-urls address.
//
// Transport settings (kube-contract.md §1): receive limit = --max-request-bytes + 512 KiB (etcd's
// grpcOverheadBytes), so oversized requests get etcd's own "request is too large" below that; no send limit
// (Range and Watch responses can be hundreds of MB). grpc-js enforces no client ping policy, and Node's HTTP/2
// answers PINGs itself, so kube's 30 s keepalive pings are never answered with GOAWAY.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { serviceDefinition } from '../api/proto';
import type { EtcdServer } from './etcd-server';
import { GRPC_OVERHEAD_BYTES } from './etcd-server';
import { kvService } from './v3rpc/kv';
import { leaseService } from './v3rpc/lease';
import { WatchServer } from './v3rpc/watch';
import { authService, clusterService, maintenanceService } from './v3rpc/maintenance';
import { electionService, lockService } from './v3rpc/concurrency';
import { Interceptor } from './v3rpc/interceptor';

export interface GrpcServerOptions {
  maxRequestBytes: number;
  maxTxnOps: number;
  maxConcurrentStreams?: number;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
  progressNotifyIntervalMs: number;
}

export function createGrpcServer(
  srv: EtcdServer,
  logger: Logger,
  o: GrpcServerOptions,
): { server: grpc.Server; watch: WatchServer; interceptor: Interceptor } {
  const options: grpc.ServerOptions = {
    'grpc.max_receive_message_length': o.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
  };
  if (o.maxConcurrentStreams && o.maxConcurrentStreams < 2 ** 32 - 1) options['grpc.max_concurrent_streams'] = o.maxConcurrentStreams;
  if (o.keepaliveIntervalMs) options['grpc.keepalive_time_ms'] = o.keepaliveIntervalMs;
  if (o.keepaliveTimeoutMs) options['grpc.keepalive_timeout_ms'] = o.keepaliveTimeoutMs;
  const server = new grpc.Server(options);
  const watch = new WatchServer(srv, logger, { maxRequestBytes: o.maxRequestBytes, progressNotifyIntervalMs: o.progressNotifyIntervalMs });
  srv.onWatchSync(() => watch.afterSync());
  // etcd's interceptors (learner and hasleader checks) sit in front of every service.
  const interceptor = new Interceptor(
    { leader: () => srv.leader(), isLearner: () => srv.cluster.members.get(srv.memberId)?.isLearner === true },
    srv.cfg.electionTimeoutMs,
  );
  const add = (name: string, impl: object) => {
    const def = serviceDefinition(name);
    server.addService(def, interceptor.wrap(def, impl as Record<string, (...args: any[]) => unknown>));
  };
  add('etcdserverpb.KV', kvService(srv, logger, o.maxTxnOps));
  add('etcdserverpb.Watch', watch.service());
  add('etcdserverpb.Lease', leaseService(srv, logger));
  add('etcdserverpb.Maintenance', maintenanceService(srv, logger));
  add('etcdserverpb.Cluster', clusterService(srv, logger));
  add('etcdserverpb.Auth', authService(srv, logger));
  add('v3electionpb.Election', electionService(srv, logger));
  add('v3lockpb.Lock', lockService(srv, logger));
  return { server, watch, interceptor };
}

/** grpc-js address for a client URL: host:port for http(s), unix:path for unix(s). */
export function grpcAddress(u: string): string {
  const url = new URL(u);
  if (url.protocol === 'unix:' || url.protocol === 'unixs:') return `unix:${url.host}${url.pathname}`;
  const host = url.hostname.startsWith('[') ? url.hostname : url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname;
  return `${host}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

export function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}
