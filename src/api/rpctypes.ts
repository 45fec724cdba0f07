// The catalog of etcd's wire errors: gRPC status code and the exact message. Go clients match errors by
// message text (clientv3 rpctypes.Error / errStringToError), so every message here is byte-for-byte etcd's.
// test/unit/rpctypes.test.ts pins this list to a golden copy of etcd 3.4.23's api/v3rpc/rpctypes/error.go
// (test/golden/etcd-3.4.23-rpctypes.tsv); the entries after the marker below are etcd 3.5 additions.
// Mapping from domain errors to these lives in one place only: src/server/v3rpc/errors.ts.

import { status as Status, Metadata } from '@grpc/grpc-js';

const kWireError = Symbol.for('tsetcd.WireError');

/** A gRPC status error as grpc-js servers send it (code + details). */
export class WireError extends Error {
  readonly [kWireError] = true;
  readonly details: string;
  readonly metadata = new Metadata();
  constructor(
    readonly code: Status,
    message: string,
  ) {
    super(message);
    this.details = message;
    this.name = 'WireError';
  }
}

export function isWireError(err: unknown): err is WireError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kWireError] === true;
}

function wire(code: Status, message: string): WireError {
  return new WireError(code, message);
}

export const ErrGRPCEmptyKey = wire(Status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
export const ErrGRPCKeyNotFound = wire(Status.INVALID_ARGUMENT, 'etcdserver: key not found');
export const ErrGRPCValueProvided = wire(Status.INVALID_ARGUMENT, 'etcdserver: value is provided');
export const ErrGRPCLeaseProvided = wire(Status.INVALID_ARGUMENT, 'etcdserver: lease is provided');
export const ErrGRPCTooManyOps = wire(Status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
export const ErrGRPCDuplicateKey = wire(Status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
export const ErrGRPCCompacted = wire(Status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
export const ErrGRPCFutureRev = wire(Status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
export const ErrGRPCNoSpace = wire(Status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');
export const ErrGRPCLeaseNotFound = wire(Status.NOT_FOUND, 'etcdserver: requested lease not found');
export const ErrGRPCLeaseExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
export const ErrGRPCLeaseTTLTooLarge = wire(Status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
export const ErrGRPCWatchCanceled = wire(Status.CANCELLED, 'etcdserver: watch canceled');
export const ErrGRPCMemberExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: member ID already exist');
export const ErrGRPCPeerURLExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists');
export const ErrGRPCMemberNotEnoughStarted = wire(Status.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members');
export const ErrGRPCMemberBadURLs = wire(Status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid');
export const ErrGRPCMemberNotFound = wire(Status.NOT_FOUND, 'etcdserver: member not found');
export const ErrGRPCMemberNotLearner = wire(Status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
export const ErrGRPCLearnerNotReady = wire(Status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader');
export const ErrGRPCTooManyLearners = wire(Status.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster');
export const ErrGRPCRequestTooLarge = wire(Status.INVALID_ARGUMENT, 'etcdserver: request is too large');
export const ErrGRPCRequestTooManyRequests = wire(Status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');
export const ErrGRPCRootUserNotExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: root user does not exist');
export const ErrGRPCRootRoleNotExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role');
export const ErrGRPCUserAlreadyExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: user name already exists');
export const ErrGRPCUserEmpty = wire(Status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
export const ErrGRPCUserNotFound = wire(Status.FAILED_PRECONDITION, 'etcdserver: user name not found');
export const ErrGRPCRoleAlreadyExist = wire(Status.FAILED_PRECONDITION, 'etcdserver: role name already exists');
export const ErrGRPCRoleNotFound = wire(Status.FAILED_PRECONDITION, 'etcdserver: role name not found');
export const ErrGRPCRoleEmpty = wire(Status.INVALID_ARGUMENT, 'etcdserver: role name is empty');
export const ErrGRPCAuthFailed = wire(Status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password');
export const ErrGRPCPermissionDenied = wire(Status.PERMISSION_DENIED, 'etcdserver: permission denied');
export const ErrGRPCRoleNotGranted = wire(Status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user');
export const ErrGRPCPermissionNotGranted = wire(Status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role');
export const ErrGRPCAuthNotEnabled = wire(Status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled');
export const ErrGRPCInvalidAuthToken = wire(Status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
export const ErrGRPCInvalidAuthMgmt = wire(Status.INVALID_ARGUMENT, 'etcdserver: invalid auth management');
export const ErrGRPCAuthOldRevision = wire(Status.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old');
export const ErrGRPCNoLeader = wire(Status.UNAVAILABLE, 'etcdserver: no leader');
export const ErrGRPCNotLeader = wire(Status.FAILED_PRECONDITION, 'etcdserver: not leader');
export const ErrGRPCLeaderChanged = wire(Status.UNAVAILABLE, 'etcdserver: leader changed');
export const ErrGRPCNotCapable = wire(Status.UNAVAILABLE, 'etcdserver: not capable');
export const ErrGRPCStopped = wire(Status.UNAVAILABLE, 'etcdserver: server stopped');
export const ErrGRPCTimeout = wire(Status.UNAVAILABLE, 'etcdserver: request timed out');
export const ErrGRPCTimeoutDueToLeaderFail = wire(Status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure');
export const ErrGRPCTimeoutDueToConnectionLost = wire(Status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost');
export const ErrGRPCTimeoutWaitAppliedIndex = wire(Status.UNAVAILABLE, 'etcdserver: request timed out, waiting for the applied index took too long');
export const ErrGRPCUnhealthy = wire(Status.UNAVAILABLE, 'etcdserver: unhealthy cluster');
export const ErrGRPCCorrupt = wire(Status.DATA_LOSS, 'etcdserver: corrupt cluster');
export const ErrGPRCNotSupportedForLearner = wire(Status.UNAVAILABLE, 'etcdserver: rpc not supported for learner');
export const ErrGRPCBadLeaderTransferee = wire(Status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee');

// --- etcd 3.5 additions (not in the 3.4.23 golden list) ---
export const ErrGRPCCanceled = wire(Status.CANCELLED, 'etcdserver: request canceled');
export const ErrGRPCDeadlineExceeded = wire(Status.DEADLINE_EXCEEDED, 'etcdserver: context deadline exceeded');
export const ErrGRPCClusterVersionUnavailable = wire(Status.UNAVAILABLE, 'etcdserver: cluster version not found during downgrade');
export const ErrGRPCWrongDowngradeVersionFormat = wire(Status.INVALID_ARGUMENT, 'etcdserver: wrong downgrade target version format');
export const ErrGRPCInvalidDowngradeTargetVersion = wire(Status.INVALID_ARGUMENT, 'etcdserver: invalid downgrade target version');
export const ErrGRPCDowngradeInProcess = wire(Status.FAILED_PRECONDITION, 'etcdserver: cluster has a downgrade job in progress');
export const ErrGRPCNoInflightDowngrade = wire(Status.FAILED_PRECONDITION, 'etcdserver: no inflight downgrade job');

/** Every catalog entry by name, for the golden test and for text lookups. */
export const catalog: Readonly<Record<string, WireError>> = {
  ErrGRPCEmptyKey,
  ErrGRPCKeyNotFound,
  ErrGRPCValueProvided,
  ErrGRPCLeaseProvided,
  ErrGRPCTooManyOps,
  ErrGRPCDuplicateKey,
  ErrGRPCCompacted,
  ErrGRPCFutureRev,
  ErrGRPCNoSpace,
  ErrGRPCLeaseNotFound,
  ErrGRPCLeaseExist,
  ErrGRPCLeaseTTLTooLarge,
  ErrGRPCWatchCanceled,
  ErrGRPCMemberExist,
  ErrGRPCPeerURLExist,
  ErrGRPCMemberNotEnoughStarted,
  ErrGRPCMemberBadURLs,
  ErrGRPCMemberNotFound,
  ErrGRPCMemberNotLearner,
  ErrGRPCLearnerNotReady,
  ErrGRPCTooManyLearners,
  ErrGRPCRequestTooLarge,
  ErrGRPCRequestTooManyRequests,
  ErrGRPCRootUserNotExist,
  ErrGRPCRootRoleNotExist,
  ErrGRPCUserAlreadyExist,
  ErrGRPCUserEmpty,
  ErrGRPCUserNotFound,
  ErrGRPCRoleAlreadyExist,
  ErrGRPCRoleNotFound,
  ErrGRPCRoleEmpty,
  ErrGRPCAuthFailed,
  ErrGRPCPermissionDenied,
  ErrGRPCRoleNotGranted,
  ErrGRPCPermissionNotGranted,
  ErrGRPCAuthNotEnabled,
  ErrGRPCInvalidAuthToken,
  ErrGRPCInvalidAuthMgmt,
  ErrGRPCAuthOldRevision,
  ErrGRPCNoLeader,
  ErrGRPCNotLeader,
  ErrGRPCLeaderChanged,
  ErrGRPCNotCapable,
  ErrGRPCStopped,
  ErrGRPCTimeout,
  ErrGRPCTimeoutDueToLeaderFail,
  ErrGRPCTimeoutDueToConnectionLost,
  ErrGRPCTimeoutWaitAppliedIndex,
  ErrGRPCUnhealthy,
  ErrGRPCCorrupt,
  ErrGPRCNotSupportedForLearner,
  ErrGRPCBadLeaderTransferee,
  ErrGRPCCanceled,
  ErrGRPCDeadlineExceeded,
  ErrGRPCClusterVersionUnavailable,
  ErrGRPCWrongDowngradeVersionFormat,
  ErrGRPCInvalidDowngradeTargetVersion,
  ErrGRPCDowngradeInProcess,
  ErrGRPCNoInflightDowngrade,
};
