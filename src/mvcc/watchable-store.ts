// Watchers: live notification, catch-up from history, and slow consumers (etcd mvcc/watchable_store.go,
// watcher.go, watcher_group.go).
//
// Every watcher is in exactly one state:
//
//   synced    in `synced` (a WatcherGroup). It has been sent every event below minRev; TxnWrite.end() calls
//             notify(), which sends it the events of the new revision synchronously, one response per watcher
//             per revision. Invariant: minRev > currentRev after every end().
//   unsynced  in `unsynced`. minRev <= currentRev: it still needs history [minRev, currentRev], which
//             syncWatchers() reads from the key bucket (one range scan shared by up to maxWatchersPerSync
//             watchers), sends, and then moves it to synced, or keeps it unsynced if more history follows.
//   victim    in `victims`. `send` returned false for `pending` (the events it could not take, covering up to
//             minRev - 1); syncWatchers() re-sends them, then the watcher goes on from history (unsynced)
//             or live (synced). Until then nothing else is sent to it, so its events stay in order.
//   done      canceled, closed, or dropped after its compaction response.
//
// Ordering argument: each transition from unsynced to synced happens synchronously after a history read that
// ended at revision R, and only when currentRev == R at that moment; every later revision is then notified
// live. A watcher never sits in two places, so no revision is sent twice or skipped. A slow watcher never
// blocks end(): a failed send only moves that watcher to `victims`.
//
// Deviation from etcd 3.4: responses to catch-up batches carry revision = (last revision covered), not the
// current revision, so that a response header never claims events the watcher has not received yet.

import { assert } from '../util/assert';
import { ErrEmptyWatcherRange, ErrWatcherDuplicateID, mvccError } from './errors';
import type { ScannedEntry } from './backend';
import { EventType, type KeyValue, type MvccEvent } from './types';
import { WatcherGroup } from './watcher-group';

export interface WatchResponse {
  watchId: number;
  events: MvccEvent[];
  /** The store revision the watcher has observed up to (progress responses: the current revision). */
  revision: number;
  /** Non-zero only in the response that drops a watcher whose start revision was compacted. */
  compactRevision: number;
}

export interface WatchOptions {
  id: number;
  key: Buffer;
  /** null = exactly `key`; empty = every key >= `key`; otherwise [key, end). */
  end: Buffer | null;
  /** 0 (or negative) = from currentRev + 1. */
  startRev: number;
  filterPut?: boolean;
  filterDelete?: boolean;
}

export interface WatchStream {
  /**
   * Registers watcher `id`. startRev 0 = from currentRev + 1 (synced at once); startRev <= currentRev =
   * unsynced, replayed from history by syncWatchers (which also sends the compaction response when startRev is
   * below the compaction point: the server sends its `created` response before calling syncWatchers).
   * Throws DomainError ErrWatcherDuplicateID (id in use) or ErrEmptyWatcherRange (key >= non-empty end).
   */
  watch(opts: WatchOptions): void;
  /** Removes the watcher; false if this stream has no watcher `id`. */
  cancel(id: number): boolean;
  /** Sends {watchId: id, events: [], revision: currentRev} if the watcher is synced (and the database is not being
   * replaced); returns whether sent. */
  requestProgress(id: number): boolean;
  /**
   * If every watcher of the stream is synced (or there are none) and the database is not being replaced, sends
   * {watchId: -1, events: [], revision: currentRev} and returns whether `send` took it; returns false without
   * sending otherwise.
   */
  requestProgressAll(): boolean;
  isSynced(id: number): boolean;
  /** Cancels every watcher. The stream must not be used afterwards. */
  close(): void;
}

export interface WatchHost {
  readonly currentRev: number;
  readonly compactMainRev: number;
  /** Key-bucket entries with main revision in [fromMain, toMain], in revision order. */
  scanHistory(fromMain: number, toMain: number): AsyncGenerator<ScannedEntry>;
  decodeKeyValue(value: Buffer): KeyValue;
  keyOfEncoded(value: Buffer): Buffer;
}

export interface WatchLimits {
  /** Unsynced watchers caught up per syncWatchers call (etcd maxWatchersPerSync). */
  maxWatchersPerSync: number;
  /** Distinct revisions per catch-up response (etcd watchBatchMaxRevs); one sync may send several. */
  batchMaxRevs: number;
  /** History entries read per syncWatchers call (extended to the end of the last revision read). */
  syncMaxEntries: number;
  /** History bytes read per syncWatchers call (same rule). */
  syncMaxBytes: number;
}

export const defaultWatchLimits: WatchLimits = {
  maxWatchersPerSync: 512,
  batchMaxRevs: 1000,
  syncMaxEntries: 10_000,
  syncMaxBytes: 16 * 1024 * 1024,
};

