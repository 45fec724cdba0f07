// The composition root: startMember() builds a whole member from a ServerConfig — the server core, the client
// gRPC listeners with their TLS — and returns its URLs and a close(). bin/etcd is a thin wrapper over it;
// tests and embedders call it in-process.
//
// Client listeners: https:// and unixs:// URLs are bound by grpc-js itself (TLS); http:// and unix:// URLs are
// bound by the ClientFront, which hands gRPC connections to grpc-js through its connection injector and serves
// HTTP/1 itself (client-front.ts says why).

import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import type { ServerConfig } from './config';
import { EtcdServer } from './etcd-server';
import { bind, createGrpcServer, grpcAddress } from './grpc-server';
import { ClientFront, etcdHttpRoutes, httpRouter, type HttpRoute } from './client-front';
import { grpcServerCredentials, resolveTls } from './tls';
import { idToHex } from './membership';
import { assert } from '../util/assert';

const SHUTDOWN_GRACE_MS = 2000;

export interface Member {
  /** The URLs clients can reach this member at (listen URLs with the bound ports filled in). */
  clientUrls: string[];
  memberId: string;
  clusterId: string;
  server: EtcdServer;
  /**
   * Resolves with the reason once the member stopped by itself and closed (etcd StopNotify): it was removed
   * from the cluster. bin/etcd then exits, as etcd does.
   */
  done: Promise<string>;
  close(): Promise<void>;
}

export async function startMember(config: ServerConfig, opts: { logger: Logger }): Promise<Member> {
  const logger = opts.logger;
  const srv = await EtcdServer.start(config, logger);
  let grpcServer: grpc.Server | undefined;
  let front: ClientFront | undefined;
  const healthRoute = srv.maintenance.healthRoute();
  try {
    // etcd serves clients only once the member has published itself through the log (ReadyNotify).
    await srv.ready.promise;
    const { server, watch, interceptor } = createGrpcServer(srv, logger, {
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
      let bound: string;
      if (secure) {
        if (!tls) throw new Error(`TLS key/cert (--cert-file, --key-file) must be provided for client url ${u} with HTTPS scheme`);
        const port = await bind(server, grpcAddress(u), grpcServerCredentials(tls));
        if (url.protocol === 'https:') url.port = String(port);
        bound = url.toString().replace(/\/$/, '');
      } else {
        front ??= plaintextFront(server, logger, healthRoute);
        bound = await front.listen(u);
      }
      clientUrls.push(bound);
      const address = new URL(bound);
      logger.info({ address: address.host || address.pathname, secure }, secure ? 'serving client traffic securely' : 'serving client traffic insecurely; this is strongly discouraged!');
    }
    logger.info({}, 'ready to serve client requests');
    let closing: Promise<void> | undefined;
    const member: Member = {
      clientUrls,
      memberId: idToHex(srv.memberId),
      clusterId: idToHex(srv.clusterId),
      server: srv,
      // The server stops by itself when it learns it was removed; the client side follows (etcd: "server error",
      // then the listeners close and the process exits).
      done: srv.done.promise.then(async (reason) => {
        logger.warn({ reason }, 'data-dir used by this member must be removed');
        await member.close().catch((err: unknown) => logger.error({ error: String(err) }, 'failed to close etcd server'));
        return reason;
      }),
      close() {
        closing ??= (async () => {
          front?.close();
          watch.close();
          interceptor.close();
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
    return member;
  } catch (err) {
    front?.close();
    grpcServer?.forceShutdown();
    await srv.close();
    throw err;
  }
}

/** The front for this member's plaintext client URLs, handing gRPC connections to `server`. */
function plaintextFront(server: grpc.Server, logger: Logger, health: HttpRoute): ClientFront {
  // grpc-js's public connection injector: an HTTP/2 server of its own that listens nowhere and serves the connections
  // we give it, with the server's options and services, closed by tryShutdown/forceShutdown like a bound port.
  assert(typeof server.createConnectionInjector === 'function', 'grpc-js has no Server.createConnectionInjector: the plaintext client front needs @grpc/grpc-js >= 1.14');
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return new ClientFront({
    serveHttp2: (connection) => injector.injectConnection(connection),
    serveHttp1: httpRouter(etcdHttpRoutes({ health })),
    logger,
  });
}
