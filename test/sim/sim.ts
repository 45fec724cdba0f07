// A deterministic simulation of a Raft cluster (TigerBeetle's VOPR, in miniature): N members in one process, over a
// simulated clock, network and disk, all driven by one seed.
//
// Each member runs the node loop of the Ready contract (src/raft/raw-node.ts): a leader sends a Ready's messages at
// once, persists (with a simulated disk latency, fsync when mustSync), then applies and advances; a follower sends
// only after persisting. While a write is in flight the member keeps ticking and stepping messages, as etcd's node
// does. The state machine is a hash chain over applied entries, durable as soon as it is applied (like the backend's
// consistent index); its snapshots travel inside MsgSnap.
//
// Faults, during the fault phase: message drop, delay (reordering follows), duplication; partitions, symmetric,
// asymmetric and non-transitive; crashes that lose the unsynced tail of the disk, then restarts from the disk; slow
// disks; leader transfers; log compaction; membership changes (add learner, promote, remove). Then everything heals
// and the cluster must elect a leader and commit a new proposal within a bound of ticks (liveness).
//
// After every event the checker (checker.ts) verifies the safety invariants. A failing seed reproduces exactly: the
// run is a pure function of the seed and the options.

import { RawNode, SnapshotStatus, type Ready } from '../../src/raft/raw-node';
import { StateType } from '../../src/raft/raft';
import type { Logger } from '../../src/raft/logger';
import { MemoryStorage } from '../../src/raft/storage';
import { ProgressStateType } from '../../src/raft/tracker/progress';
import { decodeConfChange, encodeConfChange } from '../../src/raft/confchange/codec';
import { describeMessage, describeReady } from '../../src/raft/describe';
import { ReadOnlyOption } from '../../src/raft/read-only';
import { ConfChangeType, type ConfState, type Entry, EntryType, type Message, MessageType, type Snapshot, compareIds } from '../../src/raft/types';
import { isDomainError } from '../../src/util/errors';
import { Xoshiro128 } from '../../src/util/prng';
import { Checker, InvariantViolation, violation } from './checker';
import { type DiskRecord, SimDisk } from './disk';
import { EventQueue } from './event-queue';

/** Simulated time units per tick (think 1 unit = 10 ms, a tick = 100 ms as etcd's default heartbeat interval). */
export const TICK = 10;

export interface SimOptions {
  seed: number;
  /** Initial voters: 3 or 5. Default: chosen by the seed. */
  members?: number;
  /** Length of the fault phase, in ticks. */
  faultTicks?: number;
  /**
   * The liveness bound after healing, in ticks: the cluster may not go this long without progress (the committed
   * prefix grows, or a follower persists entries beyond what it had) until the marker is applied by a majority; and
   * the whole recovery may not take more than 50 times this. Default 20 election timeouts.
   */
  livenessTicks?: number;
  /** Whether to run membership changes. Default: chosen by the seed (most seeds do). */
  membership?: boolean;
  /** Keep the whole trace (for --seed replays); otherwise only the last lines, for failure reports. */
  trace?: boolean;
  /** Check the durability invariant over the whole committed log every this many events (0: only incrementally). */
  fullCheckEvery?: number;
}

export interface SimStats {
  events: number;
  ticks: number;
  messagesSent: number;
  messagesDropped: number;
  proposals: number;
  committed: number;
  reads: number;
  readsAnswered: number;
  crashes: number;
  lostRecords: number;
  partitions: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
  compactions: number;
  confChanges: number;
  transfers: number;
  elections: number;
  maxTerm: number;
  livenessTicks: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  error?: string;
  config: string;
  stats: SimStats;
  /** The whole trace (with options.trace) or its tail. */
  trace: string[];
  /** A hash of the trace, to check that a seed replays exactly. */
  traceHash: number;
}

type Event =
  | { k: 'tick'; m: bigint; inc: number }
  | { k: 'deliver'; msg: Message }
  | { k: 'persisted'; m: bigint; inc: number }
  | { k: 'report'; m: bigint; inc: number; to: bigint; what: 'snapFinish' | 'snapFailure' | 'unreachable' }
  | { k: 'restart'; m: bigint }
  | { k: 'crash'; m: bigint; inc: number }
  | { k: 'fault' }
  | { k: 'client' }
  | { k: 'heal' }
  | { k: 'healPartition'; generation: number }
  | { k: 'livenessProbe' };

interface StateMachine {
  applied: number;
  hash: number;
  confState: ConfState;
}

interface PendingWrite {
  rd: Ready;
  sendAfter: boolean;
}

interface PendingRead {
  member: bigint;
  minIndex: number;
}

class Member {
  alive = true;
  removed = false;
  incarnation = 0;
  node!: RawNode;
  storage!: MemoryStorage;
  write: PendingWrite | undefined = undefined;
  isLeader = false;
  leaderTermChecked = 0;
  /** The commit index when this member took office in leaderTermChecked. */
  leaderBaseCommit = 0;
  lastCommit = 0;
  lastApplied = 0;
  lastTerm = 0;
  /** The durable commit index when the member last crashed: a restart must not come back below it. */
  durableCommit = 0;
  /** The highest index persisted since healing, for the liveness progress measure. */
  maxPersisted = 0;
  /** This member's tick period: clocks run at slightly different rates (TICK ± 10%). */
  tickPeriod = TICK;
  /** Disk latency multiplier: > 1 while the disk is slow. */
  slowDisk = 1;

