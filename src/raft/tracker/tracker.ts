// The leader's view of the configuration and of each member's progress (etcd raft tracker/tracker.go), without the
// joint-consensus half of the configuration (single-step changes only).

import { compareIds, type ConfState } from '../types';
import { MajorityConfig, VoteResult } from '../quorum/majority';
import { Progress } from './progress';

/**
 * The active configuration (etcd tracker.Config without VotersOutgoing/LearnersNext/AutoLeave).
 * Invariant: voters and learners are disjoint, and every member of either has a Progress.
 */
export interface TrackerConfig {
  voters: MajorityConfig;
  learners: Set<bigint>;
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return { voters: c.voters.clone(), learners: new Set(c.learners) };
}

/** "voters=(1 2 3) learners=(4)", as etcd prints a tracker.Config. */
export function describeTrackerConfig(c: TrackerConfig): string {
  let s = `voters=${c.voters.toString()}`;
  if (c.learners.size > 0) s += ` learners=${new MajorityConfig(c.learners).toString()}`;
  return s;
}

export type ProgressMap = Map<bigint, Progress>;

/** Tracks the active configuration, the members' progress and the votes of an election. */
export class ProgressTracker {
  config: TrackerConfig = { voters: new MajorityConfig(), learners: new Set() };
  progress: ProgressMap = new Map();
  /** The votes received in the current election: true granted, false rejected. */
  votes = new Map<bigint, boolean>();

  constructor(
    /** MaxInflightMsgs, for each new Progress's Inflights. */
    readonly maxInflight: number,
    /** MaxInflightBytes (0: no limit), for each new Progress's Inflights. */
    readonly maxInflightBytes: number,
  ) {}

  /** The active configuration as a ConfState (sorted). */
  confState(): ConfState {
    return { voters: this.config.voters.slice(), learners: [...this.config.learners].sort(compareIds) };
  }

  /** Whether the only voter is the local member (the configuration has exactly one voter). */
  isSingleton(): boolean {
    return this.config.voters.size === 1;
  }

  /** The largest index acknowledged by a quorum of voters (etcd ProgressTracker.Committed). */
  committed(): number {
    return this.config.voters.committedIndex((id) => this.progress.get(id)?.match);
  }

  /** Calls f for every tracked member, in ascending ID order (stable, so behaviour is deterministic). */
  visit(f: (id: bigint, pr: Progress) => void): void {
    const ids = [...this.progress.keys()].sort(compareIds);
    for (const id of ids) f(id, this.progress.get(id)!);
  }

  /** Whether a quorum of voters was recently active (etcd QuorumActive). */
  quorumActive(): boolean {
    const votes = new Map<bigint, boolean>();
    this.visit((id, pr) => {
      if (pr.isLearner) return;
      votes.set(id, pr.recentActive);
    });
    return this.config.voters.voteResult(votes) === VoteResult.VoteWon;
  }

  /** The voters, sorted. */
  voterNodes(): bigint[] {
    return this.config.voters.slice();
  }

  /** The learners, sorted. */
  learnerNodes(): bigint[] {
    return [...this.config.learners].sort(compareIds);
  }

  /** Prepares for a new round of vote counting. */
  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records id's vote (only its first vote counts). */
  recordVote(id: bigint, v: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, v);
  }

  /** The number of granted and rejected votes among tracked voters, and the outcome so far. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}
