// Reads the format that encoder.ts specifies. This file only says what the bytes at an offset are: a valid frame, the
// end of the records, or damage, with the facts wal.ts needs to decide whether the damage is a torn write that may be
// truncated or corruption that must stop the open. It never decides that itself.

import { assert } from '../util/assert';
import { EntryType, type Entry, type HardState, type SnapshotMeta } from '../raft/types';
import {
  RecordType,
  crcPayloadBytes,
  frameAlignmentBytes,
  frameHeaderBytes,
  frameCrc,
  hardStatePayloadBytes,
  headerCheck,
  maxRecordPayloadBytes,
  paddingBytes,
  snapshotPayloadBytes,
} from './encoder';

export type FrameReadResult =
  | {
      kind: 'frame';
      type: RecordType;
      /** A view into the file buffer; copy it before keeping it. */
      payload: Buffer;
      /** The frame's crc, which seeds the next frame. */
      crc: number;
      /** The seed this frame's crc was checked with (for a CRC record, the seed it carries). */
      seed: number;
      /** Offset just past the frame, padding included. */
      end: number;
    }
  | {
      /** No more records: the offset is the end of the buffer, or it and everything after it is zero. */
      kind: 'end';
    }
  | {
      kind: 'damage';
      reason: string;
      /**
       * Whether a crash during an append could have produced this damage: a header or payload cut short by the end
       * of the file, or a frame whose crc does not match. A header that passes its check but describes an impossible
       * record, or a zero region followed by data, is never the result of a torn append.
       */
      tornCandidate: boolean;
      /** Where the damaged bytes end, as far as the header can be trusted; the tail must be all zero after this. */
      damageEnd: number;
    };

/** Thrown by the payload decoders below when a payload whose crc is valid does not parse; wal.ts adds file and offset. */
export class PayloadFormatError extends Error {
  override name = 'PayloadFormatError';
}

const zeroChunk = Buffer.alloc(64 * 1024);

/** The offset of the first non-zero byte at or after `from`, or -1 if there is none. Compares 64 KiB at a time natively. */
export function firstNonZeroByte(buf: Buffer, from: number): number {
  let offset = from;
  while (offset < buf.length) {
    const chunkEnd = Math.min(buf.length, offset + zeroChunk.length);
    const chunk = buf.subarray(offset, chunkEnd);
    if (!chunk.equals(zeroChunk.subarray(0, chunk.length))) {
      for (let i = offset; i < chunkEnd; i++) {
        if (buf[i] !== 0) return i;
      }
    }
    offset = chunkEnd;
  }
  return -1;
}

/** The offset just past the last non-zero byte at or after `from`, or `from` if every byte from there on is zero. */
export function endOfNonZeroBytes(buf: Buffer, from: number): number {
  for (let i = buf.length - 1; i >= from; i--) {
    if (buf[i] !== 0) return i + 1;
  }
  return from;
}

function isKnownRecordType(type: number): type is RecordType {
  return type >= RecordType.Metadata && type <= RecordType.Snapshot;
}

/**
 * Reads the frame at `offset`, which must be 8-aligned, checking its crc against `seed` (the previous frame's crc).
 * A CRC record is checked against the seed it carries instead; the caller compares that with the running crc.
 */
