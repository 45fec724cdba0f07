// The write-ahead log: Raft's HardState, entries and snapshot markers, appended to segment files and made durable
// before save() resolves. The byte format is specified in encoder.ts. Semantics follow etcd's wal package (wal.go,
// decoder.go, repair.go); the differences are noted where they occur:
//
// - Saves are group-committed: every save() that arrives while a write + fdatasync is in flight joins the next
//   batch, which is written with one write and made durable with one fdatasync.
// - On open, a torn final record is truncated automatically (etcd makes the operator run Repair), but only when
//   nothing but zeroes follows it; any other damage is an ErrWalCorrupt that names the file and offset. etcd instead
//   zeroes everything after the first all-zero record header of the last segment, which silently discards records
//   if a range in the middle of that segment was zeroed.
// - There is no file locking (Node has no flock): one process must own the directory.
//
// Crash safety rests on three orderings: a segment is complete and synced before its name appears (created under a
// temporary name, fdatasync, rename, fsync of the directory); a save resolves only after the fdatasync covering its
// bytes; and an old segment is deleted only after the caller has a snapshot covering it (releaseTo's contract).

import { failpoint } from '../util/failpoints';
import { fsyncDir } from '../util/fsync';
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { assert, AssertionError } from '../util/assert';
import { DomainError, isDomainError } from '../util/errors';
import { isEmptyHardState, emptyHardState, type Entry, type HardState, type SnapshotMeta } from '../raft/types';
import {
  RecordType,
  crcFrameBytes,
  entryFrameBytes,
  hardStateFrameBytes,
  metadataFrameBytes,
  sealFrames,
  snapshotFrameBytes,
  writeCrcFrame,
  writeEntryFrame,
  writeHardStateFrame,
  writeMetadataFrame,
  writeSnapshotFrame,
} from './encoder';
import {
  PayloadFormatError,
  decodeEntry,
  decodeHardState,
  decodeSnapshot,
  endOfNonZeroBytes,
  firstNonZeroByte,
  readFrame,
} from './decoder';
import {
  ErrWalExists,
  ErrWalIo,
  ErrWalNotFound,
  ErrWalSnapshotMismatch,
  ErrWalSnapshotNotFound,
  walCorrupt,
} from './errors';
import { parseSegmentFileName, segmentFileName, tmpSuffix } from './segment-name';

/** A pino-compatible subset: structured fields first, then the message. */
export interface WalLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WalOptions {
  /**
   * A segment is cut (a new file started) once the current one reaches this size; each new segment is preallocated
   * to it. Default 64 MiB. Small values are for tests: every segment repeats the metadata, so very small segments
   * waste space and a cut costs two extra syncs.
   */
  segmentSizeBytes?: number;
  logger: WalLogger;
}

export interface WalOpenResult {
  wal: Wal;
  /** The metadata given to Wal.create (identical in every segment). */
  metadata: Buffer;
  /** The last HardState saved, or the empty HardState if none was. */
  hardState: HardState;
  /**
   * Entries with index > snapshot.index, in index order with no gaps, after applying every conflict truncation the
   * log records. The array and the entries' data buffers are the caller's.
   */
  entries: Entry[];
  /** The snapshot replay started from and whose marker record was found: the one passed in, or {index: 0, term: 0}. */
  snapshot: SnapshotMeta;
}

export const defaultSegmentSizeBytes = 64 * 1024 * 1024;

interface Segment {
  seq: number;
  firstIndex: number;
  path: string;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Records queued by save() calls that have not been handed to a write yet, and the callers waiting for them. */
interface Batch {
  /** Encoded frames with their crc fields still zero; sealed, in order, just before the write. */
  chunks: Buffer[];
  bytes: number;
  waiters: Waiter[];
}

function emptyBatch(): Batch {
  return { chunks: [], bytes: 0, waiters: [] };
}

const zeroSnapshot: SnapshotMeta = Object.freeze({ index: 0, term: 0 });

export class Wal {
  // Invariant: sorted by seq with no gaps from the segment replay started at; the last one is the file `tail` writes.
  private readonly segments: Segment[];
  private tail: FileHandle;
  /** Offset in the tail where the next record goes. Invariant: 8-aligned. */
  private writeOffset: number;
  /** The crc of the last record handed to a write: the seed of the next one. */
  private chainCrc: number;