type WatcherState = 'synced' | 'unsynced' | 'victim' | 'done';

class Watcher {
  state: WatcherState = 'unsynced';
  /** The smallest revision not yet sent (or, for a victim, not yet delivered after `pending`). */
  minRev = 0;
  /** A victim's undelivered events. */
  pending: MvccEvent[] | null = null;

  constructor(
    readonly id: number,
    readonly key: Buffer,
    readonly end: Buffer | null,
    readonly startRev: number,
    readonly filterPut: boolean,
    readonly filterDelete: boolean,
    readonly stream: WatchStreamImpl,
  ) {}

  /**
   * Sends `events` (after this watcher's filters) as one response. True when delivered, or when the filters
   * left nothing to deliver (etcd watcher.send); false when `send` refused it.
   */
  sendEvents(events: MvccEvent[], revision: number): boolean {
    let evs = events;
    if (this.filterPut || this.filterDelete) {
      evs = events.filter((e) => (e.type === EventType.Put ? !this.filterPut : !this.filterDelete));
      if (evs.length === 0) return true;
    }
    return this.stream.deliver({ watchId: this.id, events: evs, revision, compactRevision: 0 });
  }
}

class EventBatch {
  events: MvccEvent[] = [];
  /** Distinct revisions in `events` (one more than the limit once it is full). */
  revs = 0;
  /** The first revision left out because the batch was full; 0 if none. */
  moreRev = 0;

  add(ev: MvccEvent, maxRevs: number): void {
    if (this.revs > maxRevs) return;
    const last = this.events[this.events.length - 1];
    if (last === undefined) {
      this.revs = 1;
      this.events.push(ev);
      return;
    }
    if (ev.kv.modRevision > last.kv.modRevision) {
      this.revs++;
      if (this.revs > maxRevs) {
        this.moreRev = ev.kv.modRevision;
        return;
      }
    }
    this.events.push(ev);
  }
}

const emptyBuffer = Buffer.alloc(0);

export class WatchableStore {
  private readonly synced = new WatcherGroup<Watcher>();
  /** Insertion-ordered: syncWatchers takes from the front and puts watchers still behind at the back. */
  private readonly unsynced = new Set<Watcher>();
  private readonly victims = new Set<Watcher>();
  private running: Promise<number> | null = null;
  private queued: Promise<number> | null = null;
  private closed = false;
  private suspended = false;

  constructor(
    private readonly host: WatchHost,
    private readonly limits: WatchLimits = defaultWatchLimits,
  ) {}

  newWatchStream(send: (resp: WatchResponse) => boolean): WatchStream {
    assert(!this.closed, 'newWatchStream on a closed store');
    return new WatchStreamImpl(this, send);
  }

  /** Watcher counts by state (metrics, tests). */
  stats(): { synced: number; unsynced: number; victims: number } {
    return { synced: this.synced.size, unsynced: this.unsynced.size, victims: this.victims.size };
  }

  /** @internal */
  register(w: Watcher): void {
    assert(!this.closed, 'watch on a closed store');
    const currentRev = this.host.currentRev;
    const isSynced = w.startRev <= 0 || w.startRev > currentRev;
    if (isSynced) {
      w.minRev = Math.max(currentRev + 1, w.startRev);
      w.state = 'synced';
      this.synced.add(w);
    } else {
      w.minRev = w.startRev;
      w.state = 'unsynced';
      this.unsynced.add(w);
    }
  }

  /** @internal */
  unregister(w: Watcher): void {
    switch (w.state) {
      case 'synced':
        this.synced.delete(w);
        break;
      case 'unsynced':
        this.unsynced.delete(w);
        break;
      case 'victim':
        this.victims.delete(w);
        w.pending = null;
        break;
      case 'done':
        break;
    }
    w.state = 'done';
  }

  /** @internal */
  get currentRev(): number {
    return this.host.currentRev;
  }

  /**
   * Whether a progress notification may be sent now. Not while the database is being replaced (suspend() until
   * restored()): the watchers' positions refer to the old history until they catch up from the new one. (The
   * fault run mixed seed 1661965180 saw "progress notification 1 goes back from 197" on a follower installing a
   * snapshot, when the store's revision restarted from 1 during the load; MvccStore.restore no longer does that.)
   */
  get progressAllowed(): boolean {
    return !this.suspended;
  }

  /**
   * Sends the events of revision `rev` to the synced watchers they match; called by TxnWrite.end() after
   * currentRev became `rev`. Synchronous; O(events x (log d + matching watchers)).
   */
  notify(rev: number, events: MvccEvent[]): void {
    if (this.synced.size === 0) return;
    const batches = new Map<Watcher, MvccEvent[]>();
    for (const ev of events) {
      this.synced.forEachMatch(ev.kv.key, (w) => {
        if (ev.kv.modRevision < w.minRev) return;
        let list = batches.get(w);
        if (list === undefined) {
          list = [];
          batches.set(w, list);
        }
        list.push(ev);
      });
    }
    for (const [w, evs] of batches) {
      if (w.state !== 'synced') continue;
      w.minRev = rev + 1;
      if (!w.sendEvents(evs, rev)) {
        this.synced.delete(w);
        w.state = 'victim';
        w.pending = evs;
        this.victims.add(w);
      }
    }
  }

