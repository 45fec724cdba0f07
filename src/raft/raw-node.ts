// The Raft core's synchronous interface, shaped after etcd-io/raft's RawNode: ticks, proposals and read
// requests go in; a Ready batch comes out (hard state and entries to persist, committed entries to apply,
// read states to answer); advance() acknowledges it. No I/O, no timers, no clock: time exists only as ticks,
// and randomness only through the injected Prng.
//
// Scope today: a cluster whose only voter is this member (the single-member server of issue #2). Election,
// replication to peers, pre-vote, check-quorum, leader transfer, learners, membership changes and snapshots
// arrive with the Raft issue (#3); the Ready contract below is already the one they need, so the node loop
// in src/server does not change when peers arrive.
//
// Durability contract (etcd-io/raft, Ready): the node loop must persist `hardState` and `entries` (fsync
// when `mustSync`) before it applies `committedEntries` or sends anything that depends on them. With a
// single voter, an entry is committed as soon as it is appended, and the same Ready carries it both in
// `entries` and in `committedEntries`; persisting first and applying second keeps that safe.

import { assert } from '../util/assert';
import type { Prng } from '../util/prng';
import { MemoryStorage } from './storage';
import { type Entry, EntryType, type HardState } from './types';

export enum StateType {
  Follower = 'StateFollower',
  Candidate = 'StateCandidate',
  Leader = 'StateLeader',
}

export interface SoftState {
  lead: bigint;
  raftState: StateType;
}

/** A linearizable read request answered: reads may proceed once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Buffer;
}

export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  /** Entries to persist before anything else in this Ready is acted upon. */
  entries: Entry[];
  /** Entries committed and durable on a quorum, to apply in order. */
  committedEntries: Entry[];
  readStates: ReadState[];
  /** Whether `hardState`/`entries` must be fsynced before continuing (etcd raft's MustSync). */
  mustSync: boolean;
}

export interface RaftConfig {
  id: bigint;
  /** The voters at start. Today exactly one: this member. */
  voters: bigint[];
  electionTick: number;
  heartbeatTick: number;
  storage: MemoryStorage;
  /** The last applied index at start (the MVCC consistent index); committed entries after it are re-applied. */
  applied: number;
  rand: Prng;
  /** Bound on proposals waiting in the unstable log (etcd's MaxUncommittedEntriesSize, in entries here). */
  maxUncommittedEntries?: number;
}

export class ProposalDroppedError extends Error {
  override name = 'ErrProposalDropped';
  constructor() {
    super('raft proposal dropped');
  }
}

export class RawNode {
  readonly id: bigint;
  private readonly voters: bigint[];
  private readonly storage: MemoryStorage;
  private readonly rand: Prng;
  private readonly electionTick: number;
  private readonly maxUncommittedEntries: number;

  private term: number;
  private vote: bigint;
  private state: StateType = StateType.Follower;
  private lead = 0n;
  // Invariant: applied <= committed <= lastIndex().
  private committed: number;
  private applied: number;
  // Entries appended but not yet handed to the node loop for persistence, and those handed but not yet
  // acknowledged by advance() (etcd's unstable log).
  private unstable: Entry[] = [];
  private unstableOffset: number;
  private inProgress = 0;
  private electionElapsed = 0;
  private randomizedElectionTimeout = 0;
  private pendingReadIndex: Buffer[] = [];
  private readStates: ReadState[] = [];

  private prevHardState: HardState;
  private prevSoftState: SoftState;

  constructor(cfg: RaftConfig) {
    assert(cfg.voters.length === 1 && cfg.voters[0] === cfg.id, 'only a single-voter cluster is supported until the Raft issue lands');
    assert(cfg.electionTick > cfg.heartbeatTick, 'electionTick must be greater than heartbeatTick');
    this.id = cfg.id;
    this.voters = cfg.voters;
    this.storage = cfg.storage;
    this.rand = cfg.rand;
    this.electionTick = cfg.electionTick;
    this.maxUncommittedEntries = cfg.maxUncommittedEntries ?? 10_000;
    const hs = cfg.storage.hardState;
    this.term = hs.term;
    this.vote = hs.vote;
    this.committed = hs.commit;
    assert(cfg.applied <= this.committed || this.committed === 0, `applied ${cfg.applied} beyond committed ${this.committed}`);
    this.applied = Math.max(cfg.applied, this.storage.snapshot.index);
    this.unstableOffset = this.storage.lastIndex() + 1;
    this.prevHardState = { ...hs };
    this.prevSoftState = { lead: this.lead, raftState: this.state };
    this.resetRandomizedElectionTimeout();
  }

  // --- inputs ---