  /** The last entry index queued by save() (raised by saveSnapshot). Invariant: lastIndexQueued >= 0. */
  private lastIndexQueued: number;
  /** lastIndexQueued as of the last batch written; a cut names the new segment after it. */
  private lastIndexWritten: number;
  /** The latest HardState queued by save(), and the latest written, which a cut copies into the new segment. */
  private hardStateQueued: HardState;
  private hardStateWritten: HardState;

  private pending: Batch = emptyBatch();
  /** Whether the flush loop is running. Invariant: !flushing implies pending is empty. */
  private flushing = false;
  /** The running (or last) flush loop; close() waits on it, because a cut may still run after the last save resolved. */
  private flushLoop: Promise<void> = Promise.resolve();
  /** Set once a write, sync or cut fails; every later call fails with it. */
  private failure: DomainError | null = null;
  private closePromise: Promise<void> | null = null;
  private syncs = 0;

  private constructor(
    private readonly dir: string,
    private readonly metadata: Buffer,
    private readonly segmentSizeBytes: number,
    private readonly logger: WalLogger,
    state: {
      segments: Segment[];
      tail: FileHandle;
      writeOffset: number;
      chainCrc: number;
      lastIndex: number;
      hardState: HardState;
    },
  ) {
    assert(state.segments.length > 0, 'wal: a WAL has at least one segment');
    assert(state.writeOffset % 8 === 0, 'wal: the write offset is 8-aligned');
    this.segments = state.segments;
    this.tail = state.tail;
    this.writeOffset = state.writeOffset;
    this.chainCrc = state.chainCrc;
    this.lastIndexQueued = state.lastIndex;
    this.lastIndexWritten = state.lastIndex;
    this.hardStateQueued = state.hardState;
    this.hardStateWritten = state.hardState;
  }

  /**
   * The index of the last entry saved (the last one in call order, so a conflicting save can lower it), raised to a
   * snapshot's index by saveSnapshot, as etcd's `enti`. The next save must start at or below lastIndex + 1.
   */
  get lastIndex(): number {
    return this.lastIndexQueued;
  }

  /** The number of fsync/fdatasync calls this instance has issued on segment files (not directories). */
  get syncCount(): number {
    return this.syncs;
  }

  /**
   * Where the next record will be written: the last segment and the offset just past its last valid record. After
   * open() this is where replay found the end of the records, which an error about missing entries should name.
   */
  get tailPosition(): { path: string; offset: number } {
    return { path: this.tailSegment().path, offset: this.writeOffset };
  }

  /** Whether `dir` holds a WAL: at least one segment file. A missing directory is not an error. */
  static async exists(dir: string): Promise<boolean> {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT') || isErrnoCode(err, 'ENOTDIR')) return false;
      throw err;
    }
    return names.some((name) => parseSegmentFileName(name) !== null);
  }

