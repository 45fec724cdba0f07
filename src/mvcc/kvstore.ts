// MvccStore: etcd's multi-version key-value store (mvcc/kvstore.go, kvstore_txn.go, kvstore_compaction.go,
// watchable_store_txn.go) over the LevelDB backend of backend.ts.
//
// ## State
//
//   currentRev      the revision of the last write transaction that changed something; 1 for an empty store,
//                   so the first write gets 2 (etcd). Every write transaction with changes adds exactly 1.
//   compactMainRev  the last compaction revision (-1 if never): reads below it fail with ErrCompacted, a read
//                   exactly at it succeeds.
//   consistentIndex the Raft index of the last entry applied (write() or compact()); persisted in the same
//                   LevelDB batch as the state it produced.
//   index           TreeIndex: key -> KeyIndex (generations of revisions), all in memory.
//
// ## Storage, byte by byte (details and the pipeline in backend.ts)
//
//   'k' | main u64 BE | '_' | sub u64 BE [| 't']  ->  v1 | create u64 | mod u64 | version u64 | lease i64 |
//                                                    keylen u32 | key | value
//   'm' "consistent_index"     -> u64 BE
//   'm' "scheduledCompactRev"  -> 17-byte revision {rev, 0}
//   'm' "finishedCompactRev"   -> 17-byte revision {rev, 0}
//   'a' | u8 len | bucket name | key -> opaque value (aux buckets: leases, alarms, membership)
//
// A write transaction appends one entry per change at {main: currentRev + 1, sub: 0, 1, ...}; a deletion
// appends a tombstone entry ('t'). Nothing is ever overwritten; compaction deletes entries the index no
// longer references.
//
// ## Reads
//
// range(): validate the revision, walk the index in memory (keys, their revisions at the read revision, and
// the count), then fetch the values of at most `limit` revisions at once (read buffer + one getMany). The
// index walk and the getMany call happen in one synchronous step, and LevelDB snapshots getMany at the call,
// so a concurrent compaction can never delete a value between the two.
//
// ## Compaction
//
// compact(rev) installs the cut synchronously (compactMainRev = rev), persists scheduledCompactRev with the
// consistent index (sync), and returns. A background job (sequential, one compaction at a time) then walks
// the index in chunks of `compactionBatchLimit` keys: for each key, KeyIndex.compact(rev) lists the revisions
// it drops and the job deletes their entries in one batch per chunk (all of one key's revisions in the same
// batch), awaiting each batch before the next chunk, so reads, writes and watch syncs run between chunks. The
// last batch persists finishedCompactRev. On open, a scheduled but unfinished compaction is run again (the
// index rebuilt from the key bucket still holds whatever was not deleted).
//
// ## Restore (open)
//
// Scan the key bucket in revision order: the first entry of a key rebuilds its KeyIndex from the stored
// create_revision and version (KeyIndex.restore), later entries are puts or tombstones. currentRev = the last
// main revision seen, at least 1 and at least the (scheduled) compaction revision: compaction at C may have
// deleted every entry up to C, e.g. when the last write was a deletion. Leases of live keys are re-attached
// through the LeaseAttacher (after MvccOptions.beforeRestore, so the lessor can load its leases first). A
// scheduled but unfinished compaction is installed and its deletion resumed in the background.

import zlib from 'node:zlib';
import { Level } from 'level';
import { assert } from '../util/assert';
import { failpoint } from '../util/failpoints';
import {
  Backend,
  decodeKeyValue,
  decodeKeyValueHeader,
  encodeKeyValueShared,
  keyBucketKey,
  keyOfEncodedKeyValue,
  metaKey,
  metaNames,
  type AuxChange,
  type SnapshotIterator,
  type KeyBucketEntry,
} from './backend';
import { ErrCompacted, ErrFutureRev, ErrSnapshotCorrupt, mvccError } from './errors';
import { KeyIndex } from './key-index';
import { bytesToRev, readU64, revToBytes } from './revision';
import { TreeIndex, type RemovedKeyRevision } from './tree-index';
import { EventType, type KeyValue, type LeaseAttacher, type MvccEvent, type RangeOptions, type RangeResult, type Revision } from './types';
import { WatchableStore, defaultWatchLimits, type WatchLimits, type WatchResponse, type WatchStream } from './watchable-store';

export interface MvccLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/** Read access to aux buckets before the key index is restored (see MvccOptions.beforeRestore). */
export interface AuxReader {
  auxGetAll(bucket: string): Promise<Array<[Buffer, Buffer]>>;
}

