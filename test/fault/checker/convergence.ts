// End-of-test checks over data the harness collects once traffic stops and the cluster healed (faults.md §6.4
// C3/C4): no acknowledged write lost, and the members converged.

import {
  type History,
  inRange,
  isError,
  isWriteInput,
  type KeyValue,
  type Operation,
  prepareHistory,
  describeOperation,
  type TxnOutput,
} from './history';
import { kvsMatch, toKeyValue } from './model';
import type { Replay } from './replay';

export interface Problem {
  message: string;
}

export interface MemberStatus {
  member: string;
  /** Maintenance.Status / a Range header: the member's current revision. */
  revision: number;
  compactRevision: number;
  /** Maintenance.HashKV, taken at `hashRevision` (the same revision on every member, or it is not compared). */
  hash?: number;
  hashRevision?: number;
}

/** Every member at the same revision and compaction revision, and equal HashKV at the same hash revision. */
export function checkConvergence(members: readonly MemberStatus[]): Problem[] {
  const out: Problem[] = [];
  const first = members[0];
  if (!first) return out;
  for (const m of members.slice(1)) {
    if (m.revision !== first.revision) out.push({ message: `${m.member} is at revision ${m.revision}, ${first.member} at ${first.revision}` });
    if (m.compactRevision !== first.compactRevision) {
      out.push({ message: `${m.member} has compact revision ${m.compactRevision}, ${first.member} ${first.compactRevision}` });
    }
  }
  const byRev = new Map<number, MemberStatus[]>();
  for (const m of members) {
    if (m.hash === undefined || m.hashRevision === undefined) continue;
    let l = byRev.get(m.hashRevision);
    if (!l) byRev.set(m.hashRevision, (l = []));
    l.push(m);
  }
  for (const [rev, l] of byRev) {
    const h = l[0]!;
    for (const m of l.slice(1)) {
      if (m.hash !== h.hash) out.push({ message: `HashKV at revision ${rev}: ${m.member} has ${m.hash}, ${h.member} has ${h.hash}` });
    }
  }
  return out;
}

export interface LogEntry {
  index: number;
  term: number;
  /** Any stable digest of the entry's data. */
  data: string;
}

/** Committed Raft logs (or their tails) from several members: an index means the same entry everywhere. */
export function checkLogPrefixes(logs: readonly { member: string; entries: readonly LogEntry[] }[]): Problem[] {
  const out: Problem[] = [];
  const seen = new Map<number, { member: string; e: LogEntry }>();
  for (const l of logs) {
    let prev = -Infinity;
    for (const e of l.entries) {
      if (e.index <= prev) out.push({ message: `${l.member}: index ${e.index} follows ${prev}` });
      prev = e.index;
      const s = seen.get(e.index);
      if (!s) seen.set(e.index, { member: l.member, e });
      else if (s.e.term !== e.term || s.e.data !== e.data) {
        out.push({ message: `index ${e.index}: ${s.member} has term ${s.e.term} ${s.e.data}, ${l.member} has term ${e.term} ${e.data}` });
      }
    }
  }
  return out;
}

/** A member's full Range at the end (every key, revision 0). */
export interface FinalRead {
  member: string;
  revision: number;
  kvs: KeyValue[];
}

