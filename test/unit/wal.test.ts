// Tests for src/wal: the byte format, replay semantics (conflict truncation, snapshots, segments), group commit, and
// the line between a torn tail (repaired once, logged) and corruption (ErrWalCorrupt naming file and offset).

import t from 'tap';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { EntryType, type Entry, type HardState } from '../../src/raft/types';
import { isDomainError } from '../../src/util/errors';
import {
  Wal,
  ErrWalCorrupt,
  ErrWalExists,
  ErrWalIo,
  ErrWalNotFound,
  ErrWalSnapshotMismatch,
  ErrWalSnapshotNotFound,
  parseSegmentFileName,
  segmentFileName,
  type WalLogger,
} from '../../src/wal';
import {
  RecordType,
  entryFrameBytes,
  frameHeaderBytes,
  headerCheck,
  sealFrames,
  writeCrcFrame,
  writeEntryFrame,
  writeMetadataFrame,
} from '../../src/wal/encoder';
import { firstNonZeroByte, readFrame } from '../../src/wal/decoder';

/** The parts of a subtest the helpers below use. */
interface Tap {
  teardown(fn: () => unknown): void;
  ok(value: unknown, message: string): boolean;
  fail(message: string): boolean;
}

interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function testLogger(): WalLogger & { lines: LogLine[]; warnings(): LogLine[] } {
  const lines: LogLine[] = [];
  const push = (level: LogLine['level']) => (obj: object, msg: string) => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg });
  };
  return {
    lines,
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    warnings: () => lines.filter((line) => line.level === 'warn'),
  };
}

async function tempDir(tt: Tap): Promise<string> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'wal-test-'));
  tt.teardown(() => fs.rm(base, { recursive: true, force: true }));
  return path.join(base, 'wal');
}

function ent(index: number, term = 1, data: string | Buffer = `entry-${index}`): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.isBuffer(data) ? data : Buffer.from(data) };
}

function summary(entries: Entry[]): string[] {
  return entries.map((e) => `${e.index}/${e.term}/${e.type}/${e.data.toString('hex')}`);
}

async function segmentNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => parseSegmentFileName(name) !== null).sort();
}

async function lastSegment(dir: string): Promise<string> {
  const names = await segmentNames(dir);
  return path.join(dir, names[names.length - 1]!);
}

interface FrameInfo {
  offset: number;
  end: number;
  type: RecordType;
  payload: Buffer;
}

/** Walks the valid frames of one segment file from its start, as replay would, and stops at the first non-frame. */
async function framesOf(file: string): Promise<FrameInfo[]> {
  const buf = await fs.readFile(file);
  const frames: FrameInfo[] = [];
  let offset = 0;
  let crc = 0;
  for (;;) {
    const result = readFrame(buf, offset, crc);
    if (result.kind !== 'frame') return frames;
    frames.push({ offset, end: result.end, type: result.type, payload: Buffer.from(result.payload) });
    crc = result.crc;
    offset = result.end;
  }
}

async function lastCrcOf(file: string): Promise<number> {
  const buf = await fs.readFile(file);
  let offset = 0;
  let crc = 0;
  for (;;) {
    const result = readFrame(buf, offset, crc);
    if (result.kind !== 'frame') return crc;
    crc = result.crc;
    offset = result.end;
  }
}

async function patchFile(file: string, offset: number, bytes: Buffer): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, offset);
  } finally {
    await handle.close();
  }
}

/** Creates a WAL with entries 1..count (one save each, HardState in every save) and closes it. */
async function makeWal(
  dir: string,
  count: number,
  opts: { segmentSizeBytes?: number; dataBytes?: number } = {},
): Promise<void> {
  const logger = testLogger();
  const wal = await Wal.create(dir, Buffer.from('meta'), { logger, segmentSizeBytes: opts.segmentSizeBytes });
  for (let i = 1; i <= count; i++) {
    const data = opts.dataBytes === undefined ? `entry-${i}` : Buffer.alloc(opts.dataBytes, i % 251);
    await wal.save({ term: 1, vote: 1n, commit: i - 1 }, [ent(i, 1, data)]);
  }
  await wal.close();
}