  /**
   * Creates a WAL in `dir`, which must not exist or be empty. Like etcd's Create, the first segment is built in
   * `<dir>.tmp` and the directory is renamed into place, so a crash leaves either no WAL or a complete one.
   */
  static async create(dir: string, metadata: Buffer, opts: WalOptions): Promise<Wal> {
    const segmentSizeBytes = validateOptions(opts);
    assert(Buffer.isBuffer(metadata), 'wal: metadata is a Buffer');
    const walDir = path.resolve(dir);
    if (await Wal.exists(walDir)) {
      throw new DomainError(ErrWalExists, `wal: a WAL already exists in ${walDir}`);
    }

    const tmpDir = walDir + tmpSuffix;
    await fs.rm(tmpDir, { recursive: true, force: true });
    await fs.mkdir(tmpDir, { recursive: true });
    const name = segmentFileName(0, 0);
    const handle = await fs.open(path.join(tmpDir, name), 'wx');
    let syncs = 0;
    let chainCrc: number;
    let writeOffset: number;
    try {
      await handle.truncate(segmentSizeBytes);
      // The first segment's header ends with a snapshot marker for index 0 so that opening without a snapshot finds
      // its marker (etcd's Create does SaveSnapshot(walpb.Snapshot{})).
      const header = encodeSegmentHeader(0, metadata, null, zeroSnapshot);
      chainCrc = header.crc;
      await writeFully(handle, header.bytes, 0);
      writeOffset = header.bytes.length;
      await handle.datasync();
      syncs++;
      await fsyncDir(tmpDir);

      try {
        // rmdir, not a recursive delete: an empty directory (made by the caller) may be replaced, anything else is
        // someone's data.
        await fs.rmdir(walDir);
      } catch (err) {
        if (isErrnoCode(err, 'ENOTEMPTY') || isErrnoCode(err, 'EEXIST')) {
          throw new DomainError(ErrWalExists, `wal: cannot create a WAL in ${walDir}: the directory is not empty`);
        }
        if (!isErrnoCode(err, 'ENOENT')) throw err;
      }
      await fs.rename(tmpDir, walDir);
      await fsyncDir(path.dirname(walDir));
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }

    opts.logger.info({ dir: walDir, segmentSizeBytes }, 'wal: created a new WAL');
    const wal = new Wal(walDir, Buffer.from(metadata), segmentSizeBytes, opts.logger, {
      // The open handle follows the file through the directory rename.
      segments: [{ seq: 0, firstIndex: 0, path: path.join(walDir, name) }],
      tail: handle,
      writeOffset,
      chainCrc,
      lastIndex: 0,
      hardState: emptyHardState,
    });
    wal.syncs = syncs;
    return wal;
  }

  /**
   * Opens the WAL in `dir` and replays it from the segment that holds `opts.snapshot.index` (default index 0, term
   * 0). Replay requires a snapshot record with that index and term, as etcd's ReadAll does. A torn final record is
   * truncated (logged as a warning); any other damage throws ErrWalCorrupt. The returned Wal appends after the last
   * valid record.
   */
  static async open(dir: string, opts: WalOptions & { snapshot?: SnapshotMeta }): Promise<WalOpenResult> {
    const segmentSizeBytes = validateOptions(opts);
    const snapshot: SnapshotMeta = { ...(opts.snapshot ?? zeroSnapshot) };
    assert(Number.isSafeInteger(snapshot.index) && snapshot.index >= 0, 'wal: snapshot index is a safe integer');
    assert(Number.isSafeInteger(snapshot.term) && snapshot.term >= 0, 'wal: snapshot term is a safe integer');
    const walDir = path.resolve(dir);
    const logger = opts.logger;

    const segments = await listSegments(walDir, logger);
    if (segments.length === 0) throw new DomainError(ErrWalNotFound, `wal: no WAL segments in ${walDir}`);

    // Mirrors etcd's searchIndex: replay starts at the last segment whose first index is at or below the snapshot.
    let start = -1;
    for (let i = segments.length - 1; i >= 0; i--) {
      if (segments[i]!.firstIndex <= snapshot.index) {
        start = i;
        break;
      }
    }
    if (start === -1) {
      throw new DomainError(
        ErrWalNotFound,
        `wal: no segment in ${walDir} can hold snapshot index ${snapshot.index} (the oldest starts at ` +
          `${segments[0]!.firstIndex})`,
      );
    }
    for (let i = start + 1; i < segments.length; i++) {
      const previous = segments[i - 1]!;
      const current = segments[i]!;
      if (current.seq !== previous.seq + 1) {
        throw walCorrupt(
          current.path,
          0,
          `segment sequence ${previous.seq + 1} is missing (previous segment is ${path.basename(previous.path)})`,
        );
      }
    }

    const replay = new Replay(snapshot, logger, segmentSizeBytes);
    for (let i = start; i < segments.length; i++) {
      await replay.readSegment(segments[i]!, i === segments.length - 1);
    }
    let result: ReturnType<Replay['finish']>;
    try {
      result = replay.finish();
    } catch (err) {
      await replay.closeRepairedTail();
      throw err;
    }

    const tailPath = segments[segments.length - 1]!.path;
    const tail = result.repairedTail ?? (await fs.open(tailPath, 'r+'));
    const wal = new Wal(walDir, result.metadata, segmentSizeBytes, logger, {
      segments,
      tail,
      writeOffset: result.tailEnd,
      chainCrc: result.chainCrc,
      lastIndex: result.lastIndex,
      hardState: result.hardState,
    });
    wal.syncs = result.syncs;
    logger.info(
      {
        dir: walDir,
        segments: segments.length - start,
        entries: result.entries.length,
        lastIndex: result.lastIndex,
        snapshotIndex: snapshot.index,
      },
      'wal: opened and replayed the WAL',
    );
    return { wal, metadata: Buffer.from(result.metadata), hardState: result.hardState, entries: result.entries, snapshot };
  }

