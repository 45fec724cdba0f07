// The lessor: leases, their TTLs and the keys attached to them (etcd lease/lessor.go).
//
// Leases are part of the replicated state: Grant and Revoke are applied from the log on every member, and
// the lease table is persisted in the MVCC backend's "lease" bucket in the same batch as the entry's other
// changes. Expiry is not: only the leader's clock decides that a lease has expired, and the leader then
// *proposes* a LeaseRevoke, so every member's state stays a pure function of the log (style.md). A member
// that is not the leader keeps every lease at an infinite expiry; promote() (on becoming leader) restarts
// every TTL from now, as etcd does, so a leader change never shortens a lease.

import { DomainError } from '../util/errors';
import type { LeaseAttacher } from '../mvcc/types';

export const ErrLeaseNotFound = 'ErrLeaseNotFound';
export const ErrLeaseExists = 'ErrLeaseExists';
export const ErrLeaseTTLTooLarge = 'ErrLeaseTTLTooLarge';

/** etcd's MaxLeaseTTL: 9,000,000,000 seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
}

export class Lease {
  /** Monotonic ms at which the lease expires; Infinity while this member is not the leader. */
  expiry = Infinity;
  /** Attached keys, as latin1 strings of the key bytes (a lossless byte-to-string mapping). */
  readonly keys = new Set<string>();
  /** The remaining TTL recorded by the last checkpoint, in seconds; 0 = none (use the full TTL). */
  remainingTtl = 0;
  constructor(
    readonly id: bigint,
    /** Granted TTL in seconds (already raised to the minimum TTL); 0 only transiently during restore. */
    public ttl: number,
  ) {}

  /** Remaining seconds, etcd's Remaining().Seconds() truncated; -1 for an expired lease. */
  remainingSeconds(nowMs: number): number {
    if (this.expiry === Infinity) return this.ttl;
    const ms = this.expiry - nowMs;
    return ms <= 0 ? 0 : Math.trunc(ms / 1000);
  }
}

export interface LessorOptions {
  /** etcd: ceil(1.5 * election timeout). */
  minTtlSeconds: number;
  clock: Clock;
}

export class Lessor implements LeaseAttacher {
  private readonly leases = new Map<bigint, Lease>();
  private readonly itemMap = new Map<string, bigint>();
  private primary = false;
  readonly minTtlSeconds: number;
  private readonly clock: Clock;

  constructor(opts: LessorOptions) {
    this.minTtlSeconds = opts.minTtlSeconds;
    this.clock = opts.clock;
  }

  // --- LeaseAttacher (used by MVCC while applying puts) ---

  getLease(key: Buffer): bigint {
    return this.itemMap.get(key.toString('latin1')) ?? 0n;
  }

  attach(lease: bigint, key: Buffer): void {
    let l = this.leases.get(lease);
    if (!l) {
      // Only during restore, when MVCC re-attaches keys before the lease table is loaded: keep a
      // placeholder that restore() fills in (and finishRestore() drops if no lease record exists).
      l = new Lease(lease, 0);
      this.leases.set(lease, l);
    }
    const k = key.toString('latin1');
    l.keys.add(k);
    this.itemMap.set(k, lease);
  }

  detach(lease: bigint, key: Buffer): void {
    const k = key.toString('latin1');
    this.leases.get(lease)?.keys.delete(k);
    if (this.itemMap.get(k) === lease) this.itemMap.delete(k);
  }

  // --- replicated operations (called from apply) ---

  /** The TTL a Grant of `ttl` gets: raised to the minimum, rejected above the maximum. */
  effectiveTtl(ttl: number): number {
    if (ttl > MAX_LEASE_TTL_SECONDS) throw new DomainError(ErrLeaseTTLTooLarge, 'lease: TTL is too large');
    return Math.max(ttl, this.minTtlSeconds);
  }

  grant(id: bigint, ttl: number): Lease {
    if (id === 0n) throw new DomainError(ErrLeaseNotFound, 'lease: lease not found');
    if (this.leases.has(id)) throw new DomainError(ErrLeaseExists, 'lease: lease already exists');
    const l = new Lease(id, this.effectiveTtl(ttl));
    if (this.primary) l.expiry = this.clock.now() + l.ttl * 1000;
    this.leases.set(id, l);
    return l;
  }

