// etcdserverpb.Lease (etcd v3rpc/lease.go and the lease parts of etcdserver/v3_server.go).

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdServer } from '../etcd-server';
import type { LeaseGrantRequest, LeaseRevokeRequest } from '../../api/types';
import { big } from '../apply';
import { ErrLeaseNotFound } from '../../lease/lessor';
import { DomainError, isDomainError } from '../../util/errors';
import { unary } from './util';
import { toGrpcError } from './errors';
import * as rpc from '../../api/rpctypes';

export function leaseService(srv: EtcdServer, logger: Logger) {
  return {
    LeaseGrant: unary(logger, async (r: LeaseGrantRequest) => {
      if (srv.applier.hasAlarm(1 /* NOSPACE */)) throw rpc.ErrGRPCNoSpace;
      let id = big(r.ID);
      // No ID given: choose one (etcd uses its request ID generator, positive IDs only).
      while (id === 0n) id = srv.nextLeaseId();
      const res = await srv.propose({ lease_grant: { ID: id.toString(), TTL: r.TTL } });
      if (res.kind !== 'lease_grant') throw new Error('unexpected apply result for lease grant');
      return { header: srv.header(0), ID: res.id.toString(), TTL: res.ttl, error: '' };
    }),
    LeaseRevoke: unary(logger, async (r: LeaseRevokeRequest) => {
      await srv.propose({ lease_revoke: { ID: String(r.ID) } });
      return { header: srv.header(0) };
    }),
    LeaseTimeToLive: unary(logger, async (r: { ID: string; keys: boolean }) => {
      const id = big(r.ID);
      const l = srv.lessor.lookup(id);
      if (!l || l.ttl === 0) return { header: srv.header(0), ID: r.ID, TTL: -1, grantedTTL: 0, keys: [] };
      return {
        header: srv.header(0),
        ID: r.ID,
        TTL: l.remainingSeconds(srv.lessor.now()),
        grantedTTL: l.ttl,
        keys: r.keys ? [...l.keys].map((k) => Buffer.from(k, 'latin1')) : [],
      };
    }),
    LeaseLeases: unary(logger, async () => {
      return { header: srv.header(0), leases: srv.lessor.all().map((l) => ({ ID: l.id.toString() })) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
      call.on('data', (req: { ID: string }) => {
        let ttl: number;
        try {
          ttl = renew(srv, big(req.ID));
        } catch (err) {
          if (!isDomainError(err, ErrLeaseNotFound)) {
            call.emit('error', toGrpcError(err, logger));
            return;
          }
          ttl = 0;
        }
        call.write({ header: srv.header(0), ID: req.ID, TTL: ttl });
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
}

/** Renew on the leader (with one member, always us). An expired lease awaiting revocation is not found. */
function renew(srv: EtcdServer, id: bigint): number {
  const l = srv.lessor.lookup(id);
  if (!l || l.expiry <= srv.lessor.now()) throw new DomainError(ErrLeaseNotFound, 'lease not found');
  return srv.lessor.renew(id);
}