  /**
   * Appends `entries` and then `hardState` (skipped when null or empty) and resolves once they are durable. Calls are
   * written in call order; calls made while a sync is in flight share the next write and fdatasync. The records are
   * encoded before this returns, so the caller may reuse the entries' buffers at once.
   *
   * Entries must have consecutive indexes and the first must be at most lastIndex + 1; an index at or below lastIndex
   * overwrites that index and everything after it on replay (Raft's conflict truncation). A save with nothing to
   * write resolves once everything saved before it is durable. After a failed write every call rejects with ErrWalIo.
   */
  save(hardState: HardState | null, entries: Entry[]): Promise<void> {
    this.assertOpen();
    if (this.failure !== null) return Promise.reject(this.failure);
    const writeHardState = hardState !== null && !isEmptyHardState(hardState);
    if (!writeHardState && entries.length === 0) return this.barrier();

    let bytes = 0;
    let expectedIndex = -1;
    for (const entry of entries) {
      assert(Number.isSafeInteger(entry.index) && entry.index >= 1, `wal: entry index ${entry.index} is invalid`);
      assert(Number.isSafeInteger(entry.term) && entry.term >= 0, `wal: entry term ${entry.term} is invalid`);
      if (expectedIndex === -1) {
        assert(
          entry.index <= this.lastIndexQueued + 1,
          `wal: entry ${entry.index} would leave a gap after last index ${this.lastIndexQueued}`,
        );
      } else {
        assert(entry.index === expectedIndex, `wal: entry ${entry.index} follows ${expectedIndex - 1} in one save`);
      }
      expectedIndex = entry.index + 1;
      bytes += entryFrameBytes(entry);
    }
    if (writeHardState) {
      assert(Number.isSafeInteger(hardState.term) && hardState.term >= 0, 'wal: HardState term is invalid');
      assert(Number.isSafeInteger(hardState.commit) && hardState.commit >= 0, 'wal: HardState commit is invalid');
      bytes += hardStateFrameBytes;
    }

    // Entries before the HardState, as etcd's Save writes them.
    const chunk = Buffer.allocUnsafe(bytes);
    let offset = 0;
    for (const entry of entries) offset = writeEntryFrame(chunk, offset, entry);
    if (writeHardState) offset = writeHardStateFrame(chunk, offset, hardState);
    assert(offset === bytes, 'wal: encoded size matches the computed size');

    const last = entries[entries.length - 1];
    if (last !== undefined) this.lastIndexQueued = last.index;
    if (writeHardState) this.hardStateQueued = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    return this.enqueue(chunk);
  }

  /**
   * Appends a snapshot marker and resolves once it is durable. Call it after the snapshot itself is durable and
   * before releaseTo; open() with this snapshot then replays from it. Raises lastIndex to the snapshot's index.
   */
  saveSnapshot(snapshot: SnapshotMeta): Promise<void> {
    this.assertOpen();
    if (this.failure !== null) return Promise.reject(this.failure);
    assert(Number.isSafeInteger(snapshot.index) && snapshot.index >= 0, 'wal: snapshot index is a safe integer');
    assert(Number.isSafeInteger(snapshot.term) && snapshot.term >= 0, 'wal: snapshot term is a safe integer');
    const chunk = Buffer.allocUnsafe(snapshotFrameBytes);
    writeSnapshotFrame(chunk, 0, snapshot);
    if (snapshot.index > this.lastIndexQueued) this.lastIndexQueued = snapshot.index;
    return this.enqueue(chunk);
  }