  constructor(
    readonly id: bigint,
    readonly disk: SimDisk,
    /** Durable with the member: applied index, state hash, configuration at that index. */
    public sm: StateMachine,
  ) {}
}

interface Knobs {
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxCommittedSizePerReady: number;
  dropRate: number;
  dupRate: number;
  maxLatency: number;
  diskLatency: number;
  crashRate: number;
  /** Probability that a member crashes right after sending a batch of messages (targets the persist-then-send windows). */
  crashAfterSendRate: number;
  /** Probability that a crash hits the leader rather than a random member. */
  leaderCrashBias: number;
  partitionRate: number;
  proposeRate: number;
  readRate: number;
  compactRate: number;
  transferRate: number;
  membership: boolean;
}

const encodeSm = (sm: StateMachine): Buffer =>
  Buffer.from(JSON.stringify({ applied: sm.applied, hash: sm.hash, voters: sm.confState.voters.map(String), learners: sm.confState.learners.map(String) }));

function decodeSm(data: Buffer): StateMachine {
  const o = JSON.parse(data.toString()) as { applied: number; hash: number; voters: string[]; learners: string[] };
  return { applied: o.applied, hash: o.hash, confState: { voters: o.voters.map(BigInt), learners: o.learners.map(BigInt) } };
}

export class Simulation {
  readonly rand: Xoshiro128;
  readonly knobs: Knobs;
  readonly members = new Map<bigint, Member>();
  readonly disks = new Map<bigint, SimDisk>();
  readonly checker: Checker;
  private readonly queue = new EventQueue<Event>();
  now = 0;
  private readonly blocked = new Set<string>();
  private partitionGeneration = 0;
  private healed = false;
  private readonly trace: string[] = [];
  private traceHash = 0x811c9dc5;
  private readonly keepTrace: boolean;
  private nextProposal = 0;
  private nextRead = 0;
  private readonly pendingReads = new Map<string, PendingRead>();
  private nextId: bigint;
  private nextConfChangeId = 1n;
  /** The membership change in progress: its ConfChange, and when it was last proposed. */
  private confOp: { cc: { id: bigint; type: ConfChangeType; nodeId: bigint }; proposedAt: number } | undefined = undefined;
  /** Liveness markers proposed after healing. */
  private readonly livenessMarkers = new Set<string>();
  private livenessStart = 0;
  /** When the committed prefix last grew (after healing). */
  private lastProgress = 0;
  private lastProgressCommit = 0;
  private livenessDone = false;
  readonly stats: SimStats = {
    events: 0,
    ticks: 0,
    messagesSent: 0,
    messagesDropped: 0,
    proposals: 0,
    committed: 0,
    reads: 0,
    readsAnswered: 0,
    crashes: 0,
    lostRecords: 0,
    partitions: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    compactions: 0,
    confChanges: 0,
    transfers: 0,
    elections: 0,
    maxTerm: 0,
    livenessTicks: 0,
  };
  private readonly faultEnd: number;
  private readonly initialMembers: number;
  private readonly livenessBound: number;
  private readonly fullCheckEvery: number;

  constructor(readonly options: SimOptions) {
    this.rand = new Xoshiro128(options.seed);
    const r = this.rand;
    const n = options.members ?? (r.intn(2) === 0 ? 3 : 5);
    this.initialMembers = n;
    const electionTick = 5 + r.intn(8);
    this.knobs = {
      electionTick,
      heartbeatTick: r.intn(3) === 0 ? 2 : 1,
      preVote: r.intn(4) !== 0,
      checkQuorum: r.intn(4) !== 0,
      maxSizePerMsg: [1, 200, 1024 * 1024][r.intn(3)]!,
      maxInflightMsgs: [1, 2, 4, 256][r.intn(4)]!,
      maxInflightBytes: [0, 0, 64, 1024][r.intn(4)]!,
      maxCommittedSizePerReady: [0, 0, 1, 300][r.intn(4)]!,
      dropRate: [0, 0.01, 0.05, 0.2][r.intn(4)]!,
      dupRate: [0, 0.01, 0.05][r.intn(3)]!,
      maxLatency: [3, 10, 30, 80][r.intn(4)]!,
      diskLatency: [0, 2, 8, 20][r.intn(4)]!,
      crashRate: [0, 0.1, 0.3][r.intn(3)]!,
      crashAfterSendRate: [0, 0, 0.002, 0.01][r.intn(4)]!,
      leaderCrashBias: [0, 0.5][r.intn(2)]!,
      partitionRate: [0, 0.1, 0.3][r.intn(3)]!,
      proposeRate: [0.3, 1, 3][r.intn(3)]!,
      readRate: [0, 0.3, 1][r.intn(3)]!,
      compactRate: [0, 0.05, 0.2][r.intn(3)]!,
      transferRate: [0, 0.02, 0.1][r.intn(3)]!,
      membership: options.membership ?? r.intn(4) !== 0,
    };
    this.keepTrace = options.trace ?? false;
    this.faultEnd = (options.faultTicks ?? 200) * TICK;
    this.livenessBound = (options.livenessTicks ?? 20 * electionTick) * TICK;
    this.fullCheckEvery = options.fullCheckEvery ?? 2000;

    // Bootstrap: every initial member's disk holds a snapshot at index 1 with the initial configuration (etcd's
    // recommended bootstrap), so that members added later learn the configuration from a snapshot.
    const voters = Array.from({ length: n }, (_, i) => BigInt(i + 1));
    this.nextId = BigInt(n + 1);
    const confState: ConfState = { voters, learners: [] };
    const sm0: StateMachine = { applied: 1, hash: 0x1234, confState };
    this.checker = new Checker({ index: 1, term: 1, hash: sm0.hash, voters });
    for (const id of voters) {
      const disk = new SimDisk();
      disk.durable.applySnapshot({ metadata: { index: 1, term: 1, confState }, data: encodeSm(sm0) });
      disk.durable.setHardState({ term: 1, vote: 0n, commit: 1 });
      const m = new Member(id, disk, { ...sm0 });
      this.members.set(id, m);
      this.disks.set(id, disk);
      this.start(m);
    }
    this.queue.push(r.intn(TICK * 5), { k: 'fault' });
    this.queue.push(r.intn(TICK), { k: 'client' });
    this.queue.push(this.faultEnd, { k: 'heal' });
  }

