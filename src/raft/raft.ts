// The Raft state machine (etcd raft raft.go, v3.4): terms, elections (with pre-vote and check-quorum), log
// replication with flow control, commitment, ReadIndex, leader transfer and single-step membership changes.
//
// Everything here is synchronous and deterministic: messages and ticks go in (step, tick), and the results collect in
// `msgs`, `readStates` and the log, which RawNode hands out as a Ready. There is no I/O, no clock and no global
// randomness: time is ticks, and the election timeout is drawn from the injected Prng.
//
// The class is internal: its fields are public so that the tests can inspect and arrange state the way etcd's tests
// do, but applications use RawNode. The behaviour follows etcd's line by line where it matters for compatibility;
// comments mark where and why we differ. The differences from etcd 3.4, all found or confirmed by the simulator:
// - MsgTimeoutNow campaigns through hup(), which refuses while a committed conf change is unapplied (etcd 3.5).
// - Progress.maybeDecrTo never lowers next to or below match (etcd-io/raft v3.6).
// - loadState keeps the snapshot's index when the persisted commit is below it (etcd panics; etcd #10219).
// - A restart with `applied` beyond the persisted commit raises the commit (etcd panics).
// - The pending-conf-change scan in hup() starts at the first index when applied is below it (etcd would panic).
// - Inflights are also bounded in bytes (MaxInflightBytes, etcd-io/raft v3.6); uncommitted proposals in count too.

import { assert } from '../util/assert';
import { isDomainError } from '../util/errors';
import type { Prng } from '../util/prng';
import { Changer, confChangeToSingle, restore as restoreConfState } from './confchange/confchange';
import { decodeConfChange } from './confchange/codec';
import { ProposalDroppedError } from './errors';
import { RaftLog } from './log';
import { discardLogger, type Logger } from './logger';
import { VoteResult } from './quorum/majority';
import { ReadOnly, ReadOnlyOption, type ReadState } from './read-only';
import type { Storage } from './storage';
import { Inflights } from './tracker/inflights';
import { Progress, ProgressStateType } from './tracker/progress';
import { describeTrackerConfig, type ProgressMap, ProgressTracker, type TrackerConfig } from './tracker/tracker';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
  confStatesEquivalent,
  emptySnapshot,
  isEmptyConfState,
  isEmptyHardState,
  message,
  voteRespMsgType,
} from './types';
import { noLimit, payloadsSizeBytes } from './util';

/** "No member" (etcd raft.None). */
export const None = 0n;

/** The role of a member (etcd raft.StateType). Values print as etcd prints them. */
export enum StateType {
  Follower = 'StateFollower',
  Candidate = 'StateCandidate',
  Leader = 'StateLeader',
  PreCandidate = 'StatePreCandidate',
}

/** Why a node campaigns (etcd CampaignType); the transfer kind travels in MsgVote's context. */
export enum CampaignType {
  /** The first phase of an election when preVote is on. */
  PreElection = 'CampaignPreElection',
  /** A normal, time-based election (the second phase with preVote). */
  Election = 'CampaignElection',
  /** A leader transfer: votes are granted even within a leader's lease. */
  Transfer = 'CampaignTransfer',
}

const campaignTransferContext = Buffer.from(CampaignType.Transfer);

/**
 * The parameters of a Raft node (etcd raft.Config). Fields left out take the defaults documented on each; invalid
 * combinations throw an assertion error at construction.
 */
export interface RaftConfig {
  /** This member's ID; not 0. */
  id: bigint;
  /**
   * The voters of a new cluster (etcd's test-only `peers`): used to bootstrap when Storage holds no ConfState. A
   * member that joins later must then receive a snapshot (its log cannot reconstruct this initial configuration), so
   * prefer bootstrapping with a snapshot in Storage. If Storage has a ConfState, these must describe the same one.
   */
  voters?: bigint[];
  /** The learners of a new cluster, as `voters`. */
  learners?: bigint[];
  /**
   * Ticks a follower waits without hearing from a leader before campaigning (randomized in [electionTick,
   * 2 * electionTick - 1]); also the leader's check-quorum period. Must exceed heartbeatTick; etcd suggests 10x.
   */
  electionTick: number;
  /** Ticks between a leader's heartbeats. > 0. */
  heartbeatTick: number;
  /** The stable log, HardState and snapshot; the core only reads it. */
  storage: Storage;
  /**
   * The last index the application applied, when restarting (e.g. the state machine's consistent index): committed
   * entries up to it are not handed out again. Default: the snapshot's index.
   */
  applied?: number;
  /**
   * Bound on the encoded bytes of entries per MsgApp (at least one entry per message). Smaller values lower the cost
   * of probing and of lost messages; larger ones raise throughput. Default 1 MiB (etcd server's maxSizePerMsg).
   */
  maxSizePerMsg?: number;
  /** Bound on the encoded bytes of committed entries per Ready (at least one). Default: maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  /**
   * Bound on the payload bytes of the leader's uncommitted (more precisely: unapplied) proposals; beyond it,
   * proposals are dropped. A proposal is always accepted when nothing is uncommitted. Default 0: no limit.
   */
  maxUncommittedEntriesSize?: number;
  /** Bound on the number of the leader's unapplied proposals, as maxUncommittedEntriesSize (0: no limit). Default 10 000. */
  maxUncommittedEntries?: number;
  /** Bound on MsgApps in flight per follower during pipelined replication. > 0. Default 256. */
  maxInflightMsgs?: number;
  /**
   * Bound on the payload bytes in flight per follower (etcd-io/raft v3.6 MaxInflightBytes); the window is full once
   * reached. Default 0: no limit beyond maxInflightMsgs.
   */
  maxInflightBytes?: number;
  /**
   * Whether the leader steps down when it has not heard from a quorum for an election timeout, and followers ignore
   * vote requests while they have heard from a leader within one (the leader lease). Default true.
   */
  checkQuorum?: boolean;
  /**
   * Whether to run a pre-vote round before an election (Raft thesis §9.6), so that a partitioned member rejoining
   * does not disrupt the cluster with a higher term. Default true.
   */
  preVote?: boolean;
  /** How ReadIndex requests are confirmed. Default Safe. LeaseBased requires checkQuorum. */
  readOnlyOption?: ReadOnlyOption;
  /** Receives the core's log lines. Default: discard. */
  logger?: Logger;
  /** Whether followers drop proposals instead of forwarding them to the leader. Default false. */
  disableProposalForwarding?: boolean;
  /** The randomness for election timeouts (etcd uses a global RNG; we inject it). */
  rand: Prng;
}