  /** One logical clock tick (etcd: heartbeat interval). A follower that hears nothing campaigns. */
  tick(): void {
    if (this.state === StateType.Leader) return;
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) this.campaign();
  }

  /** Move the election clock to one tick before timeout, so the next tick campaigns (etcd advanceTicks). */
  advanceTicksForElection(): void {
    if (this.state !== StateType.Leader) this.electionElapsed = this.randomizedElectionTimeout - 1;
  }

  campaign(): void {
    if (this.state === StateType.Leader) return;
    // Become candidate: new term, vote for self. With one voter, our own vote is a quorum.
    this.term++;
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.becomeLeader();
  }

  private becomeLeader(): void {
    this.state = StateType.Leader;
    this.lead = this.id;
    this.electionElapsed = 0;
    // A new leader appends an empty entry of its term; once committed, it knows the commit index of
    // earlier terms (Raft §5.4.2), and only then may it answer read-index requests.
    this.appendEntries([{ term: this.term, index: 0, type: EntryType.Normal, data: Buffer.alloc(0) }]);
  }

  /** Propose data for the log. Throws ProposalDroppedError when not leader or too much is uncommitted. */
  propose(data: Buffer, type: EntryType = EntryType.Normal): void {
    if (this.state !== StateType.Leader) throw new ProposalDroppedError();
    if (this.lastIndex() - this.committed >= this.maxUncommittedEntries) throw new ProposalDroppedError();
    this.appendEntries([{ term: this.term, index: 0, type, data }]);
  }

  /** Request a linearizable read point; the answer arrives as a ReadState in a later Ready. */
  readIndex(requestCtx: Buffer): void {
    this.pendingReadIndex.push(requestCtx);
    this.maybeAnswerReadIndex();
  }

  // --- Ready ---

  hasReady(): boolean {
    if (this.unstable.length > this.inProgress) return true;
    if (this.committed > this.applied && this.nextCommittedEntries().length > 0) return true;
    if (this.readStates.length > 0) return true;
    const hs = this.hardState();
    if (!sameHardState(hs, this.prevHardState)) return true;
    return this.lead !== this.prevSoftState.lead || this.state !== this.prevSoftState.raftState;
  }

  ready(): Ready {
    const entries = this.unstable.slice(this.inProgress);
    const committedEntries = this.nextCommittedEntries();
    const hs = this.hardState();
    const rd: Ready = {
      entries,
      committedEntries,
      readStates: this.readStates,
      mustSync: entries.length > 0 || hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote,
    };
    if (!sameHardState(hs, this.prevHardState)) rd.hardState = hs;
    if (this.lead !== this.prevSoftState.lead || this.state !== this.prevSoftState.raftState) {
      rd.softState = { lead: this.lead, raftState: this.state };
    }
    this.readStates = [];
    // Accepted for persistence: later Readys must not hand these out again.
    this.inProgress += entries.length;
    return rd;
  }

  /** Acknowledge a Ready: its entries are durable (now in storage) and its committed entries applied. */
  advance(rd: Ready): void {
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.softState) this.prevSoftState = rd.softState;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      assert(this.storage.lastIndex() >= last.index, 'advance: entries not appended to storage');
      const n = last.index - this.unstableOffset + 1;
      this.unstable = this.unstable.slice(n);
      this.unstableOffset += n;
      this.inProgress -= n;
      assert(this.inProgress >= 0, 'advance: more entries acknowledged than handed out');
    }
    if (rd.committedEntries.length > 0) {
      this.applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
    }
    this.maybeAnswerReadIndex();
  }

  // --- status ---

  status(): { id: bigint; term: number; vote: bigint; commit: number; applied: number; lead: bigint; raftState: StateType; lastIndex: number } {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.committed,
      applied: this.applied,
      lead: this.lead,
      raftState: this.state,
      lastIndex: this.lastIndex(),
    };
  }

  // --- internals ---

  private lastIndex(): number {
    return this.unstableOffset + this.unstable.length - 1;
  }

  private appendEntries(ents: Entry[]): void {
    let index = this.lastIndex();
    for (const e of ents) {
      e.index = ++index;
      e.term = this.term;
      this.unstable.push(e);
    }
    // Single voter: our own append is the quorum. The entries are committed now and will be persisted by
    // the node loop before they are applied (see the durability contract above).
    if (this.voters.length === 1) this.committed = this.lastIndex();
  }

  private nextCommittedEntries(): Entry[] {
    const hi = Math.min(this.committed, this.storage.lastIndex() + this.unstable.length);
    if (hi <= this.applied) return [];
    const out: Entry[] = [];
    const stableHi = Math.min(hi, this.storage.lastIndex());
    if (this.applied + 1 <= stableHi) out.push(...this.storage.entries(this.applied + 1, stableHi + 1));
    for (let i = Math.max(this.applied + 1, this.unstableOffset); i <= hi; i++) {
      const e = this.unstable[i - this.unstableOffset];
      if (e) out.push(e);
    }
    return out;
  }

  private maybeAnswerReadIndex(): void {
    if (this.state !== StateType.Leader || this.pendingReadIndex.length === 0) return;
    // Only after an entry of the current term is committed does the leader know the true commit index.
    const termOfCommitted = this.committed >= this.unstableOffset
      ? this.unstable[this.committed - this.unstableOffset]?.term
      : this.storage.term(this.committed);
    if (termOfCommitted !== this.term) return;
    for (const ctx of this.pendingReadIndex) this.readStates.push({ index: this.committed, requestCtx: ctx });
    this.pendingReadIndex = [];
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.committed };
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTick + this.rand.intn(this.electionTick);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
