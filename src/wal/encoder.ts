// The WAL's on-disk format, byte for byte, and the code that writes it. The reader is decoder.ts; the policy (which
// records a segment holds, when a damaged record counts as a torn write) is in wal.ts.
//
// Directory
// ---------
// A WAL is a directory of segment files named `%016x-%016x.wal` (lower-case hex): the segment's sequence number and
// the index of the first entry the segment was opened for (the WAL's last index + 1 at the moment it was cut), exactly
// as etcd names them. The first segment is `0000000000000000-0000000000000000.wal`. Sequence numbers have no gaps.
// A segment under construction is written as `<final name>.tmp` and renamed when complete; a leftover `.tmp` file is
// an aborted cut and is deleted on open.
//
// Segment
// -------
// A segment is a sequence of records, each starting at an offset that is a multiple of 8, followed by zero bytes up
// to the end of the file. The zero region exists because a new segment is preallocated: it is ftruncate()d to
// segmentSizeBytes before its first record is written (see "Preallocation" below). A record header can never be
// eight zero bytes (the type byte is never 0), so the first all-zero 8-byte word marks the end of the records, and
// everything after it must be zero too.
//
// Every segment begins with the same records, so that it can be checked on its own and so that old segments can be
// deleted without losing state:
//   1. a CRC record carrying the running CRC of the previous segment's last record (0 in the first segment);
//   2. a metadata record carrying the WAL's opaque metadata (identical in every segment);
//   3. in every segment after the first, a HardState record with the latest HardState written so far (omitted while
//      no HardState has been saved); the first segment instead holds a Snapshot record for index 0, term 0, so that
//      opening without a snapshot finds its marker, as in etcd.
// After those come entry, HardState and snapshot records in the order they were saved.
//
// Record frame
// ------------
//   offset  size  field
//   0       4     payloadLength   u32 little-endian: bytes of payload (not counting header or padding)
//   4       1     type            u8: 1 metadata, 2 entry, 3 hardState, 4 crc, 5 snapshot (etcd's numbering)
//   5       1     paddingLength   u8: number of zero bytes after the payload, 0..7
//   6       2     headerCheck     u16 little-endian: low 16 bits of crc32(bytes 0..5, seed 0)
//   8       4     crc             u32 little-endian: crc32(bytes 0..7 ++ payload, seed = previous record's crc)
//   12      n     payload
//   12+n    p     zero padding, so that 12 + n + p is a multiple of 8
//
// Why these fields:
// - The frame is padded to 8 bytes and starts 8-aligned, so its first 8-byte word (length, type, padding, header
//   check) lies inside one disk sector and is never torn by a crash: a torn write leaves that word either complete or
//   still zero.
// - headerCheck validates the length before it is used. Without it, a flipped high bit in the length of a record in
//   the middle of the last segment would make the record appear to run past the end of the file, which is
//   indistinguishable from a torn write, and replay would silently drop every later record. CRC-32 is linear, so the
//   check's power does not depend on the data: we verified exhaustively that its low 16 bits detect every 1-bit and
//   every 2-bit error in the 6 covered bytes.
// - crc is chained: it is seeded with the crc of the record before it, so a record copied from another position or
//   another segment fails the check even though its own bytes are intact. It covers the header word as well as the
//   payload, so the type and length are protected twice.
// - A CRC record (type 4) is the one place where a chain starts over. Its payload is the seed it was computed with
//   (the previous segment's last crc), so a segment can be verified when replay begins in its middle (after old
//   segments were released), and, when replay comes from the previous segment, replay checks that the seed equals the
//   crc it just computed, which proves that no segment or record went missing in between.
//
// Payloads (all integers little-endian; "uvarint" is unsigned LEB128, 7 bits per byte, low group first, at most 8
// bytes, value at most 2^53 - 1 because terms and indexes are JavaScript numbers)
// ---------------------------------------------------------------------------------------------------------------
//   metadata   the opaque metadata bytes as given to Wal.create
//   entry      u8 entry type (0 normal, 1 conf change), uvarint term, uvarint index, then the entry data to the end
//              of the payload (its length is implied by payloadLength). A typical entry costs 1 + 1..3 + 1..4 bytes
//              of encoding plus the 12-byte header and up to 7 bytes of padding.
//   hardState  u64 term, u64 vote (the member ID, a bigint; 0 for none), u64 commit: 24 bytes
//   crc        u32 seed (see above): 4 bytes
//   snapshot   u64 index, u64 term: 16 bytes
// u64 fields that hold a term or an index must be below 2^53; the reader treats a larger value as corruption.
//
// Worked example: the entry {term: 2, index: 300, type: Normal, data: "hi"} has payload 00 02 ac 02 68 69 (6 bytes),
// so the frame is 12 + 6 = 18 bytes padded by 6 to 24:
//   06 00 00 00 | 02 | 06 | <check:2> | <crc:4> | 00 02 ac 02 68 69 | 00 00 00 00 00 00
//
// Preallocation
// -------------
// Node has no fallocate(), so a new segment is sized with ftruncate(segmentSizeBytes): cheap, it makes the file's
// size final so that appends do not change it, and the unwritten range reads back as zeroes, which replay recognises
// as the end of the records. (The space is not reserved on disk; a full disk shows up as a failed write, which makes
// the WAL unusable, as any failed write does.) Writing real zeroes would reserve the space but would double the bytes
// written and stall the save path for the length of a segment at every cut, so we do not. When a segment is cut, the
// old one is truncated to the end of its last record, so only the last segment has a zero region.