async function expectCorrupt(tt: Tap, promise: Promise<unknown>, file: string, offset: number): Promise<void> {
  try {
    await promise;
    tt.fail('expected ErrWalCorrupt');
  } catch (err) {
    tt.ok(isDomainError(err, ErrWalCorrupt), `ErrWalCorrupt, got ${String(err)}`);
    const message = (err as Error).message;
    tt.ok(message.includes(file), `message names the file: ${message}`);
    tt.ok(message.includes(`at offset ${offset}:`), `message names offset ${offset}: ${message}`);
  }
}

t.test('format: the worked example in encoder.ts and the header check', async (tt) => {
  const entry: Entry = { term: 2, index: 300, type: EntryType.Normal, data: Buffer.from('hi') };
  tt.equal(entryFrameBytes(entry), 24);
  const buf = Buffer.alloc(24, 0xee);
  tt.equal(writeEntryFrame(buf, 0, entry), 24);
  tt.same([...buf.subarray(0, 6)], [6, 0, 0, 0, RecordType.Entry, 6]);
  tt.same([...buf.subarray(frameHeaderBytes, frameHeaderBytes + 6)], [0x00, 0x02, 0xac, 0x02, 0x68, 0x69]);
  tt.same([...buf.subarray(18, 24)], [0, 0, 0, 0, 0, 0], 'padding is zeroed');
  const crc = sealFrames(buf, 0, 24, 0);
  tt.equal(buf.readUInt32LE(8), crc);
  tt.equal(crc, zlib.crc32(buf.subarray(12, 18), zlib.crc32(buf.subarray(0, 8))));

  // CRC-32 is linear, so whether an error pattern is detected does not depend on the data: checking every 1- and
  // 2-bit pattern against one header proves the 16-bit check catches all of them.
  const base = headerCheck(buf, 0);
  let missed = 0;
  for (let i = 0; i < 48; i++) {
    for (let j = i; j < 48; j++) {
      const copy = Buffer.from(buf);
      copy[i >> 3]! ^= 1 << (i & 7);
      if (j !== i) copy[j >> 3]! ^= 1 << (j & 7);
      if (headerCheck(copy, 0) === base) missed++;
    }
  }
  tt.equal(missed, 0, 'every 1- and 2-bit header error is detected');

  tt.equal(segmentFileName(1, 0x21), '0000000000000001-0000000000000021.wal');
  tt.same(parseSegmentFileName('0000000000000001-0000000000000021.wal'), { seq: 1, firstIndex: 0x21 });
  tt.equal(parseSegmentFileName('0000000000000001-0000000000000021.wal.tmp'), null);
  tt.equal(parseSegmentFileName('ffffffffffffffff-0000000000000000.wal'), null, 'beyond 2^53 is not ours');
});

t.test('create, save, reopen round trip', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  tt.equal(await Wal.exists(dir), false, 'a missing directory holds no WAL');
  const metadata = Buffer.from([0, 1, 2, 0xff, 0x10]);
  const wal = await Wal.create(dir, metadata, { logger });
  tt.equal(await Wal.exists(dir), true);
  tt.same(await segmentNames(dir), ['0000000000000000-0000000000000000.wal']);
  tt.equal(wal.lastIndex, 0);

  const entries: Entry[] = [
    ent(1, 1, ''),
    { index: 2, term: 1, type: EntryType.ConfChange, data: Buffer.from([0, 0xff, 0x80, 7]) },
    ent(3, 2, Buffer.alloc(1000, 0xab)),
    ent(4, 2, 'x'),
  ];
  const hardState: HardState = { term: 2, vote: 0xffff_ffff_ffff_fffen, commit: 3 };
  await wal.save(hardState, entries.slice(0, 2));
  await wal.save(null, entries.slice(2));
  await wal.save({ term: 0, vote: 0n, commit: 0 }, []); // an empty HardState is not written
  tt.equal(wal.lastIndex, 4);
  await wal.close();

  await tt.rejects(Wal.create(dir, metadata, { logger }), { code: ErrWalExists });

  const opened = await Wal.open(dir, { logger });
  tt.same(opened.metadata, metadata);
  tt.same(opened.hardState, hardState);
  tt.equal(opened.hardState.vote, 0xffff_ffff_ffff_fffen, 'the vote keeps all 64 bits');
  tt.same(summary(opened.entries), summary(entries));
  tt.same(opened.snapshot, { index: 0, term: 0 });
  tt.equal(opened.wal.lastIndex, 4);

  // Appending after a reopen continues the crc chain: a second reopen sees both parts.
  await opened.wal.save({ term: 3, vote: 2n, commit: 5 }, [ent(5, 3)]);
  await opened.wal.close();
  const again = await Wal.open(dir, { logger });
  tt.same(summary(again.entries), summary([...entries, ent(5, 3)]));
  tt.same(again.hardState, { term: 3, vote: 2n, commit: 5 });
  await again.wal.close();
  tt.same(logger.warnings(), [], 'a clean WAL logs no warnings');
});

