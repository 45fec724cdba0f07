// Test helpers mirroring etcd raft's raft_test.go: test configurations, a raft built from terms, and the in-memory
// "network" that delivers messages synchronously between state machines, with drops, cuts and message filters.

import { Xoshiro128 } from '../../src/util/prng';
import { isDomainError } from '../../src/util/errors';
import { Raft, type RaftConfig, None } from '../../src/raft/raft';
import { MemoryStorage, type Storage } from '../../src/raft/storage';
import { RawNode } from '../../src/raft/raw-node';
import { ProgressTracker } from '../../src/raft/tracker/tracker';
import { Progress } from '../../src/raft/tracker/progress';
import { Inflights } from '../../src/raft/tracker/inflights';
import { noLimit } from '../../src/raft/util';
import { type Entry, EntryType, type Message, MessageType, message, type ConfChange, ConfChangeType } from '../../src/raft/types';

export { noLimit, None };

/** message() with the fields of a Go struct literal. */
export const msg = message;

/** An entry literal: {term, index, data}. */
export function ent(term: number, index: number, data?: string | Buffer, type: EntryType = EntryType.Normal): Entry {
  return { term, index, type, data: data === undefined ? Buffer.alloc(0) : typeof data === 'string' ? Buffer.from(data) : data };
}

export function ids(...n: number[]): bigint[] {
  return n.map((x) => BigInt(x));
}

/** etcd's newTestConfig: check-quorum and pre-vote off (Go's zero values), no size limits, 256 inflight. */
export function newTestConfig(id: number | bigint, peers: number[], election: number, heartbeat: number, storage: Storage): RaftConfig {
  return {
    id: BigInt(id),
    voters: ids(...peers),
    electionTick: election,
    heartbeatTick: heartbeat,
    storage,
    maxSizePerMsg: noLimit,
    maxInflightMsgs: 256,
    maxUncommittedEntries: 0,
    checkQuorum: false,
    preVote: false,
    rand: new Xoshiro128(Number(id) * 7919 + 1),
  };
}

export function newTestRaft(id: number, peers: number[], election: number, heartbeat: number, storage: Storage): Raft {
  return new Raft(newTestConfig(id, peers, election, heartbeat, storage));
}

export function newTestLearnerRaft(id: number, peers: number[], learners: number[], election: number, heartbeat: number, storage: Storage): Raft {
  const cfg = newTestConfig(id, peers, election, heartbeat, storage);
  cfg.learners = ids(...learners);
  return new Raft(cfg);
}

export function newTestRawNode(id: number, peers: number[], election: number, heartbeat: number, storage: Storage): RawNode {
  return new RawNode(newTestConfig(id, peers, election, heartbeat, storage));
}

/** Takes the messages the raft has queued. */
export function readMessages(r: Raft): Message[] {
  const msgs = r.msgs;
  r.msgs = [];
  return msgs;
}

/** Makes all unstable entries stable in s, and returns the appliable entries, marking them applied (etcd nextEnts). */
export function nextEnts(r: Raft, s: MemoryStorage): Entry[] {
  s.append(r.raftLog.unstableEntries());
  r.raftLog.stableTo(r.raftLog.lastIndex(), r.raftLog.lastTerm());
  const ents = r.raftLog.nextEnts();
  r.raftLog.appliedTo(r.raftLog.committed);
  return ents;
}

export function mustAppendEntry(r: Raft, ...ents: Entry[]): void {
  if (!r.appendEntry(ents)) throw new Error('entry unexpectedly dropped');
}

export function setRandomizedElectionTimeout(r: Raft, v: number): void {
  r.randomizedElectionTimeout = v;
}

/** A raft whose log holds one entry per given term (index = position + 1), at the last term (etcd entsWithConfig). */
export function entsWithConfig(configFunc: ((c: RaftConfig) => void) | undefined, ...terms: number[]): Raft {
  const storage = new MemoryStorage();
  terms.forEach((term, i) => storage.append([ent(term, i + 1)]));
  const cfg = newTestConfig(1, [], 5, 1, storage);
  configFunc?.(cfg);
  const sm = new Raft(cfg);
  sm.reset(terms[terms.length - 1]!);
  return sm;
}

/** A raft that voted for `vote` in `term` but has no log (etcd votedWithConfig). */
export function votedWithConfig(configFunc: ((c: RaftConfig) => void) | undefined, vote: number, term: number): Raft {
  const storage = new MemoryStorage();
  storage.setHardState({ vote: BigInt(vote), term, commit: 0 });
  const cfg = newTestConfig(1, [], 5, 1, storage);
  configFunc?.(cfg);
  const sm = new Raft(cfg);
  sm.reset(term);
  return sm;
}

export const preVoteConfig = (c: RaftConfig): void => {
  c.preVote = true;
};

/** A member that swallows everything (etcd blackHole). */
export class BlackHole {
  step(_m: Message): void {}
}
export const nopStepper = new BlackHole();

export type StateMachine = Raft | BlackHole;

