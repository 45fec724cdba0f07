// Watch checks over recorded watch streams, against the committed history (faults.md §2.8, etcd's
// tests/robustness/validate/watch.go, and kube-contract.md §7.2), one log per watch:
//
// - Filter: every event is in the watched range and of a type the watch did not filter out.
// - Ordered: event revisions never decrease within a watch.
// - Unique: no (revision, key) twice; with `expectUniqueRevision` (traffic where every write touches one key), no
//   revision twice.
// - Atomic: the events of one revision come in one response: a response never starts with the revision the
//   previous one ended with.
// - Header: a response's header revision is >= the revisions of its events (ours; etcd sends the store revision).
// - Bookmarkable: progress notifications never go back, are >= the last event revision, and no event at or
//   below one arrives after it; a notification is never below start_revision-1 (kube-contract §7.2 (d)).
// - Resumable: a watch from revision R > 0 delivers, first, the first committed matching event at or after R,
//   and nothing below R.
// - Reliable: the events delivered are exactly the committed matching events (same content: value, create
//   revision, version, lease) from the first expected revision (R, else the created response's revision + 1,
//   else the first progress notification + 1, else the first event) to the last revision seen (last event or
//   progress notification). No gaps, nothing extra.
// - IsCreate: a put is a creation (create_revision == mod_revision) iff the key did not exist at revision-1.
// - PrevKV: with prev_kv requested, a non-nil prev_kv equals the key at revision-1 (nil is tolerated, as etcd's
//   check does, because of compaction, unless `requirePrevKv`: kube needs it on every update and delete; even then
//   an event at exactly a compaction revision may lack it).
// - Created/Canceled: a created response comes first; nothing follows a cancel; a compaction cancel
//   (compact_revision C) is only allowed when the next revision the watch owed is below C.

import { inRange, type KeyValue, type Time } from './history';
import type { Replay, ReplayEvent } from './replay';

