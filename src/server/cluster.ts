// The cluster's membership (etcd etcdserver/api/membership RaftCluster): members, removed IDs, and the rules
// for changing them. Membership changes are Raft ConfChange entries carrying the member as JSON in their
// context, applied on every member in log order, and persisted in the MVCC backend's "members" and
// "members_removed" buckets in the same batch as the entry's consistent index, so a restarted member knows
// the cluster from its own volume.

import { DomainError } from '../util/errors';
import type { TxnWrite } from '../mvcc';
import type { Member } from './membership';
import { idToHex } from './membership';

// Domain errors with etcd's membership texts; v3rpc/errors.ts maps them to wire errors.
export const ErrIDRemoved = 'ErrIDRemoved';
export const ErrIDNotFound = 'ErrIDNotFound';
export const ErrIDExists = 'ErrIDExists';
export const ErrPeerURLexists = 'ErrPeerURLexists';
export const ErrMemberNotLearner = 'ErrMemberNotLearner';
export const ErrTooManyLearners = 'ErrTooManyLearners';

const messages: Record<string, string> = {
  [ErrIDRemoved]: 'membership: ID removed',
  [ErrIDNotFound]: 'membership: ID not found',
  [ErrIDExists]: 'membership: ID exists',
  [ErrPeerURLexists]: 'membership: peerURL exists',
  [ErrMemberNotLearner]: 'membership: can only promote a learner member',
  [ErrTooManyLearners]: 'membership: too many learner members in cluster',
};

function membershipError(code: string): DomainError {
  return new DomainError(code, messages[code] ?? code);
}

/** etcd's maxLearners. */
export const MAX_LEARNERS = 1;

/** The JSON a ConfChange carries (etcd ConfigChangeContext: the member, and whether it is a promotion). */
export interface ConfChangeContext {
  member: MemberJson;
  isPromote: boolean;
}

export interface MemberJson {
  id: string; // hex
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export function memberToJson(m: Member): MemberJson {
  return { id: idToHex(m.id), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner };
}

export function memberFromJson(j: MemberJson): Member {
  return { id: BigInt('0x' + j.id), name: j.name, peerUrls: j.peerURLs, clientUrls: j.clientURLs, isLearner: j.isLearner };
}

export type MembershipChange =
  | { type: 'add'; member: Member }
  | { type: 'promote'; id: bigint }
  | { type: 'remove'; id: bigint }
  | { type: 'update'; id: bigint; peerUrls: string[] };

export class RaftCluster {
  readonly members = new Map<bigint, Member>();
  readonly removed = new Set<bigint>();

  constructor(
    readonly clusterId: bigint,
    readonly localId: bigint,
  ) {}

  /** Rebuild from the backend buckets written by apply(). */
  restore(members: Array<[Buffer, Buffer]>, removed: Array<[Buffer, Buffer]>): void {
    this.members.clear();
    this.removed.clear();
    for (const [, v] of members) {
      const m = memberFromJson(JSON.parse(v.toString()) as MemberJson);
      this.members.set(m.id, m);
    }
    for (const [k] of removed) this.removed.add(k.readBigUInt64BE(0));
  }

  votingMembers(): Member[] {
    return [...this.members.values()].filter((m) => !m.isLearner).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** A member has started once it published its name through the log (etcd Member.IsStarted). */
  static isStarted(m: Member): boolean {
    return m.name !== '';
  }

  /** etcd RaftCluster.ValidateConfigurationChange: the rules, in etcd's order. */
  validate(change: MembershipChange): void {
    const id = change.type === 'add' ? change.member.id : change.id;
    if (this.removed.has(id)) throw membershipError(ErrIDRemoved);
    switch (change.type) {
      case 'promote': {
        const m = this.members.get(id);
        if (!m) throw membershipError(ErrIDNotFound);
        if (!m.isLearner) throw membershipError(ErrMemberNotLearner);
        return;
      }
      case 'add': {
        if (this.members.has(id)) throw membershipError(ErrIDExists);
        const urls = new Set([...this.members.values()].flatMap((m) => m.peerUrls));
        for (const u of change.member.peerUrls) if (urls.has(u)) throw membershipError(ErrPeerURLexists);
        if (change.member.isLearner) {
          const learners = [...this.members.values()].filter((m) => m.isLearner).length;
          if (learners + 1 > MAX_LEARNERS) throw membershipError(ErrTooManyLearners);
        }
        return;
      }
      case 'remove':
        if (!this.members.has(id)) throw membershipError(ErrIDNotFound);
        return;
      case 'update': {
        if (!this.members.has(id)) throw membershipError(ErrIDNotFound);
        const urls = new Set([...this.members.values()].filter((m) => m.id !== id).flatMap((m) => m.peerUrls));
        for (const u of change.peerUrls) if (urls.has(u)) throw membershipError(ErrPeerURLexists);
        return;
      }
    }
  }

  /** Apply a validated change and persist it in the entry's write transaction. */
  apply(tw: TxnWrite, change: MembershipChange): void {
    switch (change.type) {
      case 'add':
        this.members.set(change.member.id, { ...change.member, clientUrls: [...change.member.clientUrls] });
        break;
      case 'promote':
        this.members.get(change.id)!.isLearner = false;
        break;
      case 'remove':
        this.members.delete(change.id);
        this.removed.add(change.id);
        tw.auxDelete('members', idKey(change.id));
        tw.auxPut('members_removed', idKey(change.id), Buffer.from('removed'));
        return;
      case 'update':
        this.members.get(change.id)!.peerUrls = change.peerUrls;
        break;
    }
    const id = change.type === 'add' ? change.member.id : change.id;
    this.persist(tw, id);
  }

  /** Record published attributes (name, client URLs) of a member. */
  setAttributes(tw: TxnWrite, id: bigint, name: string, clientUrls: string[]): void {
    const m = this.members.get(id);
    if (!m) return; // removed meanwhile (etcd ignores it too)
    m.name = name;
    m.clientUrls = clientUrls;
    this.persist(tw, id);
  }

  private persist(tw: TxnWrite, id: bigint): void {
    const m = this.members.get(id);
    if (m) tw.auxPut('members', idKey(id), Buffer.from(JSON.stringify(memberToJson(m))));
  }
}

function idKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(id);
  return b;
}