/** Volatile state, for the application to observe (etcd SoftState). */
export interface SoftState {
  lead: bigint;
  raftState: StateType;
}

/** The Raft state machine. Internal: use RawNode. */
export class Raft {
  /** This member's ID. Mutable only so that tests can renumber a member (etcd's newNetwork does). */
  id: bigint;

  // Persistent state (HardState), with raftLog.committed.
  term = 0;
  vote: bigint = None;

  /** ReadIndex answers for the local node, handed out in the next Ready. */
  readStates: ReadState[] = [];

  raftLog: RaftLog;

  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly maxUncommittedEntries: number;
  prs: ProgressTracker;

  state: StateType = StateType.Follower;
  /** Whether this member is a learner in the active configuration. */
  isLearner = false;

  /** Messages to send, handed out in the next Ready. */
  msgs: Message[] = [];

  /** The leader's ID, None when unknown. */
  lead: bigint = None;
  /** The target of a leadership transfer in progress, None otherwise (Raft thesis §3.10). */
  leadTransferee: bigint = None;
  /**
   * Only one conf change may be pending (in the log, but not yet applied) at a time: a new one is proposed only if
   * the leader's applied index is beyond this index, which is >= that of the latest pending conf change.
   */
  pendingConfIndex = 0;
  /**
   * An estimate of the payload bytes (and count) of the leader's uncommitted tail, for the proposal bounds. Only the
   * leader maintains them; reset on term changes.
   */
  uncommittedSize = 0;
  uncommittedCount = 0;

  readOnly: ReadOnly;

  /**
   * Leader and candidate: ticks since the last election timeout. Follower: ticks since the last election timeout or
   * since hearing from the current leader.
   */
  electionElapsed = 0;
  /** Leader only: ticks since the last heartbeat. */
  heartbeatElapsed = 0;

  checkQuorum: boolean;
  preVote: boolean;

  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  /** Drawn from [electionTimeout, 2 * electionTimeout - 1] on every change to follower or candidate. */
  randomizedElectionTimeout = 0;
  readonly disableProposalForwarding: boolean;

  readonly logger: Logger;
  private readonly rand: Prng;

  /**
   * MsgReadIndex requests that arrived before this leader committed an entry of its term; answered as soon as it
   * does (until then its commit index may be stale).
   */
  pendingReadIndexMessages: Message[] = [];