import * as zlib from 'node:zlib';
import { assert } from '../util/assert';
import { EntryType, type Entry, type HardState, type SnapshotMeta } from '../raft/types';

/** Record types, numbered as etcd numbers them (wal.go metadataType..snapshotType). */
export enum RecordType {
  Metadata = 1,
  Entry = 2,
  HardState = 3,
  Crc = 4,
  Snapshot = 5,
}

/** Bytes before the payload: the 8-byte header word and the 4-byte chained crc. */
export const frameHeaderBytes = 12;

/** Frames start and end on multiples of this, so that a frame's first word never spans two sectors. */
export const frameAlignmentBytes = 8;

/**
 * The largest payload the WAL writes or accepts. Raft entries are bounded far below this by the server's request
 * size limit (1.5 MiB by default); the bound lets the reader reject an absurd length as corruption rather than try
 * to allocate it.
 */
export const maxRecordPayloadBytes = 128 * 1024 * 1024;

export const hardStatePayloadBytes = 24;
export const snapshotPayloadBytes = 16;
export const crcPayloadBytes = 4;

const twoTo32 = 0x1_0000_0000;
const maxVote = (1n << 64n) - 1n;

/** Padding that makes a frame with this payload end on an 8-byte boundary. */
export function paddingBytes(payloadBytes: number): number {
  return (frameAlignmentBytes - ((frameHeaderBytes + payloadBytes) % frameAlignmentBytes)) % frameAlignmentBytes;
}

/** Total bytes of the frame for a payload of this size, header and padding included. */
export function frameBytes(payloadBytes: number): number {
  return frameHeaderBytes + payloadBytes + paddingBytes(payloadBytes);
}

/** The 16-bit check over bytes 0..5 of the header word that starts at `offset`. */
export function headerCheck(buf: Buffer, offset: number): number {
  return zlib.crc32(buf.subarray(offset, offset + 6)) & 0xffff;
}

/** The chained crc of the frame at `offset` whose payload is `payloadBytes` long, seeded with `seed`. */
export function frameCrc(buf: Buffer, offset: number, payloadBytes: number, seed: number): number {
  const headerWordCrc = zlib.crc32(buf.subarray(offset, offset + 8), seed);
  const payloadStart = offset + frameHeaderBytes;
  return zlib.crc32(buf.subarray(payloadStart, payloadStart + payloadBytes), headerWordCrc);
}

/**
 * Writes a frame header at `offset` with a zero crc (sealFrames fills it in later, once the frame's place in the
 * chain is known), zeroes the padding, and returns the offset of the payload. The caller writes exactly
 * `payloadBytes` bytes of payload there.
 */
function writeFrameHeader(buf: Buffer, offset: number, type: RecordType, payloadBytes: number): number {
  assert(offset % frameAlignmentBytes === 0, 'wal: frames start 8-aligned');
  assert(payloadBytes <= maxRecordPayloadBytes, `wal: record payload of ${payloadBytes} bytes exceeds the limit`);
  const padding = paddingBytes(payloadBytes);
  buf.writeUInt32LE(payloadBytes, offset);
  buf[offset + 4] = type;
  buf[offset + 5] = padding;
  buf.writeUInt16LE(headerCheck(buf, offset), offset + 6);
  buf.writeUInt32LE(0, offset + 8);
  const payloadStart = offset + frameHeaderBytes;
  buf.fill(0, payloadStart + payloadBytes, payloadStart + payloadBytes + padding);
  return payloadStart;
}

/** Writes a number below 2^53 as a u64. */
export function writeU64Number(buf: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `wal: ${value} is not a non-negative safe integer`);
  buf.writeUInt32LE(value % twoTo32, offset);
  buf.writeUInt32LE(Math.floor(value / twoTo32), offset + 4);
}

export function uvarintBytes(value: number): number {
  let size = 1;
  let rest = value;
  while (rest >= 0x80) {
    rest = Math.floor(rest / 0x80);
    size++;
  }
  return size;
}