  /** Forgets every lease and key attachment (before reloading them from a database that replaces the backend). */
  clear(): void {
    this.leases.clear();
    this.itemMap.clear();
  }

  /** Restore a persisted lease at startup (no TTL adjustment). */
  restore(id: bigint, ttl: number, remainingTtl = 0): void {
    let l = this.leases.get(id);
    if (l) l.ttl = ttl;
    else this.leases.set(id, (l = new Lease(id, ttl)));
    l.remainingTtl = remainingTtl;
  }

  /** Apply a checkpoint from the log (etcd lessor.Checkpoint): the primary restarts the lease from it. */
  checkpoint(id: bigint, remainingTtl: number): void {
    const l = this.leases.get(id);
    if (!l) return;
    l.remainingTtl = remainingTtl;
    if (this.primary && remainingTtl > 0) l.expiry = this.clock.now() + remainingTtl * 1000;
  }

  /**
   * The checkpoints the primary should record now (etcd findDueScheduledCheckpoints): leases whose remaining
   * time exceeds the checkpoint interval, with that remaining time rounded up to seconds.
   */
  checkpointsDue(intervalMs: number, limit = 1000): Array<{ id: bigint; remainingTtl: number }> {
    if (!this.primary) return [];
    const now = this.clock.now();
    const out: Array<{ id: bigint; remainingTtl: number }> = [];
    for (const l of this.leases.values()) {
      if (l.expiry === Infinity) continue;
      const ms = l.expiry - now;
      if (ms > intervalMs) out.push({ id: l.id, remainingTtl: Math.ceil(ms / 1000) });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** After restore: leases that keys referenced but that have no persisted record (revoked before a crash
   * whose key deletions were not flushed cannot happen, since both are in one batch; this is a safety net).
   * Returns the IDs dropped. */
  finishRestore(): bigint[] {
    const dropped: bigint[] = [];
    for (const l of this.leases.values()) {
      if (l.ttl === 0) {
        dropped.push(l.id);
        this.remove(l.id);
      }
    }
    return dropped;
  }

  /** Remove the lease; returns the keys that were attached, in ascending byte order (etcd deletes them sorted). */
  revoke(id: bigint): Buffer[] {
    const l = this.leases.get(id);
    if (!l) throw new DomainError(ErrLeaseNotFound, 'lease: lease not found');
    const keys = [...l.keys].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare);
    return keys;
  }

  /** Forget the lease after its keys were deleted. */
  remove(id: bigint): void {
    const l = this.leases.get(id);
    if (!l) return;
    for (const k of l.keys) if (this.itemMap.get(k) === id) this.itemMap.delete(k);
    this.leases.delete(id);
  }

  // --- leader-only ---

  /** Renew (KeepAlive): only the leader renews; returns the TTL. A renewal supersedes any checkpoint. */
  renew(id: bigint): number {
    const l = this.leases.get(id);
    if (!l) throw new DomainError(ErrLeaseNotFound, 'lease: lease not found');
    l.remainingTtl = 0;
    if (this.primary) l.expiry = this.clock.now() + l.ttl * 1000;
    return l.ttl;
  }

  /**
   * Become the lease primary (leader): every lease restarts from its checkpointed remaining TTL, or its full
   * TTL, plus `extendMs` (etcd extends by an election timeout, the time the old leader may have been gone).
   */
  promote(extendMs = 0): void {
    this.primary = true;
    const now = this.clock.now();
    for (const l of this.leases.values()) l.expiry = now + (l.remainingTtl > 0 ? l.remainingTtl : l.ttl) * 1000 + extendMs;
  }

  demote(): void {
    this.primary = false;
    for (const l of this.leases.values()) l.expiry = Infinity;
  }

  isPrimary(): boolean {
    return this.primary;
  }

  /** Up to `limit` leases whose expiry has passed, oldest first. Only the primary has any. */
  expired(limit: number): bigint[] {
    if (!this.primary) return [];
    const now = this.clock.now();
    const out: Lease[] = [];
    for (const l of this.leases.values()) if (l.expiry <= now) out.push(l);
    out.sort((a, b) => a.expiry - b.expiry);
    return out.slice(0, limit).map((l) => l.id);
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  all(): Lease[] {
    return [...this.leases.values()];
  }

  now(): number {
    return this.clock.now();
  }
}