/** The in-memory network of etcd's raft tests: send() delivers synchronously until no message is left. */
export class Network {
  peers = new Map<bigint, StateMachine>();
  storage = new Map<bigint, MemoryStorage>();
  dropm = new Map<string, number>();
  ignorem = new Set<MessageType>();
  /** Called for each message sent; returns false to drop it. */
  msgHook: ((m: Message) => boolean) | undefined = undefined;
  private readonly rand = new Xoshiro128(42);

  send(...msgs: Message[]): void {
    const queue = [...msgs];
    while (queue.length > 0) {
      const m = queue.shift()!;
      const p = this.peers.get(m.to);
      if (p === undefined) continue;
      try {
        p.step(m);
      } catch (err) {
        if (!isDomainError(err, 'ErrProposalDropped')) throw err;
      }
      if (p instanceof Raft) queue.push(...this.filter(readMessages(p)));
    }
  }

  drop(from: number | bigint, to: number | bigint, perc: number): void {
    this.dropm.set(`${from}-${to}`, perc);
  }

  cut(one: number, other: number): void {
    this.drop(one, other, 2.0); // Always drop.
    this.drop(other, one, 2.0);
  }

  isolate(id: number): void {
    for (let i = 0; i < this.peers.size; i++) {
      const nid = i + 1;
      if (nid !== id) {
        this.drop(id, nid, 1.0);
        this.drop(nid, id, 1.0);
      }
    }
  }

  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  recover(): void {
    this.dropm = new Map();
    this.ignorem = new Set();
  }

  filter(msgs: Message[]): Message[] {
    const mm: Message[] = [];
    for (const m of msgs) {
      if (this.ignorem.has(m.type)) continue;
      if (m.type === MessageType.MsgHup) throw new Error('unexpected msgHup');
      const perc = this.dropm.get(`${m.from}-${m.to}`) ?? 0;
      if (this.rand.next() / 0x100000000 < perc) continue;
      if (this.msgHook !== undefined && !this.msgHook(m)) continue;
      mm.push(m);
    }
    return mm;
  }

  raft(id: number): Raft {
    const p = this.peers.get(BigInt(id));
    if (!(p instanceof Raft)) throw new Error(`peer ${id} is not a raft`);
    return p;
  }
}

/**
 * Builds a network of members 1..n (etcd newNetworkWithConfig): null becomes a fresh raft with all members as
 * voters; a Raft is renumbered and reconfigured with all members (learners stay learners); a BlackHole stays.
 */
export function newNetworkWithConfig(configFunc: ((c: RaftConfig) => void) | undefined, ...peers: (StateMachine | null)[]): Network {
  const size = peers.length;
  const peerAddrs = Array.from({ length: size }, (_, i) => BigInt(i + 1));
  const nw = new Network();
  peers.forEach((p, j) => {
    const id = peerAddrs[j]!;
    if (p === null) {
      const storage = new MemoryStorage();
      nw.storage.set(id, storage);
      const cfg = newTestConfig(id, peerAddrs.map(Number), 10, 1, storage);
      configFunc?.(cfg);
      nw.peers.set(id, new Raft(cfg));
    } else if (p instanceof Raft) {
      const learners = new Set(p.prs.config.learners);
      p.id = id;
      p.prs = new ProgressTracker(p.prs.maxInflight, p.prs.maxInflightBytes);
      for (const addr of peerAddrs) {
        const isLearner = learners.has(addr);
        p.prs.progress.set(addr, new Progress({ match: 0, next: 1, inflights: new Inflights(p.prs.maxInflight), isLearner }));
        if (isLearner) p.prs.config.learners.add(addr);
        else p.prs.config.voters.ids.add(addr);
      }
      p.isLearner = learners.has(id);
      p.reset(p.term);
      nw.peers.set(id, p);
    } else {
      nw.peers.set(id, p);
    }
  });
  return nw;
}

export function newNetwork(...peers: (StateMachine | null)[]): Network {
  return newNetworkWithConfig(undefined, ...peers);
}

/** A ConfChange literal. */
export function cc(type: ConfChangeType, nodeId: number): ConfChange {
  return { id: 0n, type, nodeId: BigInt(nodeId), context: Buffer.alloc(0) };
}

/** The raft's stable + unstable log as [term, index] pairs. */
export function termsOf(ents: Entry[]): Array<[number, number]> {
  return ents.map((e) => [e.term, e.index]);
}

/** A compact projection of messages for comparison: type, from, to, term and selected fields. */
export function strip(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = { type: MessageType[m.type], from: Number(m.from), to: Number(m.to), term: m.term };
  if (m.logTerm !== 0) out.logTerm = m.logTerm;
  if (m.index !== 0) out.index = m.index;
  if (m.commit !== 0) out.commit = m.commit;
  if (m.reject) out.reject = true;
  if (m.rejectHint !== 0) out.rejectHint = m.rejectHint;
  if (m.entries.length > 0) out.entries = m.entries.map((e) => [e.term, e.index, e.data.toString()]);
  if (m.context.length > 0) out.context = m.context.toString();
  if (m.snapshot !== undefined) out.snapshot = [m.snapshot.metadata.index, m.snapshot.metadata.term];
  return out;
}
