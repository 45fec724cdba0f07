// The MVCC backend: one LevelDB database (npm `level`, i.e. classic-level) holding the key bucket, the meta
// bucket and the server's aux buckets, written through a single sequential group-commit pipeline, with an
// in-memory read buffer so that reads see writes that are not in LevelDB yet.
//
// ## On-disk format, byte by byte
//
// Every LevelDB key starts with a one-byte bucket prefix:
//
//   key bucket   0x6b 'k' | main u64 BE | 0x5f '_' | sub u64 BE [| 0x74 't' for a tombstone]   (18 or 19 bytes)
//   meta bucket  0x6d 'm' | ASCII name                                                      (see metaNames)
//   aux buckets  0x61 'a' | u8 n = byte length of the bucket name | n bytes UTF-8 bucket name | key bytes
//
// The key-bucket key is etcd's 17-byte revision (mvcc/revision.go), so LevelDB's bytewise order is revision
// order and the key bucket is the store's history as a log: watch catch-up and restore are range scans.
//
// Key-bucket value: one mvccpb.KeyValue in our own fixed layout (not protobuf):
//
//   offset  size  field
//   0       1     format version, 0x01
//   1       8     create_revision  u64 BE
//   9       8     mod_revision     u64 BE
//   17      8     version          u64 BE
//   25      8     lease            i64 BE (two's complement; 0 = no lease)
//   33      4     key length k     u32 BE
//   37      k     key bytes
//   37+k    rest  value bytes
//
// A tombstone entry (the 't'-marked key) holds a KeyValue with only the key and mod_revision set (etcd stores
// only the key; the mod revision also follows from the LevelDB key).
//
// Meta values:
//   'm' "consistent_index"     u64 BE: the Raft index of the last entry applied; written in EVERY batch, so
//                              LevelDB's atomic batches make it exactly the state it is stored with.
//   'm' "scheduledCompactRev"  17-byte revision {main: rev, sub: 0} (etcd's format): compaction scheduled.
//   'm' "finishedCompactRev"   17-byte revision: the last compaction whose physical deletion finished.
//
// Aux values are opaque bytes owned by the server (leases, alarms, membership, ...).
//
// ## Write pipeline (group commit)
//
// Writers call append() with a WriteUnit (one MVCC transaction's key-bucket entries plus aux and meta
// changes, or a chunk of compaction deletions) and never wait. Units queue in order. At most ONE LevelDB batch
// is in flight: when it commits, everything queued meanwhile becomes the next batch. So batches commit in
// order, a crash can never keep batch N+1 without batch N, and the consistent index persisted with a batch is
// exactly the state in LevelDB. Batches use sync: false (the Raft WAL provides durability; after a crash the
// server re-applies the WAL entries above consistentIndex, so apply is idempotent); forceCommit appends a
// unit with sync: true.
//
// ## Read buffer
//
// Key-bucket entries stay in `keyBuffer` (ascending revisions) from append() until their batch commits.
// Invariant: every key-bucket entry with main <= durableRev is in LevelDB, every one above is in keyBuffer.
// A read looks up revisions above durableRev in keyBuffer and reads the others with one db.getMany; both
// lookups happen in the same synchronous step, and classic-level takes getMany's and iterator()'s implicit
// snapshot synchronously at the call, so an entry can never be missed between the two. Aux changes stay in
// `auxBuffer` until their batch commits, for auxGetAll.

import type { Level } from 'level';
import { assert } from '../util/assert';
import { prefixEnd } from '../util/bytes';
import type { KeyValue, Revision } from './types';
import { bytesToRev, isTombstoneBytes, markTombstone, readU64, revBytesLen, writeU64 } from './revision';

export const prefixKeyBucket = 0x6b; // 'k'
export const prefixMeta = 0x6d; // 'm'
export const prefixAux = 0x61; // 'a'

export const metaNames = {
  consistentIndex: 'consistent_index',
  scheduledCompactRev: 'scheduledCompactRev',
  finishedCompactRev: 'finishedCompactRev',
} as const;

const kvFormatVersion = 0x01;
const kvHeaderBytes = 37;

// ---------------------------------------------------------------------------------------------------------
// Encoding

