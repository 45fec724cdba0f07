// A follower's progress in the leader's view (etcd raft tracker/progress.go, state.go).
//
// The leader keeps one Progress per tracked member (voters and learners, including itself) and decides from it what
// to send next. The state machine:
//
//   StateProbe ──(append acked)──▶ StateReplicate ──(append rejected / unreachable)──▶ StateProbe
//        │  ▲                                                                              │
//        │  └──(snapshot applied, reported or acked)── StateSnapshot ◀──(entries compacted)─┘
//
// Probe sends at most one MsgApp per heartbeat interval until the follower's match is found; Replicate pipelines
// MsgApps (bounded by Inflights); Snapshot sends nothing until the snapshot is reported.

import { assert } from '../../util/assert';
import { Inflights } from './inflights';

/** The state of a tracked follower (etcd tracker.StateType). Values print as etcd prints them. */
export enum ProgressStateType {
  /** The follower's last index is not known: probe with one append per heartbeat interval. */
  StateProbe = 'StateProbe',
  /** Steady state: entries are sent eagerly, pipelined up to the inflight bounds. */
  StateReplicate = 'StateReplicate',
  /** The follower needs a snapshot (its next entries are compacted); nothing is sent until it is reported. */
  StateSnapshot = 'StateSnapshot',
}

export class Progress {
  // Invariant: match < next.
  match: number;
  next: number;
  state: ProgressStateType = ProgressStateType.StateProbe;
  /** The index of the snapshot sent, while in StateSnapshot; 0 otherwise. */
  pendingSnapshot = 0;
  /**
   * Whether this follower was heard from recently (since the last check-quorum round). Set by any message from it;
   * cleared by the leader every election timeout.
   */
  recentActive = false;
  /** StateProbe: an append was sent, and no more is sent until it is acknowledged or a heartbeat response arrives. */
  probeSent = false;
  /** StateReplicate: the appends in flight. */
  inflights: Inflights;
  isLearner: boolean;

  constructor(init: { match: number; next: number; inflights: Inflights; isLearner?: boolean; recentActive?: boolean }) {
    this.match = init.match;
    this.next = init.next;
    this.inflights = init.inflights;
    this.isLearner = init.isLearner ?? false;
    this.recentActive = init.recentActive ?? false;
  }

  /** A copy that shares the Inflights (etcd's struct copy in the Changer, which only changes isLearner). */
  shallowCopy(): Progress {
    const p = new Progress({ match: this.match, next: this.next, inflights: this.inflights, isLearner: this.isLearner, recentActive: this.recentActive });
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.probeSent = this.probeSent;
    return p;
  }

  /** Moves into `state`, clearing probeSent, pendingSnapshot and the inflights. */
  resetState(state: ProgressStateType): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** The follower accepted an append: further appends may be sent without waiting. */
  probeAcked(): void {
    this.probeSent = false;
  }

  /**
   * Moves into StateProbe. next becomes match + 1 or, coming from StateSnapshot (the snapshot was delivered), the
   * snapshot index + 1 if larger.
   */
  becomeProbe(): void {
    if (this.state === ProgressStateType.StateSnapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressStateType.StateProbe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressStateType.StateProbe);
      this.next = this.match + 1;
    }
  }

  /** Moves into StateReplicate, with next = match + 1. */
  becomeReplicate(): void {
    this.resetState(ProgressStateType.StateReplicate);
    this.next = this.match + 1;
  }

  /** Moves into StateSnapshot, waiting for the snapshot at snapshotIndex. */
  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressStateType.StateSnapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /**
   * Records an acknowledgement of index n (a MsgAppResp). Returns false if n is stale (not beyond match); next is
   * raised to n + 1 regardless.
   */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeAcked();
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /** Appends up to n are in flight: next becomes n + 1. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * Handles a MsgApp rejection of index `rejected` by a follower whose last index is `last`. Returns false if the
   * rejection is stale (out of order or duplicated); otherwise lowers next and clears the way for the next probe.
   */
  maybeDecrTo(rejected: number, last: number): boolean {
    if (this.state === ProgressStateType.StateReplicate) {
      // Stale if "rejected" is at or below match.
      if (rejected <= this.match) return false;
      // Directly decrease next to match + 1.
      this.next = this.match + 1;
      return true;
    }
    // Stale unless it rejects next - 1: non-replicating followers are probed one append at a time.
    if (this.next - 1 !== rejected) return false;
    // Never below match + 1 (etcd-io/raft v3.6; 3.4 takes max(..., 1)): a rejection that was delayed or duplicated
    // may predate the acknowledgement of match, and next <= match would break the invariant match < next. Found by
    // the simulator (a duplicated MsgAppResp rejection arriving after the probe was acknowledged).
    this.next = Math.max(Math.min(rejected, last + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * Whether sending appends to this follower is throttled: probing and waiting for an answer, waiting for a
   * snapshot, or the inflight window is full.
   */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressStateType.StateProbe:
        return this.probeSent;
      case ProgressStateType.StateReplicate:
        return this.inflights.full();
      case ProgressStateType.StateSnapshot:
        return true;
    }
  }

  /** etcd's Progress.String(): "StateReplicate match=5 next=6 inflight=1". */
  toString(): string {
    let s = `${this.state} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += ' learner';
    if (this.isPaused()) s += ' paused';
    if (this.pendingSnapshot > 0) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += ' inactive';
    const n = this.inflights.count();
    if (n > 0) {
      s += ` inflight=${n}`;
      if (this.inflights.full()) s += '[full]';
    }
    return s;
  }

  /** Checks the field invariants; called by the tracker in tests and the simulator. */
  checkInvariants(): void {
    assert(this.match < this.next, `progress: match ${this.match} >= next ${this.next}`);
    assert(this.state === ProgressStateType.StateSnapshot || this.pendingSnapshot === 0, 'progress: pendingSnapshot outside StateSnapshot');
  }
}
