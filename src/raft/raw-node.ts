// The Raft core's synchronous interface (etcd raft rawnode.go, node.go's Ready): ticks, messages, proposals and read
// requests go in; a Ready batch comes out; advance() acknowledges it. No I/O, no timers, no clock: time exists only as
// ticks, and randomness only through the injected Prng. The node loop in src/server owns all I/O.

import { assert } from '../util/assert';
import { encodeConfChange } from './confchange/codec';
import { StepLocalMsgError, StepPeerNotFoundError } from './errors';
import { None, Raft, type RaftConfig, type SoftState, StateType } from './raft';
import type { ReadState } from './read-only';
import type { ProgressStateType } from './tracker/progress';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
  isEmptyHardState,
  isHardStateEqual,
  isLocalMsg,
  isResponseMsg,
  message,
} from './types';

/**
 * A batch of work for the node loop (etcd raft.Ready, v3.4 semantics). All fields are read-only.
 *
 * Durability contract. For each Ready, in this order:
 *   1. If this member is the leader (softState, or the last one seen, says so), `messages` may be sent right away,
 *      in parallel with the disk write (Raft thesis §10.2.1: the leader's own append is counted, but its commit only
 *      becomes visible in a later Ready, after this one's write completed).
 *   2. Persist `snapshot` (if any), then `entries` and `hardState` (if any), with an fsync when `mustSync`. Then make
 *      them visible to the core: MemoryStorage.applySnapshot(snapshot), append(entries), hardState = hardState.
 *   3. If not the leader, send `messages` only now: they may promise what was just persisted (a vote, an append).
 *   4. Apply the snapshot data (if any), then `committedEntries`, in order; for each ConfChange entry call
 *      applyConfChange. Serve `readStates` once the applied index reaches each one's index.
 *   5. advance(rd).
 * Exactly one Ready may be outstanding: ready() must not be called again before advance(). Between the two, the node
 * may still be ticked and stepped (etcd's node does the same); the effects appear in the next Ready.
 */
export interface Ready {
  /** The volatile state, if it changed since the last Ready. Need not be persisted. */
  softState?: SoftState;
  /** The HardState to persist, if it changed since the last Ready. */
  hardState?: HardState;
  /** Answers to ReadIndex requests: serve each read once the applied index reaches its index. */
  readStates: ReadState[];
  /** Entries to persist (they may replace a suffix of the stable log). */
  entries: Entry[];
  /** A snapshot to persist and apply (received from the leader). */
  snapshot?: Snapshot;
  /** Entries committed by a quorum, to apply in order (they may include `entries` of this same Ready). */
  committedEntries: Entry[];
  /**
   * Messages to send, after persisting unless this member is the leader (see above). For a MsgSnap, the node loop
   * streams the snapshot data and must call reportSnapshot() with the outcome.
   */
  messages: Message[];
  /** Whether hardState/entries must be fsynced before continuing (etcd MustSync). */
  mustSync: boolean;
}

/**
 * Whether the HardState change and the number of entries require a synchronous write (etcd MustSync): currentTerm,
 * votedFor and the log must be on stable storage before responding to RPCs (Raft paper, Figure 2); the commit index
 * need not be.
 */
export function mustSync(st: HardState, prevst: HardState, entsnum: number): boolean {
  return entsnum !== 0 || st.vote !== prevst.vote || st.term !== prevst.term;
}

/** The outcome of sending a snapshot, reported with reportSnapshot (etcd SnapshotStatus). */
export enum SnapshotStatus {
  Finish = 1,
  Failure = 2,
}

/** The leader's view of one member (a copy). */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressStateType;
  isLearner: boolean;
  recentActive: boolean;
  paused: boolean;
  pendingSnapshot: number;
  inflightCount: number;
  inflightBytes: number;
}