t.test('create refuses a non-empty directory and accepts an empty one', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  await fs.mkdir(dir, { recursive: true });
  const wal = await Wal.create(dir, Buffer.alloc(0), { logger });
  await wal.close();
  tt.equal(await Wal.exists(dir), true);

  const other = path.join(path.dirname(dir), 'other');
  await fs.mkdir(other);
  await fs.writeFile(path.join(other, 'keep-me'), 'data');
  await tt.rejects(Wal.create(other, Buffer.alloc(0), { logger }), { code: ErrWalExists });
  tt.equal(await fs.readFile(path.join(other, 'keep-me'), 'utf8'), 'data');

  await tt.rejects(Wal.open(path.join(path.dirname(dir), 'missing'), { logger }), { code: ErrWalNotFound });
});

t.test('terms and indexes up to 2^53 - 1 round trip', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const max = Number.MAX_SAFE_INTEGER;
  const wal = await Wal.create(dir, Buffer.from('m'), { logger });
  await wal.saveSnapshot({ index: max - 2, term: max - 1 });
  tt.equal(wal.lastIndex, max - 2, 'saveSnapshot raises lastIndex');
  await wal.save({ term: max, vote: 1n, commit: max - 1 }, [ent(max - 1, max - 1), ent(max, max)]);
  await wal.close();
  const opened = await Wal.open(dir, { logger, snapshot: { index: max - 2, term: max - 1 } });
  tt.same(summary(opened.entries), summary([ent(max - 1, max - 1), ent(max, max)]));
  tt.same(opened.hardState, { term: max, vote: 1n, commit: max - 1 });
  tt.equal(opened.wal.lastIndex, max);
  await opened.wal.close();
});

t.test('replay applies conflict truncation: a later write of index i replaces i and everything after', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const wal = await Wal.create(dir, Buffer.from('m'), { logger });
  await wal.save({ term: 1, vote: 1n, commit: 2 }, [1, 2, 3, 4, 5].map((i) => ent(i, 1)));
  await wal.save({ term: 2, vote: 2n, commit: 2 }, [ent(3, 2, 'new-3'), ent(4, 2, 'new-4')]);
  tt.equal(wal.lastIndex, 4, 'lastIndex follows the conflicting write down');
  await wal.save(null, [ent(5, 2, 'new-5'), ent(6, 2, 'new-6')]);
  await wal.save(null, [ent(6, 3, 'newer-6')]);
  await wal.close();

  const opened = await Wal.open(dir, { logger });
  tt.same(
    summary(opened.entries),
    summary([ent(1, 1), ent(2, 1), ent(3, 2, 'new-3'), ent(4, 2, 'new-4'), ent(5, 2, 'new-5'), ent(6, 3, 'newer-6')]),
  );
  tt.same(opened.hardState, { term: 2, vote: 2n, commit: 2 }, 'the last HardState record wins');
  tt.equal(opened.wal.lastIndex, 6);
  await opened.wal.close();
});

