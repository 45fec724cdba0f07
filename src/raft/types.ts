// Types shared by the Raft core, the WAL and the node loop: the shapes of etcd's raftpb (Entry, HardState,
// ConfState, Snapshot, Message, ConfChange) in our naming.
//
// Numbers: terms and indexes are JavaScript numbers (safe up to 2^53, far beyond any reachable log); member IDs are
// bigint (etcd's uint64 IDs), 0n meaning "none" (etcd's raft.None).
//
// Ownership: every Entry, Message and Snapshot is immutable once created. The core shares entry objects between its
// log, the Ready it hands out and the messages it sends, so neither the core nor the node loop may mutate them.

/** Entry types, numbered as etcd's raftpb.EntryType (EntryConfChangeV2 = 2 is not supported). */
export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

/** One Raft log entry. `data` is opaque to Raft except for ConfChange entries (an encoded ConfChange). */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** The payload: the server's encoded request, empty for a leader's no-op entry. Never mutated. */
  data: Buffer;
}

/** The state a member must persist before it answers any message (Raft paper, Figure 2). */
export interface HardState {
  term: number;
  /** The member voted for in `term`, 0n for none. */
  vote: bigint;
  commit: number;
}

export const emptyHardState: HardState = Object.freeze({ term: 0, vote: 0n, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0n && hs.commit === 0;
}

export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Position of a snapshot in the log: the last index (and its term) that the snapshot covers. Used by the WAL. */
export interface SnapshotMeta {
  index: number;
  term: number;
}

/**
 * The membership configuration (etcd raftpb.ConfState, without the joint-consensus fields: only single-step
 * changes are supported). Both lists are sorted ascending and disjoint.
 */
export interface ConfState {
  voters: bigint[];
  learners: bigint[];
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [] };
}

export function isEmptyConfState(cs: ConfState): boolean {
  return cs.voters.length === 0 && cs.learners.length === 0;
}

/** Whether two ConfStates describe the same configuration (etcd ConfState.Equivalent, order-insensitive). */
export function confStatesEquivalent(a: ConfState, b: ConfState): boolean {
  const same = (x: bigint[], y: bigint[]): boolean => {
    if (x.length !== y.length) return false;
    const xs = [...x].sort(compareIds);
    const ys = [...y].sort(compareIds);
    return xs.every((v, i) => v === ys[i]);
  };
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}

/** Snapshot metadata: the log position it covers and the configuration in effect there. */
export interface SnapshotMetadata extends SnapshotMeta {
  confState: ConfState;
}

/**
 * A snapshot as Raft sees it. `data` is opaque to Raft and optional: the server streams the state machine itself
 * outside Raft (in chunks), so a MsgSnap may carry only the metadata.
 */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data?: Buffer;
}

export const emptySnapshot: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: Object.freeze({ voters: [], learners: [] }) as ConfState }),
}) as Snapshot;

/** A snapshot with index 0 stands for "no snapshot" (etcd IsEmptySnap). */
export function isEmptySnap(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/** Message types, numbered as etcd's raftpb.MessageType. */
export enum MessageType {
  MsgHup = 0,
  MsgBeat = 1,
  MsgProp = 2,
  MsgApp = 3,
  MsgAppResp = 4,
  MsgVote = 5,
  MsgVoteResp = 6,
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  MsgUnreachable = 10,
  MsgSnapStatus = 11,
  MsgCheckQuorum = 12,
  MsgTransferLeader = 13,
  MsgTimeoutNow = 14,
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
}

/**
 * A Raft message (etcd raftpb.Message). Which fields are meaningful depends on `type`; the others keep their zero
 * values. `term` is 0 for local messages (MsgHup, MsgBeat, ...) and for MsgProp/MsgReadIndex, which are forwarded
 * like local requests.
 */
export interface Message {
  type: MessageType;
  to: bigint;
  from: bigint;
  term: number;
  /** MsgApp: the term of the entry at `index` (the entry preceding `entries`). Votes: the candidate's last term. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  /** MsgSnap only: the snapshot's metadata (and, optionally, data). */
  snapshot?: Snapshot;
  reject: boolean;
  /** MsgAppResp rejections: the follower's last index, a hint for where the leader should probe next. */
  rejectHint: number;
  context: Buffer;
}

const emptyBuffer = Buffer.alloc(0);

/** Builds a Message, filling every field not given with its zero value (as a Go struct literal does). */
export function message(m: Partial<Message> & { type: MessageType }): Message {
  const out: Message = {
    type: m.type,
    to: m.to ?? 0n,
    from: m.from ?? 0n,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
    context: m.context ?? emptyBuffer,
  };
  if (m.snapshot !== undefined) out.snapshot = m.snapshot;
  return out;
}

/** Messages that a node generates for itself and never sends over the network (etcd IsLocalMsg). */
export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

/** Responses, which the leader only accepts from peers it tracks (etcd IsResponseMsg). */
export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

/** Maps MsgVote/MsgPreVote to their response types (etcd voteRespMsgType). */
export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new Error(`not a vote message: ${MessageType[t]}`);
}

/** Configuration change types, numbered as etcd's raftpb.ConfChangeType. */
export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

/**
 * A single-step membership change (etcd raftpb.ConfChange, "V1"). Proposed as an EntryType.ConfChange entry whose
 * data is encodeConfChange(cc); once committed, the node loop calls RawNode.applyConfChange(cc). A nodeId of 0n
 * makes the change a no-op (etcd's convention for a change the server decided not to apply).
 */
export interface ConfChange {
  /** etcd uses this to carry the proposing request's ID. */
  id: bigint;
  type: ConfChangeType;
  nodeId: bigint;
  /** Opaque to Raft (etcd: the member's JSON attributes). */
  context: Buffer;
}

/** Sorts IDs ascending. */
export function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