export interface MvccOptions {
  /** LevelDB directory; created if missing. */
  dir: string;
  lessor: LeaseAttacher;
  logger: MvccLogger;
  /**
   * Optional: called after the database opened and BEFORE the key index is restored, i.e. before open()
   * calls lessor.attach() for the restored keys. etcd recovers the lessor from its bucket first; a lessor
   * whose leases live in an aux bucket of this store loads them here.
   */
  beforeRestore?: (aux: AuxReader) => Promise<void>;
  /**
   * Optional: the physical size of the database directory in bytes, for dbSize(). MVCC has no file-system
   * access; without a sizer dbSize() reports LevelDB's approximateSize (table files only).
   */
  sizer?: () => Promise<number>;
  /** Keys compacted per compaction batch (etcd CompactionBatchLimit). Default 1000. */
  compactionBatchLimit?: number;
  /**
   * Optional: awaited between two compaction batches (etcd 3.4 sleeps 10 ms, --experimental-compaction-sleep-interval
   * in 3.5), so that a large compaction leaves room to the writes and reads arriving meanwhile. MVCC has no timers;
   * the server supplies the pause.
   */
  compactionPause?: () => Promise<void>;
  /** Watch catch-up bounds; defaults in defaultWatchLimits. */
  watchLimits?: Partial<WatchLimits>;
}

export interface TxnWrite {
  /** The revision this transaction writes (currentRev + 1) if it changes anything. */
  readonly rev: number;
  /** Like MvccStore.range, but sees this transaction's own earlier writes (read at rev when changes exist). */
  range(key: Buffer, end: Buffer | null, opts?: RangeOptions): Promise<RangeResult>;
  /** etcd storeTxnWrite.put: create_revision and version from the index, lease detach/attach. */
  put(key: Buffer, value: Buffer, lease: bigint): void;
  /** Tombstones every key alive in the range; returns how many. */
  deleteRange(key: Buffer, end: Buffer | null): number;
  auxPut(bucket: string, key: Buffer, value: Buffer): void;
  auxDelete(bucket: string, key: Buffer): void;
  /** The changes so far; a deletion has only key and modRevision (= rev) set. Do not mutate. */
  changes(): KeyValue[];
  /**
   * Commits: currentRev += 1 if anything changed, consistentIndex = the index given to write() (always),
   * synced watchers notified synchronously, the backend batch queued. Synchronous.
   */
  end(): void;
}

export interface HashByRevResult {
  hash: number;
  compactRev: number;
  rev: number;
}

const emptyBuffer = Buffer.alloc(0);
const snapshotMagic = Buffer.from('TSMVCC01', 'ascii');
const snapshotTrailerMarker = 0xffff_ffff;
const snapshotChunkBytes = 256 * 1024;