export interface WatchRequest {
  key: string;
  rangeEnd?: string;
  /** 0 or undefined: from the current revision + 1. */
  startRevision?: number;
  prevKv?: boolean;
  progressNotify?: boolean;
  filters?: ('noput' | 'nodelete')[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For a delete: key and mod_revision (the deletion revision); the value is ignored. */
  kv: KeyValue;
  prevKv?: KeyValue | null;
}

export interface WatchResponse {
  /** The header revision. */
  revision: number;
  events: WatchEvent[];
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  /** Optional: when recorded, so reports can say when. */
  time?: Time;
}

export interface WatchLog {
  /** For reports: which member served it, which stream/watch. */
  member?: string;
  name?: string;
  request: WatchRequest;
  responses: WatchResponse[];
}

export type WatchProperty =
  | 'Filter'
  | 'Ordered'
  | 'Unique'
  | 'Atomic'
  | 'Header'
  | 'Bookmarkable'
  | 'Resumable'
  | 'Reliable'
  | 'IsCreate'
  | 'PrevKV'
  | 'Created'
  | 'Canceled';

export interface WatchViolation {
  property: WatchProperty;
  /** Index into the logs passed in. */
  watch: number;
  message: string;
}

export interface WatchOptions {
  expectUniqueRevision?: boolean;
  requirePrevKv?: boolean;
  /**
   * Revisions the store was compacted at. etcd's compaction at C drops a key's generation whose tombstone is at C
   * (keyIndex.doCompact keeps only generations with a tombstone above C), so a watch that reads revision C from
   * history (started at C, or catching up across the compaction) does not get that delete; a synced watch got it
   * live. A delete at a compaction revision is therefore optional in Reliable and Resumable.
   */
  compactRevisions?: readonly number[];
}

/** clientv3 WatchResponse.IsProgressNotify. */
export function isProgressNotify(r: WatchResponse): boolean {
  return r.events.length === 0 && !r.created && !r.canceled && !r.compactRevision && r.revision !== 0;
}

function matchesRequest(req: WatchRequest, type: 'put' | 'delete', key: string): boolean {
  if (!inRange(key, req.key, req.rangeEnd)) return false;
  if (type === 'put' && req.filters?.includes('noput')) return false;
  if (type === 'delete' && req.filters?.includes('nodelete')) return false;
  return true;
}

function describeEvent(e: { type: string; kv: KeyValue }): string {
  return `${e.type} ${JSON.stringify(e.kv.key)}${e.type === 'put' ? `=${JSON.stringify(e.kv.value)}` : ''} @${e.kv.modRevision}`;
}
function describeReplayEvent(e: ReplayEvent): string {
  return `${e.type} ${JSON.stringify(e.key)}${e.type === 'put' ? `=${JSON.stringify(e.kv!.value)}` : ''} @${e.revision}`;
}

function kvEqualsState(got: KeyValue, want: KeyValue): boolean {
  if (got.key !== want.key || got.value !== want.value || got.modRevision !== want.modRevision) return false;
  if (got.createRevision !== undefined && got.createRevision !== want.createRevision) return false;
  if (got.version !== undefined && got.version !== want.version) return false;
  if (got.lease !== undefined && got.lease !== (want.lease ?? 0n)) return false;
  return true;
}

function eventMatchesReplay(got: WatchEvent, want: ReplayEvent): boolean {
  if (got.type !== want.type || got.kv.key !== want.key || got.kv.modRevision !== want.revision) return false;
  if (got.type === 'put') return kvEqualsState(got.kv, want.kv!);
  return true;
}

/** The committed events matching a watch, for revisions in [from, to], in commit order. */
function expectedEvents(replay: Replay, req: WatchRequest, from: number, to: number): ReplayEvent[] {
  const out: ReplayEvent[] = [];
  for (let rev = Math.max(from, 2); rev <= Math.min(to, replay.lastRevision); rev++) {
    for (const e of replay.eventsAt(rev)) if (matchesRequest(req, e.type, e.key)) out.push(e);
  }
  return out;
}

export function checkWatch(log: WatchLog, replay: Replay, watch = 0, options: WatchOptions = {}): WatchViolation[] {
  const v: WatchViolation[] = [];
  const add = (property: WatchProperty, message: string): void => {
    v.push({ property, watch, message: `${log.name ?? `watch ${watch}`}${log.member ? ` on ${log.member}` : ''}: ${message}` });
  };
  const req = log.request;
  const start = req.startRevision ?? 0;

  // Created / Canceled, and the stream flattened.
  const flat: { e: WatchEvent; resp: number }[] = [];
  let createdAt: number | undefined;
  let canceledAt: number | undefined;
  log.responses.forEach((r, i) => {
    if (r.created) {
      if (i !== 0) add('Created', `a created response arrives as response ${i}, after other responses`);
      else createdAt = r.revision;
    }
    if (canceledAt !== undefined && (r.events.length > 0 || isProgressNotify(r))) {
      add('Canceled', `response ${i} arrives after the watch was canceled`);
    }
    for (const e of r.events) flat.push({ e, resp: i });
    if (r.canceled && canceledAt === undefined) canceledAt = i;
  });

  // Filter, Ordered, Unique, Atomic, Header.
  const seenPair = new Set<string>();
  const seenRev = new Map<number, string>();
  let lastRev = -Infinity;
  flat.forEach(({ e }) => {
    const rev = e.kv.modRevision;
    if (!matchesRequest(req, e.type, e.kv.key)) add('Filter', `${describeEvent(e)} does not match the watch on ${JSON.stringify(req.key)}${req.rangeEnd !== undefined ? `..${JSON.stringify(req.rangeEnd)}` : ''}${req.filters?.length ? ` with filters ${req.filters.join(',')}` : ''}`);
    if (start > 0 && rev < start) add('Resumable', `${describeEvent(e)} is below the start revision ${start}`);
    if (rev < lastRev) add('Ordered', `${describeEvent(e)} comes after an event at revision ${lastRev}`);
    lastRev = Math.max(lastRev, rev);
    const pair = `${rev}\u0000${e.kv.key}`;
    if (seenPair.has(pair)) add('Unique', `${describeEvent(e)} is delivered twice`);
    else if (options.expectUniqueRevision && seenRev.has(rev)) add('Unique', `revision ${rev} is delivered twice (${seenRev.get(rev)} and ${describeEvent(e)})`);
    seenPair.add(pair);
    if (!seenRev.has(rev)) seenRev.set(rev, describeEvent(e));
  });
  let prevLast: number | undefined;
  let prevIndex = -1;
  log.responses.forEach((r, i) => {
    if (r.events.length === 0) return;
    const first = r.events[0]!.kv.modRevision;
    if (prevLast !== undefined && first === prevLast) add('Atomic', `revision ${first} is split between responses ${prevIndex} and ${i}`);
    prevLast = r.events[r.events.length - 1]!.kv.modRevision;
    prevIndex = i;
    const maxEv = Math.max(...r.events.map((e) => e.kv.modRevision));
    if (r.revision !== 0 && r.revision < maxEv) add('Header', `response ${i} has header revision ${r.revision} below its event at ${maxEv}`);
  });

  // Bookmarkable.
  let lastProgress: number | undefined;
  let lastEventRev: number | undefined;
  let firstProgressBeforeEvents: number | undefined;
  log.responses.forEach((r, i) => {
    if (isProgressNotify(r)) {
      if (lastProgress !== undefined && r.revision < lastProgress) add('Bookmarkable', `progress notification ${r.revision} (response ${i}) goes back from ${lastProgress}`);
      if (lastEventRev !== undefined && r.revision < lastEventRev) add('Bookmarkable', `progress notification ${r.revision} (response ${i}) is below the last event revision ${lastEventRev}`);
      if (start > 0 && r.revision < start - 1) add('Bookmarkable', `progress notification ${r.revision} (response ${i}) is below start_revision-1 = ${start - 1}`);
      if (lastEventRev === undefined && firstProgressBeforeEvents === undefined) firstProgressBeforeEvents = r.revision;
      lastProgress = Math.max(lastProgress ?? r.revision, r.revision);
      return;
    }
    for (const e of r.events) {
      if (lastProgress !== undefined && e.kv.modRevision <= lastProgress) {
        add('Bookmarkable', `${describeEvent(e)} (response ${i}) arrives after a progress notification at ${lastProgress}`);
      }
      lastEventRev = Math.max(lastEventRev ?? e.kv.modRevision, e.kv.modRevision);
    }
  });

  // Reliable, Resumable: against the committed history.
  let firstExpected: number | undefined;
  if (start > 0) firstExpected = start;
  else if (createdAt !== undefined) firstExpected = createdAt + 1;
  else if (firstProgressBeforeEvents !== undefined) firstExpected = firstProgressBeforeEvents + 1;
  else if (flat.length > 0) firstExpected = flat[0]!.e.kv.modRevision;
  const lastSeen = Math.max(lastProgress ?? -Infinity, lastEventRev ?? -Infinity);
  if (firstExpected !== undefined && lastSeen !== -Infinity) {
    if (lastSeen > replay.lastRevision) add('Reliable', `the watch reports revision ${lastSeen}, beyond the committed history (${replay.lastRevision})`);
    const compacted = new Set(options.compactRevisions ?? []);
    const optional = (e: ReplayEvent): boolean => e.type === 'delete' && compacted.has(e.revision);
    const got = flat.map((x) => x.e);
    // Optional events the watch did not deliver are left out of what it owed.
    const delivered = new Set(got.map((e) => `${e.kv.modRevision}\u0000${e.kv.key}`));
    const want = expectedEvents(replay, req, firstExpected, lastSeen).filter((e) => !optional(e) || delivered.has(`${e.revision}\u0000${e.key}`));
    if (start > 0 && got.length > 0) {
      const firstWant = want[0];
      if (!firstWant || !eventMatchesReplay(got[0]!, firstWant)) {
        add('Resumable', `the first event is ${describeEvent(got[0]!)}, but the first committed event from revision ${start} is ${firstWant ? describeReplayEvent(firstWant) : 'none'}`);
      }
    }
    // Report the first divergence only: one gap shifts everything after it.
    const n = Math.max(want.length, got.length);
    for (let j = 0; j < n; j++) {
      const w = want[j];
      const g = got[j];
      if (w && g && eventMatchesReplay(g, w)) continue;
      if (w && (!g || g.kv.modRevision > w.revision || (g.kv.modRevision === w.revision && g.kv.key > w.key))) {
        add('Reliable', `missing ${describeReplayEvent(w)} (event ${j}; next delivered: ${g ? describeEvent(g) : 'none'}; expected from revision ${firstExpected} to ${lastSeen})`);
      } else if (g && w && g.kv.modRevision === w.revision && g.kv.key === w.key) {
        add('Reliable', `event ${j} is ${describeEvent(g)} (create ${g.kv.createRevision}, version ${g.kv.version}), but the committed one is ${describeReplayEvent(w)} (create ${w.kv?.createRevision}, version ${w.kv?.version})`);
      } else {
        add('Reliable', `unexpected ${describeEvent(g!)} (event ${j}; expected ${w ? describeReplayEvent(w) : 'nothing more'} from revision ${firstExpected} to ${lastSeen})`);
      }
      break;
    }
  }

  // IsCreate, PrevKV. A watch reads prev_kv at revision-1; a compaction at the event's own revision has removed
  // the version it replaced (etcd's watcher then sends no prev_kv), so requirePrevKv excuses exactly that event.
  const compactedAt = new Set(options.compactRevisions ?? []);
  for (const { e } of flat) {
    const rev = e.kv.modRevision;
    const before = replay.stateAt(e.kv.key, rev - 1);
    if (e.type === 'put' && e.kv.createRevision !== undefined) {
      const isCreate = e.kv.createRevision === e.kv.modRevision;
      if (isCreate !== (before === null)) {
        add('IsCreate', `${describeEvent(e)} has create_revision ${e.kv.createRevision}, but the key ${before === null ? 'did not exist' : `existed (created at ${before.createRevision})`} at revision ${rev - 1}`);
      }
    }
    if (req.prevKv) {
      if (e.prevKv) {
        const ok = before !== null && e.prevKv.key === e.kv.key && e.prevKv.value === before.value && e.prevKv.modRevision === before.modRevision &&
          (e.prevKv.createRevision === undefined || e.prevKv.createRevision === before.createRevision) &&
          (e.prevKv.version === undefined || e.prevKv.version === before.version);
        if (!ok) {
          add('PrevKV', `${describeEvent(e)} has prev_kv ${JSON.stringify(e.prevKv.value)}@${e.prevKv.modRevision}, but at revision ${rev - 1} the key was ${before ? `${JSON.stringify(before.value)}@${before.modRevision}` : 'absent'}`);
        }
      } else if (options.requirePrevKv && before !== null && !compactedAt.has(rev)) {
        add('PrevKV', `${describeEvent(e)} has no prev_kv, but the key existed at revision ${rev - 1}`);
      }
    }
  }

  // A compaction cancel must be deserved: the next revision the watch owed is below the compaction revision.
  if (canceledAt !== undefined) {
    const c = log.responses[canceledAt]!;
    if (c.compactRevision) {
      const owed = Math.max(firstExpected ?? 0, (lastEventRev ?? 0) + 1, (lastProgress ?? 0) + 1);
      if (owed >= c.compactRevision) add('Canceled', `canceled with compact_revision ${c.compactRevision}, but the watch only owed revisions from ${owed}`);
    }
  }
  return v;
}

export interface WatchReport {
  ok: boolean;
  violations: WatchViolation[];
}

export function checkWatches(logs: readonly WatchLog[], replay: Replay, options: WatchOptions = {}): WatchReport {
  const violations = logs.flatMap((l, i) => checkWatch(l, replay, i, options));
  return { ok: violations.length === 0, violations };
}