/** The LevelDB key of a key-bucket entry. */
export function keyBucketKey(rev: Revision, tombstone: boolean): Buffer {
  const b = Buffer.allocUnsafe(1 + revBytesLen + (tombstone ? 1 : 0));
  b[0] = prefixKeyBucket;
  writeU64(b, rev.main, 1);
  b[9] = 0x5f;
  writeU64(b, rev.sub, 10);
  if (tombstone) b[18] = markTombstone;
  return b;
}

/** Splits a key-bucket LevelDB key into its revision and tombstone mark. */
export function parseKeyBucketKey(k: Buffer): { rev: Revision; tombstone: boolean; revBytes: Buffer } {
  assert(k[0] === prefixKeyBucket, 'not a key-bucket key');
  const revBytes = k.subarray(1);
  return { rev: bytesToRev(revBytes), tombstone: isTombstoneBytes(revBytes), revBytes };
}

export function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.from([prefixMeta]), Buffer.from(name, 'ascii')]);
}

export function auxPrefix(bucket: string): Buffer {
  const name = Buffer.from(bucket, 'utf8');
  assert(name.length > 0, 'aux bucket name must not be empty');
  assert(name.length <= 255, 'aux bucket name longer than 255 bytes');
  return Buffer.concat([Buffer.from([prefixAux, name.length]), name]);
}

export function auxKey(bucket: string, key: Buffer): Buffer {
  return Buffer.concat([auxPrefix(bucket), key]);
}

export function encodeKeyValue(kv: KeyValue): Buffer {
  const b = Buffer.allocUnsafe(kvHeaderBytes + kv.key.length + kv.value.length);
  b[0] = kvFormatVersion;
  writeU64(b, kv.createRevision, 1);
  writeU64(b, kv.modRevision, 9);
  writeU64(b, kv.version, 17);
  b.writeBigInt64BE(kv.lease, 25);
  b.writeUInt32BE(kv.key.length, 33);
  kv.key.copy(b, kvHeaderBytes);
  kv.value.copy(b, kvHeaderBytes + kv.key.length);
  return b;
}

/** Decodes a key-bucket value; the returned key and value are copies (safe to keep). */
export function decodeKeyValue(b: Buffer): KeyValue {
  assert(b.length >= kvHeaderBytes, 'key-bucket value shorter than its header');
  assert(b[0] === kvFormatVersion, 'key-bucket value has an unknown format version');
  const keyLength = b.readUInt32BE(33);
  assert(kvHeaderBytes + keyLength <= b.length, 'key-bucket value truncated inside the key');
  return {
    createRevision: readU64(b, 1),
    modRevision: readU64(b, 9),
    version: readU64(b, 17),
    lease: b.readBigInt64BE(25),
    key: Buffer.from(b.subarray(kvHeaderBytes, kvHeaderBytes + keyLength)),
    value: Buffer.from(b.subarray(kvHeaderBytes + keyLength)),
  };
}

/** The key bytes inside an encoded KeyValue, without copying (valid while `b` is). */
export function keyOfEncodedKeyValue(b: Buffer): Buffer {
  assert(b.length >= kvHeaderBytes, 'key-bucket value shorter than its header');
  const keyLength = b.readUInt32BE(33);
  assert(kvHeaderBytes + keyLength <= b.length, 'key-bucket value truncated inside the key');
  return b.subarray(kvHeaderBytes, kvHeaderBytes + keyLength);
}

/** Everything but the value, with the key as a view into `b` (for restore, which skips values). */
export function decodeKeyValueHeader(b: Buffer): Omit<KeyValue, 'value'> {
  assert(b.length >= kvHeaderBytes, 'key-bucket value shorter than its header');
  assert(b[0] === kvFormatVersion, 'key-bucket value has an unknown format version');
  return {
    createRevision: readU64(b, 1),
    modRevision: readU64(b, 9),
    version: readU64(b, 17),
    lease: b.readBigInt64BE(25),
    key: keyOfEncodedKeyValue(b),
  };
}

/**
 * Encodes a KeyValue and returns it together with a KeyValue whose key and value are views into the encoding
 * (one copy of the bytes instead of two).
 */
export function encodeKeyValueShared(kv: KeyValue): { encoded: Buffer; kv: KeyValue } {
  const encoded = encodeKeyValue(kv);
  const keyEnd = kvHeaderBytes + kv.key.length;
  return {
    encoded,
    kv: { ...kv, key: encoded.subarray(kvHeaderBytes, keyEnd), value: encoded.subarray(keyEnd) },
  };
}