/** Writes `value` as an unsigned LEB128 varint and returns the offset after it. Arithmetic, not bitwise: values exceed 32 bits. */
export function writeUvarint(buf: Buffer, offset: number, value: number): number {
  assert(Number.isSafeInteger(value) && value >= 0, `wal: ${value} is not a non-negative safe integer`);
  let rest = value;
  let at = offset;
  while (rest >= 0x80) {
    buf[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  buf[at++] = rest;
  return at;
}

function entryPayloadBytes(entry: Entry): number {
  return 1 + uvarintBytes(entry.term) + uvarintBytes(entry.index) + entry.data.length;
}

/** Frame bytes an entry record needs. */
export function entryFrameBytes(entry: Entry): number {
  return frameBytes(entryPayloadBytes(entry));
}

/** Writes an entry record at `offset` and returns the offset after its frame. The data is copied. */
export function writeEntryFrame(buf: Buffer, offset: number, entry: Entry): number {
  assert(entry.type === EntryType.Normal || entry.type === EntryType.ConfChange, `wal: bad entry type ${entry.type}`);
  const payloadBytes = entryPayloadBytes(entry);
  const payloadStart = writeFrameHeader(buf, offset, RecordType.Entry, payloadBytes);
  buf[payloadStart] = entry.type;
  let at = writeUvarint(buf, payloadStart + 1, entry.term);
  at = writeUvarint(buf, at, entry.index);
  at += entry.data.copy(buf, at);
  assert(at === payloadStart + payloadBytes, 'wal: entry payload size mismatch');
  return offset + frameBytes(payloadBytes);
}

export const hardStateFrameBytes = frameBytes(hardStatePayloadBytes);

export function writeHardStateFrame(buf: Buffer, offset: number, hardState: HardState): number {
  assert(hardState.vote >= 0n && hardState.vote <= maxVote, `wal: vote ${hardState.vote} is not a u64`);
  const payloadStart = writeFrameHeader(buf, offset, RecordType.HardState, hardStatePayloadBytes);
  writeU64Number(buf, payloadStart, hardState.term);
  buf.writeBigUInt64LE(hardState.vote, payloadStart + 8);
  writeU64Number(buf, payloadStart + 16, hardState.commit);
  return offset + hardStateFrameBytes;
}

export const snapshotFrameBytes = frameBytes(snapshotPayloadBytes);

export function writeSnapshotFrame(buf: Buffer, offset: number, snapshot: SnapshotMeta): number {
  const payloadStart = writeFrameHeader(buf, offset, RecordType.Snapshot, snapshotPayloadBytes);
  writeU64Number(buf, payloadStart, snapshot.index);
  writeU64Number(buf, payloadStart + 8, snapshot.term);
  return offset + snapshotFrameBytes;
}

export const crcFrameBytes = frameBytes(crcPayloadBytes);

/** Writes a CRC record whose payload is the seed of its own crc: the running crc the segment continues from. */
export function writeCrcFrame(buf: Buffer, offset: number, seed: number): number {
  const payloadStart = writeFrameHeader(buf, offset, RecordType.Crc, crcPayloadBytes);
  buf.writeUInt32LE(seed >>> 0, payloadStart);
  return offset + crcFrameBytes;
}

export function metadataFrameBytes(metadata: Buffer): number {
  return frameBytes(metadata.length);
}

export function writeMetadataFrame(buf: Buffer, offset: number, metadata: Buffer): number {
  const payloadStart = writeFrameHeader(buf, offset, RecordType.Metadata, metadata.length);
  metadata.copy(buf, payloadStart);
  return offset + metadataFrameBytes(metadata);
}

/**
 * Fills in the chained crc of every frame in `buf[start, end)`, in order, starting from `seed`, and returns the crc
 * of the last frame (the seed of whatever is written next). The frames must have been written by the functions above,
 * which leave the crc field for this step: a frame's crc depends on everything written before it, and save() encodes
 * records before it knows whether a segment cut will come between them and the previous batch.
 */
export function sealFrames(buf: Buffer, start: number, end: number, seed: number): number {
  let crc = seed >>> 0;
  let offset = start;
  while (offset < end) {
    const payloadBytes = buf.readUInt32LE(offset);
    const type = buf[offset + 4];
    if (type === RecordType.Crc) {
      // A CRC record restarts the chain from the seed it carries, which must be where the chain actually is.
      assert(buf.readUInt32LE(offset + frameHeaderBytes) === crc, 'wal: CRC record does not carry the running crc');
    }
    crc = frameCrc(buf, offset, payloadBytes, crc);
    buf.writeUInt32LE(crc, offset + 8);
    offset += frameBytes(payloadBytes);
  }
  assert(offset === end, 'wal: frames do not fill the sealed range exactly');
  return crc;
}