t.test('group commit: concurrent saves share fdatasyncs and each resolves after the one covering it', async (tt) => {
  for (const segmentSizeBytes of [undefined, 2048]) {
    const dir = await tempDir(tt);
    const logger = testLogger();
    const wal = await Wal.create(dir, Buffer.from('m'), { logger, segmentSizeBytes });
    const calls = 300;
    const before = wal.syncCount;
    const resolvedOrder: number[] = [];
    const promises: Promise<void>[] = [];
    for (let i = 1; i <= calls; i++) {
      const syncsAtCall = wal.syncCount;
      promises.push(
        wal.save({ term: 1, vote: 1n, commit: i - 1 }, [ent(i)]).then(() => {
          tt.ok(wal.syncCount > syncsAtCall, `save ${i} resolved after a sync issued after the call`);
          resolvedOrder.push(i);
        }),
      );
      // Spread the calls over a few turns of the event loop so that some arrive while a sync is in flight.
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(promises);
    const syncs = wal.syncCount - before;
    tt.ok(syncs < calls / 5, `${calls} saves took ${syncs} syncs (segment size ${segmentSizeBytes ?? 'default'})`);
    tt.same(
      resolvedOrder,
      Array.from({ length: calls }, (_, k) => k + 1),
      'promises resolve in call order',
    );
    await wal.close();

    const opened = await Wal.open(dir, { logger });
    tt.same(summary(opened.entries), summary(Array.from({ length: calls }, (_, k) => ent(k + 1))));
    tt.same(opened.hardState, { term: 1, vote: 1n, commit: calls - 1 });
    await opened.wal.close();
    if (segmentSizeBytes !== undefined) tt.ok((await segmentNames(dir)).length > 1, 'batches crossed segments');
  }
});

t.test('an empty save resolves only after earlier saves are durable; close drains pending saves', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const wal = await Wal.create(dir, Buffer.from('m'), { logger });
  const order: string[] = [];
  const first = wal.save(null, [ent(1)]).then(() => order.push('save'));
  const barrier = wal.save(null, []).then(() => order.push('empty'));
  const closed = wal.close().then(() => order.push('close'));
  await Promise.all([first, barrier, closed]);
  tt.same(order, ['save', 'empty', 'close']);
  tt.throws(() => wal.save(null, [ent(2)]), /used after close/, 'using a closed WAL is a programmer error');
  const opened = await Wal.open(dir, { logger });
  tt.same(summary(opened.entries), summary([ent(1)]));
  await opened.wal.close();
});

t.test('save rejects gaps, which are programmer errors', async (tt) => {
  const dir = await tempDir(tt);
  const wal = await Wal.create(dir, Buffer.from('m'), { logger: testLogger() });
  tt.throws(() => wal.save(null, [ent(2)]), /gap/);
  tt.throws(() => wal.save(null, [ent(1), ent(3)]), /follows/);
  await wal.close();
});