export function encodeU64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Pipeline

/** One key-bucket entry written by a transaction. Immutable once appended. */
export interface KeyBucketEntry {
  rev: Revision;
  tombstone: boolean;
  /** The full LevelDB key (prefix included). */
  levelKey: Buffer;
  /** encodeKeyValue(kv). */
  value: Buffer;
  kv: KeyValue;
}

export interface AuxChange {
  bucket: string;
  key: Buffer;
  /** null deletes. */
  value: Buffer | null;
}

/** What one append() adds to the pipeline; committed atomically with everything else in its batch. */
export interface WriteUnit {
  /** Ascending, and above every key-bucket entry appended before. */
  keyEntries: KeyBucketEntry[];
  aux: AuxChange[];
  /** Extra meta puts (LevelDB key, value). */
  meta: Array<[Buffer, Buffer]>;
  /** LevelDB keys to delete (compaction). */
  deletes: Buffer[];
  /** Write the batch holding this unit with sync: true. */
  sync: boolean;
  /** The consistent index this unit brings the store to; persisted with the batch. */
  consistentIndex: number;
}

/** An entry of the key bucket as scanned (from LevelDB or from the read buffer). */
export interface ScannedEntry {
  rev: Revision;
  tombstone: boolean;
  /** The 17/18-byte revision key, without the bucket prefix (what etcd hashes). */
  revBytes: Buffer;
  value: Buffer;
  /** Already decoded when the entry came from the read buffer. */
  kv: KeyValue | null;
}

interface QueuedUnit {
  unit: WriteUnit;
  seq: number;
}

interface BufferedAux {
  key: Buffer;
  value: Buffer | null;
  seq: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type LevelDb = Level<Buffer, Buffer>;
/** A whole-database LevelDB iterator (its snapshot is taken when it is created). */
export interface SnapshotIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}

/** classic-level methods that `level`'s typings leave out. */
interface ClassicLevelExtras {
  approximateSize(start: Buffer, end: Buffer): Promise<number>;
  compactRange(start: Buffer, end: Buffer): Promise<void>;
}

export interface BackendLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  /** Optional: a failed write is logged here when present (pino has it), else through warn. */
  error?(o: object, m: string): void;
}

export class Backend {
  /**
   * Every key-bucket entry with main <= durableRev is in LevelDB; the ones above are in keyBuffer.
   * Batches hold whole transactions, so this is always a transaction boundary.
   */
  private durableRevValue = 0;
  /** Entries not yet committed, ascending by revision; live part is keyBuffer[keyBufferHead..]. */
  private keyBuffer: KeyBucketEntry[] = [];
  private keyBufferHead = 0;
  /** bucket -> latin1(key) -> uncommitted change. */
  private readonly auxBuffer = new Map<string, Map<string, BufferedAux>>();
  private auxBuffered = 0;

  private queue: QueuedUnit[] = [];
  private nextSeq = 1;
  private committedSeq = 0;
  private inflight = false;
  private flushScheduled = false;
  private waiters: Waiter[] = [];
  private failure: unknown = null;
  private closed = false;
  /** Bytes appended but not committed (key-bucket values), for the server's backpressure decisions. */
  private pendingBytesValue = 0;
  /** Bytes of every unit ever appended (keys and values of all changes), for the quota's size estimate. */
  private writtenBytesValue = 0;

  constructor(
    readonly db: LevelDb,
    private readonly logger: BackendLogger,
  ) {}

  get durableRev(): number {
    return this.durableRevValue;
  }

  /** Called once after restore: everything in LevelDB up to `rev`. */
  setDurableRev(rev: number): void {
    assert(this.keyBufferHead === this.keyBuffer.length, 'setDurableRev with buffered entries');
    this.durableRevValue = rev;
  }

  get pendingBytes(): number {
    return this.pendingBytesValue;
  }

  /**
   * Bytes appended since the backend opened (LevelDB keys and values of every change, deletions counted by key),
   * monotonic. The server adds the bytes written since its last size sample to that sample (the quota check).
   */
  get writtenBytes(): number {
    return this.writtenBytesValue;
  }

  /** Number of units appended and not yet committed. */
  get pendingUnits(): number {
    return this.nextSeq - 1 - this.committedSeq;
  }

