// The composition root: startMember() builds a whole member from a ServerConfig — the server core, the client
// gRPC listeners with their TLS — and returns its URLs and a close(). bin/etcd is a thin wrapper over it;
// tests and embedders call it in-process.

import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import type { ServerConfig } from './config';
import { EtcdServer } from './etcd-server';
import { bind, createGrpcServer, grpcAddress } from './grpc-server';
import { grpcServerCredentials, resolveTls } from './tls';
import { idToHex } from './membership';

const SHUTDOWN_GRACE_MS = 2000;

export interface Member {
  /** The URLs clients can reach this member at (listen URLs with the bound ports filled in). */
  clientUrls: string[];
  memberId: string;
  clusterId: string;
  server: EtcdServer;
  close(): Promise<void>;
}

export async function startMember(config: ServerConfig, opts: { logger: Logger }): Promise<Member> {
  const logger = opts.logger;
  const srv = await EtcdServer.start(config, logger);
  let grpcServer: grpc.Server | undefined;
  try {
    // etcd serves clients only once the member has published itself through the log (ReadyNotify).
    await srv.ready.promise;
    const { server, watch } = createGrpcServer(srv, logger, {
      maxRequestBytes: config.maxRequestBytes,
      maxTxnOps: config.maxTxnOps,
      maxConcurrentStreams: config.maxConcurrentStreams,
      keepaliveIntervalMs: config.grpcKeepaliveIntervalMs,
      keepaliveTimeoutMs: config.grpcKeepaliveTimeoutMs,
      progressNotifyIntervalMs: config.watchProgressNotifyIntervalMs,
    });
    grpcServer = server;
    const hosts = config.listenClientUrls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ''));
    const tls = await resolveTls(config.clientTls, { dataDir: config.dataDir, kind: 'client', hosts, validityYears: config.selfSignedCertValidity, logger });
    const clientUrls: string[] = [];
    for (const u of config.listenClientUrls) {
      const url = new URL(u);
      const secure = url.protocol === 'https:' || url.protocol === 'unixs:';
      if (secure && !tls) throw new Error(`TLS key/cert (--cert-file, --key-file) must be provided for client url ${u} with HTTPS scheme`);
      const creds = secure ? grpcServerCredentials(tls) : grpc.ServerCredentials.createInsecure();
      const port = await bind(server, grpcAddress(u), creds);
      if (url.protocol === 'http:' || url.protocol === 'https:') url.port = String(port);
      clientUrls.push(url.toString().replace(/\/$/, ''));
      logger.info({ address: url.host || url.pathname, secure }, secure ? 'serving client traffic securely' : 'serving client traffic insecurely; this is strongly discouraged!');
    }
    logger.info({}, 'ready to serve client requests');
    let closing: Promise<void> | undefined;
    return {
      clientUrls,
      memberId: idToHex(srv.memberId),
      clusterId: idToHex(srv.clusterId),
      server: srv,
      close() {
        closing ??= (async () => {
          watch.close();
          // Streams still open after a grace period (lease keep-alives, observers) are cut.
          await new Promise<void>((res) => {
            const t = setTimeout(() => {
              server.forceShutdown();
              res();
            }, SHUTDOWN_GRACE_MS);
            server.tryShutdown(() => {
              clearTimeout(t);
              res();
            });
          });
          await srv.close();
          logger.info({ name: config.name, 'data-dir': config.dataDir }, 'closed etcd server');
        })();
        return closing;
      },
    };
  } catch (err) {
    grpcServer?.forceShutdown();
    await srv.close();
    throw err;
  }
}