/** A snapshot of a node's state (etcd raft.Status). `progress` is set on the leader only. */
export interface Status {
  id: bigint;
  term: number;
  vote: bigint;
  commit: number;
  applied: number;
  lead: bigint;
  raftState: StateType;
  lastIndex: number;
  leadTransferee: bigint;
  config: ConfState;
  progress?: Map<bigint, ProgressStatus>;
}

/**
 * The application-facing Raft node (etcd RawNode). Not thread-safe by nature: call it from one logical thread (the
 * node loop and whatever it interleaves with synchronously).
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  // The Ready handed out and not yet advanced.
  private outstanding: Ready | undefined = undefined;
  // Compatibility: read requests made locally while no leader is known, held until one is (see readIndex).
  private heldReads: Buffer[] = [];
  private static readonly maxHeldReads = 4096;

  /** Builds a node from the configuration and the state in config.storage. Throws an assertion error if invalid. */
  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  get id(): bigint {
    return this.raft.id;
  }

  /** Advances the logical clock by one tick: election timeouts, heartbeats and check-quorum count ticks. */
  tick(): void {
    this.raft.tick();
    this.releaseHeldReads();
  }

  /**
   * Counts a tick towards the election timeout only, without heartbeats or elections (etcd TickQuiesced). Use with
   * care: it subverts the state machine.
   */
  tickQuiesced(): void {
    this.raft.electionElapsed++;
  }

  /**
   * Moves the election clock of a follower to one tick before its (randomized) timeout, so that the next tick
   * campaigns (the server's fast start for a fresh single member; etcd advanceTicks). No effect on a leader.
   */
  advanceTicksForElection(): void {
    if (this.raft.state !== StateType.Leader) this.raft.electionElapsed = this.raft.randomizedElectionTimeout - 1;
  }

  /** Starts an election (with pre-vote if configured); a no-op on the leader or a non-voter. */
  campaign(): void {
    this.raft.step(message({ type: MessageType.MsgHup }));
    this.releaseHeldReads();
  }

  /**
   * Proposes data for the log. Throws ProposalDroppedError when there is no leader, forwarding is disabled, a
   * transfer is in progress or the uncommitted tail is over its bound. A proposal that is accepted may still be lost
   * (e.g. forwarded to a leader that loses its leadership): the proposer must watch for it in committedEntries and
   * retry on its own timeout.
   */
  propose(data: Buffer, type: EntryType = EntryType.Normal): void {
    this.raft.step(message({ type: MessageType.MsgProp, from: this.raft.id, entries: [{ term: 0, index: 0, type, data }] }));
  }

  /**
   * Proposes a membership change (a ConfChange entry). The leader replaces it with an empty entry if another change
   * is still unapplied; apply it with applyConfChange when it appears in committedEntries.
   */
  proposeConfChange(cc: ConfChange): void {
    this.propose(encodeConfChange(cc), EntryType.ConfChange);
  }

  /**
   * Applies a committed membership change to this node's configuration and returns the resulting ConfState, to
   * record with the next snapshot. Must be called for every ConfChange entry in committedEntries, in order. Throws
   * ConfChangeError for a change that cannot be applied (e.g. removing the last voter).
   */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Steps a message received from a peer. Throws StepLocalMsgError for local message types, StepPeerNotFoundError
   * for a response from a member this node does not track, and ProposalDroppedError for a MsgProp it cannot accept.
   */
  step(m: Message): void {
    // Ignore unexpected local messages received over the network.
    if (isLocalMsg(m.type)) throw new StepLocalMsgError();
    if (this.raft.prs.progress.has(m.from) || !isResponseMsg(m.type)) {
      this.raft.step(m);
      this.releaseHeldReads();
      return;
    }
    throw new StepPeerNotFoundError();
  }

  /**
   * Requests a linearizable read point; the answer arrives as a ReadState (with this requestCtx) in a later Ready. The
   * request can be lost (e.g. to a leader change): the caller retries on its own timeout.
   *
   * Compatibility: etcd drops a ReadIndex made while no leader is known; this node holds it (up to 4096) and steps it
   * once a leader is known, because the server's read loop (src/server) issues one request per round and waits.
   */
  readIndex(requestCtx: Buffer): void {
    if (this.raft.lead === None) {
      if (this.heldReads.length < RawNode.maxHeldReads) this.heldReads.push(requestCtx);
      return;
    }
    this.raft.step(message({ type: MessageType.MsgReadIndex, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: requestCtx }] }));
  }

  /** Asks the leader to transfer leadership to transferee (etcd TransferLeader). */
  transferLeader(transferee: bigint): void {
    this.raft.step(message({ type: MessageType.MsgTransferLeader, from: transferee }));
  }

  /** Reports that the last send to id failed (the leader then probes it instead of pipelining). */
  reportUnreachable(id: bigint): void {
    this.raft.step(message({ type: MessageType.MsgUnreachable, from: id }));
  }

  /**
   * Reports the outcome of sending a snapshot to id (after a MsgSnap in Ready.messages). Until reported, the leader
   * sends id nothing more; on failure it probes again after a heartbeat interval.
   */
  reportSnapshot(id: bigint, status: SnapshotStatus): void {
    this.raft.step(message({ type: MessageType.MsgSnapStatus, from: id, reject: status === SnapshotStatus.Failure }));
  }

  /**
   * Whether ready() would return anything (etcd HasReady). False while a Ready is outstanding (handed out by ready()
   * and not yet advanced), since only one may be: the node loop checks again after advance().
   */
  hasReady(): boolean {
    const r = this.raft;
    if (this.outstanding !== undefined) return false;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !isHardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.unstable.snapshot !== undefined && r.raftLog.unstable.snapshot.metadata.index !== 0) return true;
    if (r.msgs.length > 0 || r.raftLog.unstable.entries.length > 0 || r.raftLog.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  /**
   * The outstanding work, which the node loop must handle as the Ready contract says and then pass to advance().
   * Only one Ready may be outstanding.
   */
  ready(): Ready {
    assert(this.outstanding === undefined, 'ready() called again before advance()');
    const r = this.raft;
    const entries = r.raftLog.unstableEntries();
    const hs = r.hardState();
    const rd: Ready = {
      readStates: r.readStates,
      entries,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      mustSync: mustSync(hs, this.prevHardState, entries.length),
    };
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    if (!isHardStateEqual(hs, this.prevHardState)) rd.hardState = hs;
    if (r.raftLog.unstable.snapshot !== undefined) rd.snapshot = r.raftLog.unstable.snapshot;
    // Accept the Ready: its messages and read states are handed over.
    r.readStates = [];
    r.msgs = [];
    this.outstanding = rd;
    return rd;
  }

  /**
   * Acknowledges the outstanding Ready: its entries, snapshot and HardState are persisted (and in Storage), and its
   * committed entries (or snapshot) are applied.
   */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() of a Ready that is not the outstanding one');
    this.outstanding = undefined;
    if (rd.hardState !== undefined) this.prevHardState = rd.hardState;
    this.raft.advance(rd);
  }

  /** A snapshot of the node's state; per-member progress on the leader only. */
  status(): Status {
    const r = this.raft;
    const s: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.raftLog.committed,
      applied: r.raftLog.applied,
      lead: r.lead,
      raftState: r.state,
      lastIndex: r.raftLog.lastIndex(),
      leadTransferee: r.leadTransferee,
      config: r.prs.confState(),
    };
    if (r.state === StateType.Leader) {
      const progress = new Map<bigint, ProgressStatus>();
      r.prs.visit((id, pr) => {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          paused: pr.isPaused(),
          pendingSnapshot: pr.pendingSnapshot,
          inflightCount: pr.inflights.count(),
          inflightBytes: pr.inflights.bytes(),
        });
      });
      s.progress = progress;
    }
    return s;
  }

  private releaseHeldReads(): void {
    if (this.heldReads.length === 0 || this.raft.lead === None) return;
    const held = this.heldReads;
    this.heldReads = [];
    for (const ctx of held) this.readIndex(ctx);
  }
}
