// Revisions and their 17-byte big-endian encoding (etcd mvcc/revision.go).
//
// A revision {main, sub}: `main` is the store revision of one write transaction, `sub` numbers the changes
// inside it from 0. Encoded as 8 bytes big-endian main, the byte '_' (0x5f), 8 bytes big-endian sub; a
// tombstone (a deletion) appends the byte 't' (0x74), making 18 bytes. Big-endian makes bytewise order equal
// revision order, so the key bucket of the backend is a log ordered by revision.

import { assert } from '../util/assert';
import type { Revision } from './types';

export const revBytesLen = 17;
export const markedRevBytesLen = 18;
export const markTombstone = 0x74; // 't'
const separator = 0x5f; // '_'
const two32 = 0x1_0000_0000;

export const zeroRevision: Revision = Object.freeze({ main: 0, sub: 0 });

export function revision(main: number, sub = 0): Revision {
  return { main, sub };
}

/** a > b in (main, sub) order. */
export function revGreaterThan(a: Revision, b: Revision): boolean {
  if (a.main !== b.main) return a.main > b.main;
  return a.sub > b.sub;
}

export function compareRevision(a: Revision, b: Revision): number {
  if (a.main !== b.main) return a.main < b.main ? -1 : 1;
  if (a.sub !== b.sub) return a.sub < b.sub ? -1 : 1;
  return 0;
}

export function revEqual(a: Revision, b: Revision): boolean {
  return a.main === b.main && a.sub === b.sub;
}

/** Writes a non-negative safe integer as 8 bytes big-endian. */
export function writeU64(buf: Buffer, value: number, offset: number): void {
  assert(Number.isSafeInteger(value), 'u64 value must be a safe integer');
  assert(value >= 0, 'u64 value must not be negative');
  buf.writeUInt32BE(Math.floor(value / two32), offset);
  buf.writeUInt32BE(value % two32, offset + 4);
}

/** Reads 8 bytes big-endian; asserts the value fits in a safe integer (revisions stay far below 2^53). */
export function readU64(buf: Buffer, offset: number): number {
  const hi = buf.readUInt32BE(offset);
  const lo = buf.readUInt32BE(offset + 4);
  assert(hi < 0x20_0000, 'u64 value above 2^53');
  return hi * two32 + lo;
}

export function revToBytes(rev: Revision, tombstone = false): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? markedRevBytesLen : revBytesLen);
  writeU64(b, rev.main, 0);
  b[8] = separator;
  writeU64(b, rev.sub, 9);
  if (tombstone) b[17] = markTombstone;
  return b;
}

export function bytesToRev(b: Buffer): Revision {
  assert(b.length === revBytesLen || b.length === markedRevBytesLen, 'revision bytes have a bad length');
  assert(b[8] === separator, 'revision bytes lack the separator');
  return { main: readU64(b, 0), sub: readU64(b, 9) };
}

export function isTombstoneBytes(b: Buffer): boolean {
  return b.length === markedRevBytesLen && b[markedRevBytesLen - 1] === markTombstone;
}

export function revString(rev: Revision): string {
  return `${rev.main}_${rev.sub}`;
}