t.test('segments are cut at segmentSizeBytes and replay crosses them', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const segmentSizeBytes = 1024;
  await makeWal(dir, 100, { segmentSizeBytes, dataBytes: 100 });

  const names = await segmentNames(dir);
  tt.ok(names.length >= 8, `${names.length} segments`);
  const entryIndexesBySegment: number[][] = [];
  for (let k = 0; k < names.length; k++) {
    const parsed = parseSegmentFileName(names[k]!)!;
    tt.equal(parsed.seq, k, 'sequence numbers have no gaps');
    const file = path.join(dir, names[k]!);
    const frames = await framesOf(file);
    tt.equal(frames[0]!.type, RecordType.Crc, 'a segment starts with a CRC record');
    tt.equal(frames[1]!.type, RecordType.Metadata, 'then the metadata');
    tt.same(frames[1]!.payload, Buffer.from('meta'));
    if (k > 0) tt.equal(frames[2]!.type, RecordType.HardState, 'then the current HardState');
    const indexes = frames.filter((f) => f.type === RecordType.Entry).map((f) => f.payload[2]! | 0);
    entryIndexesBySegment.push(indexes);
    const size = (await fs.stat(file)).size;
    if (k < names.length - 1) {
      tt.equal(size, frames[frames.length - 1]!.end, 'a cut truncates the old segment to its last record');
      tt.ok(size >= segmentSizeBytes, 'a segment is cut only once it reaches the size');
    } else {
      tt.ok(size >= segmentSizeBytes, 'the tail is preallocated');
    }
  }
  // Entry payloads are type, uvarint term (1 byte here), uvarint index (1 byte below 128): payload[2] is the index.
  for (let k = 1; k < names.length; k++) {
    const previous = entryIndexesBySegment[k - 1]!;
    tt.equal(parseSegmentFileName(names[k]!)!.firstIndex, previous[previous.length - 1]! + 1, 'named last + 1');
  }

  const opened = await Wal.open(dir, { logger, segmentSizeBytes });
  tt.equal(opened.entries.length, 100);
  tt.same(
    opened.entries.map((e) => e.index),
    Array.from({ length: 100 }, (_, k) => k + 1),
  );
  tt.same(opened.entries[99]!.data, Buffer.alloc(100, 100));
  tt.same(opened.hardState, { term: 1, vote: 1n, commit: 99 });
  await opened.wal.close();
  tt.same(logger.warnings(), []);
});

t.test('snapshots: replay starts at the snapshot segment and requires the marker', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const segmentSizeBytes = 1024;
  const wal = await Wal.create(dir, Buffer.from('meta'), { logger, segmentSizeBytes });
  // The HardState is saved only once, at the start, so after the release it survives only because every cut copies
  // it into the new segment's header.
  await wal.save({ term: 1, vote: 7n, commit: 1 }, [ent(1)]);
  for (let i = 2; i <= 100; i++) await wal.save(null, [ent(i, 1, Buffer.alloc(100, i))]);
  await wal.saveSnapshot({ index: 60, term: 1 });
  const segmentsBefore = await segmentNames(dir);
  await wal.releaseTo(60);
  const segmentsAfter = await segmentNames(dir);
  tt.ok(segmentsAfter.length < segmentsBefore.length, 'old segments were deleted');
  tt.same(segmentsAfter, segmentsBefore.slice(segmentsBefore.length - segmentsAfter.length), 'oldest first');
  const firstIndexes = segmentsAfter.map((name) => parseSegmentFileName(name)!.firstIndex);
  // etcd's ReleaseLockTo rule: keep from the segment before the first one that starts at or after the index.
  tt.ok(firstIndexes[0]! < 60, 'the segment holding index 60 is kept');
  tt.ok(firstIndexes[1]! >= 60, 'the segments before it are released');
  await wal.releaseTo(0);
  tt.same(await segmentNames(dir), segmentsAfter, 'releaseTo(0) releases nothing');
  await wal.close();

  const opened = await Wal.open(dir, { logger, segmentSizeBytes, snapshot: { index: 60, term: 1 } });
  tt.same(
    opened.entries.map((e) => e.index),
    Array.from({ length: 40 }, (_, k) => k + 61),
    'entries after the snapshot',
  );
  tt.same(opened.hardState, { term: 1, vote: 7n, commit: 1 }, 'the HardState survives the release');
  tt.same(opened.snapshot, { index: 60, term: 1 });
  tt.equal(opened.wal.lastIndex, 100);
  await opened.wal.save(null, [ent(101)]);
  await opened.wal.releaseTo(1_000);
  tt.equal((await segmentNames(dir)).length, 1, 'releasing past the end keeps only the tail');
  await opened.wal.close();

  await tt.rejects(Wal.open(dir, { logger }), { code: ErrWalNotFound }, 'index 0 was released');
  const dir2 = await tempDir(tt);
  await makeWal(dir2, 10);
  const w2 = await Wal.open(dir2, { logger });
  await w2.wal.saveSnapshot({ index: 5, term: 1 });
  await w2.wal.close();
  await tt.rejects(Wal.open(dir2, { logger, snapshot: { index: 6, term: 1 } }), { code: ErrWalSnapshotNotFound });
  await tt.rejects(Wal.open(dir2, { logger, snapshot: { index: 5, term: 2 } }), { code: ErrWalSnapshotMismatch });
  const fromFive = await Wal.open(dir2, { logger, snapshot: { index: 5, term: 1 } });
  tt.same(
    fromFive.entries.map((e) => e.index),
    [6, 7, 8, 9, 10],
  );
  await fromFive.wal.close();
});