function copyKeyValue(kv: KeyValue): KeyValue {
  return { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
}

export class MvccStore {
  private currentRevValue = 1;
  private compactMainRevValue = -1;
  private consistentIndexValue = 0;
  /** Bumped by every compact(); long scans restart when it changes. */
  private compactEpoch = 0;
  private index = new TreeIndex();
  private openTxn: TxnWriteImpl | null = null;
  private compactionChain: Promise<void> = Promise.resolve();
  private closing = false;
  /** Set while replaceDatabase() swaps the database: reads wait for it, compaction stops. */
  private replacing: Promise<void> | null = null;
  private compactionSuspended = false;
  private readonly watchable: WatchableStore;
  private readonly compactionBatchLimit: number;

  private constructor(
    private readonly opts: MvccOptions,
    private backend: Backend,
  ) {
    this.compactionBatchLimit = opts.compactionBatchLimit ?? 1000;
    assert(this.compactionBatchLimit > 0, 'compactionBatchLimit must be positive');
    const store = this;
    this.watchable = new WatchableStore(
      {
        get currentRev() {
          return store.currentRevValue;
        },
        get compactMainRev() {
          return store.compactMainRevValue;
        },
        scanHistory: (fromMain, toMain) => store.backend.scanKeyBucket(fromMain, toMain),
        decodeKeyValue,
        keyOfEncoded: keyOfEncodedKeyValue,
      },
      { ...defaultWatchLimits, ...opts.watchLimits },
    );
  }

  /** Opens (or creates) the store at opts.dir and restores its state. */
  static async open(opts: MvccOptions): Promise<MvccStore> {
    const db = new Level<Buffer, Buffer>(opts.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const store = new MvccStore(opts, new Backend(db, opts.logger));
    try {
      if (opts.beforeRestore !== undefined) {
        await opts.beforeRestore({ auxGetAll: (bucket) => store.backend.auxGetAll(bucket) });
      }
      await store.restore();
    } catch (err) {
      await db.close();
      throw err;
    }
    return store;
  }

  get currentRev(): number {
    return this.currentRevValue;
  }

  get compactMainRev(): number {
    return this.compactMainRevValue;
  }

  consistentIndex(): number {
    return this.consistentIndexValue;
  }

  /** Number of keyIndexes in memory (live keys plus deleted keys with uncompacted history). */
  get indexSize(): number {
    return this.index.size;
  }

  /** Bytes appended to the backend since open (monotonic; see Backend.writtenBytes). */
  get writtenBytes(): number {
    return this.backend.writtenBytes;
  }

  /** Bytes written by transactions and not yet committed to LevelDB (for backpressure and metrics). */
  get pendingBytes(): number {
    return this.backend.pendingBytes;
  }

  // -------------------------------------------------------------------------------------------------------
  // Restore

  /**
   * Rebuilds the key index and the revisions from the backend. Everything is built aside and published in one
   * synchronous step at the end: during replaceDatabase() the old values stay visible to what reads them without
   * waiting (response headers, Status, a watch from revision 0) until the new database is fully loaded.
   */
  private async restore(): Promise<void> {
    const [ciBytes, scheduledBytes, finishedBytes] = await this.backend.readMeta([
      metaNames.consistentIndex,
      metaNames.scheduledCompactRev,
      metaNames.finishedCompactRev,
    ]);
    let consistentIndex = 0;
    if (ciBytes !== undefined) {
      assert(ciBytes.length === 8, 'consistent_index has a bad length');
      consistentIndex = readU64(ciBytes, 0);
    }
    const finishedCompactRev = finishedBytes === undefined ? -1 : bytesToRev(finishedBytes).main;
    let compactMainRev = finishedCompactRev;
    const index = new TreeIndex();
    let scheduled = scheduledBytes === undefined ? 0 : bytesToRev(scheduledBytes).main;

    // Everything is in LevelDB: let the scan read all of it.
    this.backend.setDurableRev(Number.MAX_SAFE_INTEGER - 1);
    const keyToLease = new Map<string, { key: Buffer; lease: bigint }>();
    let currentRev = 1;
    let entries = 0;
    for await (const e of this.backend.scanKeyBucket(0, Number.MAX_SAFE_INTEGER - 1)) {
      const kv = decodeKeyValueHeader(e.value);
      currentRev = e.rev.main;
      entries++;
      let ki = index.keyIndex(kv.key);
      if (ki !== undefined) {
        if (e.tombstone) ki.tombstone(e.rev.main, e.rev.sub);
        else ki.put(e.rev.main, e.rev.sub);
      } else if (!e.tombstone) {
        ki = new KeyIndex(Buffer.from(kv.key));
        ki.restore({ main: kv.createRevision, sub: 0 }, e.rev, kv.version);
        index.insert(ki);
      }
      const id = kv.key.toString('latin1');
      if (e.tombstone || kv.lease === 0n) keyToLease.delete(id);
      else keyToLease.set(id, { key: ki!.key, lease: kv.lease });
    }
    // Compaction may have deleted every entry up to the compaction revision.
    currentRev = Math.max(currentRev, compactMainRev, scheduled, 1);
    if (scheduled <= compactMainRev) scheduled = 0;
    if (scheduled !== 0) compactMainRev = scheduled;
    this.index = index;
    this.consistentIndexValue = consistentIndex;
    this.compactMainRevValue = compactMainRev;
    this.currentRevValue = currentRev;
    this.backend.setDurableRev(currentRev);
    for (const { key, lease } of keyToLease.values()) this.opts.lessor.attach(lease, key);
    this.opts.logger.info(
      { currentRev, compactRev: finishedCompactRev, consistentIndex, entries, keys: index.size },
      'restored mvcc store',
    );
    if (scheduled !== 0) {
      this.compactEpoch++;
      this.opts.logger.info({ scheduledCompactRev: scheduled }, 'resume scheduled compaction');
      void this.scheduleCompaction(scheduled);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Reads

  /**
   * etcd Range. end === null: exactly `key`; empty end: every key >= `key`; otherwise [key, end).
   * Rejects with DomainError ErrFutureRev if opts.rev > currentRev, ErrCompacted if 0 < opts.rev <
   * compactMainRev. `count` counts every key in the range at the read revision; `kvs` holds at most
   * opts.limit of them (0 = all), none with opts.count. `rev` is the current revision.
   */
  range(key: Buffer, end: Buffer | null, opts?: RangeOptions): Promise<RangeResult> {
    if (this.replacing !== null) return this.replacing.then(() => this.range(key, end, opts));
    return this.rangeAt(key, end, opts, this.currentRevValue, undefined);
  }

  /** @internal Shared by range() and TxnWrite.range(). Synchronous up to the single getMany. */
  rangeAt(
    key: Buffer,
    end: Buffer | null,
    opts: RangeOptions | undefined,
    curRev: number,
    overlay: ((rev: Revision) => KeyValue | undefined) | undefined,
  ): Promise<RangeResult> {
    try {
      const requested = opts?.rev ?? 0;
      if (requested > curRev) throw mvccError(ErrFutureRev);
      const rev = requested <= 0 ? curRev : requested;
      if (rev < this.compactMainRevValue) throw mvccError(ErrCompacted);
      const limit = opts?.limit !== undefined && opts.limit > 0 ? opts.limit : 0;
      if (opts?.count === true) {
        const counted = this.index.range(key, end, rev, 1);
        return Promise.resolve({ kvs: [], rev: curRev, count: counted.count });
      }
      const found = this.index.range(key, end, rev, limit);
      if (found.revs.length === 0) return Promise.resolve({ kvs: [], rev: curRev, count: found.count });
      return this.backend
        .readKeyValues(found.revs, overlay)
        .then((kvs) => ({ kvs: kvs.map(copyKeyValue), rev: curRev, count: found.count }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * For each event, the key's previous KeyValue (as of modRevision - 1), or null if it did not exist then
   * or that revision is compacted. For the watch API's prev_kv (etcd v3rpc reads it with a Range at
   * modRevision - 1); one getMany for all events.
   */
  prevKvs(events: MvccEvent[]): Promise<Array<KeyValue | null>> {
    if (this.replacing !== null) return this.replacing.then(() => this.prevKvs(events));
    try {
      const revs: Revision[] = [];
      const at: number[] = [];
      for (let i = 0; i < events.length; i++) {
        const ev = events[i]!;
        const rev = ev.kv.modRevision - 1;
        if (rev < 1 || rev < this.compactMainRevValue || rev > this.currentRevValue) continue;
        const got = this.index.get(ev.kv.key, rev);
        if (got === null) continue;
        revs.push(got.modified);
        at.push(i);
      }
      const out: Array<KeyValue | null> = events.map(() => null);
      if (revs.length === 0) return Promise.resolve(out);
      return this.backend.readKeyValues(revs).then((kvs) => {
        for (let j = 0; j < kvs.length; j++) out[at[j]!] = copyKeyValue(kvs[j]!);
        return out;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Writes

  /** Begins the write transaction for the Raft entry at `index`. Only one may be open at a time. */
  write(index: number): TxnWrite {
    assert(!this.closing, 'write on a closed store');
    assert(this.openTxn === null, 'a write transaction is already open');
    assert(Number.isSafeInteger(index) && index >= 0, 'write index must be a non-negative integer');
    assert(index >= this.consistentIndexValue, 'write index below the consistent index');
    const tw = new TxnWriteImpl(this, this.currentRevValue, index);
    this.openTxn = tw;
    return tw;
  }

  /** @internal */
  txnIndex(): TreeIndex {
    return this.index;
  }

  /** @internal */
  txnLessor(): LeaseAttacher {
    return this.opts.lessor;
  }

  /** @internal Called by TxnWriteImpl.end(). */
  commitTxn(tw: TxnWriteImpl, entries: KeyBucketEntry[], aux: AuxChange[], changes: KeyValue[]): void {
    assert(this.openTxn === tw, 'ending a transaction that is not the open one');
    this.openTxn = null;
    assert(tw.index >= this.consistentIndexValue, 'consistent index went backwards');
    this.consistentIndexValue = tw.index;
    if (changes.length > 0) {
      assert(tw.beginRev === this.currentRevValue, 'currentRev moved during a write transaction');
      this.currentRevValue = tw.beginRev + 1;
    }
    this.backend.append({ keyEntries: entries, aux, meta: [], deletes: [], sync: false, consistentIndex: tw.index });
    if (changes.length > 0) {
      const events: MvccEvent[] = changes.map((kv) => ({ type: kv.createRevision === 0 ? EventType.Delete : EventType.Put, kv }));
      this.watchable.notify(this.currentRevValue, events);
    }
  }

  /** Makes everything applied so far durable in LevelDB (a sync write) and resolves. */
  async forceCommit(): Promise<void> {
    const seq = this.backend.append({
      keyEntries: [],
      aux: [],
      meta: [],
      deletes: [],
      sync: true,
      consistentIndex: this.consistentIndexValue,
    });
    await this.backend.waitFor(seq);
  }

  // -------------------------------------------------------------------------------------------------------
  // Compaction

  /**
   * etcd kvstore.Compact for the Raft entry at `index`. Rejects with ErrCompacted if rev <= compactMainRev,
   * ErrFutureRev if rev > currentRev. Otherwise the cut is installed before this returns (synchronously, at
   * the call), scheduledCompactRev is persisted with the consistent index, and `done` resolves when the
   * background deletion finished (or stopped because the store closed).
   */
  async compact(rev: number, index: number): Promise<{ done: Promise<void> }> {
    assert(!this.closing, 'compact on a closed store');
    assert(this.openTxn === null, 'compact during an open write transaction');
    if (rev <= this.compactMainRevValue) throw mvccError(ErrCompacted);
    if (rev > this.currentRevValue) throw mvccError(ErrFutureRev);
    assert(index >= this.consistentIndexValue, 'compact index below the consistent index');
    this.compactMainRevValue = rev;
    this.compactEpoch++;
    this.consistentIndexValue = index;
    const seq = this.backend.append({
      keyEntries: [],
      aux: [],
      meta: [[metaKey(metaNames.scheduledCompactRev), revToBytes({ main: rev, sub: 0 })]],
      deletes: [],
      sync: true,
      consistentIndex: index,
    });
    const done = this.scheduleCompaction(rev);
    await this.backend.waitFor(seq);
    return { done };
  }

  /** Resolves when every compaction scheduled so far (including one resumed by open()) has finished. */
  compactionDone(): Promise<void> {
    return this.compactionChain;
  }

  private scheduleCompaction(rev: number): Promise<void> {
    const job = this.compactionChain.then(() => this.runCompaction(rev));
    this.compactionChain = job.catch((err: unknown) => {
      this.opts.logger.warn({ err, rev }, 'compaction failed');
    });
    return job;
  }

  private async runCompaction(rev: number): Promise<void> {
    this.opts.logger.info({ rev }, 'compaction started');
    let cursor: Buffer | null = null;
    let deleted = 0;
    for (;;) {
      if (this.closing || this.compactionSuspended) {
        this.opts.logger.info({ rev, deleted }, 'compaction interrupted by close; it resumes on open');
        return;
      }
      const removed: RemovedKeyRevision[] = [];
      // At most compactionBatchLimit keys and (about) as many deleted revisions per batch: etcd counts revisions.
      cursor = this.index.compactChunk(rev, cursor, this.compactionBatchLimit, removed, this.compactionBatchLimit);
      const last = cursor === null;
      const seq = this.backend.append({
        keyEntries: [],
        aux: [],
        meta: last ? [[metaKey(metaNames.finishedCompactRev), revToBytes({ main: rev, sub: 0 })]] : [],
        deletes: removed.map((r) => keyBucketKey(r.rev, r.tombstone)),
        sync: false,
        consistentIndex: this.consistentIndexValue,
      });
      deleted += removed.length;
      const before = failpoint('compactBeforeCommitBatch');
      if (before) await before;
      // Waiting for the batch bounds the work per step and lets everything else run in between.
      await this.backend.waitFor(seq);
      const after = failpoint('compactAfterCommitBatch');
      if (after) await after;
      if (last) break;
      if (this.opts.compactionPause !== undefined) await this.opts.compactionPause();
    }
    this.opts.logger.info({ rev, deleted }, 'finished scheduled compaction');
  }

  // -------------------------------------------------------------------------------------------------------
  // Hashes, sizes, snapshot

  /**
   * etcd HashByRev (HashKV): CRC-32 (zlib.crc32, IEEE) over "key" and then, in revision order, every
   * key-bucket entry (17/18-byte revision key, then encoded value) with main revision <= rev (0 = current),
   * skipping entries at or below the compaction revision that compaction does not keep, so the result does
   * not depend on how far the physical deletion has got. Rejects ErrCompacted if 0 < rev < compactMainRev
   * (etcd >= 3.5; rev == compactMainRev is hashable), ErrFutureRev if rev > currentRev.
   */
  async hashByRev(rev: number): Promise<HashByRevResult> {
    for (;;) {
      if (this.replacing !== null) await this.replacing;
      const compactRev = this.compactMainRevValue;
      const currentRev = this.currentRevValue;
      if (rev > 0 && rev < compactRev) throw mvccError(ErrCompacted);
      if (rev > currentRev) throw mvccError(ErrFutureRev);
      const hashRev = rev <= 0 ? currentRev : rev;
      const epoch = this.compactEpoch;
      let h = zlib.crc32(Buffer.from('key'));
      let restart = false;
      for await (const e of this.backend.scanKeyBucket(0, hashRev)) {
        if (epoch !== this.compactEpoch) {
          restart = true;
          break;
        }
        if (e.rev.main <= compactRev) {
          const ki = this.index.keyIndex(e.kv !== null ? e.kv.key : keyOfEncodedKeyValue(e.value));
          if (ki === undefined || !ki.isKeptAt(compactRev, e.rev)) continue;
        }
        h = zlib.crc32(e.revBytes, h);
        h = zlib.crc32(e.value, h);
      }
      if (!restart && epoch === this.compactEpoch) return { hash: h >>> 0, compactRev, rev: hashRev };
    }
  }

  /**
   * etcd Hash (the Hash RPC): CRC-32 over every LevelDB key and value except the consistent index, after
   * everything applied so far committed.
   */
  async hash(): Promise<number> {
    if (this.replacing !== null) await this.replacing;
    await this.backend.drain();
    const skip = metaKey(metaNames.consistentIndex);
    let h = 0;
    for await (const [k, v] of this.backend.entries()) {
      if (k.equals(skip)) continue;
      h = zlib.crc32(k, h);
      h = zlib.crc32(v, h);
    }
    return h >>> 0;
  }

  /** The database size: opts.sizer() when given, else LevelDB's approximateSize of all data. */
  dbSize(): Promise<number> {
    if (this.opts.sizer !== undefined) return this.opts.sizer();
    return this.backend.approximateSize();
  }

  /**
   * The size in use: LevelDB's approximateSize of all data (table files; it still counts data that a
   * LevelDB compaction will drop, and nothing in the write-ahead log). LevelDB has no exact figure.
   */
  dbSizeInUse(): Promise<number> {
    return this.backend.approximateSize();
  }

  /** Full LevelDB compaction (on the libuv pool; reads and writes go on meanwhile). */
  async defrag(): Promise<void> {
    if (this.replacing !== null) await this.replacing;
    const fp = failpoint('defragBeforeCopy');
    if (fp) await fp;
    return this.backend.compactRange();
  }

  /**
   * A consistent copy of the whole database (every bucket), as of the last committed batch after everything
   * applied so far committed. Stream format (ours):
   *
   *   "TSMVCC01" (8 bytes ASCII)
   *   records:  key length u32 BE | key | value length u32 BE | value      (LevelDB key order)
   *   trailer:  0xffffffff u32 | record count u64 BE | CRC-32 u32 BE of every byte before this field
   *
   * Chunks are about 256 KiB. Load it with MvccStore.restoreSnapshot.
   */
  async *snapshot(): AsyncGenerator<Buffer> {
    yield* (await this.openSnapshot()).chunks;
  }

  /**
   * Like snapshot(), but the copy is fixed when this resolves, and `consistentIndex` is the Raft index it holds:
   * call it where no write can begin (the server's apply worker) to send a snapshot of an exact index.
   */
  async openSnapshot(): Promise<{ consistentIndex: number; chunks: AsyncGenerator<Buffer> }> {
    if (this.replacing !== null) await this.replacing;
    await this.backend.drain();
    // Synchronous from here: the iterator's LevelDB snapshot and the index it holds are taken together.
    assert(this.openTxn === null, 'openSnapshot during an open write transaction');
    const it = this.backend.snapshotIterator();
    return { consistentIndex: this.consistentIndexValue, chunks: this.snapshotChunks(it) };
  }

  private async *snapshotChunks(it: SnapshotIterator): AsyncGenerator<Buffer> {
    let crc = zlib.crc32(snapshotMagic);
    yield Buffer.from(snapshotMagic);
    let parts: Buffer[] = [];
    let size = 0;
    let count = 0;
    for await (const [k, v] of this.backend.entriesFrom(it)) {
      const lengths = Buffer.allocUnsafe(4);
      lengths.writeUInt32BE(k.length, 0);
      const vlength = Buffer.allocUnsafe(4);
      vlength.writeUInt32BE(v.length, 0);
      parts.push(lengths, k, vlength, v);
      size += 8 + k.length + v.length;
      count++;
      if (size >= snapshotChunkBytes) {
        const chunk = Buffer.concat(parts, size);
        crc = zlib.crc32(chunk, crc);
        parts = [];
        size = 0;
        yield chunk;
      }
    }
    const trailer = Buffer.allocUnsafe(16);
    trailer.writeUInt32BE(snapshotTrailerMarker, 0);
    trailer.writeBigUInt64BE(BigInt(count), 4);
    const tail = Buffer.concat([...parts, trailer.subarray(0, 12)]);
    crc = zlib.crc32(tail, crc);
    trailer.writeUInt32BE(crc >>> 0, 12);
    yield Buffer.concat([...parts, trailer]);
  }

  /**
   * Writes a snapshot() stream into a new, empty LevelDB database at `dir` (then open it with open()).
   * Rejects with DomainError ErrSnapshotCorrupt on a bad magic, truncation or CRC mismatch; the directory
   * then holds a partial database and must be discarded.
   */
  static async restoreSnapshot(dir: string, chunks: AsyncIterable<Uint8Array>): Promise<{ records: number }> {
    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    try {
      const probe = await db.keys({ limit: 1 }).all();
      assert(probe.length === 0, 'restoreSnapshot needs an empty database');
      let pending: Buffer = Buffer.alloc(0);
      let crc = 0;
      let records = 0;
      let sawMagic = false;
      let finished = false;
      let batch: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];
      const corrupt = (why: string): never => {
        throw mvccError(ErrSnapshotCorrupt, new Error(why));
      };
      for await (const raw of chunks) {
        const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        if (finished) corrupt('data after the trailer');
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let off = 0;
        if (!sawMagic) {
          if (pending.length < snapshotMagic.length) continue;
          if (!pending.subarray(0, snapshotMagic.length).equals(snapshotMagic)) corrupt('bad magic');
          crc = zlib.crc32(pending.subarray(0, snapshotMagic.length));
          off = snapshotMagic.length;
          sawMagic = true;
        }
        for (;;) {
          if (pending.length - off < 4) break;
          const klen = pending.readUInt32BE(off);
          if (klen === snapshotTrailerMarker) {
            if (pending.length - off < 16) break;
            const count = Number(pending.readBigUInt64BE(off + 4));
            crc = zlib.crc32(pending.subarray(off, off + 12), crc);
            const want = pending.readUInt32BE(off + 12);
            if (want !== crc >>> 0) corrupt('CRC mismatch');
            if (count !== records) corrupt('record count mismatch');
            off += 16;
            finished = true;
            break;
          }
          if (pending.length - off < 4 + klen + 4) break;
          const vlen = pending.readUInt32BE(off + 4 + klen);
          const recordBytes = 8 + klen + vlen;
          if (pending.length - off < recordBytes) break;
          const key = Buffer.from(pending.subarray(off + 4, off + 4 + klen));
          const value = Buffer.from(pending.subarray(off + 8 + klen, off + recordBytes));
          crc = zlib.crc32(pending.subarray(off, off + recordBytes), crc);
          // Keep the last records back so the final batch, written with sync, is never empty.
          if (batch.length >= 1000) {
            await db.batch(batch);
            batch = [];
          }
          batch.push({ type: 'put', key, value });
          records++;
          off += recordBytes;
        }
        pending = pending.subarray(off);
        if (finished && pending.length > 0) corrupt('data after the trailer');
      }
      if (!finished) corrupt('truncated stream');
      if (batch.length > 0) await db.batch(batch, { sync: true });
      return { records };
    } finally {
      await db.close();
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Aux, watch, lifecycle

  /** Every (key, value) of an aux bucket, including changes not yet committed to LevelDB, in key order. */
  auxGetAll(bucket: string): Promise<Array<[Buffer, Buffer]>> {
    return this.backend.auxGetAll(bucket);
  }

  newWatchStream(send: (resp: WatchResponse) => boolean): WatchStream {
    return this.watchable.newWatchStream(send);
  }

  /**
   * Catches up unsynced watchers and retries victims (the server calls it periodically, etcd every 100 ms,
   * and right after creating watches). Never runs concurrently with itself. Resolves to the number of
   * watchers still behind.
   */
  syncWatchers(): Promise<number> {
    if (this.closing) return Promise.resolve(0);
    return this.watchable.syncWatchers();
  }

  /** Watcher counts by state. */
  watcherStats(): { synced: number; unsynced: number; victims: number } {
    return this.watchable.stats();
  }

  /**
   * Replaces the whole database with a newer one (a snapshot from the leader; etcd kvstore.Restore): stops
   * compaction and watch catch-up, commits and closes the current database, calls `swap` (which must leave the new
   * database at opts.dir), then opens it and restores the state as open() does (beforeRestore included: clear the
   * lessor before, it is re-filled from the new database). Reads issued meanwhile wait and then see the new state;
   * watchers stay registered and catch up from the new history (or get a compaction response). Call it where no
   * write can begin (the server's apply worker).
   */
  async replaceDatabase(swap: () => Promise<void>): Promise<void> {
    assert(!this.closing, 'replaceDatabase on a closed store');
    assert(this.openTxn === null && this.replacing === null, 'replaceDatabase during a write or another replace');
    let done!: () => void;
    this.replacing = new Promise<void>((r) => (done = r));
    this.compactionSuspended = true;
    try {
      await this.watchable.suspend();
      await this.compactionChain;
      await this.backend.close();
      await swap();
      const db = new Level<Buffer, Buffer>(this.opts.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
      this.backend = new Backend(db, this.opts.logger);
      this.compactEpoch++;
      if (this.opts.beforeRestore !== undefined) {
        await this.opts.beforeRestore({ auxGetAll: (bucket) => this.backend.auxGetAll(bucket) });
      }
      this.compactionSuspended = false;
      await this.restore();
      this.watchable.restored();
    } finally {
      this.compactionSuspended = false;
      this.replacing = null;
      done();
    }
  }

  /** Stops compaction (it resumes on open), waits for writes to commit, closes LevelDB. */
  async close(): Promise<void> {
    if (this.closing) return;
    assert(this.openTxn === null, 'close during an open write transaction');
    this.closing = true;
    await this.watchable.close();
    await this.compactionChain;
    await this.backend.close();
  }
}

class TxnWriteImpl implements TxnWrite {
  private readonly changesList: KeyValue[] = [];
  private readonly entries: KeyBucketEntry[] = [];
  private readonly aux: AuxChange[] = [];
  private ended = false;

  constructor(
    private readonly store: MvccStore,
    readonly beginRev: number,
    readonly index: number,
  ) {}

  get rev(): number {
    return this.beginRev + 1;
  }

  range(key: Buffer, end: Buffer | null, opts?: RangeOptions): Promise<RangeResult> {
    assert(!this.ended, 'range on an ended transaction');
    const rev = this.changesList.length > 0 ? this.beginRev + 1 : this.beginRev;
    const own = this.beginRev + 1;
    return this.store.rangeAt(key, end, opts, rev, (r) => (r.main === own ? this.changesList[r.sub] : undefined));
  }

  put(key: Buffer, value: Buffer, lease: bigint): void {
    assert(!this.ended, 'put on an ended transaction');
    const index = this.store.txnIndex();
    const lessor = this.store.txnLessor();
    const rev = this.beginRev + 1;
    let created = rev;
    let oldLease = 0n;
    const got = index.get(key, rev);
    if (got !== null) {
      created = got.created.main;
      oldLease = lessor.getLease(key);
    }
    const idxRev: Revision = { main: rev, sub: this.changesList.length };
    const { encoded, kv } = encodeKeyValueShared({
      key,
      value,
      createRevision: created,
      modRevision: rev,
      version: (got?.version ?? 0) + 1,
      lease,
    });
    this.entries.push({ rev: idxRev, tombstone: false, levelKey: keyBucketKey(idxRev, false), value: encoded, kv });
    index.put(kv.key, idxRev);
    this.changesList.push(kv);
    if (oldLease !== 0n) lessor.detach(oldLease, kv.key);
    if (lease !== 0n) lessor.attach(lease, kv.key);
  }

  deleteRange(key: Buffer, end: Buffer | null): number {
    assert(!this.ended, 'deleteRange on an ended transaction');
    const rrev = this.changesList.length > 0 ? this.beginRev + 1 : this.beginRev;
    const found = this.store.txnIndex().range(key, end, rrev, 0);
    for (const k of found.keys) this.delete(k);
    return found.keys.length;
  }

  private delete(key: Buffer): void {
    const rev = this.beginRev + 1;
    const idxRev: Revision = { main: rev, sub: this.changesList.length };
    const { encoded, kv } = encodeKeyValueShared({ key, value: emptyBuffer, createRevision: 0, modRevision: rev, version: 0, lease: 0n });
    this.entries.push({ rev: idxRev, tombstone: true, levelKey: keyBucketKey(idxRev, true), value: encoded, kv });
    const ok = this.store.txnIndex().tombstone(key, idxRev);
    assert(ok, 'failed to tombstone an existing key');
    this.changesList.push(kv);
    const lessor = this.store.txnLessor();
    const leaseId = lessor.getLease(kv.key);
    if (leaseId !== 0n) lessor.detach(leaseId, kv.key);
  }

  auxPut(bucket: string, key: Buffer, value: Buffer): void {
    assert(!this.ended, 'auxPut on an ended transaction');
    this.aux.push({ bucket, key: Buffer.from(key), value: Buffer.from(value) });
  }

  auxDelete(bucket: string, key: Buffer): void {
    assert(!this.ended, 'auxDelete on an ended transaction');
    this.aux.push({ bucket, key: Buffer.from(key), value: null });
  }

  changes(): KeyValue[] {
    return this.changesList.slice();
  }

  end(): void {
    assert(!this.ended, 'end called twice');
    this.ended = true;
    this.store.commitTxn(this, this.entries, this.aux, this.changesList);
  }
}