  describeConfig(): string {
    const k = this.knobs;
    return (
      `members=${this.initialMembers} election=${k.electionTick} heartbeat=${k.heartbeatTick} preVote=${k.preVote} checkQuorum=${k.checkQuorum} ` +
      `maxSizePerMsg=${k.maxSizePerMsg} inflight=${k.maxInflightMsgs}/${k.maxInflightBytes}B committedPerReady=${k.maxCommittedSizePerReady} ` +
      `drop=${k.dropRate} dup=${k.dupRate} latency<=${k.maxLatency} disk<=${k.diskLatency} crash=${k.crashRate}/${k.crashAfterSendRate}/${k.leaderCrashBias} partition=${k.partitionRate} ` +
      `propose=${k.proposeRate} read=${k.readRate} compact=${k.compactRate} transfer=${k.transferRate} membership=${k.membership}`
    );
  }

  // --- tracing ---

  private log(line: string): void {
    const s = `${String(this.now).padStart(6)} ${line}`;
    for (let i = 0; i < s.length; i++) this.traceHash = Math.imul(this.traceHash ^ s.charCodeAt(i), 0x01000193) >>> 0;
    this.trace.push(s);
    if (!this.keepTrace && this.trace.length > 400) this.trace.splice(0, 200);
  }

  private raftLogger(id: bigint): Logger | undefined {
    if (!this.keepTrace) return undefined;
    const line = (level: string) => (msg: string) => this.log(`  [${id}] ${level} ${msg}`);
    return { debug: line('DEBUG'), info: line('INFO'), warn: line('WARN'), error: line('ERROR') };
  }

  // --- members ---

  private start(m: Member): void {
    m.storage = m.disk.load();
    // A durable snapshot newer than the state machine (a crash fell between persisting a received snapshot and
    // applying it): recover the state machine from it first, as etcd's server recovers its backend from the snapshot.
    const snap = m.storage.snapshot();
    if (snap.metadata.index > m.sm.applied) this.installSnapshot(m, snap);
    m.node = new RawNode({
      id: m.id,
      electionTick: this.knobs.electionTick,
      heartbeatTick: this.knobs.heartbeatTick,
      storage: m.storage,
      preVote: this.knobs.preVote,
      checkQuorum: this.knobs.checkQuorum,
      maxSizePerMsg: this.knobs.maxSizePerMsg,
      maxInflightMsgs: this.knobs.maxInflightMsgs,
      maxInflightBytes: this.knobs.maxInflightBytes,
      maxCommittedSizePerReady: this.knobs.maxCommittedSizePerReady,
      maxUncommittedEntries: 256,
      readOnlyOption: ReadOnlyOption.Safe,
      rand: new Xoshiro128((this.options.seed * 31 + Number(m.id) * 1009 + m.incarnation * 7919) | 0),
      ...(this.raftLogger(m.id) ? { logger: this.raftLogger(m.id)! } : {}),
    });
    m.alive = true;
    m.write = undefined;
    m.isLeader = false;
    // Across a restart the commit index comes back at least where it was durable. (It may be below what the state
    // machine applied, when a commit-only HardState write was lost: MustSync does not sync those. The state machine's
    // applied index itself is durable and only moves forward, which applyEntry checks.)
    if (m.node.status().commit < m.durableCommit) violation(`member ${m.id} restarted with commit ${m.node.status().commit} < durable ${m.durableCommit}`);
    m.lastCommit = m.node.status().commit;
    m.lastApplied = m.node.status().applied;
    m.lastTerm = m.node.status().term;
    // A member's clock has its own phase and rate.
    m.tickPeriod = TICK - 1 + this.rand.intn(3);
    this.queue.push(this.now + 1 + this.rand.intn(TICK), { k: 'tick', m: m.id, inc: m.incarnation });
    this.log(`start ${m.id} inc=${m.incarnation} term=${m.lastTerm} commit=${m.lastCommit} applied=${m.lastApplied} sm=${m.sm.applied}`);
  }

  private crash(m: Member): void {
    m.alive = false;
    m.incarnation++;
    m.write = undefined;
    const before = m.disk.durable.hardState.commit;
    m.disk.crash(this.rand);
    // What was durable stays durable: the durable commit index never goes back.
    const after = m.disk.durable.hardState.commit;
    if (after < before || after < m.durableCommit) violation(`member ${m.id}: durable commit went back to ${after}`);
    m.durableCommit = after;
    this.stats.crashes++;
    this.log(`crash ${m.id} (disk keeps ${m.disk.durable.lastIndex()}, hs ${JSON.stringify(m.disk.durable.hardState, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))})`);
  }

  // --- the node loop ---