t.test('torn tail: truncated mid-record, repaired once with a warning, earlier entries survive', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 20);
  const file = await lastSegment(dir);
  const frames = await framesOf(file);
  const last = frames[frames.length - 1]!; // the HardState of save 20
  const lastEntry = frames[frames.length - 2]!; // entry 20
  tt.equal(lastEntry.type, RecordType.Entry);
  const cut = lastEntry.offset + 10;
  await fs.truncate(file, cut);

  const logger = testLogger();
  const opened = await Wal.open(dir, { logger });
  tt.same(
    opened.entries.map((e) => e.index),
    Array.from({ length: 19 }, (_, k) => k + 1),
  );
  tt.same(opened.hardState, { term: 1, vote: 1n, commit: 18 }, 'the HardState of the last complete save');
  const warnings = logger.warnings();
  tt.equal(warnings.length, 1, 'one warning');
  tt.equal(warnings[0]!.obj.path, file);
  tt.equal(warnings[0]!.obj.offset, lastEntry.offset);
  tt.equal(warnings[0]!.obj.droppedBytes, cut - lastEntry.offset);
  tt.ok(last.end > cut);
  tt.equal(opened.wal.lastIndex, 19);
  await opened.wal.save(null, [ent(20, 2, 'rewritten')]);
  await opened.wal.close();

  const logger2 = testLogger();
  const again = await Wal.open(dir, { logger: logger2 });
  tt.same(logger2.warnings(), [], 'the repair is not repeated');
  tt.same(summary(again.entries.slice(-2)), summary([ent(19), ent(20, 2, 'rewritten')]));
  await again.wal.close();
});

t.test('torn tail: a half-written record after the last one is dropped', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 10);
  const file = await lastSegment(dir);
  const frames = await framesOf(file);
  const end = frames[frames.length - 1]!.end;
  // What a torn append leaves: the first part of a well-formed frame (here a copy of an earlier entry's frame).
  const donor = frames.find((f) => f.type === RecordType.Entry)!;
  const whole = (await fs.readFile(file)).subarray(donor.offset, donor.end);
  const half = Buffer.from(whole.subarray(0, Math.ceil(whole.length / 2)));
  await patchFile(file, end, half);

  const logger = testLogger();
  const opened = await Wal.open(dir, { logger });
  tt.equal(opened.entries.length, 10, 'all complete entries survive');
  tt.equal(logger.warnings().length, 1);
  tt.equal(logger.warnings()[0]!.obj.offset, end);
  tt.equal(logger.warnings()[0]!.obj.droppedBytes, half.length - countTrailingZeros(half));
  await opened.wal.close();
  const buf = await fs.readFile(file);
  tt.equal(firstNonZeroByte(buf, end), -1, 'the torn bytes were zeroed on disk');
  const logger2 = testLogger();
  await (await Wal.open(dir, { logger: logger2 })).wal.close();
  tt.same(logger2.warnings(), []);
});

function countTrailingZeros(buf: Buffer): number {
  let n = 0;
  for (let i = buf.length - 1; i >= 0 && buf[i] === 0; i--) n++;
  return n;
}