  /** Queues a unit; returns its sequence number (see waitFor). Synchronous. */
  append(unit: WriteUnit): number {
    this.assertUsable();
    const seq = this.nextSeq++;
    const last = this.keyBuffer[this.keyBuffer.length - 1];
    let prev = last === undefined || this.keyBufferHead === this.keyBuffer.length ? null : last.rev;
    for (const e of unit.keyEntries) {
      assert(e.rev.main > this.durableRevValue, 'key-bucket entry at or below the durable revision');
      assert(prev === null || prev.main < e.rev.main || (prev.main === e.rev.main && prev.sub < e.rev.sub), 'key-bucket entries out of order');
      prev = e.rev;
      this.keyBuffer.push(e);
      this.pendingBytesValue += e.value.length;
      this.writtenBytesValue += e.levelKey.length + e.value.length;
    }
    for (const k of unit.deletes) this.writtenBytesValue += k.length;
    for (const [k, v] of unit.meta) this.writtenBytesValue += k.length + v.length;
    for (const a of unit.aux) {
      this.writtenBytesValue += a.key.length + (a.value?.length ?? 0);
      let m = this.auxBuffer.get(a.bucket);
      if (m === undefined) {
        m = new Map();
        this.auxBuffer.set(a.bucket, m);
      }
      const id = a.key.toString('latin1');
      if (!m.has(id)) this.auxBuffered++;
      m.set(id, { key: a.key, value: a.value, seq });
    }
    this.queue.push({ unit, seq });
    if (!this.inflight && !this.flushScheduled) {
      this.flushScheduled = true;
      // Start the batch after the current synchronous run, so the entries applied together (one Raft Ready)
      // share one LevelDB batch.
      queueMicrotask(() => this.flush());
    }
    return seq;
  }