  /**
   * Deletes the segments that only hold records older than `index`, oldest first. Mirrors etcd's ReleaseLockTo: the
   * segments before the last one whose first index is below `index` go, and that one stays, because it holds
   * `index` itself (the snapshot marker, written after the entry, is in it or a later one). The tail is never deleted.
   * Call it only with an index covered by a durable snapshot: opening without that snapshot is impossible afterwards.
   */
  async releaseTo(index: number): Promise<void> {
    this.assertOpen();
    assert(Number.isSafeInteger(index) && index >= 0, `wal: release index ${index} is invalid`);
    let keepFrom = this.segments.length - 1;
    for (let i = 0; i < this.segments.length; i++) {
      if (this.segments[i]!.firstIndex >= index) {
        keepFrom = i - 1;
        break;
      }
    }
    if (keepFrom <= 0) return;

    // Taken out of the list synchronously so that a concurrent releaseTo cannot pick the same files. Deleted oldest
    // first, so that a crash in the middle leaves a suffix of the sequence, which is still a valid WAL.
    const released = this.segments.splice(0, keepFrom);
    for (const segment of released) {
      await fs.unlink(segment.path);
      this.logger.info({ path: segment.path, releaseIndex: index }, 'wal: released an old segment');
    }
    await fsyncDir(this.dir);
  }

  /** Waits for every queued save to be durable (or to fail), then closes the tail. Later calls are programmer errors. */
  close(): Promise<void> {
    if (this.closePromise === null) {
      this.closePromise = (async () => {
        while (this.flushing) await this.flushLoop.catch(() => undefined);
        await this.tail.close();
      })();
    }
    return this.closePromise;
  }

  private assertOpen(): void {
    assert(this.closePromise === null, 'wal: used after close');
  }

  /** Resolves once everything queued before this call is durable. */
  private barrier(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (!this.flushing) return Promise.resolve();
    return this.enqueue(null);
  }