  /** Hands out and starts persisting the next Ready, if the member is idle and has one. */
  private process(m: Member): void {
    if (!m.alive || m.write !== undefined || !m.node.hasReady()) return;
    const rd = m.node.ready();
    if (this.keepTrace) this.log(`ready ${m.id}: ${describeReady(rd).replace(/\n/g, ' | ')}`);
    if (rd.softState) m.isLeader = rd.softState.raftState === StateType.Leader;
    // Entries are immutable once handed out.
    for (const e of rd.entries) Object.freeze(e);
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const last = rd.entries[rd.entries.length - 1]!.index;
      if (this.healed && !m.isLeader && last > m.maxPersisted) {
        // Replication progress: a follower catching up through a backlog counts as progress.
        m.maxPersisted = last;
        this.lastProgress = this.now;
      }
      this.checker.observeEntries(m.id, rd.entries, m.node.raft.raftLog.term(first - 1));
    }
    if (rd.hardState) {
      if (rd.hardState.commit < m.lastCommit) violation(`member ${m.id} commit went back from ${m.lastCommit} to ${rd.hardState.commit}`);
      const r = m.node.raft;
      if (r.state === StateType.Leader && m.leaderTermChecked === r.term && rd.hardState.commit > m.leaderBaseCommit) {
        // The commit rule (Raft §5.4.2): a leader moves its commit index only onto an entry of its own term; earlier
        // entries are committed indirectly.
        const t = r.raftLog.term(rd.hardState.commit);
        if (t !== r.term) violation(`commit rule: leader ${m.id} of term ${r.term} committed ${rd.hardState.commit}, an entry of term ${t}`);
      }
      const before = this.checker.globalCommit;
      this.checker.observeCommit(m.id, rd.hardState.commit, (i) => this.entryAt(m, i));
      if (this.checker.globalCommit > before) this.checker.checkDurability(this.disks);
    }
    const sendAfter = !m.isLeader;
    if (!sendAfter) {
      for (const msg of rd.messages) {
        // (A MsgAppResp with index 0 only tells a stale leader our term: it promises nothing.)
        if ((msg.type === MessageType.MsgVoteResp && !msg.reject) || (msg.type === MessageType.MsgAppResp && msg.index > 0)) {
          violation(`leader ${m.id} would send ${MessageType[msg.type]} before persisting`);
        }
      }
      this.sendAll(m, rd.messages);
    }
    const records: DiskRecord[] = [];
    if (rd.snapshot) records.push({ kind: 'snapshot', snapshot: rd.snapshot });
    if (rd.entries.length > 0) records.push({ kind: 'entries', entries: rd.entries });
    if (rd.hardState) records.push({ kind: 'hardState', hardState: rd.hardState });
    m.disk.write(records);
    m.write = { rd, sendAfter };
    const latency = this.knobs.diskLatency === 0 ? 0 : this.rand.intn(this.knobs.diskLatency * m.slowDisk + 1);
    this.queue.push(this.now + latency, { k: 'persisted', m: m.id, inc: m.incarnation });
  }

  private entryAt(m: Member, i: number): Entry | undefined {
    const log = m.node.raft.raftLog;
    if (i < log.firstIndex() || i > log.lastIndex()) return undefined;
    return log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0];
  }

  private persisted(m: Member): void {
    const w = m.write;
    if (w === undefined) violation(`member ${m.id}: persisted without a write`);
    const rd = w.rd;
    if (rd.mustSync || rd.snapshot) m.disk.sync();
    if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
    m.storage.append(rd.entries);
    if (rd.hardState) m.storage.setHardState(rd.hardState);
    if (w.sendAfter) this.sendAll(m, rd.messages);
    if (rd.snapshot) this.installSnapshot(m, rd.snapshot);
    for (const e of rd.committedEntries) {
      this.applyEntry(m, e);
      if (m.removed) return;
    }
    for (const rs of rd.readStates) this.readAnswered(m, rs.index, rs.requestCtx);
    m.write = undefined;
    m.node.advance(rd);
  }

  private installSnapshot(m: Member, snap: Snapshot): void {
    if (snap.metadata.index <= m.sm.applied) return;
    const data = snap.data;
    if (data === undefined) violation(`member ${m.id}: snapshot without data`);
    const sm = decodeSm(data);
    if (sm.applied !== snap.metadata.index) violation(`snapshot at ${snap.metadata.index} carries state of ${sm.applied}`);
    this.checker.observeSnapshotState(m.id, snap.metadata.index, snap.metadata.term, sm.hash);
    m.sm = sm;
    this.stats.snapshotsInstalled++;
    this.log(`install ${m.id} snapshot ${snap.metadata.index}/${snap.metadata.term}`);
  }

  private applyEntry(m: Member, e: Entry): void {
    if (e.index <= m.sm.applied) {
      // Replayed after a restart (the node re-delivers from its snapshot): the state machine has it already, but the
      // configuration must be rebuilt in Raft, as etcd's server does.
      const c = this.checker.committed[e.index];
      if (c === undefined || c.term !== e.term || !c.data.equals(e.data)) violation(`member ${m.id} replays a different entry at ${e.index}`);
      if (e.type === EntryType.ConfChange) m.node.applyConfChange(decodeConfChange(e.data));
      return;
    }
    if (e.index !== m.sm.applied + 1) violation(`member ${m.id} applies ${e.index} after ${m.sm.applied}`);
    const hash = this.checker.observeApply(m.id, e, m.sm.hash);
    m.sm = { applied: e.index, hash, confState: m.sm.confState };
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      m.sm.confState = m.node.applyConfChange(cc);
      if (this.confOp && cc.id === this.confOp.cc.id) this.confOp = undefined;
      this.log(`apply ${m.id} confchange ${ConfChangeType[cc.type]} ${cc.nodeId} -> voters=[${m.sm.confState.voters.join(' ')}] learners=[${m.sm.confState.learners.join(' ')}]`);
      if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === m.id) {
        // etcd's server stops a member once it applies its own removal.
        m.removed = true;
        m.alive = false;
        m.incarnation++;
        m.write = undefined;
        this.log(`removed ${m.id}`);
        return;
      }
    } else if (e.data.length > 0) {
      if (this.livenessMarkers.has(e.data.toString())) this.livenessCheck(e.index);
    }
    this.stats.committed = Math.max(this.stats.committed, e.index);
  }

  private readAnswered(m: Member, index: number, ctx: Buffer): void {
    const key = ctx.toString();
    const pr = this.pendingReads.get(key);
    if (pr === undefined) return;
    this.pendingReads.delete(key);
    // A read forwarded twice (follower to follower to leader) is answered at the middle member, since forwarding
    // rewrites `from` (as in etcd); the issuer retries. The index must still be a valid read point.
    if (index < pr.minIndex) violation(`linearizability: read ${key} got index ${index} < ${pr.minIndex} committed before it was issued`);
    if (this.keepTrace) this.log(`read ${key} (issued at ${pr.member}) answered at ${m.id}: index ${index} >= ${pr.minIndex}`);
    this.stats.readsAnswered++;
  }

  // --- network ---

  private link(from: bigint, to: bigint): string {
    return `${from}>${to}`;
  }

  private sendAll(m: Member, msgs: Message[]): void {
    for (const msg of msgs) {
      for (const e of msg.entries) Object.freeze(e);
      if (msg.type === MessageType.MsgVoteResp && !msg.reject) this.checker.observeVote(m.id, msg.term, msg.to);
      const out = { ...msg, entries: msg.entries.slice() };
      if (msg.type === MessageType.MsgSnap) out.snapshot = this.mergedSnapshot(m, msg);
      this.send(out);
    }
    if (msgs.length > 0 && !this.healed && this.float() < this.knobs.crashAfterSendRate) {
      // Crash right after sending: whatever the messages promised must already be durable. Deferred to an event of
      // its own, so that the current Ready finishes its bookkeeping first (a crash mid-handler cannot happen in a real
      // process either: the handler is synchronous).
      this.queue.push(this.now, { k: 'crash', m: m.id, inc: m.incarnation });
    }
  }

  /**
   * The snapshot a MsgSnap actually carries: the sender's state machine at its applied index, with the configuration
   * in effect there, as etcd's server does (createMergedSnapshotMessage). Raft's stored snapshot may be older than
   * the receiver's membership; the receiver acks the newer index and the leader's progress catches up with it.
   */
  private mergedSnapshot(m: Member, msg: Message): Snapshot {
    const stored = msg.snapshot!;
    const i = m.sm.applied;
    if (i <= stored.metadata.index) return stored;
    const term = m.node.raft.raftLog.term(i);
    if (term === 0) violation(`member ${m.id}: no term for its applied index ${i}`);
    return { metadata: { index: i, term, confState: m.sm.confState }, data: encodeSm(m.sm) };
  }

  private send(msg: Message): void {
    this.stats.messagesSent++;
    if (msg.type === MessageType.MsgSnap) this.stats.snapshotsSent++;
    const to = this.members.get(msg.to);
    const blocked = this.blocked.has(this.link(msg.from, msg.to));
    if (to === undefined || blocked || this.rand.next() / 0x100000000 < this.knobs.dropRate) {
      this.dropped(msg, blocked);
      return;
    }
    const copies = this.rand.next() / 0x100000000 < this.knobs.dupRate ? 2 : 1;
    for (let i = 0; i < copies; i++) this.queue.push(this.now + 1 + this.rand.intn(this.knobs.maxLatency), { k: 'deliver', msg });
  }

  private dropped(msg: Message, unreachable: boolean): void {
    this.stats.messagesDropped++;
    const from = this.members.get(msg.from);
    if (from === undefined || !from.alive) return;
    // The transport reports what it knows: a failed snapshot stream, and (sometimes) a broken connection.
    if (msg.type === MessageType.MsgSnap) {
      this.queue.push(this.now + 1 + this.rand.intn(TICK), { k: 'report', m: msg.from, inc: from.incarnation, to: msg.to, what: 'snapFailure' });
    } else if (unreachable && this.rand.intn(2) === 0) {
      this.queue.push(this.now + 1 + this.rand.intn(TICK), { k: 'report', m: msg.from, inc: from.incarnation, to: msg.to, what: 'unreachable' });
    }
  }

  private deliver(msg: Message): void {
    const m = this.members.get(msg.to);
    if (m === undefined || !m.alive || this.blocked.has(this.link(msg.from, msg.to))) {
      this.dropped(msg, true);
      return;
    }
    if (this.keepTrace) this.log(`deliver ${describeMessage(msg)}`);
    try {
      m.node.step(msg);
    } catch (err) {
      if (!isDomainError(err)) throw err;
      // StepPeerNotFound (a response from a removed member), ProposalDropped (a forwarded proposal): expected.
    }
    if (msg.type === MessageType.MsgSnap) {
      const from = this.members.get(msg.from);
      if (from?.alive) this.queue.push(this.now + 1 + this.rand.intn(TICK), { k: 'report', m: msg.from, inc: from.incarnation, to: msg.to, what: 'snapFinish' });
    }
    this.after(m);
  }

  // --- checks after each event touching a member ---

  private after(m: Member): void {
    if (!m.alive) return;
    this.process(m);
    const st = m.node.raft;
    const commit = st.raftLog.committed;
    const applied = st.raftLog.applied;
    if (commit < m.lastCommit) violation(`member ${m.id} commit went back from ${m.lastCommit} to ${commit}`);
    if (applied < m.lastApplied) violation(`member ${m.id} applied went back from ${m.lastApplied} to ${applied}`);
    if (st.term < m.lastTerm) violation(`member ${m.id} term went back`);
    if (applied > commit || commit > st.raftLog.lastIndex()) violation(`member ${m.id}: applied ${applied} <= commit ${commit} <= last ${st.raftLog.lastIndex()} broken`);
    m.lastCommit = commit;
    m.lastApplied = applied;
    m.lastTerm = st.term;
    if (st.term > this.stats.maxTerm) this.stats.maxTerm = st.term;
    if (st.state === StateType.Leader) {
      this.checker.observeLeader(m.id, st.term);
      if (m.leaderTermChecked !== st.term) {
        m.leaderTermChecked = st.term;
        m.leaderBaseCommit = st.raftLog.committed;
        this.stats.elections++;
        this.log(`leader ${m.id} term ${st.term}`);
        const log = st.raftLog;
        this.checker.checkLeaderCompleteness(m.id, st.term, log.firstIndex(), log.lastIndex(), (i) => log.term(i));
      }
      for (const [, pr] of st.prs.progress) {
        pr.checkInvariants();
        if (pr.inflights.count() > pr.inflights.size) violation('inflights over their bound');
        if (pr.state !== ProgressStateType.StateReplicate && pr.inflights.count() > 0) violation('inflights outside StateReplicate');
      }
    }
  }

  // --- workload and faults ---

  private float(): number {
    return this.rand.next() / 0x100000000;
  }

  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[this.rand.intn(xs.length)];
  }

  private aliveMembers(): Member[] {
    return [...this.members.values()].filter((m) => m.alive);
  }

  private leader(): Member | undefined {
    let best: Member | undefined;
    for (const m of this.members.values()) {
      if (m.alive && m.node.raft.state === StateType.Leader && (!best || m.node.raft.term > best.node.raft.term)) best = m;
    }
    return best;
  }

  private propose(m: Member, data: Buffer, type = EntryType.Normal): void {
    try {
      m.node.propose(data, type);
    } catch (err) {
      if (!isDomainError(err, 'ErrProposalDropped')) throw err;
    }
    this.after(m);
  }

  private client(): void {
    // After healing, only the liveness markers are proposed: the bound is about recovery, not about a backlog.
    if (!this.healed && this.float() < this.knobs.proposeRate / 3) {
      const m = this.pick(this.aliveMembers());
      if (m) {
        this.stats.proposals++;
        this.propose(m, Buffer.from(`p${this.nextProposal++}@${m.id}`));
      }
    }
    if (this.float() < this.knobs.readRate / 3) {
      const m = this.pick(this.aliveMembers());
      if (m) {
        const ctx = `r${this.nextRead++}`;
        this.stats.reads++;
        this.pendingReads.set(ctx, { member: m.id, minIndex: this.checker.globalCommit });
        m.node.readIndex(Buffer.from(ctx));
        this.after(m);
      }
    }
    if (this.float() < this.knobs.compactRate) {
      const m = this.pick(this.aliveMembers());
      if (m) this.compact(m);
    }
    if (!this.healed && this.knobs.membership && this.float() < 0.02) this.membershipChange();
    this.queue.push(this.now + 1 + this.rand.intn(TICK), { k: 'client' });
  }

  /** Snapshots the state machine at its applied index and compacts the log behind it (etcd's snapshot + compact). */
  private compact(m: Member): void {
    if (m.write !== undefined) return;
    const raftApplied = m.node.raft.raftLog.applied;
    // Compact only at what Raft has applied (etcd MemoryStorage.Compact's contract), where the state machine is.
    if (raftApplied !== m.sm.applied) return;
    const i = m.sm.applied;
    if (i <= m.storage.snapshot().metadata.index || i > m.storage.lastIndex()) return;
    const snap = m.storage.createSnapshot(i, m.sm.confState, encodeSm(m.sm));
    const keep = [0, 1, 5, 20][this.rand.intn(4)]!;
    const compactIndex = i - keep;
    if (compactIndex >= m.storage.firstIndex()) m.storage.compact(compactIndex);
    // The snapshot file and the WAL release are durable operations of their own.
    if (!m.disk.compact(snap, compactIndex)) violation(`member ${m.id}: applied index ${i} is not durable`);
    this.stats.compactions++;
    this.log(`compact ${m.id} snapshot=${i} compact=${compactIndex}`);
  }

  private membershipChange(): void {
    if (this.confOp !== undefined) {
      // Re-propose a change that got lost (dropped proposal, leader change), after a while.
      if (this.now - this.confOp.proposedAt < 20 * TICK) return;
      const l = this.leader() ?? this.pick(this.aliveMembers());
      if (l) {
        this.confOp.proposedAt = this.now;
        this.propose(l, encodeConfChange({ ...this.confOp.cc, context: Buffer.alloc(0) }), EntryType.ConfChange);
      }
      return;
    }
    const cfg = this.checker.currentConfig();
    let cc: { id: bigint; type: ConfChangeType; nodeId: bigint } | undefined;
    const learners = [...cfg.learners].filter((id) => this.members.get(id) && !this.members.get(id)!.removed);
    const r = this.rand.intn(3);
    if (learners.length > 0 && r < 2) {
      cc = { id: this.nextConfChangeId++, type: ConfChangeType.AddNode, nodeId: learners[0]! };
    } else if (r === 0 && cfg.voters.size + cfg.learners.size < 7) {
      // A new member: it starts with an empty disk and learns everything from a snapshot.
      const id = this.nextId++;
      const disk = new SimDisk();
      const m = new Member(id, disk, { applied: 0, hash: 0, confState: { voters: [], learners: [] } });
      this.members.set(id, m);
      this.disks.set(id, disk);
      this.start(m);
      cc = { id: this.nextConfChangeId++, type: ConfChangeType.AddLearnerNode, nodeId: id };
    } else if (r === 1 && cfg.voters.size > 3) {
      const victim = this.pick([...cfg.voters].sort(compareIds));
      if (victim !== undefined) cc = { id: this.nextConfChangeId++, type: ConfChangeType.RemoveNode, nodeId: victim };
    }
    if (cc === undefined) return;
    this.stats.confChanges++;
    this.confOp = { cc, proposedAt: this.now };
    this.log(`propose confchange ${ConfChangeType[cc.type]} ${cc.nodeId}`);
    const l = this.leader() ?? this.pick(this.aliveMembers());
    if (l) this.propose(l, encodeConfChange({ ...cc, context: Buffer.alloc(0) }), EntryType.ConfChange);
  }

  /**
   * One fault decision, every 2.5 ticks on average. Partitions last for a drawn duration (a few ticks up to many
   * election timeouts, so that elections happen on both sides) and are then healed.
   */
  private fault(): void {
    const k = this.knobs;
    const all = [...this.members.values()].filter((m) => !m.removed);
    const ids = all.map((m) => m.id);
    const roll = this.float();
    if (roll < k.crashRate * 0.3) {
      const l = this.leader();
      const m = l && this.float() < k.leaderCrashBias ? l : this.pick(all.filter((x) => x.alive));
      if (m) this.crashAndRestart(m);
    } else if (roll < 0.3 && this.blocked.size === 0 && this.float() < k.partitionRate) {
      this.partition(ids);
    } else if (roll < 0.4) {
      const m = this.pick(all);
      if (m) {
        m.slowDisk = m.slowDisk === 1 ? 10 : 1;
        this.log(`disk ${m.id} ${m.slowDisk === 1 ? 'normal' : 'slow'}`);
      }
    } else if (roll < 0.4 + k.transferRate) {
      const l = this.leader();
      const target = this.pick(ids);
      if (l && target !== undefined) {
        this.stats.transfers++;
        this.log(`transfer leadership ${l.id} -> ${target}`);
        l.node.transferLeader(target);
        this.after(l);
      }
    }
    this.queue.push(this.now + 1 + this.rand.intn(TICK * 5), { k: 'fault' });
  }

  private partition(ids: bigint[]): void {
    this.stats.partitions++;
    const kind = this.rand.intn(4);
    const l = this.leader();
    const split = (side: Set<bigint>): void => {
      for (const a of ids) for (const b of ids) if (a !== b && side.has(a) !== side.has(b)) this.blocked.add(this.link(a, b));
    };
    if (kind === 3 && l) {
      // Isolate the leader (possibly with one follower) from the rest: the classic stale-leader scenario.
      const side = new Set([l.id]);
      if (this.rand.intn(2) === 0) {
        const other = this.pick(ids.filter((x) => x !== l.id));
        if (other !== undefined) side.add(other);
      }
      split(side);
      this.log(`partition leader side {${[...side].join(' ')}} | rest`);
    } else if (kind === 0 || kind === 3) {
      // A clean split into two groups.
      const side = new Set(ids.filter(() => this.rand.intn(2) === 0));
      split(side);
      this.log(`partition {${[...side].join(' ')}} | rest`);
    } else {
      // Random links, asymmetric (kind 1) or symmetric (kind 2): partitions that are not transitive.
      for (const a of ids) {
        for (const b of ids) {
          if (a < b && this.rand.intn(3) === 0) {
            this.blocked.add(this.link(a, b));
            if (kind === 2 || this.rand.intn(2) === 0) this.blocked.add(this.link(b, a));
          }
        }
      }
      this.log(`partition links [${[...this.blocked].join(' ')}]`);
    }
    const e = this.knobs.electionTick;
    const ticks = [1 + this.rand.intn(5), e + this.rand.intn(e), 3 * e + this.rand.intn(3 * e), 10 * e][this.rand.intn(4)]!;
    this.queue.push(this.now + ticks * TICK, { k: 'healPartition', generation: ++this.partitionGeneration });
  }

  private crashAndRestart(m: Member): void {
    this.crash(m);
    // Sometimes back at once (to rejoin the same term), sometimes after a long while.
    const delay = [1, TICK, TICK * (1 + this.rand.intn(30))][this.rand.intn(3)]!;
    this.queue.push(this.now + delay, { k: 'restart', m: m.id });
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    this.knobs.dropRate = 0;
    this.knobs.dupRate = 0;
    this.knobs.maxLatency = Math.min(this.knobs.maxLatency, 10);
    for (const m of this.members.values()) {
      m.slowDisk = 1;
      m.maxPersisted = m.alive ? m.node.raft.raftLog.lastIndex() : m.disk.durable.lastIndex();
      if (!m.alive && !m.removed) {
        m.incarnation++;
        this.start(m);
      }
    }
    this.log('heal: all faults off, all members up');
    this.livenessStart = this.now;
    this.lastProgress = this.now;
    this.lastProgressCommit = this.checker.globalCommit;
    this.queue.push(this.now, { k: 'livenessProbe' });
  }

  /** After healing: propose a marker to the leader until a majority of voters applied it. */
  private livenessProbe(): void {
    if (this.livenessDone) return;
    if (this.checker.globalCommit > this.lastProgressCommit) {
      this.lastProgressCommit = this.checker.globalCommit;
      this.lastProgress = this.now;
    }
    if (this.now - this.lastProgress > this.livenessBound || this.now - this.livenessStart > 50 * this.livenessBound) {
      const states = [...this.members.values()]
        .map((m) => `${m.id}:${m.removed ? 'removed' : m.alive ? `${m.node.raft.state}/t${m.node.raft.term}/c${m.node.raft.raftLog.committed}/a${m.sm.applied}` : 'down'}`)
        .join(' ');
      violation(`liveness: no progress for ${(this.now - this.lastProgress) / TICK} ticks, ${(this.now - this.livenessStart) / TICK} ticks after healing [${states}]`);
    }
    const l = this.leader();
    if (l) {
      const marker = `live@${this.now}`;
      this.livenessMarkers.add(marker);
      this.propose(l, Buffer.from(marker));
    }
    this.queue.push(this.now + 2 * TICK, { k: 'livenessProbe' });
  }

  /** A marker was applied at `index`: liveness is shown once a majority of the current voters applied it. */
  private livenessCheck(index: number): void {
    if (this.livenessDone) return;
    const cfg = this.checker.currentConfig();
    let n = 0;
    for (const id of cfg.voters) {
      const m = this.members.get(id);
      if (m && m.sm.applied >= index) n++;
    }
    if (n >= Math.floor(cfg.voters.size / 2) + 1) {
      this.livenessDone = true;
      this.stats.livenessTicks = Math.ceil((this.now - this.livenessStart) / TICK);
      this.log(`liveness: marker at ${index} applied by a majority after ${this.stats.livenessTicks} ticks`);
    }
  }

  // --- the run ---

  run(): SimResult {
    let error: string | undefined;
    try {
      for (;;) {
        const ev = this.queue.pop();
        if (ev === undefined) break;
        this.now = ev.time;
        this.stats.events++;
        this.handle(ev.event);
        if (this.livenessDone) break;
        if (this.fullCheckEvery > 0 && this.stats.events % this.fullCheckEvery === 0) this.checker.checkDurability(this.disks, 1);
      }
      this.checker.checkDurability(this.disks, 1);
      if (!this.livenessDone) violation('liveness: the run ended without progress');
    } catch (err) {
      error = err instanceof InvariantViolation ? err.message : `${(err as Error).name}: ${(err as Error).message}\n${(err as Error).stack ?? ''}`;
      this.log(`FAILED: ${error}`);
    }
    this.stats.ticks = Math.floor(this.now / TICK);
    for (const d of this.disks.values()) this.stats.lostRecords += d.lostRecords;
    const result: SimResult = {
      seed: this.options.seed,
      ok: error === undefined,
      config: this.describeConfig(),
      stats: this.stats,
      trace: this.trace,
      traceHash: this.traceHash,
    };
    if (error !== undefined) result.error = error;
    return result;
  }

  private handle(ev: Event): void {
    switch (ev.k) {
      case 'tick': {
        const m = this.members.get(ev.m)!;
        if (!m.alive || m.incarnation !== ev.inc) return;
        m.node.tick();
        this.after(m);
        this.queue.push(this.now + m.tickPeriod, ev);
        return;
      }
      case 'deliver':
        this.deliver(ev.msg);
        return;
      case 'persisted': {
        const m = this.members.get(ev.m)!;
        if (!m.alive || m.incarnation !== ev.inc) return;
        this.persisted(m);
        this.after(m);
        return;
      }
      case 'report': {
        const m = this.members.get(ev.m)!;
        if (!m.alive || m.incarnation !== ev.inc) return;
        if (ev.what === 'unreachable') m.node.reportUnreachable(ev.to);
        else m.node.reportSnapshot(ev.to, ev.what === 'snapFinish' ? SnapshotStatus.Finish : SnapshotStatus.Failure);
        this.after(m);
        return;
      }
      case 'restart': {
        const m = this.members.get(ev.m)!;
        if (m.alive || m.removed || this.healed) return;
        this.start(m);
        return;
      }
      case 'crash': {
        const m = this.members.get(ev.m)!;
        if (!m.alive || m.incarnation !== ev.inc || this.healed) return;
        this.crashAndRestart(m);
        return;
      }
      case 'fault':
        if (!this.healed) this.fault();
        return;
      case 'client':
        this.client();
        return;
      case 'heal':
        this.heal();
        return;
      case 'healPartition':
        if (ev.generation === this.partitionGeneration && this.blocked.size > 0) {
          this.blocked.clear();
          this.log('heal partition');
        }
        return;
      case 'livenessProbe':
        this.livenessProbe();
        return;
    }
  }
}

/** Runs one seed. */
export function runSeed(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
