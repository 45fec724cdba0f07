// etcdserverpb.Lease (etcd v3rpc/lease.go and the lease parts of etcdserver/v3_server.go).

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdServer } from '../etcd-server';
import type { LeaseGrantRequest, LeaseRevokeRequest } from '../../api/types';
import { big } from '../apply';
import { unary } from './util';
import { toGrpcError } from './errors';
import * as rpc from '../../api/rpctypes';

export function leaseService(srv: EtcdServer, logger: Logger) {
  return {
    LeaseGrant: unary(logger, async (r: LeaseGrantRequest) => {
      // etcd quotaLeaseServer: the quota first; while NOSPACE is active the applier refuses the grant.
      if (!(await srv.maintenance.checkQuota({ lease_grant: r }))) throw rpc.ErrGRPCNoSpace;
      let id = big(r.ID);
      // No ID given: choose one (etcd uses its request ID generator, positive IDs only).
      while (id === 0n) id = srv.nextLeaseId();
      const res = await srv.propose({ lease_grant: { ID: id.toString(), TTL: r.TTL } });
      if (res.kind !== 'lease_grant') throw new Error('unexpected apply result for lease grant');
      return { header: srv.header(res.rev), ID: res.id.toString(), TTL: res.ttl, error: '' };
    }),
    LeaseRevoke: unary(logger, async (r: LeaseRevokeRequest) => {
      const res = await srv.propose({ lease_revoke: { ID: String(r.ID) } });
      if (res.kind !== 'lease_revoke') throw new Error('unexpected apply result for lease revoke');
      return { header: srv.header(res.rev) };
    }),
    LeaseTimeToLive: unary(logger, async (r: { ID: string; keys: boolean }) => {
      const t = await srv.leaseTimeToLive(big(r.ID), r.keys);
      return { header: srv.header(0), ID: r.ID, ...t };
    }),
    LeaseLeases: unary(logger, async () => {
      return { header: srv.header(0), leases: srv.lessor.all().map((l) => ({ ID: l.id.toString() })) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
      // Responses go out in request order, even when a follower forwards renewals to the leader.
      let chain = Promise.resolve();
      call.on('data', (req: { ID: string }) => {
        chain = chain.then(async () => {
          let ttl: number;
          try {
            ttl = await srv.renewLease(big(req.ID));
          } catch (err) {
            call.emit('error', toGrpcError(err, logger));
            return;
          }
          if (!call.cancelled) call.write({ header: srv.header(0), ID: req.ID, TTL: ttl });
        });
      });
      call.on('end', () => void chain.then(() => call.end()));
      call.on('error', () => {});
    },
  };
}