  constructor(c: RaftConfig) {
    assert(c.id !== None, 'cannot use none as id');
    assert(Number.isInteger(c.heartbeatTick) && c.heartbeatTick > 0, 'heartbeat tick must be greater than 0');
    assert(Number.isInteger(c.electionTick) && c.electionTick > c.heartbeatTick, 'election tick must be greater than heartbeat tick');
    const maxInflightMsgs = c.maxInflightMsgs ?? 256;
    assert(maxInflightMsgs > 0, 'max inflight messages must be greater than 0');
    const checkQuorum = c.checkQuorum ?? true;
    const readOnlyOption = c.readOnlyOption ?? ReadOnlyOption.Safe;
    assert(readOnlyOption !== ReadOnlyOption.LeaseBased || checkQuorum, 'CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased');
    const maxSizePerMsg = c.maxSizePerMsg ?? 1024 * 1024;
    const maxCommittedSizePerReady = c.maxCommittedSizePerReady || maxSizePerMsg;

    this.id = c.id;
    this.logger = c.logger ?? discardLogger;
    this.rand = c.rand;
    this.raftLog = new RaftLog(c.storage, this.logger, maxCommittedSizePerReady);
    this.maxMsgSize = maxSizePerMsg;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize || noLimit;
    this.maxUncommittedEntries = c.maxUncommittedEntries === 0 ? noLimit : (c.maxUncommittedEntries ?? 10_000);
    this.prs = new ProgressTracker(maxInflightMsgs, c.maxInflightBytes ?? 0);
    this.electionTimeout = c.electionTick;
    this.heartbeatTimeout = c.heartbeatTick;
    this.checkQuorum = checkQuorum;
    this.preVote = c.preVote ?? true;
    this.readOnly = new ReadOnly(readOnlyOption);
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;

    const { hardState: hs, confState: storedCs } = c.storage.initialState();
    let cs = storedCs;
    const bootstrap = { voters: c.voters ?? [], learners: c.learners ?? [] };
    if (!isEmptyConfState(bootstrap)) {
      if (isEmptyConfState(storedCs)) cs = bootstrap;
      else {
        assert(
          confStatesEquivalent(storedCs, bootstrap),
          'cannot specify both RaftConfig voters/learners and a different ConfState in Storage',
        );
      }
    }
    const { config, progress } = restoreConfState(this.prs, this.raftLog.lastIndex(), cs);
    const switched = this.switchToConfig(config, progress);
    assert(confStatesEquivalent(cs, switched), 'restored configuration differs from the ConfState');

    if (!isEmptyHardState(hs)) this.loadState(hs);
    const applied = c.applied ?? 0;
    if (applied > 0) {
      if (applied > this.raftLog.committed) {
        // Deviation from etcd (which panics): the application applied entries whose commit the persisted HardState
        // does not show, because a commit-only HardState write need not be synced (MustSync) and was lost in a crash.
        // Those entries were committed (they were applied) and are durable in the log (entries are always synced
        // before they are applied), so the commit index may safely be raised to them.
        assert(applied <= this.raftLog.lastIndex(), `applied(${applied}) is beyond the log (lastIndex ${this.raftLog.lastIndex()})`);
        this.logger.warn(`${hex(this.id)} raising commit ${this.raftLog.committed} to applied ${applied} (persisted HardState lagged)`);
        this.raftLog.commitTo(applied);
      }
      this.raftLog.appliedTo(applied);
    }
    this.becomeFollower(this.term, None);

    this.logger.info(
      `newRaft ${hex(this.id)} [peers: [${this.prs.voterNodes().map(hex).join(',')}], term: ${this.term}, commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  hasLeader(): boolean {
    return this.lead !== None;
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /**
   * Queues m for the next Ready. Vote messages carry their own term (the campaign's); all others get the current term,
   * except MsgProp and MsgReadIndex, which are forwarded like local requests.
   */
  send(m: Message): void {
    m.from = this.id;
    if (
      m.type === MessageType.MsgVote ||
      m.type === MessageType.MsgVoteResp ||
      m.type === MessageType.MsgPreVote ||
      m.type === MessageType.MsgPreVoteResp
    ) {
      // MsgVote: the term campaigned for. MsgVoteResp: the new term if granted. MsgPreVote: the next term.
      // MsgPreVoteResp: the pre-vote's term if granted. None of these is 0.
      assert(m.term !== 0, `term should be set when sending ${MessageType[m.type]}`);
    } else {
      assert(m.term === 0, `term should not be set when sending ${MessageType[m.type]} (was ${m.term})`);
      if (m.type !== MessageType.MsgProp && m.type !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends an append (entries or, if none, just the commit index) to `to`, unless its progress is paused. */
  sendAppend(to: bigint): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends an append with new entries to `to` if its progress allows; with sendIfEmpty false, only if there are entries
   * (empty appends only carry the commit index). Sends a snapshot instead if the entries are compacted. Returns
   * whether a message was sent.
   */
  maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    assert(pr !== undefined, `maybeSendAppend to untracked ${hex(to)}`);
    if (pr.isPaused()) return false;

    // etcd: raftLog.term(pr.Next-1) and raftLog.entries(pr.Next) fail with ErrCompacted exactly when pr.Next is below
    // the first index; then the follower needs a snapshot.
    if (pr.next < this.raftLog.firstIndex()) {
      if (!sendIfEmpty) return false;
      return this.sendSnapshot(to, pr);
    }
    const term = this.raftLog.term(pr.next - 1);
    const ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    if (ents.length === 0 && !sendIfEmpty) return false;

    const m = message({ type: MessageType.MsgApp, to, index: pr.next - 1, logTerm: term, entries: ents, commit: this.raftLog.committed });
    if (ents.length !== 0) {
      switch (pr.state) {
        case ProgressStateType.StateReplicate: {
          // Optimistically increase next in StateReplicate.
          const last = ents[ents.length - 1]!.index;
          pr.optimisticUpdate(last);
          pr.inflights.add(last, payloadsSizeBytes(ents));
          break;
        }
        case ProgressStateType.StateProbe:
          pr.probeSent = true;
          break;
        default:
          assert(false, `${hex(this.id)} is sending append in unhandled state ${pr.state}`);
      }
    }
    this.send(m);
    return true;
  }

  /** Sends the latest snapshot to `to` and pauses its replication until the snapshot is reported (etcd's branch). */
  private sendSnapshot(to: bigint, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug(`ignore sending snapshot to ${hex(to)} since it is not recently active`);
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (err) {
      if (isDomainError(err, 'ErrSnapshotTemporarilyUnavailable')) {
        this.logger.debug(`${hex(this.id)} failed to send snapshot to ${hex(to)} because snapshot is temporarily unavailable`);
        return false;
      }
      throw err;
    }
    assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
    const sindex = snapshot.metadata.index;
    const sterm = snapshot.metadata.term;
    this.logger.debug(
      `${hex(this.id)} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] sent snapshot[index: ${sindex}, term: ${sterm}] to ${hex(to)} [${pr.toString()}]`,
    );
    pr.becomeSnapshot(sindex);
    this.logger.debug(`${hex(this.id)} paused sending replication messages to ${hex(to)} [${pr.toString()}]`);
    this.send(message({ type: MessageType.MsgSnap, to, snapshot }));
    return true;
  }

  /** Sends a heartbeat to `to`, with commit min(its match, our commit): never beyond what it is known to hold. */
  sendHeartbeat(to: bigint, ctx: Buffer | undefined): void {
    const pr = this.prs.progress.get(to)!;
    const commit = Math.min(pr.match, this.raftLog.committed);
    this.send(message({ type: MessageType.MsgHeartbeat, to, commit, ...(ctx !== undefined ? { context: ctx } : {}) }));
  }

  /** Sends appends to every tracked member that is not up to date. */
  bcastAppend(): void {
    this.prs.visit((id) => {
      if (id === this.id) return;
      this.sendAppend(id);
    });
  }

  /** Heartbeats to every tracked member, carrying the newest pending ReadIndex context if any. */
  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  bcastHeartbeatWithCtx(ctx: Buffer | undefined): void {
    this.prs.visit((id) => {
      if (id === this.id) return;
      this.sendHeartbeat(id, ctx);
    });
  }

  /**
   * Acknowledges a Ready (etcd raft.advance): its committed entries (or snapshot) are applied and its entries and
   * snapshot are stable.
   */
  advance(rd: { committedEntries: Entry[]; entries: Entry[]; snapshot?: Snapshot }): void {
    // If entries were applied (or a snapshot), update the applied cursor. A new commit index in the HardState does
    // not mean all of it is applied: committed entries are paginated by size.
    const n = rd.committedEntries.length;
    const applied = n > 0 ? rd.committedEntries[n - 1]!.index : (rd.snapshot?.metadata.index ?? 0);
    if (applied > 0) this.raftLog.appliedTo(applied);
    this.reduceUncommittedSize(rd.committedEntries);

    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1]!;
      this.raftLog.stableTo(e.index, e.term);
    }
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) this.raftLog.stableSnapTo(rd.snapshot.metadata.index);
  }

  /** Advances the commit index to what a quorum acknowledged, if that entry is of the current term. */
  maybeCommit(): boolean {
    const mci = this.prs.committed();
    return this.raftLog.maybeCommit(mci, this.term);
  }

  /** Resets the volatile state for a new term (or role) at `term`. */
  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;

    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();

    this.abortLeaderTransfer();

    this.prs.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    this.prs.visit((id, pr) => {
      const fresh = new Progress({
        match: id === this.id ? lastIndex : 0,
        next: lastIndex + 1,
        inflights: new Inflights(this.prs.maxInflight, this.prs.maxInflightBytes),
        isLearner: pr.isLearner,
      });
      this.prs.progress.set(id, fresh);
    });

    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.uncommittedCount = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
  }

  /**
   * Appends proposed entries at the end of the leader's log, in the current term (the given entries are not
   * modified; new ones are created). Returns false, appending nothing, if they exceed the uncommitted bounds.
   */
  appendEntry(es: readonly Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    const ents = es.map((e, i) => ({ term: this.term, index: li + 1 + i, type: e.type, data: e.data }));
    // Track the size of this uncommitted proposal.
    if (!this.increaseUncommittedSize(ents)) {
      this.logger.debug(`${hex(this.id)} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    // Use the latest "last" index after truncate/append.
    const newLast = this.raftLog.append(ents);
    this.prs.progress.get(this.id)!.maybeUpdate(newLast);
    // Regardless of maybeCommit's return, our caller will call bcastAppend.
    this.maybeCommit();
    return true;
  }

