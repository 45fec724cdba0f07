// The only map from domain errors to wire errors (etcd v3rpc/util.go togRPCError). Anything unmapped
// becomes UNKNOWN with its message, as in etcd, and is logged as a likely gap in this table.

import { status as Status } from '@grpc/grpc-js';
import * as rpc from '../../api/rpctypes';
import { isDomainError } from '../../util/errors';
import type { Logger } from 'pino';

const byCode: Record<string, rpc.WireError> = {
  // mvcc
  ErrCompacted: rpc.ErrGRPCCompacted,
  ErrFutureRev: rpc.ErrGRPCFutureRev,
  // lease
  ErrLeaseNotFound: rpc.ErrGRPCLeaseNotFound,
  ErrLeaseExists: rpc.ErrGRPCLeaseExist,
  ErrLeaseTTLTooLarge: rpc.ErrGRPCLeaseTTLTooLarge,
  // apply
  ErrKeyNotFound: rpc.ErrGRPCKeyNotFound,
  // etcdserver
  ErrNoSpace: rpc.ErrGRPCNoSpace,
  ErrTimeout: rpc.ErrGRPCTimeout,
  ErrStopped: rpc.ErrGRPCStopped,
  ErrNoLeader: rpc.ErrGRPCNoLeader,
  ErrNotLeader: rpc.ErrGRPCNotLeader,
  ErrRequestTooLarge: rpc.ErrGRPCRequestTooLarge,
  ErrTooManyRequests: rpc.ErrGRPCRequestTooManyRequests,
  ErrCorrupt: rpc.ErrGRPCCorrupt,
  ErrProposalDropped: rpc.ErrGRPCNoLeader,
  ErrUnhealthy: rpc.ErrGRPCUnhealthy,
  ErrNotEnoughStartedMembers: rpc.ErrGRPCMemberNotEnoughStarted,
  ErrLearnerNotReady: rpc.ErrGRPCLearnerNotReady,
  ErrBadLeaderTransferee: rpc.ErrGRPCBadLeaderTransferee,
  // membership
  ErrIDRemoved: rpc.ErrGRPCMemberNotFound,
  ErrIDNotFound: rpc.ErrGRPCMemberNotFound,
  ErrIDExists: rpc.ErrGRPCMemberExist,
  ErrPeerURLexists: rpc.ErrGRPCPeerURLExist,
  ErrMemberNotLearner: rpc.ErrGRPCMemberNotLearner,
  ErrTooManyLearners: rpc.ErrGRPCTooManyLearners,
};

export interface GrpcError {
  code: Status;
  details: string;
  message: string;
}

/** Map any error thrown by the server to the status a client sees. */
export function toGrpcError(err: unknown, logger?: Logger): GrpcError {
  if (rpc.isWireError(err)) return err;
  // A gRPC status from another member (a request forwarded to the leader) passes through unchanged.
  const s = err as { code?: unknown; details?: unknown };
  if (typeof s?.code === 'number' && typeof s.details === 'string' && !isDomainError(err)) {
    return { code: s.code as Status, details: s.details, message: s.details };
  }
  if (isDomainError(err)) {
    const w = byCode[err.code];
    if (w) return w;
  }
  const message = err instanceof Error ? err.message : String(err);
  logger?.warn({ error: message, code: isDomainError(err) ? err.code : undefined }, 'unmapped error returned to client as UNKNOWN');
  return { code: Status.UNKNOWN, details: message, message };
}