/** Each member's final contents equal the committed history at the member's revision, which is the last one. */
export function checkFinalState(replay: Replay, finals: readonly FinalRead[]): Problem[] {
  const out: Problem[] = [];
  for (const f of finals) {
    if (f.revision !== replay.lastRevision) out.push({ message: `${f.member} ends at revision ${f.revision}, the committed history at ${replay.lastRevision}` });
    const want: KeyValue[] = [];
    for (const k of replay.keys) {
      const s = replay.stateAt(k, f.revision);
      if (s) want.push(toKeyValue(k, s));
    }
    const got = [...f.kvs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (!kvsMatch(want, got)) {
      const wk = new Map(want.map((kv) => [kv.key, kv]));
      const gk = new Map(got.map((kv) => [kv.key, kv]));
      const diffs: string[] = [];
      for (const k of new Set([...wk.keys(), ...gk.keys()])) {
        const w = wk.get(k);
        const g = gk.get(k);
        if (w && g && kvsMatch([w], [g])) continue;
        diffs.push(`${k}: ${g ? `${JSON.stringify(g.value)}@${g.modRevision}` : 'absent'} (committed: ${w ? `${JSON.stringify(w.value)}@${w.modRevision}` : 'absent'})`);
      }
      out.push({ message: `${f.member} at revision ${f.revision} differs from the committed history: ${diffs.slice(0, 10).join('; ')}` });
    }
  }
  return out;
}

/**
 * "No acknowledged write lost", from the client history and one final full read alone (no committed history
 * needed): for each key, the latest acknowledged put (highest revision) must be the final value, or the key's
 * final mod_revision must be later than it, or — if the key is gone — some request that could delete it after
 * that revision must exist (an acknowledged delete at a later revision, or an indeterminate delete, txn or
 * revoke). A final value older than an acknowledged put means the put was lost.
 */
export function checkNoLostWrites(history: History, final: FinalRead): Problem[] {
  const ops = prepareHistory(history);
  const out: Problem[] = [];
  const lastPut = new Map<string, { rev: number; value: string; op: Operation; index: number }>();
  const note = (key: string, rev: number, value: string, op: Operation, index: number): void => {
    const l = lastPut.get(key);
    if (!l || rev > l.rev) lastPut.set(key, { rev, value, op, index });
  };
  ops.forEach((op, index) => {
    const o = op.output;
    if (!o || isError(o)) return;
    const rev = (o as { revision: number }).revision;
    if (op.input.type === 'put') note(op.input.key, rev, op.input.value, op, index);
    if (op.input.type === 'txn') {
      const t = o as TxnOutput;
      for (const x of t.succeeded ? op.input.success : op.input.failure) if (x.type === 'put') note(x.key, rev, x.value, op, index);
    }
  });
  const finalKv = new Map(final.kvs.map((kv) => [kv.key, kv]));
  const mayDelete = (key: string, after: number): boolean =>
    ops.some((op) => {
      if (!isWriteInput(op.input)) return false;
      const i = op.input;
      const touches = i.type === 'leaseRevoke' ||
        (i.type === 'delete' && inRange(key, i.key, i.rangeEnd)) ||
        (i.type === 'txn' && [...i.success, ...i.failure].some((x) => x.type === 'delete' && inRange(key, x.key, x.rangeEnd)));
      if (!touches) return false;
      if (op.output === undefined) return true;
      return !isError(op.output) && (op.output as { revision: number }).revision > after;
    });
  for (const [key, p] of lastPut) {
    const f = finalKv.get(key);
    if (f) {
      if (f.modRevision < p.rev) out.push({ message: `lost write: ${describeOperation(p.op, p.index)}, but ${final.member} ends with ${JSON.stringify(f.value)}@${f.modRevision}` });
      else if (f.modRevision === p.rev && f.value !== p.value) out.push({ message: `lost write: ${describeOperation(p.op, p.index)}, but ${final.member} has ${JSON.stringify(f.value)} at that revision` });
    } else if (!mayDelete(key, p.rev)) {
      out.push({ message: `lost write: ${describeOperation(p.op, p.index)}, but ${key} is absent on ${final.member} and nothing could have deleted it` });
    }
  }
  return out;
}

/** One member as MemberList reports it. */
export interface ListedMember {
  id: string;
  name: string;
  peerURLs: readonly string[];
  isLearner: boolean;
}

const describeMember = (m: ListedMember): string => `${m.id} ${m.name || '(unstarted)'} ${[...m.peerURLs].sort().join(',')}${m.isLearner ? ' learner' : ''}`;

/**
 * After membership changes (F14): every member's own member list is the same (IDs, names, peer URLs, learner
 * flags), and it is the cluster the harness expects at the end: exactly `expectedIds`, all voters.
 */
export function checkMemberLists(views: readonly { member: string; members: readonly ListedMember[] }[], expectedIds: readonly string[]): Problem[] {
  const out: Problem[] = [];
  const canon = (l: readonly ListedMember[]): string[] => l.map(describeMember).sort();
  const first = views[0];
  if (!first) return out;
  const want = canon(first.members);
  for (const v of views.slice(1)) {
    const got = canon(v.members);
    if (got.join('\n') !== want.join('\n')) out.push({ message: `${v.member} lists [${got.join('; ')}], ${first.member} lists [${want.join('; ')}]` });
  }
  for (const v of views) {
    const ids = v.members.map((m) => m.id).sort();
    const exp = [...expectedIds].sort();
    if (ids.join(',') !== exp.join(',')) out.push({ message: `${v.member} lists members ${ids.join(',')}, expected ${exp.join(',')}` });
    for (const m of v.members) if (m.isLearner) out.push({ message: `${v.member} still lists ${describeMember(m)} as a learner` });
  }
  return out;
}