  /** One tick: followers and candidates count towards an election, the leader towards heartbeats and check-quorum. */
  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** Run by followers and candidates: campaign once the randomized election timeout has passed. */
  tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(message({ type: MessageType.MsgHup, from: this.id }));
    }
  }

  /** Run by the leader: heartbeat every heartbeatTimeout, check quorum every electionTimeout. */
  tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;

    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(message({ type: MessageType.MsgCheckQuorum, from: this.id }));
      // If the transfer did not complete within an election timeout, this member stays leader.
      if (this.state === StateType.Leader && this.leadTransferee !== None) this.abortLeaderTransfer();
    }

    if (this.state !== StateType.Leader) return;

    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: MessageType.MsgBeat, from: this.id }));
    }
  }

  becomeFollower(term: number, lead: bigint): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
    this.logger.info(`${hex(this.id)} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    assert(this.state !== StateType.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.logger.info(`${hex(this.id)} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    assert(this.state !== StateType.Leader, 'invalid transition [leader -> pre-candidate]');
    // Becoming a pre-candidate changes the step function and state, but nothing else: in particular it does not
    // increase the term or change the vote.
    this.prs.resetVotes();
    this.lead = None;
    this.state = StateType.PreCandidate;
    this.logger.info(`${hex(this.id)} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    assert(this.state !== StateType.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    // Followers enter replicate mode once probed successfully; the leader trivially is (reset() set its match).
    this.prs.progress.get(this.id)!.becomeReplicate();

    // Conservatively, treat any entry in the log as a possibly pending conf change: no new conf change until all of
    // them are applied (scanning the tail would be costly).
    this.pendingConfIndex = this.raftLog.lastIndex();

    const emptyEnt: Entry = { term: 0, index: 0, type: EntryType.Normal, data: Buffer.alloc(0) };
    assert(this.appendEntry([emptyEnt]), 'empty entry was dropped');
    // The initial empty entry does not count towards the uncommitted quota, so that one entry larger than the quota
    // is still accepted when nothing else is uncommitted.
    this.reduceUncommittedSize([emptyEnt]);
    this.logger.info(`${hex(this.id)} became leader at term ${this.term}`);
  }

  /** Starts a campaign of kind t. Only call this when the transition is legitimate (promotable). */
  campaign(t: CampaignType): void {
    if (!this.promotable()) {
      // Callers check; this should not be hit.
      this.logger.warn(`${hex(this.id)} is unpromotable; campaign() should have been called`);
    }
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-votes are requested for the next term, before the term is incremented.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteRespMsgType(voteMsg), true).result === VoteResult.VoteWon) {
      // Won by voting for ourselves: a single-voter cluster. Advance to the next state.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    for (const id of this.prs.voterNodes()) {
      if (id === this.id) continue;
      this.logger.info(
        `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}] sent ${MessageType[voteMsg]} request to ${hex(id)} at term ${this.term}`,
      );
      this.send(
        message({
          type: voteMsg,
          to: id,
          term,
          index: this.raftLog.lastIndex(),
          logTerm: this.raftLog.lastTerm(),
          ...(t === CampaignType.Transfer ? { context: campaignTransferContext } : {}),
        }),
      );
    }
  }

  /** Records a (pre-)vote from id and returns the tally. */
  poll(id: bigint, t: MessageType, v: boolean): { granted: number; rejected: number; result: VoteResult } {
    if (v) this.logger.info(`${hex(this.id)} received ${MessageType[t]} from ${hex(id)} at term ${this.term}`);
    else this.logger.info(`${hex(this.id)} received ${MessageType[t]} rejection from ${hex(id)} at term ${this.term}`);
    this.prs.recordVote(id, v);
    return this.prs.tallyVotes();
  }

  /**
   * Steps a message. Throws ProposalDroppedError for a MsgProp that cannot be appended or forwarded; everything else
   * that cannot be acted on is ignored (and logged), as in etcd.
   */
  step(m: Message): void {
    // Handle the message term, which may make us step down to follower.
    if (m.term === 0) {
      // Local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = m.context.equals(campaignTransferContext);
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Within the minimum election timeout of hearing from a current leader, a member neither updates its term
          // nor grants its vote (Raft thesis §4.2.3).
          this.logger.info(
            `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] ignored ${MessageType[m.type]} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired (remaining ticks: ${this.electionTimeout - this.electionElapsed})`,
          );
          return;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a PreVote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // Pre-votes are requested for a term in our future. If granted, we increment our term once we have a quorum;
        // if not, the term comes from the member that rejected us, and we become its follower below.
      } else {
        this.logger.info(
          `${hex(this.id)} [term: ${this.term}] received a ${MessageType[m.type]} message with higher term from ${hex(m.from)} [term: ${m.term}]`,
        );
        if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, None);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A leader of a lower term: maybe delayed messages, or this member advanced its term in a partition and can
        // neither win an election nor rejoin the majority on the old term. With check-quorum, votes of higher terms
        // may be ignored, so answer with our term to make that leader step down. (Pre-vote avoids the disruption of
        // the higher term in the first place.)
        this.send(message({ type: MessageType.MsgAppResp, to: m.from }));
      } else if (m.type === MessageType.MsgPreVote) {
        // Before pre-vote was enabled, a candidate with a higher term but a shorter log may exist; without this
        // rejection the cluster could deadlock.
        this.logger.info(
          `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] rejected ${MessageType[m.type]} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
        );
        this.send(message({ type: MessageType.MsgPreVoteResp, to: m.from, term: this.term, reject: true }));
      } else {
        this.logger.info(
          `${hex(this.id)} [term: ${this.term}] ignored a ${MessageType[m.type]} message with lower term from ${hex(m.from)} [term: ${m.term}]`,
        );
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        switch (this.state) {
          case StateType.Leader:
            this.stepLeader(m);
            return;
          case StateType.Candidate:
          case StateType.PreCandidate:
            this.stepCandidate(m);
            return;
          case StateType.Follower:
            this.stepFollower(m);
            return;
        }
    }
  }

  /**
   * Starts a campaign of kind t if this member may: it is not the leader, it is a voter, and it has no committed but
   * unapplied conf change (its configuration is about to change). etcd 3.5's hup(); in 3.4 only MsgHup checked.
   */
  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) {
      this.logger.debug(`${hex(this.id)} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${hex(this.id)} is unpromotable and can not campaign`);
      return;
    }
    // Deviation from etcd: scan from the first index when applied is below it (a snapshot was restored but not yet
    // acknowledged); the snapshot carries its configuration, and etcd would panic on the compacted range.
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    if (this.raftLog.committed >= lo) {
      const ents = this.raftLog.slice(lo, this.raftLog.committed + 1, noLimit);
      const n = numOfPendingConf(ents);
      if (n !== 0) {
        this.logger.warn(`${hex(this.id)} cannot campaign at term ${this.term} since there are still ${n} pending configuration changes to apply`);
        return;
      }
    }
    this.logger.info(`${hex(this.id)} is starting a new election at term ${this.term}`);
    this.campaign(t);
  }

  private handleVoteRequest(m: Message): void {
    // We can vote if this is a repeat of a vote we've already cast...
    const canVote =
      this.vote === m.from ||
      // ...we haven't voted and we don't think there's a leader yet in this term...
      (this.vote === None && this.lead === None) ||
      // ...or this is a PreVote for a future term...
      (m.type === MessageType.MsgPreVote && m.term > this.term);
    // ...and we believe the candidate is up to date.
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      // Learners must be allowed to cast votes: a learner may have been promoted (by a conf change committed on a
      // quorum that excludes it) without knowing yet, and its vote may be needed (etcd raft.go explains in detail).
      this.logger.info(
        `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] cast ${MessageType[m.type]} for ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
      );
      // Respond with the message's term, not ours: for pre-votes they differ, and a pre-candidate ignores responses
      // from terms other than the one it asked for.
      this.send(message({ type: voteRespMsgType(m.type), to: m.from, term: m.term }));
      if (m.type === MessageType.MsgVote) {
        // Only record real votes.
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info(
        `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] rejected ${MessageType[m.type]} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
      );
      this.send(message({ type: voteRespMsgType(m.type), to: m.from, term: this.term, reject: true }));
    }
  }

  private stepLeader(m: Message): void {
    // These message types do not require a progress for m.from.
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum: {
        // The leader always sees itself as active (if it is still in the configuration).
        const self = this.prs.progress.get(this.id);
        if (self !== undefined) self.recentActive = true;
        if (!this.prs.quorumActive()) {
          this.logger.warn(`${hex(this.id)} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, None);
        }
        // Mark everyone but ourselves inactive for the next check.
        this.prs.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      }
      case MessageType.MsgProp:
        this.stepLeaderProp(m);
        return;
      case MessageType.MsgReadIndex:
        // Only one voter (the leader): its commit index is trivially current.
        if (this.prs.isSingleton()) {
          const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
          if (resp !== undefined) this.send(resp);
          return;
        }
        // Postpone until this leader has committed an entry of its term: before that its commit index may lag.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.sendMsgReadIndexResponse(m);
        return;
      default:
        break;
    }

    // All other message types require a progress for m.from.
    const pr = this.prs.progress.get(m.from);
    if (pr === undefined) {
      this.logger.debug(`${hex(this.id)} no progress available for ${hex(m.from)}`);
      return;
    }
    switch (m.type) {
      case MessageType.MsgAppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.MsgHeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressStateType.StateSnapshot) return;
        if (!m.reject) {
          pr.becomeProbe();
          this.logger.debug(`${hex(this.id)} snapshot succeeded, resumed sending replication messages to ${hex(m.from)} [${pr.toString()}]`);
        } else {
          // The order matters: otherwise we would probe from the snapshot index although it was never applied.
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
          this.logger.debug(`${hex(this.id)} snapshot failed, resumed sending replication messages to ${hex(m.from)} [${pr.toString()}]`);
        }
        // After success, wait for the follower's MsgAppResp before the next MsgApp; after failure, wait a heartbeat
        // interval before retrying.
        pr.probeSent = true;
        return;
      case MessageType.MsgUnreachable:
        // During optimistic replication, an unreachable follower has most likely lost a MsgApp.
        if (pr.state === ProgressStateType.StateReplicate) pr.becomeProbe();
        this.logger.debug(`${hex(this.id)} failed to send message to ${hex(m.from)} because it is unreachable [${pr.toString()}]`);
        return;
      case MessageType.MsgTransferLeader:
        this.handleTransferLeader(m, pr);
        return;
      default:
        return;
    }
  }

  private stepLeaderProp(m: Message): void {
    assert(m.entries.length > 0, `${hex(this.id)} stepped empty MsgProp`);
    if (!this.prs.progress.has(this.id)) {
      // This leader was removed from the configuration: drop new proposals.
      throw new ProposalDroppedError();
    }
    if (this.leadTransferee !== None) {
      this.logger.debug(`${hex(this.id)} [term ${this.term}] transfer leadership to ${hex(this.leadTransferee)} is in progress; dropping proposal`);
      throw new ProposalDroppedError();
    }
    let entries = m.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type !== EntryType.ConfChange) continue;
      const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
      if (alreadyPending) {
        let cc = '<undecodable>';
        try {
          const d = decodeConfChange(e.data);
          cc = `${d.type}:${hex(d.nodeId)}`;
        } catch {
          // Described only for the log line.
        }
        this.logger.info(
          `${hex(this.id)} ignoring conf change ${cc} at config ${describeTrackerConfig(this.prs.config)}: possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`,
        );
        // Replace it by an empty normal entry (copying: the proposer's array is not ours to change).
        if (entries === m.entries) entries = entries.slice();
        entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: Buffer.alloc(0) };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(entries)) throw new ProposalDroppedError();
    this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      this.logger.debug(`${hex(this.id)} received MsgAppResp(MsgApp was rejected, lastindex: ${m.rejectHint}) from ${hex(m.from)} for index ${m.index}`);
      if (pr.maybeDecrTo(m.index, m.rejectHint)) {
        this.logger.debug(`${hex(this.id)} decreased progress of ${hex(m.from)} to [${pr.toString()}]`);
        if (pr.state === ProgressStateType.StateReplicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressStateType.StateProbe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressStateType.StateSnapshot && pr.match >= pr.pendingSnapshot) {
      // Recovered from needing a snapshot: back to replicating via probing (which accounts for the snapshot), so that
      // the status is consistent right away rather than at the next round of appends.
      this.logger.debug(`${hex(this.id)} recovered from needing snapshot, resumed sending replication messages to ${hex(m.from)} [${pr.toString()}]`);
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressStateType.StateReplicate) {
      pr.inflights.freeLE(m.index);
    }

    if (this.maybeCommit()) {
      // The commit index advanced in this term, so pending read requests can be answered.
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (oldPaused) {
      // It was paused, so it may be missing the latest commit index: send it.
      this.sendAppend(m.from);
    }
    // Flow control was updated above, which may allow several (size-limited) appends at once, e.g. when moving from
    // probe to replicate or when freeLE released several messages. Send as many as allowed, without empty ones.
    while (this.maybeSendAppend(m.from, false)) {
      // Keep sending.
    }
    // A leadership transfer is waiting for this follower to catch up.
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      this.logger.info(`${hex(this.id)} sent MsgTimeoutNow to ${hex(m.from)} after received MsgAppResp`);
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;

    // Free one slot of a full inflight window so that replication can make progress.
    if (pr.state === ProgressStateType.StateReplicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);

    if (this.readOnly.option !== ReadOnlyOption.Safe || m.context.length === 0) return;

    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined || this.prs.config.voters.voteResult(acks) !== VoteResult.VoteWon) return;

    for (const rs of this.readOnly.advance(m)) {
      const req = rs.req;
      if (req.from === None || req.from === this.id) {
        // From the local member.
        this.readStates.push({ index: rs.index, requestCtx: req.entries[0]!.data });
      } else {
        this.send(message({ type: MessageType.MsgReadIndexResp, to: req.from, index: rs.index, entries: req.entries }));
      }
    }
  }

  private handleTransferLeader(m: Message, pr: Progress): void {
    if (pr.isLearner) {
      this.logger.debug(`${hex(this.id)} is learner. Ignored transferring leadership`);
      return;
    }
    const leadTransferee = m.from;
    const lastLeadTransferee = this.leadTransferee;
    if (lastLeadTransferee !== None) {
      if (lastLeadTransferee === leadTransferee) {
        this.logger.info(
          `${hex(this.id)} [term ${this.term}] transfer leadership to ${hex(leadTransferee)} is in progress, ignores request to same node ${hex(leadTransferee)}`,
        );
        return;
      }
      this.abortLeaderTransfer();
      this.logger.info(`${hex(this.id)} [term ${this.term}] abort previous transferring leadership to ${hex(lastLeadTransferee)}`);
    }
    if (leadTransferee === this.id) {
      this.logger.debug(`${hex(this.id)} is already leader. Ignored transferring leadership to self`);
      return;
    }
    // Transfer leadership to a third party.
    this.logger.info(`${hex(this.id)} [term ${this.term}] starts to transfer leadership to ${hex(leadTransferee)}`);
    // The transfer should finish within one election timeout, so restart that count.
    this.electionElapsed = 0;
    this.leadTransferee = leadTransferee;
    if (pr.match === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(leadTransferee);
      this.logger.info(`${hex(this.id)} sends MsgTimeoutNow to ${hex(leadTransferee)} immediately as ${hex(leadTransferee)} already has up-to-date log`);
    } else {
      this.sendAppend(leadTransferee);
    }
  }

  /** Shared by StateCandidate and StatePreCandidate; they differ in which vote response they count. */
  private stepCandidate(m: Message): void {
    // Only count responses to our own candidacy: as a candidate we may still get stale MsgPreVoteResp of this term
    // from our pre-candidacy.
    const myVoteRespType = this.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        this.logger.info(`${hex(this.id)} no leader at term ${this.term}; dropping proposal`);
        throw new ProposalDroppedError();
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from); // Always m.term === this.term.
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from); // Always m.term === this.term.
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from); // Always m.term === this.term.
        this.handleSnapshot(m);
        return;
      case myVoteRespType: {
        const { granted, rejected, result } = this.poll(m.from, m.type, !m.reject);
        this.logger.info(`${hex(this.id)} has received ${granted} ${MessageType[m.type]} votes and ${rejected} vote rejections`);
        if (result === VoteResult.VoteWon) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(CampaignType.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === VoteResult.VoteLost) {
          // A MsgPreVoteResp carries the pre-candidate's future term (m.term > this.term): keep ours.
          this.becomeFollower(this.term, None);
        }
        return;
      }
      case MessageType.MsgTimeoutNow:
        this.logger.debug(`${hex(this.id)} [term ${this.term} state ${this.state}] ignored MsgTimeoutNow from ${hex(m.from)}`);
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === None) {
          this.logger.info(`${hex(this.id)} no leader at term ${this.term}; dropping proposal`);
          throw new ProposalDroppedError();
        } else if (this.disableProposalForwarding) {
          this.logger.info(`${hex(this.id)} not forwarding to leader ${hex(this.lead)} at term ${this.term}; dropping proposal`);
          throw new ProposalDroppedError();
        }
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.lead === None) {
          this.logger.info(`${hex(this.id)} no leader at term ${this.term}; dropping leader transfer msg`);
          return;
        }
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.MsgTimeoutNow:
        this.logger.info(`${hex(this.id)} [term ${this.term}] received MsgTimeoutNow from ${hex(m.from)} and starts an election to get leadership.`);
        // Leadership transfers never use pre-vote even if preVote is on: we are not recovering from a partition, so
        // the extra round trip is not needed. Through hup(), like etcd 3.5: etcd 3.4 campaigned here without checking
        // for unapplied conf changes, so a transferee still replaying its log after a restart could lead with a
        // configuration several changes old, whose quorums need not intersect the current ones (found by the
        // simulator, seed 27444: a leader committed with a majority of a stale configuration).
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.MsgReadIndex:
        if (this.lead === None) {
          this.logger.info(`${hex(this.id)} no leader at term ${this.term}; dropping index reading msg`);
          return;
        }
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) {
          this.logger.error(`${hex(this.id)} invalid format of MsgReadIndexResp from ${hex(m.from)}, entries count: ${m.entries.length}`);
          return;
        }
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
      default:
        return;
    }
  }

  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(message({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
      return;
    }
    const mlastIndex = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (mlastIndex !== undefined) {
      this.send(message({ type: MessageType.MsgAppResp, to: m.from, index: mlastIndex }));
    } else {
      this.logger.debug(
        `${hex(this.id)} [logterm: ${this.raftLog.zeroTermOnErrCompacted(m.index)}, index: ${m.index}] rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${hex(m.from)}`,
      );
      this.send(message({ type: MessageType.MsgAppResp, to: m.from, index: m.index, reject: true, rejectHint: this.raftLog.lastIndex() }));
    }
  }

  handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(message({ type: MessageType.MsgHeartbeatResp, to: m.from, context: m.context }));
  }

  handleSnapshot(m: Message): void {
    // A MsgSnap without a snapshot is treated as an empty (obsolete) one, as Go's zero value would be.
    const snap = m.snapshot ?? emptySnapshot;
    const sindex = snap.metadata.index;
    const sterm = snap.metadata.term;
    if (this.restore(snap)) {
      this.logger.info(`${hex(this.id)} [commit: ${this.raftLog.committed}] restored snapshot [index: ${sindex}, term: ${sterm}]`);
      this.send(message({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.logger.info(`${hex(this.id)} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${sindex}, term: ${sterm}]`);
      this.send(message({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
    }
  }

  /**
   * Restores the log and the configuration from a snapshot. Returns false if the snapshot was ignored: obsolete (at
   * or below the commit index), or its entry is already in our log (then only the commit index moves), or it does
   * not include this member.
   */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defense in depth: a leader must never apply a snapshot. Step down into the next term rather than proceed.
      this.logger.warn(`${hex(this.id)} attempted to restore snapshot as leader; should never happen`);
      this.becomeFollower(this.term + 1, None);
      return false;
    }
    // More defense in depth: a snapshot that does not include this member would leave it without a Progress.
    const cs = s.metadata.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) {
      this.logger.warn(`${hex(this.id)} attempted to restore snapshot but it is not in the ConfState ${JSON.stringify(cs, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}; should never happen`);
      return false;
    }

    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      this.logger.info(
        `${hex(this.id)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] fast-forwarded commit to snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }

    this.raftLog.restore(s);

    // Reset the configuration and add the (possibly updated) members anew.
    this.prs = new ProgressTracker(this.prs.maxInflight, this.prs.maxInflightBytes);
    const { config, progress } = restoreConfState(this.prs, this.raftLog.lastIndex(), cs);
    const switched = this.switchToConfig(config, progress);
    assert(confStatesEquivalent(cs, switched), 'restored configuration differs from the snapshot ConfState');

    const pr = this.prs.progress.get(this.id)!;
    pr.maybeUpdate(pr.next - 1);

    this.logger.info(
      `${hex(this.id)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
    );
    return true;
  }

  /** Whether this member may become leader: it is a voter in the active configuration. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner;
  }

  /** Applies a committed conf change to the configuration; returns the new ConfState. Throws ConfChangeError. */
  applyConfChange(cc: ConfChange): ConfState {
    const changer = new Changer(this.prs, this.raftLog.lastIndex());
    const { config, progress } = changer.simple([confChangeToSingle(cc)]);
    return this.switchToConfig(config, progress);
  }

  /**
   * Installs a configuration (from a ConfState or a conf change) and reacts to it: the leader commits what the new
   * quorum allows and probes new members, and aborts a transfer to a removed member.
   */
  switchToConfig(cfg: TrackerConfig, prs: ProgressMap): ConfState {
    this.prs.config = cfg;
    this.prs.progress = prs;

    this.logger.info(`${hex(this.id)} switched to configuration ${describeTrackerConfig(this.prs.config)}`);
    const cs = this.prs.confState();
    const pr = this.prs.progress.get(this.id);

    // Update whether this member is a learner, resetting to false when it was removed.
    this.isLearner = pr !== undefined && pr.isLearner;

    if ((pr === undefined || this.isLearner) && this.state === StateType.Leader) {
      // This leader was removed or demoted. As in etcd 3.4 it stays leader of the term (it drops new proposals) until
      // it loses check-quorum or hears of a higher term; it still replicates and commits what it has.
      return cs;
    }

    // The rest only matters for a leader with voters.
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;

    if (this.maybeCommit()) {
      // More is committed under the new configuration: tell everyone in it.
      this.bcastAppend();
    } else {
      // Still probe newly added members rather than letting them wait a heartbeat interval or the next proposal.
      this.prs.visit((id) => {
        if (id === this.id) return;
        this.maybeSendAppend(id, false);
      });
    }
    // If the transferee was removed, abort the transfer.
    if (this.leadTransferee !== None && !this.prs.progress.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  loadState(state: HardState): void {
    assert(
      state.commit <= this.raftLog.lastIndex(),
      `${hex(this.id)} state.commit ${state.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    if (state.commit < this.raftLog.committed) {
      // Deviation from etcd (which panics here): the snapshot in Storage is newer than the persisted commit index.
      // That happens when a crash falls between persisting a received snapshot and persisting the HardState of the
      // same Ready (etcd #10219; etcd's server avoids it by ignoring snapshot files newer than the WAL's commit,
      // wal.ValidSnapshotEntries). A snapshot is committed by construction (taken of applied state, or sent by a
      // leader from its applied state), so the commit index simply stays at the snapshot's index. Found by the
      // simulator.
      this.logger.warn(`${hex(this.id)} state.commit ${state.commit} is below the snapshot index ${this.raftLog.committed}; keeping the latter`);
    } else {
      this.raftLog.committed = state.commit;
    }
    this.term = state.term;
    this.vote = state.vote;
  }

  /** Whether electionElapsed has reached the randomized election timeout. */
  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.rand.intn(this.electionTimeout);
  }

  sendTimeoutNow(to: bigint): void {
    this.send(message({ type: MessageType.MsgTimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  /** Whether this member has committed an entry of its current term. */
  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnErrCompacted(this.raftLog.committed) === this.term;
  }

  /**
   * The answer to a read request at readIndex: a ReadState for the local member (returns undefined), or a
   * MsgReadIndexResp for the follower that forwarded it.
   */
  responseToReadIndexReq(req: Message, readIndex: number): Message | undefined {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0]!.data });
      return undefined;
    }
    return message({ type: MessageType.MsgReadIndexResp, to: req.from, index: readIndex, entries: req.entries });
  }

  /**
   * Whether proposing ents keeps the uncommitted tail within its bounds; if so, accounts for them. When nothing is
   * uncommitted any proposal is accepted, so one oversized proposal cannot block the leader forever.
   */
  increaseUncommittedSize(ents: readonly Entry[]): boolean {
    const s = payloadsSizeBytes(ents);
    if (this.uncommittedSize > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    if (this.uncommittedCount > 0 && this.uncommittedCount + ents.length > this.maxUncommittedEntries) return false;
    this.uncommittedSize += s;
    this.uncommittedCount += ents.length;
    return true;
  }

  /** Accounts for newly committed (applied) entries. The estimate may undercount, so it saturates at 0. */
  reduceUncommittedSize(ents: readonly Entry[]): void {
    // Fast path for followers, which do not track the bound.
    if (this.uncommittedSize === 0 && this.uncommittedCount === 0) return;
    const s = payloadsSizeBytes(ents);
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
    this.uncommittedCount = ents.length > this.uncommittedCount ? 0 : this.uncommittedCount - ents.length;
  }

  private releasePendingReadIndexMessages(): void {
    if (!this.committedEntryInCurrentTerm()) {
      this.logger.error('pending MsgReadIndex should be released only after first commit in current term');
      return;
    }
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  private sendMsgReadIndexResponse(m: Message): void {
    switch (this.readOnly.option) {
      case ReadOnlyOption.Safe:
        // Confirm leadership with a heartbeat round carrying the request's context; the leader acks itself.
        this.readOnly.addRequest(this.raftLog.committed, m);
        this.readOnly.recvAck(this.id, m.entries[0]!.data);
        this.bcastHeartbeatWithCtx(m.entries[0]!.data);
        return;
      case ReadOnlyOption.LeaseBased: {
        const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
        if (resp !== undefined) this.send(resp);
        return;
      }
    }
  }
}

function numOfPendingConf(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) if (e.type === EntryType.ConfChange) n++;
  return n;
}

/** IDs print in hex, as etcd prints them (%x). */
export function hex(id: bigint): string {
  return id.toString(16);
}