export function readFrame(buf: Buffer, offset: number, seed: number): FrameReadResult {
  assert(offset % frameAlignmentBytes === 0, `wal: frame offset ${offset} is not 8-aligned`);
  if (offset === buf.length) return { kind: 'end' };
  if (buf.length - offset < frameAlignmentBytes) {
    return {
      kind: 'damage',
      reason: `incomplete record header: the file ends ${buf.length - offset} bytes into it`,
      tornCandidate: true,
      damageEnd: buf.length,
    };
  }

  if (buf.readUInt32LE(offset) === 0 && buf.readUInt32LE(offset + 4) === 0) {
    // The end of the records, unless something follows the zeroes. Data after a zero region means a range in the
    // middle of the log was zeroed (or a write landed out of order); truncating there could drop acknowledged
    // records, so it is reported rather than repaired.
    const dataAt = firstNonZeroByte(buf, offset);
    if (dataAt === -1) return { kind: 'end' };
    return {
      kind: 'damage',
      reason: `zero-filled region followed by data at offset ${dataAt}`,
      tornCandidate: false,
      damageEnd: dataAt,
    };
  }

  const storedCheck = buf.readUInt16LE(offset + 6);
  const computedCheck = headerCheck(buf, offset);
  if (storedCheck !== computedCheck) {
    return {
      kind: 'damage',
      reason: `record header check mismatch (stored 0x${hex(storedCheck, 4)}, computed 0x${hex(computedCheck, 4)})`,
      tornCandidate: true,
      damageEnd: offset + frameAlignmentBytes,
    };
  }

  const payloadBytes = buf.readUInt32LE(offset);
  const type = buf[offset + 4]!;
  const padding = buf[offset + 5]!;
  if (!isKnownRecordType(type)) {
    return { kind: 'damage', reason: `unknown record type ${type}`, tornCandidate: false, damageEnd: offset + 8 };
  }
  if (payloadBytes > maxRecordPayloadBytes) {
    return {
      kind: 'damage',
      reason: `record length ${payloadBytes} exceeds the limit of ${maxRecordPayloadBytes}`,
      tornCandidate: false,
      damageEnd: offset + 8,
    };
  }
  if (padding !== paddingBytes(payloadBytes)) {
    return {
      kind: 'damage',
      reason: `record padding ${padding} does not match length ${payloadBytes}`,
      tornCandidate: false,
      damageEnd: offset + 8,
    };
  }

  const payloadStart = offset + frameHeaderBytes;
  const end = payloadStart + payloadBytes + padding;
  if (end > buf.length) {
    return {
      kind: 'damage',
      reason: `incomplete record: ${end - offset} bytes long but the file ends after ${buf.length - offset}`,
      tornCandidate: true,
      damageEnd: buf.length,
    };
  }

  const payload = buf.subarray(payloadStart, payloadStart + payloadBytes);
  let checkSeed = seed >>> 0;
  if (type === RecordType.Crc) {
    if (payloadBytes !== crcPayloadBytes) {
      return {
        kind: 'damage',
        reason: `CRC record payload is ${payloadBytes} bytes, not ${crcPayloadBytes}`,
        tornCandidate: false,
        damageEnd: end,
      };
    }
    checkSeed = payload.readUInt32LE(0);
  }
  const storedCrc = buf.readUInt32LE(offset + 8);
  const computedCrc = frameCrc(buf, offset, payloadBytes, checkSeed);
  if (storedCrc !== computedCrc) {
    return {
      kind: 'damage',
      reason: `${RecordType[type]} record crc mismatch (stored 0x${hex(storedCrc, 8)}, computed 0x${hex(computedCrc, 8)})`,
      tornCandidate: true,
      damageEnd: end,
    };
  }
  if (!isZeroRange(buf, payloadStart + payloadBytes, end)) {
    // The crc does not cover padding, so a valid frame with dirty padding means something wrote over it later.
    return { kind: 'damage', reason: 'non-zero record padding', tornCandidate: false, damageEnd: end };
  }
  return { kind: 'frame', type, payload, crc: storedCrc, seed: checkSeed, end };
}

function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (buf[i] !== 0) return false;
  }
  return true;
}

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, '0');
}

/** Reads a u64 that holds a term or an index, which must be below 2^53. */
export function readU64Number(buf: Buffer, offset: number, what: string): number {
  const low = buf.readUInt32LE(offset);
  const high = buf.readUInt32LE(offset + 4);
  if (high > 0x1f_ffff) throw new PayloadFormatError(`${what} does not fit in 53 bits`);
  return high * 0x1_0000_0000 + low;
}

/** Reads an unsigned LEB128 varint of at most 8 bytes; returns the value and the offset after it. */
export function readUvarint(buf: Buffer, offset: number, end: number, what: string): [number, number] {
  let value = 0;
  let multiplier = 1;
  let at = offset;
  for (let i = 0; i < 8; i++) {
    if (at >= end) throw new PayloadFormatError(`${what} varint runs past the end of the payload`);
    const byte = buf[at++]!;
    value += (byte & 0x7f) * multiplier;
    if (byte < 0x80) {
      if (!Number.isSafeInteger(value)) throw new PayloadFormatError(`${what} does not fit in 53 bits`);
      return [value, at];
    }
    multiplier *= 0x80;
  }
  throw new PayloadFormatError(`${what} varint is longer than 8 bytes`);
}

/** Decodes an entry payload. The returned entry's data is a copy, so it does not pin the segment's buffer. */
export function decodeEntry(payload: Buffer): Entry {
  if (payload.length < 3) throw new PayloadFormatError(`entry payload of ${payload.length} bytes is too short`);
  const type = payload[0]!;
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) {
    throw new PayloadFormatError(`unknown entry type ${type}`);
  }
  const [term, afterTerm] = readUvarint(payload, 1, payload.length, 'entry term');
  const [index, afterIndex] = readUvarint(payload, afterTerm, payload.length, 'entry index');
  return { term, index, type, data: Buffer.from(payload.subarray(afterIndex)) };
}

export function decodeHardState(payload: Buffer): HardState {
  if (payload.length !== hardStatePayloadBytes) {
    throw new PayloadFormatError(`HardState payload is ${payload.length} bytes, not ${hardStatePayloadBytes}`);
  }
  return {
    term: readU64Number(payload, 0, 'HardState term'),
    vote: payload.readBigUInt64LE(8),
    commit: readU64Number(payload, 16, 'HardState commit'),
  };
}

export function decodeSnapshot(payload: Buffer): SnapshotMeta {
  if (payload.length !== snapshotPayloadBytes) {
    throw new PayloadFormatError(`snapshot payload is ${payload.length} bytes, not ${snapshotPayloadBytes}`);
  }
  return { index: readU64Number(payload, 0, 'snapshot index'), term: readU64Number(payload, 8, 'snapshot term') };
}