  /**
   * Retries victims, then catches up (a bounded slice of) the unsynced watchers from history and sends the
   * compaction response to those whose start revision was compacted. Never runs concurrently with itself: a
   * call during a run returns a promise for one follow-up run. Resolves to the number of watchers still
   * behind (unsynced + victims): the server may call again soon while it is non-zero.
   */
  syncWatchers(): Promise<number> {
    if (this.running === null) {
      this.running = this.syncOnce().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (this.queued === null) {
      const next = (): Promise<number> => {
        this.queued = null;
        return this.syncWatchers();
      };
      this.queued = this.running.then(next, next);
    }
    return this.queued;
  }

  /**
   * Before the store's database is replaced (a snapshot from the leader): stops syncing until restored() and
   * resolves once a running sync has finished, so no history scan spans the two databases.
   */
  async suspend(): Promise<void> {
    this.suspended = true;
    while (this.running !== null || this.queued !== null) {
      await (this.queued ?? this.running)?.catch(() => 0);
    }
  }

  /**
   * After the database was replaced by a newer one (etcd watchableStore.Restore): synced watchers whose next
   * revision the new database already holds become unsynced and catch up from its history; a watcher whose
   * start the new database compacted gets the compaction response from syncWatchers, as any other.
   */
  restored(): void {
    this.suspended = false;
    const currentRev = this.host.currentRev;
    for (const w of [...this.synced.watchers]) {
      if (w.minRev > currentRev) continue;
      this.synced.delete(w);
      w.state = 'unsynced';
      this.unsynced.add(w);
    }
  }

  /** Stops syncing; resolves when a running sync has finished. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running !== null || this.queued !== null) {
      await (this.queued ?? this.running)?.catch(() => 0);
    }
  }

  private retryVictims(): void {
    if (this.victims.size === 0) return;
    const currentRev = this.host.currentRev;
    for (const w of this.victims) {
      const pending = w.pending;
      assert(pending !== null, 'victim without pending events');
      if (!w.sendEvents(pending, w.minRev - 1)) continue;
      this.victims.delete(w);
      w.pending = null;
      if (w.minRev <= currentRev) {
        w.state = 'unsynced';
        this.unsynced.add(w);
      } else {
        w.state = 'synced';
        this.synced.add(w);
      }
    }
  }

  private async syncOnce(): Promise<number> {
    if (this.closed || this.suspended) return 0;
    this.retryVictims();
    if (this.unsynced.size === 0) return this.victims.size;

    const currentRev = this.host.currentRev;
    const compactRev = this.host.compactMainRev;
    const chosen: Watcher[] = [];
    for (const w of this.unsynced) {
      if (chosen.length >= this.limits.maxWatchersPerSync) break;
      assert(w.minRev <= currentRev, 'unsynced watcher ahead of the current revision');
      if (w.minRev < compactRev) {
        // etcd chooseAll: the history it needs is gone. Drop it once the response is taken.
        const sent = w.stream.deliver({ watchId: w.id, events: [], revision: currentRev, compactRevision: compactRev });
        if (sent) {
          this.unsynced.delete(w);
          w.state = 'done';
          w.stream.forget(w);
        }
        continue;
      }
      chosen.push(w);
    }
    if (chosen.length === 0) return this.unsynced.size + this.victims.size;

    let minRev = Number.MAX_SAFE_INTEGER;
    const group = new WatcherGroup<Watcher>();
    for (const w of chosen) {
      minRev = Math.min(minRev, w.minRev);
      group.add(w);
    }

    // One scan of the history [minRev, currentRev], bounded, ending on a revision boundary. Each watcher's
    // events are cut into batches of at most batchMaxRevs revisions (one response each).
    const batches = new Map<Watcher, EventBatch[]>();
    let upTo = currentRev;
    let entries = 0;
    let bytes = 0;
    let lastMain = -1;
    for await (const e of this.host.scanHistory(minRev, currentRev)) {
      if ((entries >= this.limits.syncMaxEntries || bytes >= this.limits.syncMaxBytes) && e.rev.main !== lastMain) {
        upTo = lastMain;
        break;
      }
      entries++;
      bytes += e.value.length;
      lastMain = e.rev.main;
      const key = e.kv !== null ? e.kv.key : this.host.keyOfEncoded(e.value);
      let ev: MvccEvent | null = null;
      group.forEachMatch(key, (w) => {
        if (e.rev.main < w.minRev) return;
        ev ??= this.toEvent(e);
        let list = batches.get(w);
        if (list === undefined) {
          list = [new EventBatch()];
          batches.set(w, list);
        }
        let last = list[list.length - 1]!;
        last.add(ev, this.limits.batchMaxRevs);
        if (last.moreRev !== 0) {
          last = new EventBatch();
          list.push(last);
          last.add(ev, this.limits.batchMaxRevs);
        }
      });
    }
    if (this.closed) return 0;

    // Synchronous from here on: decide each watcher's next state against the current revision now.
    const nowRev = this.host.currentRev;
    for (const w of chosen) {
      if (w.state !== 'unsynced') continue; // canceled or closed during the scan
      this.unsynced.delete(w);
      const list = batches.get(w) ?? [];
      let victim = false;
      for (let i = 0; i < list.length; i++) {
        const batch = list[i]!;
        // Batch i covers the revisions up to the first one of batch i + 1, the last one up to upTo.
        const next = i + 1 < list.length ? batch.moreRev : upTo + 1;
        w.minRev = next;
        if (!w.sendEvents(batch.events, next - 1)) {
          w.state = 'victim';
          w.pending = batch.events;
          this.victims.add(w);
          victim = true;
          break;
        }
      }
      if (victim) continue;
      w.minRev = Math.max(w.minRev, upTo + 1);
      if (w.minRev > nowRev) {
        w.state = 'synced';
        this.synced.add(w);
      } else {
        this.unsynced.add(w); // still behind: back of the queue
      }
    }
    return this.unsynced.size + this.victims.size;
  }

  private toEvent(e: ScannedEntry): MvccEvent {
    if (e.tombstone) {
      const key = e.kv !== null ? e.kv.key : Buffer.from(this.host.keyOfEncoded(e.value));
      return {
        type: EventType.Delete,
        kv: { key, createRevision: 0, modRevision: e.rev.main, version: 0, value: emptyBuffer, lease: 0n },
      };
    }
    return { type: EventType.Put, kv: e.kv ?? this.host.decodeKeyValue(e.value) };
  }
}

class WatchStreamImpl implements WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  private closed = false;

  constructor(
    private readonly store: WatchableStore,
    private readonly send: (resp: WatchResponse) => boolean,
  ) {}

  /** @internal Every response of this stream goes through here, so none overtakes another. */
  deliver(resp: WatchResponse): boolean {
    assert(!this.closed, 'delivery on a closed watch stream');
    return this.send(resp);
  }

  /** @internal */
  forget(w: Watcher): void {
    if (this.watchers.get(w.id) === w) this.watchers.delete(w.id);
  }

  watch(opts: WatchOptions): void {
    assert(!this.closed, 'watch on a closed watch stream');
    assert(Number.isSafeInteger(opts.id), 'watch id must be an integer');
    const end = opts.end;
    if (end !== null && end.length > 0 && Buffer.compare(opts.key, end) >= 0) {
      throw mvccError(ErrEmptyWatcherRange);
    }
    if (this.watchers.has(opts.id)) throw mvccError(ErrWatcherDuplicateID);
    const w = new Watcher(
      opts.id,
      Buffer.from(opts.key),
      end === null ? null : Buffer.from(end),
      opts.startRev,
      opts.filterPut === true,
      opts.filterDelete === true,
      this,
    );
    this.store.register(w);
    this.watchers.set(opts.id, w);
  }

  cancel(id: number): boolean {
    const w = this.watchers.get(id);
    if (w === undefined) return false;
    this.store.unregister(w);
    this.watchers.delete(id);
    return true;
  }

  requestProgress(id: number): boolean {
    const w = this.watchers.get(id);
    if (w === undefined || w.state !== 'synced' || !this.store.progressAllowed) return false;
    const currentRev = this.store.currentRev;
    // etcd >= 3.6.2: never promise a revision below start_revision - 1.
    if (currentRev < w.startRev - 1) return false;
    return this.deliver({ watchId: id, events: [], revision: currentRev, compactRevision: 0 });
  }

  requestProgressAll(): boolean {
    if (!this.store.progressAllowed) return false;
    const currentRev = this.store.currentRev;
    for (const w of this.watchers.values()) {
      if (w.state !== 'synced') return false;
      if (currentRev < w.startRev - 1) return false;
    }
    return this.deliver({ watchId: -1, events: [], revision: currentRev, compactRevision: 0 });
  }

  isSynced(id: number): boolean {
    return this.watchers.get(id)?.state === 'synced';
  }

  close(): void {
    if (this.closed) return;
    for (const w of this.watchers.values()) this.store.unregister(w);
    this.watchers.clear();
    this.closed = true;
  }
}
