// The simulation's safety invariants, checked as the run goes (Raft paper Figure 3, plus durability and reads):
//
// - Election Safety: at most one leader per term.
// - Vote safety: a member grants at most one vote per term, across crashes (votes are durable before they are sent).
// - Log Matching: entries with the same index and term have the same data and the same predecessor term, so two
//   logs that agree on an entry agree on everything before it.
// - Leader Completeness: a leader's log holds every committed entry when it takes office.
// - State Machine Safety: every member applies the same entry at the same index (and snapshots agree with the
//   applied sequence).
// - Durability: every committed entry is durable (synced) on a majority of the voters of a configuration that could
//   have committed it.
// - Linearizable reads: a ReadIndex answer is at least the commit index observed before the read was issued.
//
// "Committed" is what the cluster has shown the outside: entries some member applied, or covered by a commit index
// that a member handed out in a Ready (in etcd 3.4 a leader counts its own unpersisted append, but that commit only
// becomes visible in a Ready after its write completed).

import { decodeConfChange } from '../../src/raft/confchange/codec';
import { ConfChangeType, type Entry, EntryType } from '../../src/raft/types';
import type { SimDisk } from './disk';

export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
}

export function violation(message: string): never {
  throw new InvariantViolation(message);
}

/** A 32-bit FNV-1a step over an entry, chaining the state machine's hash. */
export function chainHash(prev: number, e: { index: number; term: number; data: Buffer }): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  const mix = (b: number): void => {
    h ^= b & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (let i = 0; i < 4; i++) mix(e.index >>> (8 * i));
  for (let i = 0; i < 4; i++) mix(e.term >>> (8 * i));
  for (const b of e.data) mix(b);
  return h;
}

interface CommittedEntry {
  term: number;
  type: EntryType;
  data: Buffer;
  /** The state machine hash after applying this entry. */
  chain: number;
}

interface Config {
  /** Applies to entries at indexes > index. */
  index: number;
  voters: Set<bigint>;
  learners: Set<bigint>;
}

export class Checker {
  /** term -> the leader of that term. */
  readonly leaders = new Map<number, bigint>();
  /** `${voter}:${term}` -> the candidate it voted for. */
  private readonly votes = new Map<string, bigint>();
  /** `${index}:${term}` -> [data, term of index-1] as first seen in any persisted log. */
  private readonly entries = new Map<string, { data: Buffer; type: EntryType; prevTerm: number }>();
  /** The committed log, from index 1; committed[i] is undefined above the known committed prefix. */
  readonly committed: Array<CommittedEntry | undefined> = [];
  /** The highest committed index observed (the committed prefix is known up to it). */
  globalCommit = 0;
  /** Configurations over the committed log, ascending by index. */
  readonly configs: Config[] = [];
  private durableCheckedUpTo = 0;

  constructor(bootstrap: { index: number; term: number; hash: number; voters: bigint[] }) {
    for (let i = 0; i <= bootstrap.index; i++) this.committed.push(undefined);
    this.committed[bootstrap.index] = { term: bootstrap.term, type: EntryType.Normal, data: Buffer.alloc(0), chain: bootstrap.hash };
    this.globalCommit = bootstrap.index;
    this.durableCheckedUpTo = bootstrap.index;
    this.configs.push({ index: bootstrap.index, voters: new Set(bootstrap.voters), learners: new Set() });
  }

  /** Election Safety. */
  observeLeader(id: bigint, term: number): void {
    const prev = this.leaders.get(term);
    if (prev === undefined) this.leaders.set(term, id);
    else if (prev !== id) violation(`election safety: two leaders in term ${term}: ${prev} and ${id}`);
  }

  /** A granted MsgVoteResp left `voter` for `candidate` in `term`. */
  observeVote(voter: bigint, term: number, candidate: bigint): void {
    const key = `${voter}:${term}`;
    const prev = this.votes.get(key);
    if (prev === undefined) this.votes.set(key, candidate);
    else if (prev !== candidate) violation(`vote safety: ${voter} voted for ${prev} and ${candidate} in term ${term}`);
  }

  /** Log Matching, for entries a member persists after an entry of term prevTerm. */
  observeEntries(member: bigint, ents: readonly Entry[], prevTerm: number): void {
    let pt = prevTerm;
    for (const e of ents) {
      const key = `${e.index}:${e.term}`;
      const seen = this.entries.get(key);
      if (seen === undefined) this.entries.set(key, { data: e.data, type: e.type, prevTerm: pt });
      else {
        if (!seen.data.equals(e.data) || seen.type !== e.type) violation(`log matching: member ${member} has a different entry at ${key}`);
        if (seen.prevTerm !== pt) {
          violation(`log matching: member ${member} has entry ${key} after term ${pt}, elsewhere after term ${seen.prevTerm}`);
        }
      }
      pt = e.term;
    }
  }

  /**
   * A member showed commit index c (in a Ready's HardState). `entryAt` reads its log for the newly committed entries,
   * which by Log Matching are the committed ones. Returns the indexes newly known committed.
   */
  observeCommit(member: bigint, c: number, entryAt: (i: number) => Entry | undefined): void {
    if (c <= this.globalCommit) {
      // Already known: the member's entries must agree (checked when applied).
      return;
    }
    for (let i = this.globalCommit + 1; i <= c; i++) {
      const e = entryAt(i);
      if (e === undefined) violation(`member ${member} reports commit ${c} but lacks entry ${i}`);
      this.addCommitted(member, e);
    }
    this.globalCommit = c;
  }

