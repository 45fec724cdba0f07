// Request builders and response readers shared by the workloads. Requests are encoded with protobufjs straight
// from plain objects (bytes as Buffer, int64 as number); responses are decoded only as far as a workload needs.

import { pb, toNumber } from '../lib/proto';

/**
 * Drops proto3 default values (empty bytes, 0, false), so requests look on the wire as Go's marshaller writes them.
 * This matters: etcd 3.4 decodes a present-but-empty range_end as a non-nil empty slice and then ranges over every
 * key >= key instead of reading the single key, which an absent range_end means.
 */
export function omitDefaults(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === 0 || v === false || v === undefined || v === null) continue;
    if (Buffer.isBuffer(v) && v.length === 0) continue;
    out[k] = v;
  }
  return out;
}

export function bytes(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function putRequest(key: Buffer, value: Buffer, lease: string = '0'): Buffer {
  return bytes(pb().PutRequest.encode(omitDefaults({ key, value, lease: lease === '0' ? 0 : lease })).finish());
}

export interface RangeArgs {
  key: Buffer;
  rangeEnd?: Buffer;
  limit?: number;
  revision?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

function rangeObject(a: RangeArgs): Record<string, unknown> {
  return omitDefaults({
    key: a.key,
    range_end: a.rangeEnd ?? Buffer.alloc(0),
    limit: a.limit ?? 0,
    revision: a.revision ?? 0,
    serializable: a.serializable ?? false,
    keys_only: a.keysOnly ?? false,
    count_only: a.countOnly ?? false,
  });
}

export function rangeRequest(a: RangeArgs): Buffer {
  return bytes(pb().RangeRequest.encode(rangeObject(a)).finish());
}

export type TxnOp =
  /** lease: an int64 as decimal text (lease IDs do not fit a double). */
  | { put: { key: Buffer; value: Buffer; lease?: string } }
  | { range: RangeArgs }
  | { deleteRange: { key: Buffer; rangeEnd?: Buffer } };

export interface TxnCompare {
  key: Buffer;
  /** MOD == modRevision (the only compare kube sends for objects). */
  modRevision: number;
}

function opObject(op: TxnOp): Record<string, unknown> {
  if ('put' in op) {
    const lease = op.put.lease ?? '0';
    return { request_put: omitDefaults({ key: op.put.key, value: op.put.value, lease: lease === '0' ? 0 : lease }) };
  }
  if ('range' in op) return { request_range: rangeObject(op.range) };
  return { request_delete_range: omitDefaults({ key: op.deleteRange.key, range_end: op.deleteRange.rangeEnd ?? Buffer.alloc(0) }) };
}

export function txnRequest(compare: TxnCompare[], success: TxnOp[], failure: TxnOp[] = []): Buffer {
  return bytes(
    pb()
      .TxnRequest.encode({
        // target MOD = 2, result EQUAL = 0 (a default, so absent, as Go writes it); the oneof mod_revision is
        // always written, even 0, as gogoproto does for a set oneof.
        compare: compare.map((c) => ({ target: 2, key: c.key, mod_revision: c.modRevision })),
        success: success.map(opObject),
        failure: failure.map(opObject),
      })
      .finish(),
  );
}

export interface DecodedKv {
  key: Buffer;
  modRevision: number;
  createRevision: number;
  version: number;
}

interface RawKv {
  key: Uint8Array;
  mod_revision?: unknown;
  create_revision?: unknown;
  version?: unknown;
}

function kv(raw: RawKv): DecodedKv {
  return {
    key: bytes(raw.key),
    modRevision: toNumber(raw.mod_revision),
    createRevision: toNumber(raw.create_revision),
    version: toNumber(raw.version),
  };
}

export interface DecodedRange {
  revision: number;
  kvs: DecodedKv[];
  more: boolean;
  count: number;
}

export function decodeRange(buf: Buffer): DecodedRange {
  const r = pb().RangeResponse.decode(buf) as unknown as { header?: { revision?: unknown }; kvs: RawKv[]; more: boolean; count: unknown };
  return { revision: toNumber(r.header?.revision), kvs: r.kvs.map(kv), more: r.more === true, count: toNumber(r.count) };
}

export interface DecodedTxn {
  revision: number;
  succeeded: boolean;
  /** kvs of the first response if it is a range (the failure branch's Get). */
  rangeKvs: DecodedKv[] | null;
}

export function decodeTxn(buf: Buffer): DecodedTxn {
  const r = pb().TxnResponse.decode(buf) as unknown as {
    header?: { revision?: unknown };
    succeeded: boolean;
    responses: Array<{ response_range?: { kvs: RawKv[] } | null }>;
  };
  const first = r.responses[0]?.response_range;
  return { revision: toNumber(r.header?.revision), succeeded: r.succeeded === true, rangeKvs: first ? first.kvs.map(kv) : null };
}

/** header.revision only. Works for any response whose field 1 is the ResponseHeader. */
export function decodeHeaderRevision(buf: Buffer): number {
  const r = pb().PutResponse.decode(buf) as unknown as { header?: { revision?: unknown } };
  return toNumber(r.header?.revision);
}
