// The Raft core's domain errors: expected conditions a caller handles (etcd raft's sentinel errors), each with a
// stable `code` equal to etcd's variable name. Impossible transitions are assert() failures instead.

import { DomainError } from '../util/errors';

/** Storage: the requested index predates the last snapshot (etcd ErrCompacted). */
export class CompactedError extends DomainError {
  constructor() {
    super('ErrCompacted', 'requested index is unavailable due to compaction');
  }
}

/** Storage: a snapshot older than the existing one was offered (etcd ErrSnapOutOfDate). */
export class SnapOutOfDateError extends DomainError {
  constructor() {
    super('ErrSnapOutOfDate', 'requested index is older than the existing snapshot');
  }
}

/** Storage: the requested entries are not available (etcd ErrUnavailable). */
export class UnavailableError extends DomainError {
  constructor() {
    super('ErrUnavailable', 'requested entry at index is unavailable');
  }
}

/** Storage: the snapshot is being prepared; the leader retries later (etcd ErrSnapshotTemporarilyUnavailable). */
export class SnapshotTemporarilyUnavailableError extends DomainError {
  constructor() {
    super('ErrSnapshotTemporarilyUnavailable', 'snapshot is temporarily unavailable');
  }
}

/**
 * A proposal was not appended: there is no leader, this follower does not forward proposals, a leadership transfer is
 * in progress, this leader was removed, or the uncommitted tail is over its bound (etcd ErrProposalDropped). The
 * proposer may retry.
 */
export class ProposalDroppedError extends DomainError {
  constructor() {
    super('ErrProposalDropped', 'raft proposal dropped');
  }
}

/** RawNode.step was given a local message type (MsgHup, MsgBeat, ...) (etcd ErrStepLocalMsg). */
export class StepLocalMsgError extends DomainError {
  constructor() {
    super('ErrStepLocalMsg', 'raft: cannot step raft local message');
  }
}

/** RawNode.step was given a response from a peer this node does not track (etcd ErrStepPeerNotFound). */
export class StepPeerNotFoundError extends DomainError {
  constructor() {
    super('ErrStepPeerNotFound', 'raft: cannot step as peer not found');
  }
}