t.test('torn tail: a partial header and a crc mismatch on the last record are repaired', async (tt) => {
  // Five bytes of garbage at the end: shorter than a header word.
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 5);
    const file = await lastSegment(dir);
    const frames = await framesOf(file);
    const end = frames[frames.length - 1]!.end;
    await fs.truncate(file, end);
    await fs.appendFile(file, Buffer.from([1, 2, 3, 4, 5]));
    const logger = testLogger();
    const opened = await Wal.open(dir, { logger });
    tt.equal(opened.entries.length, 5);
    tt.equal(logger.warnings().length, 1);
    tt.equal(logger.warnings()[0]!.obj.droppedBytes, 5);
    await opened.wal.close();
  }
  // A flipped bit in the very last record, with only zeroes after it.
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 5);
    const file = await lastSegment(dir);
    const frames = await framesOf(file);
    const last = frames[frames.length - 1]!;
    const buf = await fs.readFile(file);
    await patchFile(file, last.offset + 14, Buffer.from([buf[last.offset + 14]! ^ 0x10]));
    const logger = testLogger();
    const opened = await Wal.open(dir, { logger });
    tt.equal(opened.entries.length, 5, 'the last record was the HardState; all entries survive');
    tt.same(opened.hardState, { term: 1, vote: 1n, commit: 3 });
    tt.equal(logger.warnings().length, 1);
    tt.match(logger.warnings()[0]!.obj.reason, /crc mismatch/);
    await opened.wal.close();
  }
});

t.test('a flipped bit in the middle of the log is ErrWalCorrupt naming file and offset', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 30);
  const file = await lastSegment(dir);
  const frames = (await framesOf(file)).filter((f) => f.type === RecordType.Entry);
  const victim = frames[14]!;
  const original = await fs.readFile(file);
  const at = victim.offset + frameHeaderBytes + 5;
  await patchFile(file, at, Buffer.from([original[at]! ^ 0x04]));
  const damaged = await fs.readFile(file);

  await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, victim.offset);
  tt.same(await fs.readFile(file), damaged, 'nothing was truncated or rewritten');

  // A flipped bit in a header (here the length) is caught by the header check, and is corruption as well.
  await patchFile(file, at, Buffer.from([original[at]!]));
  await patchFile(file, victim.offset + 2, Buffer.from([original[victim.offset + 2]! ^ 0x01]));
  await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, victim.offset);
});

t.test('a zeroed region in the middle of the log is detected', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 30);
  const file = await lastSegment(dir);
  const frames = await framesOf(file);
  const original = await fs.readFile(file);

  // Zeroes that start inside a record: that record fails its checks, and data follows.
  const from = frames[20]!.offset + 4;
  await patchFile(file, from, Buffer.alloc(frames[24]!.offset + 20 - from));
  await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, frames[20]!.offset);

  // Zeroes covering whole records: the first zero header looks like the end of the log, but data follows.
  await fs.writeFile(file, original);
  await patchFile(file, frames[20]!.offset, Buffer.alloc(frames[24]!.offset - frames[20]!.offset));
  await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, frames[20]!.offset);

  // The same in a segment that is not the last one.
  const dir2 = await tempDir(tt);
  await makeWal(dir2, 40, { segmentSizeBytes: 1024, dataBytes: 50 });
  const names = await segmentNames(dir2);
  const second = path.join(dir2, names[1]!);
  const frames2 = await framesOf(second);
  await patchFile(second, frames2[3]!.offset, Buffer.alloc(frames2[5]!.offset - frames2[3]!.offset));
  await expectCorrupt(tt, Wal.open(dir2, { logger: testLogger(), segmentSizeBytes: 1024 }), second, frames2[3]!.offset);
});

t.test('damage at the end of a segment that is not the last is corruption, not a torn write', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 40, { segmentSizeBytes: 1024, dataBytes: 50 });
  const names = await segmentNames(dir);
  const first = path.join(dir, names[0]!);
  const frames = await framesOf(first);
  const last = frames[frames.length - 1]!;
  await fs.truncate(first, last.offset + 8);
  await expectCorrupt(tt, Wal.open(dir, { logger: testLogger(), segmentSizeBytes: 1024 }), first, last.offset);
});

