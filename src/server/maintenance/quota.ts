// The backend space quota (etcd etcdserver/quota.go backendQuota): a request that adds data is admitted only
// while the backend size plus the request's cost stays below --quota-backend-bytes.
//
// The backend size is the physical size of the LevelDB directory (etcd: the bolt file's size), sampled in the
// background because a directory listing per request would cost too much; between two samples the bytes the
// store appended since the sample are added, so a burst of writes cannot overshoot the quota by a whole sample
// period. The sample is refreshed by the server (every second) and right after a defragmentation.

import type { LeaseGrantRequest, PutRequest, RequestOp, TxnRequest } from '../../api/types';

/** etcd DefaultQuotaBytes: used when --quota-backend-bytes is 0. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd MaxQuotaBytes: a larger quota is accepted, with a warning. */
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
/** etcd leaseOverhead and kvOverhead: the estimated cost of storing a lease and a key's metadata. */
const LEASE_OVERHEAD_BYTES = 64;
const KV_OVERHEAD_BYTES = 256;

/** The requests the quota charges for (etcd backendQuota.Cost panics on anything else). */
export type QuotaRequest = { put: PutRequest } | { txn: TxnRequest } | { lease_grant: LeaseGrantRequest };

/** etcd costPut. */
export function costPut(p: PutRequest): number {
  return KV_OVERHEAD_BYTES + p.key.length + p.value.length;
}

/**
 * etcd costTxn: the larger of the two branches, each the sum of its top-level Puts. Mirrors etcd 3.4 exactly:
 * Puts inside a nested Txn cost nothing.
 */
export function costTxn(t: TxnRequest): number {
  const branch = (ops: RequestOp[]) => ops.reduce((sum, op) => sum + (op.request_put ? costPut(op.request_put) : 0), 0);
  return Math.max(branch(t.success), branch(t.failure));
}

export function cost(r: QuotaRequest): number {
  if ('put' in r) return costPut(r.put);
  if ('txn' in r) return costTxn(r.txn);
  return LEASE_OVERHEAD_BYTES;
}

export interface BackendSizeSource {
  /** The physical backend size in bytes (a directory listing: slow, async). */
  measure(): Promise<number>;
  /** Monotonic count of bytes appended to the backend (MvccStore.writtenBytes). */
  writtenBytes(): number;
}

export class BackendQuota {
  /** The quota in bytes; Infinity when disabled (--quota-backend-bytes < 0, etcd's passthroughQuota). */
  readonly maxBytes: number;
  private sampleBytes = 0;
  private writtenAtSample = 0;
  private refreshing: Promise<void> | null = null;

  constructor(
    quotaBackendBytes: number,
    private readonly source: BackendSizeSource,
  ) {
    this.maxBytes = quotaBackendBytes < 0 ? Infinity : quotaBackendBytes === 0 ? DEFAULT_QUOTA_BYTES : quotaBackendBytes;
  }

  get enabled(): boolean {
    return this.maxBytes !== Infinity;
  }

  /** The last measured size plus what was written since: etcd's backend.Size(). */
  sizeBytes(): number {
    return this.sampleBytes + Math.max(0, this.source.writtenBytes() - this.writtenAtSample);
  }

  /** The last measured physical size, without the writes since. */
  measuredBytes(): number {
    return this.sampleBytes;
  }

  /** Measures the size again (concurrent callers share one measurement). */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const written = this.source.writtenBytes();
        const size = await this.source.measure();
        this.sampleBytes = size;
        this.writtenAtSample = written;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** etcd backendQuota.Available: a request that adds nothing always fits. */
  available(r: QuotaRequest): boolean {
    const c = cost(r);
    if (c === 0 || !this.enabled) return true;
    return this.sizeBytes() + c < this.maxBytes;
  }

  /** etcd backendQuota.Remaining. */
  remainingBytes(): number {
    return this.maxBytes - this.sizeBytes();
  }
}