  private enqueue(chunk: Buffer | null): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (chunk !== null) {
        this.pending.chunks.push(chunk);
        this.pending.bytes += chunk.length;
      }
      this.pending.waiters.push({ resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // If the loop finishes synchronously (a batch with no bytes), `flushing` is already false again here, and
        // the stored promise is simply settled. An assertion failure rejects it unhandled, which ends the process.
        this.flushLoop = this.runFlushLoop();
      }
    });
  }

  /**
   * Writes and syncs pending batches until none is left. Each iteration takes everything queued so far, so the
   * saves that arrive during one fdatasync are written together by the next. Never rejects except on an assertion
   * failure, which is meant to end the process.
   */
  private async runFlushLoop(): Promise<void> {
    let batch: Batch | null = null;
    try {
      while (this.pending.waiters.length > 0) {
        batch = this.pending;
        this.pending = emptyBatch();
        // Every save in the batch has already updated these, and later saves go to the next batch.
        const lastIndexAfter = this.lastIndexQueued;
        const hardStateAfter = this.hardStateQueued;
        if (batch.bytes > 0) {
          const bytes = batch.chunks.length === 1 ? batch.chunks[0]! : Buffer.concat(batch.chunks, batch.bytes);
          this.chainCrc = sealFrames(bytes, 0, bytes.length, this.chainCrc);
          await writeFully(this.tail, bytes, this.writeOffset);
          this.writeOffset += bytes.length;
          const before = failpoint('walBeforeSync');
          if (before) await before;
          await this.tail.datasync();
          this.syncs++;
          const after = failpoint('walAfterSync');
          if (after) await after;
        }
        // A batch with no bytes only waits for the batches before it, which are durable by now.
        this.lastIndexWritten = lastIndexAfter;
        this.hardStateWritten = hardStateAfter;
        for (const waiter of batch.waiters) waiter.resolve();
        batch = null;
        if (this.writeOffset >= this.segmentSizeBytes) await this.cut();
      }
    } catch (err) {
      this.fail(err, batch);
      if (err instanceof AssertionError) throw err;
    }
    this.flushing = false;
  }

  private fail(err: unknown, batch: Batch | null): void {
    const tailPath = this.tailSegment().path;
    const failure = isDomainError(err)
      ? err
      : new DomainError(ErrWalIo, `wal: writing ${tailPath} failed: ${errorMessage(err)}`, { cause: err });
    this.failure = failure;
    if (isNoSpace(err)) {
      // The common operational case gets its own line: the operator's fix is to free space, not to repair the WAL
      // (what was written before stays valid; a record cut short at the tail is truncated at the next open).
      this.logger.error(
        { path: tailPath, err: errorMessage(err), hint: 'free space on this volume and restart the member' },
        'wal: no space left on device (ENOSPC); the WAL is unusable',
      );
    } else {
      this.logger.error({ path: tailPath, err: errorMessage(err) }, 'wal: write failed; the WAL is unusable');
    }
    const waiters = [...(batch?.waiters ?? []), ...this.pending.waiters];
    this.pending = emptyBatch();
    for (const waiter of waiters) waiter.reject(failure);
  }

  private tailSegment(): Segment {
    const tail = this.segments[this.segments.length - 1];
    assert(tail !== undefined, 'wal: a WAL has at least one segment');
    return tail;
  }

  /**
   * Starts a new segment, as etcd's cut does: the old tail is truncated to its last record and synced, the new
   * segment is written under a temporary name with its header records (CRC, metadata, HardState), synced, renamed
   * into place, and the directory is synced. Runs inside the flush loop, between batches, so no record is in flight.
   */
  private async cut(): Promise<void> {
    const old = this.tailSegment();
    // The preallocated space past the last record would otherwise stay in a file that is never written again.
    await this.tail.truncate(this.writeOffset);
    await this.tail.sync();
    this.syncs++;

    const seq = old.seq + 1;
    const firstIndex = this.lastIndexWritten + 1;
    const finalPath = path.join(this.dir, segmentFileName(seq, firstIndex));
    const tmpPath = finalPath + tmpSuffix;
    const handle = await fs.open(tmpPath, 'w');
    let header: { bytes: Buffer; crc: number };
    try {
      await handle.truncate(this.segmentSizeBytes);
      // The HardState is repeated so that it survives the release of the segments before this one.
      const hardState = isEmptyHardState(this.hardStateWritten) ? null : this.hardStateWritten;
      header = encodeSegmentHeader(this.chainCrc, this.metadata, hardState, null);
      await writeFully(handle, header.bytes, 0);
      await handle.datasync();
      this.syncs++;
      await fs.rename(tmpPath, finalPath);
      await fsyncDir(this.dir);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }

    const oldHandle = this.tail;
    this.tail = handle;
    this.segments.push({ seq, firstIndex, path: finalPath });
    this.writeOffset = header.bytes.length;
    this.chainCrc = header.crc;
    this.logger.info({ path: finalPath, previous: old.path, firstIndex }, 'wal: created a new segment');
    await oldHandle.close();
  }
}

/**
 * Replays segments in order and enforces what a segment must contain; see encoder.ts for the layout. Holds the state
 * that etcd's ReadAll keeps in local variables.
 */
class Replay {
  private metadata: Buffer | null = null;
  private hardState: HardState = emptyHardState;
  private readonly entries: Entry[] = [];
  private lastIndex = 0;
  private snapshotFound = false;
  /** The crc of the last record read, once a segment has been read; null before the first. */
  private chainCrc: number | null = null;
  private tailEnd = 0;
  private repairedTail: FileHandle | null = null;
  private syncs = 0;

  constructor(
    private readonly snapshot: SnapshotMeta,
    private readonly logger: WalLogger,
    private readonly segmentSizeBytes: number,
  ) {}

