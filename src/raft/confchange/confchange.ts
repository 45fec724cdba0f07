// Membership changes (etcd raft confchange/confchange.go and restore.go), single-step only: Changer.simple() applies
// changes that alter the voters by at most one, which keeps every old majority intersecting every new one (Raft
// thesis §4.1). Joint consensus (EnterJoint/LeaveJoint, ConfChangeV2) is not ported.
//
// The Changer works on copies: it validates the result before the caller installs it, so an invalid change never
// touches the active configuration.

import { DomainError } from '../../util/errors';
import { type ConfChange, ConfChangeType, type ConfState } from '../types';
import { Inflights } from '../tracker/inflights';
import { Progress } from '../tracker/progress';
import { cloneTrackerConfig, type ProgressMap, type ProgressTracker, type TrackerConfig } from '../tracker/tracker';

/** A configuration change that cannot be applied (etcd returns these as errors; applying one panics). */
export class ConfChangeError extends DomainError {
  constructor(message: string) {
    super('ErrConfChange', message);
  }
}

/** One change of a ConfChange (etcd ConfChangeSingle). */
export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: bigint;
}

export function confChangeToSingle(cc: ConfChange): ConfChangeSingle {
  return { type: cc.type, nodeId: cc.nodeId };
}

/** Validates and computes configuration changes against a tracker (etcd confchange.Changer). */
export class Changer {
  constructor(
    readonly tracker: ProgressTracker,
    /** The leader's last index: new members start probing there. */
    readonly lastIndex: number,
  ) {}

  /**
   * Applies changes that, in aggregate, alter the voters by at most one. Throws ConfChangeError if more than one voter
   * changes or if no voter would remain.
   */
  simple(ccs: readonly ConfChangeSingle[]): { config: TrackerConfig; progress: ProgressMap } {
    const { config, progress } = this.checkAndCopy();
    this.apply(config, progress, ccs);
    const n = symdiff(this.tracker.config.voters.ids, config.voters.ids);
    if (n > 1) throw new ConfChangeError('more than one voter changed without entering joint config');
    checkInvariants(config, progress);
    return { config, progress };
  }

  private apply(cfg: TrackerConfig, prs: ProgressMap, ccs: readonly ConfChangeSingle[]): void {
    for (const cc of ccs) {
      // etcd replaces the NodeID with zero when it decides (downstream of raft) not to apply a change.
      if (cc.nodeId === 0n) continue;
      switch (cc.type) {
        case ConfChangeType.AddNode:
          this.makeVoter(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          this.remove(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.UpdateNode:
          break;
        default:
          throw new ConfChangeError(`unexpected conf type ${String(cc.type)}`);
      }
    }
    if (cfg.voters.size === 0) throw new ConfChangeError('removed all voters');
  }

  /** Adds id as a voter, or promotes the learner id. */
  private makeVoter(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.voters.ids.add(id);
  }

  /** Adds id as a learner, or demotes the voter id. */
  private makeLearner(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, true);
      return;
    }
    if (pr.isLearner) return;
    // Remove any existing voter... but keep the Progress.
    this.remove(cfg, prs, id);
    prs.set(id, pr);
    pr.isLearner = true;
    cfg.learners.add(id);
  }

  /** Removes id as a voter or learner. */
  private remove(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    if (!prs.has(id)) return;
    cfg.voters.ids.delete(id);
    cfg.learners.delete(id);
    prs.delete(id);
  }

  private initProgress(cfg: TrackerConfig, prs: ProgressMap, id: bigint, isLearner: boolean): void {
    if (!isLearner) cfg.voters.ids.add(id);
    else cfg.learners.add(id);
    prs.set(
      id,
      new Progress({
        // Probing from the last index: the follower likely has no log at all and will need a snapshot, or the
        // application gave it one out of band. (etcd-io/raft later guards next >= 1; so do we.)
        next: Math.max(this.lastIndex, 1),
        match: 0,
        inflights: new Inflights(this.tracker.maxInflight, this.tracker.maxInflightBytes),
        isLearner,
        // A new member counts as recently active, or check-quorum could make the leader step down before the new
        // member had a chance to answer.
        recentActive: true,
      }),
    );
  }

  private checkAndCopy(): { config: TrackerConfig; progress: ProgressMap } {
    const config = cloneTrackerConfig(this.tracker.config);
    const progress: ProgressMap = new Map();
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.shallowCopy());
    checkInvariants(config, progress);
    return { config, progress };
  }
}

/** Checks that the configuration and the progress map agree (etcd confchange checkInvariants). */
function checkInvariants(cfg: TrackerConfig, prs: ProgressMap): void {
  for (const id of cfg.voters.ids) {
    if (!prs.has(id)) throw new ConfChangeError(`no progress for ${id}`);
  }
  for (const id of cfg.learners) {
    if (!prs.has(id)) throw new ConfChangeError(`no progress for ${id}`);
    if (cfg.voters.has(id)) throw new ConfChangeError(`${id} is in Learners and Voters[0]`);
    if (!prs.get(id)!.isLearner) throw new ConfChangeError(`${id} is in Learners, but is not marked as learner`);
  }
  for (const [id, pr] of prs) {
    if (!cfg.voters.has(id) && !cfg.learners.has(id)) throw new ConfChangeError(`progress for ${id} without membership`);
    if (pr.isLearner !== cfg.learners.has(id)) throw new ConfChangeError(`${id} learner flag disagrees with the config`);
  }
}

function symdiff(l: ReadonlySet<bigint>, r: ReadonlySet<bigint>): number {
  let n = 0;
  for (const id of l) if (!r.has(id)) n++;
  for (const id of r) if (!l.has(id)) n++;
  return n;
}

/**
 * Builds the configuration described by a ConfState on an empty tracker, by applying one simple change per member
 * (etcd confchange.Restore, for non-joint ConfStates).
 */
export function restore(tracker: ProgressTracker, lastIndex: number, cs: ConfState): { config: TrackerConfig; progress: ProgressMap } {
  const ops: ConfChangeSingle[] = [
    ...cs.voters.map((nodeId) => ({ type: ConfChangeType.AddNode, nodeId })),
    ...cs.learners.map((nodeId) => ({ type: ConfChangeType.AddLearnerNode, nodeId })),
  ];
  let config = tracker.config;
  let progress = tracker.progress;
  for (const op of ops) {
    const chg = new Changer(tracker, lastIndex);
    ({ config, progress } = chg.simple([op]));
    tracker.config = config;
    tracker.progress = progress;
  }
  return { config, progress };
}
