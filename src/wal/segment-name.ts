// Segment file names, `%016x-%016x.wal` (sequence, first index), as etcd's wal/util.go walName and parseWALName.

import { assert } from '../util/assert';

export interface SegmentName {
  seq: number;
  /** The WAL's last index + 1 when the segment was started; the segment may also hold lower indexes that overwrite
   *  uncommitted entries after a conflict, so this is a lower bound only for committed entries. */
  firstIndex: number;
}

const segmentNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** Suffix of a segment being built by a cut (or by create); such a file is never part of the log. */
export const tmpSuffix = '.tmp';

export function segmentFileName(seq: number, firstIndex: number): string {
  assert(Number.isSafeInteger(seq) && seq >= 0, `wal: bad segment sequence ${seq}`);
  assert(Number.isSafeInteger(firstIndex) && firstIndex >= 0, `wal: bad segment index ${firstIndex}`);
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

/**
 * Parses a segment file name; returns null for any other name. A well-formed name whose numbers do not fit in 53
 * bits also returns null: we never write one, so it is not ours.
 */
export function parseSegmentFileName(name: string): SegmentName | null {
  const match = segmentNamePattern.exec(name);
  if (match === null) return null;
  const seq = Number.parseInt(match[1]!, 16);
  const firstIndex = Number.parseInt(match[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { seq, firstIndex };
}