  async readSegment(segment: Segment, isLast: boolean): Promise<void> {
    const file = segment.path;
    const buf = await fs.readFile(file);
    let offset = 0;
    let recordNumber = 0;
    let crc = this.chainCrc ?? 0;
    for (;;) {
      const result = readFrame(buf, offset, crc);
      if (result.kind === 'end') {
        if (recordNumber < 2) throw walCorrupt(file, offset, 'segment ends before its CRC and metadata records');
        break;
      }
      if (result.kind === 'damage') {
        // A torn write can only damage the end of the last segment, after its header (which is synced before the
        // segment is renamed into place), and leaves nothing but zeroes after the damaged record.
        const isTornTail =
          isLast && recordNumber >= 2 && result.tornCandidate && firstNonZeroByte(buf, result.damageEnd) === -1;
        if (!isTornTail) throw walCorrupt(file, offset, result.reason);
        await this.truncateTornTail(file, buf, offset, result.reason);
        break;
      }

      switch (result.type) {
        case RecordType.Crc:
          if (recordNumber !== 0) throw walCorrupt(file, offset, 'CRC record after the start of the segment');
          if (this.chainCrc !== null && result.seed !== this.chainCrc) {
            throw walCorrupt(
              file,
              offset,
              `segment continues crc 0x${result.seed.toString(16)} but the previous segment ended with ` +
                `0x${this.chainCrc.toString(16)}`,
            );
          }
          if (segment.seq === 0 && result.seed !== 0) {
            throw walCorrupt(file, offset, 'the first segment does not start the crc chain at 0');
          }
          break;
        case RecordType.Metadata:
          if (recordNumber !== 1) throw walCorrupt(file, offset, 'metadata record out of place');
          if (this.metadata === null) {
            this.metadata = Buffer.from(result.payload);
          } else if (!this.metadata.equals(result.payload)) {
            throw walCorrupt(file, offset, 'metadata differs from the previous segments');
          }
          break;
        case RecordType.Entry:
        case RecordType.HardState:
        case RecordType.Snapshot:
          if (recordNumber < 2) throw walCorrupt(file, offset, `${RecordType[result.type]} record before metadata`);
          this.applyRecord(file, offset, result.type, result.payload);
          break;
        default:
          // readFrame only returns known types; a new type must be handled above.
          assert(false, `wal: unhandled record type ${result.type as number}`);
      }
      crc = result.crc;
      offset = result.end;
      recordNumber++;
    }
    this.chainCrc = crc;
    this.tailEnd = offset;
  }

  private applyRecord(file: string, offset: number, type: RecordType, payload: Buffer): void {
    try {
      if (type === RecordType.Entry) {
        const entry = decodeEntry(payload);
        if (entry.index > this.snapshot.index) {
          // Mirrors etcd's ReadAll: entries[k] holds index snapshot.index + 1 + k, so an entry at index i keeps
          // entries below i and replaces everything from i on (a later write of i overwrote the old suffix).
          const position = entry.index - this.snapshot.index - 1;
          if (position > this.entries.length) {
            throw walCorrupt(
              file,
              offset,
              `entry index ${entry.index} leaves a gap after index ${this.snapshot.index + this.entries.length}`,
            );
          }
          this.entries.length = position;
          this.entries.push(entry);
        }
        this.lastIndex = entry.index;
      } else if (type === RecordType.HardState) {
        this.hardState = decodeHardState(payload);
      } else {
        const snapshot = decodeSnapshot(payload);
        if (snapshot.index === this.snapshot.index) {
          if (snapshot.term !== this.snapshot.term) {
            throw new DomainError(
              ErrWalSnapshotMismatch,
              `wal: snapshot record in ${file} at offset ${offset} has term ${snapshot.term} for index ` +
                `${snapshot.index}, expected term ${this.snapshot.term}`,
            );
          }
          this.snapshotFound = true;
        }
        if (snapshot.index > this.lastIndex) this.lastIndex = snapshot.index;
      }
    } catch (err) {
      if (err instanceof PayloadFormatError) throw walCorrupt(file, offset, err.message, err);
      throw err;
    }
  }

