// Small helpers shared by the core (etcd raft util.go).

import type { Entry } from './types';

/** "No limit" for byte-size bounds (etcd's noLimit = math.MaxUint64). */
export const noLimit = Number.MAX_SAFE_INTEGER;

/** Bytes of a uvarint encoding of a non-negative safe integer (protobuf's sov). */
function uvarintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/**
 * The encoded size of an entry, as etcd's Entry.Size() computes it (protobuf: type, term and index always present,
 * data when non-empty). Used for MaxSizePerMsg and MaxCommittedSizePerReady, so that our batching matches etcd's.
 */
export function entrySizeBytes(e: Entry): number {
  let n = 3 + uvarintSize(e.type) + uvarintSize(e.term) + uvarintSize(e.index);
  const l = e.data.length;
  if (l > 0) n += 1 + l + uvarintSize(l);
  return n;
}

/** The size of an entry's payload, independent of its index and term (etcd PayloadSize). */
export function payloadSizeBytes(e: Entry): number {
  return e.data.length;
}

/** The summed payload size of entries (etcd payloadsSize). */
export function payloadsSizeBytes(ents: readonly Entry[]): number {
  let s = 0;
  for (const e of ents) s += e.data.length;
  return s;
}

/**
 * The longest prefix of `ents` whose total encoded size is at most `maxSizeBytes`, but at least one entry when any
 * (etcd limitSize). Returns `ents` itself when nothing is cut, otherwise a new array.
 */
export function limitSize(ents: Entry[], maxSizeBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]!);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySizeBytes(ents[limit]!);
    if (size > maxSizeBytes) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}
