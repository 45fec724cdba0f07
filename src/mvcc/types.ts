// The MVCC store's public contract, used by src/server. Revisions are JavaScript numbers (validated at the
// gRPC gateway, which rejects anything above the current revision long before 2^53); lease IDs are bigint.

/** A revision {main, sub}: `main` is the store revision of a write transaction, `sub` orders changes within it. */
export interface Revision {
  main: number;
  sub: number;
}

/** mvccpb.KeyValue. Keys and values are bytes, never strings. */
export interface KeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  /** 0n when the key is not attached to a lease. */
  lease: bigint;
}

export enum EventType {
  Put = 0,
  Delete = 1,
}

/** One change in a revision. A DELETE carries the key and `modRevision` = the deletion revision. */
export interface MvccEvent {
  type: EventType;
  kv: KeyValue;
}

export interface RangeOptions {
  /** 0 = no limit. */
  limit?: number;
  /** 0 = the current revision. */
  rev?: number;
  /** Count only: return `count` and no kvs. */
  count?: boolean;
}

export interface RangeResult {
  /** At most `limit` key-values in ascending bytewise key order. */
  kvs: KeyValue[];
  /** The store's current revision (not the read revision), as etcd reports it in headers. */
  rev: number;
  /** The number of keys in the range at the read revision, ignoring `limit`. */
  count: number;
}

/**
 * What MVCC needs from the lessor: which lease a key is attached to, and attach/detach bookkeeping.
 * Mirrors etcd mvcc's use of lease.Lessor (GetLease, Attach, Detach).
 */
export interface LeaseAttacher {
  getLease(key: Buffer): bigint;
  attach(lease: bigint, key: Buffer): void;
  detach(lease: bigint, key: Buffer): void;
}