  private addCommitted(member: bigint, e: Entry): void {
    const prev = this.committed[e.index - 1];
    if (prev === undefined) violation(`committed entry ${e.index} from ${member} before its predecessor is known`);
    const existing = this.committed[e.index];
    if (existing !== undefined) {
      if (existing.term !== e.term || !existing.data.equals(e.data)) violation(`state machine safety: entry ${e.index} differs at ${member}`);
      return;
    }
    this.committed[e.index] = { term: e.term, type: e.type, data: e.data, chain: chainHash(prev.chain, e) };
    if (e.type === EntryType.ConfChange) this.addConfig(e);
  }

  private addConfig(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const last = this.configs[this.configs.length - 1]!;
    const voters = new Set(last.voters);
    const learners = new Set(last.learners);
    if (cc.nodeId !== 0n) {
      if (cc.type === ConfChangeType.AddNode) {
        learners.delete(cc.nodeId);
        voters.add(cc.nodeId);
      } else if (cc.type === ConfChangeType.AddLearnerNode) {
        voters.delete(cc.nodeId);
        learners.add(cc.nodeId);
      } else if (cc.type === ConfChangeType.RemoveNode) {
        voters.delete(cc.nodeId);
        learners.delete(cc.nodeId);
      }
    }
    this.configs.push({ index: e.index, voters, learners });
  }

  /**
   * State Machine Safety: member applies entry e; its state machine hash before was `hashBefore`. Returns the hash
   * after. The entry becomes known committed if it was not.
   */
  observeApply(member: bigint, e: Entry, hashBefore: number): number {
    if (e.index > this.globalCommit + 1) violation(`member ${member} applies ${e.index} beyond the committed prefix ${this.globalCommit}`);
    if (e.index === this.globalCommit + 1) {
      this.addCommitted(member, e);
      this.globalCommit = e.index;
    }
    const c = this.committed[e.index];
    if (c === undefined) return violation(`no committed entry at ${e.index}`);
    if (c.term !== e.term || c.type !== e.type || !c.data.equals(e.data)) {
      violation(`state machine safety: member ${member} applies ${e.term}/${e.index} but ${c.term}/${e.index} is committed`);
    }
    const prev = this.committed[e.index - 1];
    if (prev === undefined || prev.chain !== hashBefore) violation(`state machine safety: member ${member} state before ${e.index} diverges`);
    return c.chain;
  }

  /** State Machine Safety for snapshots: a snapshot at index carries the committed state's hash. */
  observeSnapshotState(member: bigint, index: number, term: number, hash: number): void {
    const c = this.committed[index];
    if (c === undefined) violation(`member ${member} installs a snapshot at ${index}, beyond the committed prefix ${this.globalCommit}`);
    if (c.term !== term) violation(`snapshot at ${index} has term ${term}, committed ${c.term}`);
    if (c.chain !== hash) violation(`state machine safety: snapshot at ${index} installed by ${member} has a different state`);
  }

  /** Leader Completeness: a new leader's log holds every entry known committed. */
  checkLeaderCompleteness(member: bigint, term: number, firstIndex: number, lastIndex: number, termAt: (i: number) => number): void {
    if (lastIndex < this.globalCommit) violation(`leader completeness: leader ${member} of term ${term} ends at ${lastIndex} < commit ${this.globalCommit}`);
    for (let i = Math.max(firstIndex, 1); i <= this.globalCommit; i++) {
      const c = this.committed[i]!;
      if (termAt(i) !== c.term) violation(`leader completeness: leader ${member} of term ${term} has term ${termAt(i)} at ${i}, committed ${c.term}`);
    }
  }

  /** The voter sets that could have committed entry i: the configuration in effect before i, and the one before it. */
  private configsFor(i: number): Config[] {
    let k = this.configs.length - 1;
    while (k > 0 && this.configs[k]!.index >= i) k--;
    const out = [this.configs[k]!];
    if (k > 0) out.push(this.configs[k - 1]!);
    return out;
  }

  /** The latest configuration in the known committed log. */
  currentConfig(): Config {
    return this.configs[this.configs.length - 1]!;
  }

  /**
   * Durability: every committed entry (from `from`, or from where the last check stopped) is durable on a majority of
   * a configuration that could have committed it.
   */
  checkDurability(disks: ReadonlyMap<bigint, SimDisk>, from?: number): void {
    const start = from ?? this.durableCheckedUpTo + 1;
    for (let i = Math.max(start, 1); i <= this.globalCommit; i++) {
      const c = this.committed[i]!;
      const ok = this.configsFor(i).some((cfg) => {
        let n = 0;
        for (const id of cfg.voters) if (disks.get(id)?.hasDurable(i, c.term)) n++;
        return n >= Math.floor(cfg.voters.size / 2) + 1;
      });
      if (!ok) {
        const holders = [...disks].filter(([, d]) => d.hasDurable(i, c.term)).map(([id]) => id);
        violation(`durability: committed entry ${c.term}/${i} is durable only on [${holders.join(' ')}]`);
      }
    }
    if (from === undefined) this.durableCheckedUpTo = this.globalCommit;
  }
}
