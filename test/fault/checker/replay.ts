// The committed history: the authoritative order of write txns, one entry per revision from 2 (the first write on
// an empty store) upwards, with the events each wrote. The harness gets it from a member's watch on all keys from
// revision 1 (`committedFromWatch`), or from the merged WAL. `Replay` answers "what was the state at revision R"
// by binary search per key, so the oracle and watch checks run in O(n log n).
//
// Leases: the committed history has no LeaseGrant, so a replay snapshot treats every lease as existing; lease
// existence is left to the linearizability check.

import { inRange, type KeyValue, type LeaseId } from './history';
import { EtcdState, type KeyState, toKeyValue } from './model';

export interface CommittedEvent {
  type: 'put' | 'delete';
  key: string;
  /** For a put. */
  value?: string;
  /** For a put; 0n or undefined: no lease. */
  lease?: LeaseId;
}

export interface CommittedRevision {
  revision: number;
  events: CommittedEvent[];
}

/** An event with everything a watch may report: the kv after it and the kv before it. */
export interface ReplayEvent {
  type: 'put' | 'delete';
  key: string;
  revision: number;
  /** For a put: the key after the write. For a delete: undefined. */
  kv?: KeyValue;
  /** The key before this revision, or null if it did not exist. */
  prevKv: KeyValue | null;
  /** A put that created the key (create_revision == mod_revision). */
  isCreate: boolean;
}

/** A lease set that holds every lease (see the header comment). */
class AnyLease extends Set<LeaseId> {
  override has(): boolean {
    return true;
  }
}
const anyLease = new AnyLease();

interface KeyHistory {
  /** Ascending revisions at which the key changed. */
  revs: number[];
  /** The key's state from that revision on; null = absent. */
  states: (KeyState | null)[];
}

export class Replay {
  readonly lastRevision: number;
  /** Problems with the committed history itself (gaps, deletes of absent keys, a value written twice). */
  readonly problems: string[] = [];
  private readonly byKey = new Map<string, KeyHistory>();
  readonly keys: string[];
  private readonly events: ReplayEvent[][] = [];
  /** Put value -> the revisions that wrote it (more than one is a duplicate). */
  readonly valueRevisions = new Map<string, number[]>();

  constructor(committed: readonly CommittedRevision[]) {
    let rev = 1;
    const current = new Map<string, KeyState>();
    for (const c of committed) {
      if (c.revision !== rev + 1) {
        this.problems.push(`committed history: revision ${c.revision} follows ${rev} (expected ${rev + 1})`);
      }
      rev = c.revision;
      const evs: ReplayEvent[] = [];
      if (c.events.length === 0) this.problems.push(`committed history: revision ${rev} has no events`);
      for (const e of c.events) {
        const prev = current.get(e.key) ?? null;
        const prevKv = prev ? toKeyValue(e.key, prev) : null;
        let h = this.byKey.get(e.key);
        if (!h) this.byKey.set(e.key, (h = { revs: [], states: [] }));
        if (e.type === 'put') {
          const value = e.value ?? '';
          const s: KeyState = {
            value,
            modRevision: rev,
            createRevision: prev ? prev.createRevision : rev,
            version: prev ? prev.version + 1 : 1,
            lease: e.lease ?? 0n,
          };
          current.set(e.key, s);
          h.revs.push(rev);
          h.states.push(s);
          evs.push({ type: 'put', key: e.key, revision: rev, kv: toKeyValue(e.key, s), prevKv, isCreate: !prev });
          let vr = this.valueRevisions.get(value);
          if (!vr) this.valueRevisions.set(value, (vr = []));
          vr.push(rev);
          if (vr.length === 2) this.problems.push(`committed history: value ${JSON.stringify(value)} written twice (revisions ${vr[0]} and ${vr[1]})`);
        } else {
          if (!prev) this.problems.push(`committed history: revision ${rev} deletes ${JSON.stringify(e.key)}, which does not exist`);
          current.delete(e.key);
          h.revs.push(rev);
          h.states.push(null);
          evs.push({ type: 'delete', key: e.key, revision: rev, prevKv, isCreate: false });
        }
      }
      this.events.push(evs);
    }
    this.lastRevision = rev;
    this.keys = [...this.byKey.keys()].sort();
  }

  /** The key's state at revision `rev` (after that revision's writes), or null if absent. */
  stateAt(key: string, rev: number): KeyState | null {
    const h = this.byKey.get(key);
    if (!h) return null;
    // The last change at or before rev.
    let lo = 0;
    let hi = h.revs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (h.revs[mid]! <= rev) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? null : h.states[lo - 1]!;
  }

  /** Keys that ever existed in the etcd range, in key order. */
  keysInRange(key: string, rangeEnd: string | undefined): string[] {
    if (rangeEnd === undefined || rangeEnd === '') return this.byKey.has(key) ? [key] : [];
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    const out: string[] = [];
    for (let i = lo; i < this.keys.length && inRange(this.keys[i]!, key, rangeEnd); i++) out.push(this.keys[i]!);
    return out;
  }

  /** The store at `rev`, restricted to `keys` (enough to run one request through the model). */
  snapshot(rev: number, keys: Iterable<string>): EtcdState {
    const m = new Map<string, KeyState>();
    for (const k of keys) {
      const s = this.stateAt(k, rev);
      if (s) m.set(k, s);
    }
    return new EtcdState(rev, 0, m, anyLease);
  }

  /** The events of one revision, in the order committed. */
  eventsAt(rev: number): readonly ReplayEvent[] {
    return this.events[rev - 2] ?? [];
  }
}

/**
 * Builds the committed history from a watch on every key (key '\0', range_end '\0', or a prefix covering all
 * keys) started at revision 1 on a store that was empty: events grouped by mod_revision. The caller should also
 * run the watch checks on this log; gaps in revisions are reported by Replay.
 */
export function committedFromWatch(responses: readonly { events: readonly { type: 'put' | 'delete'; kv: KeyValue }[] }[]): CommittedRevision[] {
  const out: CommittedRevision[] = [];
  for (const r of responses) {
    for (const e of r.events) {
      const rev = e.kv.modRevision;
      let last = out[out.length - 1];
      if (!last || last.revision !== rev) out.push((last = { revision: rev, events: [] }));
      last.events.push(e.type === 'put' ? { type: 'put', key: e.kv.key, value: e.kv.value, lease: e.kv.lease ?? 0n } : { type: 'delete', key: e.kv.key });
    }
  }
  return out;
}