  /** Resolves when the unit with this sequence number (and all before it) committed to LevelDB. */
  waitFor(seq: number): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (seq <= this.committedSeq) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** Resolves when everything appended so far committed. */
  drain(): Promise<void> {
    return this.waitFor(this.nextSeq - 1);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.inflight || this.queue.length === 0 || this.failure !== null) return;
    const units = this.queue;
    this.queue = [];
    type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };
    const ops: Op[] = [];
    let sync = false;
    let keyEntries = 0;
    let bytes = 0;
    let maxMain = -1;
    let lastSeq = 0;
    let consistentIndex = 0;
    for (const { unit, seq } of units) {
      for (const e of unit.keyEntries) {
        ops.push({ type: 'put', key: e.levelKey, value: e.value });
        keyEntries++;
        bytes += e.value.length;
        maxMain = e.rev.main;
      }
      for (const a of unit.aux) {
        const k = auxKey(a.bucket, a.key);
        ops.push(a.value === null ? { type: 'del', key: k } : { type: 'put', key: k, value: a.value });
      }
      for (const [k, v] of unit.meta) ops.push({ type: 'put', key: k, value: v });
      for (const k of unit.deletes) ops.push({ type: 'del', key: k });
      sync ||= unit.sync;
      assert(unit.consistentIndex >= consistentIndex, 'consistent index went backwards inside a batch');
      consistentIndex = unit.consistentIndex;
      lastSeq = seq;
    }
    ops.push({ type: 'put', key: metaKey(metaNames.consistentIndex), value: encodeU64(consistentIndex) });
    this.inflight = true;
    this.db.batch(ops, { sync }).then(
      () => this.onCommitted(lastSeq, keyEntries, bytes, maxMain),
      (err: unknown) => this.onFailed(err),
    );
  }

  private onCommitted(seq: number, keyEntries: number, bytes: number, maxMain: number): void {
    assert(seq > this.committedSeq, 'batches committed out of order');
    assert(this.keyBufferHead + keyEntries <= this.keyBuffer.length, 'read buffer lost entries');
    this.keyBufferHead += keyEntries;
    this.pendingBytesValue -= bytes;
    if (maxMain >= 0) {
      assert(maxMain > this.durableRevValue, 'durable revision went backwards');
      this.durableRevValue = maxMain;
      const next = this.keyBuffer[this.keyBufferHead];
      assert(next === undefined || next.rev.main > maxMain, 'a transaction was split across batches');
    }
    if (this.keyBufferHead === this.keyBuffer.length) {
      this.keyBuffer = [];
      this.keyBufferHead = 0;
    } else if (this.keyBufferHead > 4096 && this.keyBufferHead * 2 > this.keyBuffer.length) {
      this.keyBuffer = this.keyBuffer.slice(this.keyBufferHead);
      this.keyBufferHead = 0;
    }
    this.committedSeq = seq;
    if (this.auxBuffered > 0) {
      for (const [bucket, m] of this.auxBuffer) {
        for (const [id, a] of m) {
          if (a.seq <= seq) {
            m.delete(id);
            this.auxBuffered--;
          }
        }
        if (m.size === 0) this.auxBuffer.delete(bucket);
      }
    }
    this.inflight = false;
    const ready = this.waiters.filter((w) => w.seq <= seq);
    if (ready.length > 0) {
      this.waiters = this.waiters.filter((w) => w.seq > seq);
      for (const w of ready) w.resolve();
    }
    if (this.queue.length > 0) this.flush();
  }

  private onFailed(err: unknown): void {
    // A failed backend write is fatal: the state in memory is ahead of the state on disk and can no longer be
    // reconciled. Fail every waiter, refuse further writes, and rethrow outside any promise so the host ends.
    this.failure = err;
    this.inflight = false;
    const log = (o: object, m: string): void => (this.logger.error ? this.logger.error(o, m) : this.logger.warn(o, m));
    if (/no space left on device/i.test(err instanceof Error ? err.message : String(err))) {
      // The operator's fix is to free space and restart: LevelDB recovers its own log, and the WAL re-applies the
      // entries the backend is missing.
      log({ err, hint: 'free space on this volume and restart the member' }, 'mvcc backend: no space left on device (ENOSPC); the store is unusable');
    } else {
      log({ err }, 'mvcc backend batch write failed; the store is unusable');
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    queueMicrotask(() => {
      throw err;
    });
  }

  private assertUsable(): void {
    assert(this.failure === null, 'mvcc backend failed earlier');
    assert(!this.closed, 'mvcc backend is closed');
  }

  // -------------------------------------------------------------------------------------------------------
  // Reads

  /** The buffered entry at `rev`, if it is above durableRev (it must then be buffered). */
  private lookupBuffered(rev: Revision): KeyBucketEntry | undefined {
    let lo = this.keyBufferHead;
    let hi = this.keyBuffer.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.keyBuffer[mid]!;
      const c = e.rev.main !== rev.main ? e.rev.main - rev.main : e.rev.sub - rev.sub;
      if (c === 0) return e;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /**
   * The KeyValues stored at the given (non-tombstone) revisions, in the same order. Resolves revisions above
   * durableRev from the read buffer and fetches the rest with one getMany, issued synchronously.
   * `overlay` resolves revisions that are not appended yet (an open transaction's own writes).
   */
  readKeyValues(revs: Revision[], overlay?: (rev: Revision) => KeyValue | undefined): Promise<KeyValue[]> {
    this.assertUsable();
    const out: Array<KeyValue | undefined> = new Array<KeyValue | undefined>(revs.length);
    const missingKeys: Buffer[] = [];
    const missingAt: number[] = [];
    for (let i = 0; i < revs.length; i++) {
      const rev = revs[i]!;
      const own = overlay?.(rev);
      if (own !== undefined) {
        out[i] = own;
        continue;
      }
      if (rev.main > this.durableRevValue) {
        const e = this.lookupBuffered(rev);
        assert(e !== undefined, `revision ${rev.main}_${rev.sub} is neither durable nor buffered`);
        assert(!e.tombstone, 'read of a tombstone revision');
        out[i] = e.kv;
        continue;
      }
      missingKeys.push(keyBucketKey(rev, false));
      missingAt.push(i);
    }
    if (missingKeys.length === 0) return Promise.resolve(out as KeyValue[]);
    // getMany takes its snapshot now, in this synchronous step.
    const pending = this.db.getMany(missingKeys);
    return pending.then((values) => {
      for (let j = 0; j < values.length; j++) {
        const v = values[j];
        assert(v !== undefined, 'range failed to find a revision in the key bucket');
        out[missingAt[j]!] = decodeKeyValue(v);
      }
      return out as KeyValue[];
    });
  }

  /**
   * Scans the key bucket over main revisions [fromMain, toMain] in revision order: LevelDB up to durableRev,
   * then the read buffer. The LevelDB snapshot and the buffer slice are taken together, synchronously, when
   * the first next() is called. Closing the generator early closes the LevelDB iterator.
   */
  async *scanKeyBucket(fromMain: number, toMain: number): AsyncGenerator<ScannedEntry> {
    this.assertUsable();
    if (fromMain > toMain) return;
    const durable = this.durableRevValue;
    const buffered: KeyBucketEntry[] = [];
    for (let i = this.keyBufferHead; i < this.keyBuffer.length; i++) {
      const e = this.keyBuffer[i]!;
      if (e.rev.main > toMain) break;
      if (e.rev.main >= fromMain) buffered.push(e);
    }
    const levelTo = Math.min(toMain, durable);
    if (fromMain <= levelTo) {
      const it = this.db.iterator({
        gte: keyBucketKey({ main: Math.max(fromMain, 0), sub: 0 }, false),
        lt: keyBucketKey({ main: levelTo + 1, sub: 0 }, false),
      });
      try {
        for (;;) {
          const chunk = await it.nextv(512);
          if (chunk.length === 0) break;
          for (const [k, v] of chunk) {
            const parsed = parseKeyBucketKey(k);
            yield { rev: parsed.rev, tombstone: parsed.tombstone, revBytes: parsed.revBytes, value: v, kv: null };
          }
        }
      } finally {
        await it.close();
      }
    }
    for (const e of buffered) {
      yield { rev: e.rev, tombstone: e.tombstone, revBytes: e.levelKey.subarray(1), value: e.value, kv: e.kv };
    }
  }

  /** Every (key, value) of an aux bucket, committed or buffered, in bytewise key order. */
  async auxGetAll(bucket: string): Promise<Array<[Buffer, Buffer]>> {
    this.assertUsable();
    const prefix = auxPrefix(bucket);
    const overlay = [...(this.auxBuffer.get(bucket)?.values() ?? [])];
    const it = this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) });
    let stored: Array<[Buffer, Buffer]>;
    try {
      stored = await it.all();
    } finally {
      // all() closes the iterator itself; close() again is a no-op.
      await it.close();
    }
    const merged = new Map<string, [Buffer, Buffer]>();
    for (const [k, v] of stored) {
      const key = Buffer.from(k.subarray(prefix.length));
      merged.set(key.toString('latin1'), [key, v]);
    }
    for (const a of overlay) {
      const id = a.key.toString('latin1');
      if (a.value === null) merged.delete(id);
      else merged.set(id, [a.key, a.value]);
    }
    return [...merged.values()].sort((a, b) => Buffer.compare(a[0], b[0]));
  }

  /** Reads meta values straight from LevelDB (used at open, before anything is buffered). */
  async readMeta(names: string[]): Promise<Array<Buffer | undefined>> {
    return this.db.getMany(names.map(metaKey));
  }

  /**
   * Iterates the whole database in key order from a snapshot taken when the first next() is called.
   * Only what committed is visible: call drain() first for everything applied so far.
   */
  async *entries(): AsyncGenerator<[Buffer, Buffer]> {
    yield* this.entriesFrom(this.snapshotIterator());
  }

  /**
   * A LevelDB iterator over the whole database, created (and so its implicit snapshot taken) now, in this
   * synchronous step; read it with entriesFrom().
   */
  snapshotIterator(): SnapshotIterator {
    this.assertUsable();
    return this.db.iterator({}) as unknown as SnapshotIterator;
  }

  async *entriesFrom(it: SnapshotIterator): AsyncGenerator<[Buffer, Buffer]> {
    try {
      for (;;) {
        const chunk = await it.nextv(1024);
        if (chunk.length === 0) break;
        for (const entry of chunk) yield entry;
      }
    } finally {
      await it.close();
    }
  }

  private extras(): ClassicLevelExtras {
    return this.db as unknown as ClassicLevelExtras;
  }

  /** LevelDB's approximate on-disk size of all our data (table files; not the write-ahead log). */
  approximateSize(): Promise<number> {
    return this.extras().approximateSize(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  /** Full manual compaction of LevelDB (runs on the libuv pool; reads and writes go on). */
  compactRange(): Promise<void> {
    return this.extras().compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.failure === null) await this.drain();
    this.closed = true;
    await this.db.close();
  }
}