t.test('a missing segment, a metadata mismatch and an unknown record type are corruption', async (tt) => {
  const segmentSizeBytes = 1024;
  // Missing segment in the sequence.
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 40, { segmentSizeBytes, dataBytes: 50 });
    const names = await segmentNames(dir);
    await fs.unlink(path.join(dir, names[2]!));
    try {
      await Wal.open(dir, { logger: testLogger(), segmentSizeBytes });
      tt.fail('expected ErrWalCorrupt');
    } catch (err) {
      tt.ok(isDomainError(err, ErrWalCorrupt));
      tt.match((err as Error).message, new RegExp(`${names[3]!}.*sequence 2 is missing`));
    }
  }
  // A segment whose CRCs are all valid but whose metadata differs.
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 40, { segmentSizeBytes, dataBytes: 50 });
    const names = await segmentNames(dir);
    const second = path.join(dir, names[1]!);
    const frames = await framesOf(second);
    const seed = await lastCrcOf(path.join(dir, names[0]!));
    const otherMetadata = Buffer.from('META');
    const bytes = Buffer.alloc(1024);
    let offset = writeCrcFrame(bytes, 0, seed);
    offset = writeMetadataFrame(bytes, offset, otherMetadata);
    const metadataOffset = frames[1]!.offset;
    sealFrames(bytes, 0, offset, seed);
    await fs.writeFile(second, bytes.subarray(0, offset));
    await fs.rm(path.join(dir, names[2]!)); // keep the damaged segment last so the rest need not be rebuilt
    for (const name of names.slice(3)) await fs.rm(path.join(dir, name));
    await expectCorrupt(tt, Wal.open(dir, { logger: testLogger(), segmentSizeBytes }), second, metadataOffset);
  }
  // A well-formed frame of an unknown type at the end: not a torn write, so not truncated.
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 3);
    const file = await lastSegment(dir);
    const frames = await framesOf(file);
    const end = frames[frames.length - 1]!.end;
    const frame = Buffer.alloc(entryFrameBytes(ent(4, 1, 'abcd')));
    writeEntryFrame(frame, 0, ent(4, 1, 'abcd'));
    frame[4] = 9;
    frame.writeUInt16LE(headerCheck(frame, 0), 6);
    await patchFile(file, end, frame);
    const before = await fs.readFile(file);
    await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, end);
    tt.same(await fs.readFile(file), before);
  }
  // Data after the preallocated zero region of the tail (garbage appended at the physical end of the file).
  {
    const dir = await tempDir(tt);
    await makeWal(dir, 3);
    const file = await lastSegment(dir);
    const frames = await framesOf(file);
    await fs.appendFile(file, Buffer.from('garbage!'));
    await expectCorrupt(tt, Wal.open(dir, { logger: testLogger() }), file, frames[frames.length - 1]!.end);
  }
});

t.test('an interrupted cut leaves a .tmp file that open removes', async (tt) => {
  const dir = await tempDir(tt);
  await makeWal(dir, 3);
  const tmp = path.join(dir, segmentFileName(1, 4) + '.tmp');
  await fs.writeFile(tmp, Buffer.alloc(100, 1));
  const logger = testLogger();
  const opened = await Wal.open(dir, { logger });
  tt.equal(opened.entries.length, 3);
  await tt.rejects(fs.stat(tmp), { code: 'ENOENT' });
  await opened.wal.close();
});

t.test('a failed write makes the WAL unusable with ErrWalIo', async (tt) => {
  const dir = await tempDir(tt);
  const logger = testLogger();
  const wal = await Wal.create(dir, Buffer.from('m'), { logger });
  await wal.save(null, [ent(1)]);
  // Close the tail behind the WAL's back so that the next write fails with EBADF.
  await (wal as unknown as { tail: { close(): Promise<void> } }).tail.close();
  const first = wal.save(null, [ent(2)]);
  const second = wal.save(null, [ent(3)]);
  await tt.rejects(first, { code: ErrWalIo });
  await tt.rejects(second, { code: ErrWalIo });
  await tt.rejects(wal.save(null, [ent(4)]), { code: ErrWalIo }, 'later saves fail too');
  tt.equal(logger.lines.filter((line) => line.level === 'error').length, 1);
  await wal.close().catch(() => undefined);
});