  /**
   * Cuts a torn final record off the last segment: the file is truncated at the record and extended again with
   * zeroes (keeping it preallocated), then synced, so the next open finds a clean end and logs nothing.
   */
  private async truncateTornTail(file: string, buf: Buffer, offset: number, reason: string): Promise<void> {
    const droppedBytes = endOfNonZeroBytes(buf, offset) - offset;
    this.logger.warn(
      { path: file, offset, droppedBytes, reason },
      'wal: truncating a torn record at the end of the last segment',
    );
    const handle = await fs.open(file, 'r+');
    try {
      await handle.truncate(offset);
      await handle.truncate(Math.max(offset, this.segmentSizeBytes));
      await handle.sync();
      this.syncs++;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    this.repairedTail = handle;
  }

  async closeRepairedTail(): Promise<void> {
    await this.repairedTail?.close();
    this.repairedTail = null;
  }

  finish(): {
    metadata: Buffer;
    hardState: HardState;
    entries: Entry[];
    lastIndex: number;
    chainCrc: number;
    tailEnd: number;
    repairedTail: FileHandle | null;
    syncs: number;
  } {
    assert(this.metadata !== null && this.chainCrc !== null, 'wal: replay read at least one segment');
    if (!this.snapshotFound) {
      throw new DomainError(
        ErrWalSnapshotNotFound,
        `wal: no snapshot record for index ${this.snapshot.index} (term ${this.snapshot.term}) in the replayed segments`,
      );
    }
    return {
      metadata: this.metadata,
      hardState: this.hardState,
      entries: this.entries,
      lastIndex: this.lastIndex,
      chainCrc: this.chainCrc,
      tailEnd: this.tailEnd,
      repairedTail: this.repairedTail,
      syncs: this.syncs,
    };
  }
}

/** Encodes and seals the records a segment starts with; returns them and the crc the next record chains from. */
function encodeSegmentHeader(
  seed: number,
  metadata: Buffer,
  hardState: HardState | null,
  snapshot: SnapshotMeta | null,
): { bytes: Buffer; crc: number } {
  const size =
    crcFrameBytes +
    metadataFrameBytes(metadata) +
    (hardState === null ? 0 : hardStateFrameBytes) +
    (snapshot === null ? 0 : snapshotFrameBytes);
  const bytes = Buffer.allocUnsafe(size);
  let offset = writeCrcFrame(bytes, 0, seed);
  offset = writeMetadataFrame(bytes, offset, metadata);
  if (hardState !== null) offset = writeHardStateFrame(bytes, offset, hardState);
  if (snapshot !== null) offset = writeSnapshotFrame(bytes, offset, snapshot);
  assert(offset === size, 'wal: segment header size');
  return { bytes, crc: sealFrames(bytes, 0, size, seed) };
}

/**
 * Lists the segment files of `dir` sorted by sequence. Leftover temporary segments from an interrupted cut are
 * deleted (they were never part of the log); other foreign files are left alone with a warning, as etcd does.
 */
async function listSegments(dir: string, logger: WalLogger): Promise<Segment[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT') || isErrnoCode(err, 'ENOTDIR')) return [];
    throw err;
  }
  const segments: Segment[] = [];
  let removedTmp = false;
  for (const name of names) {
    const parsed = parseSegmentFileName(name);
    if (parsed !== null) {
      segments.push({ ...parsed, path: path.join(dir, name) });
    } else if (name.endsWith(tmpSuffix) && parseSegmentFileName(name.slice(0, -tmpSuffix.length)) !== null) {
      await fs.unlink(path.join(dir, name));
      logger.info({ path: path.join(dir, name) }, 'wal: removed a segment left over from an interrupted cut');
      removedTmp = true;
    } else {
      logger.warn({ path: path.join(dir, name) }, 'wal: ignored a file in the WAL directory');
    }
  }
  if (removedTmp) await fsyncDir(dir);
  segments.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.seq === segments[i - 1]!.seq) {
      throw walCorrupt(
        segments[i]!.path,
        0,
        `two segments have sequence ${segments[i]!.seq} (the other is ${path.basename(segments[i - 1]!.path)})`,
      );
    }
  }
  return segments;
}

function validateOptions(opts: WalOptions): number {
  const segmentSizeBytes = opts.segmentSizeBytes ?? defaultSegmentSizeBytes;
  assert(
    Number.isSafeInteger(segmentSizeBytes) && segmentSizeBytes > 0,
    `wal: segmentSizeBytes ${segmentSizeBytes} must be a positive integer`,
  );
  return segmentSizeBytes;
}

/** Writes all of `bytes` at `position`; a write may be partial, so loop until it is not. */
async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, position + written);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} at position ${position + written}`);
    written += bytesWritten;
  }
}


function isErrnoCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Whether `err` (or its cause) is the file system's "no space left on device" (or quota exceeded). */
export function isNoSpace(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && e !== undefined && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isErrnoCode(e, 'ENOSPC') || isErrnoCode(e, 'EDQUOT')) return true;
    if (e instanceof Error && /no space left on device/i.test(e.message)) return true;
  }
  return false;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
