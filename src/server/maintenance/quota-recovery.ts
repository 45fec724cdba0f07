// Automatic recovery from a full backend (on by default; --experimental-auto-quota-recovery=false turns it off).
// etcd has no such thing: its NOSPACE alarm stays until an operator compacts, defragments and disarms. Here every
// member runs this loop (every second by default):
//
//   pressure  = backend above 80% of the quota, or this member's NOSPACE alarm is active, or (on the leader) any
//               member's NOSPACE alarm is active
//   1. compact  (leader only, through the log like any Compact): at current revision - retainRevisions
//               (--experimental-auto-quota-recovery-retain-revisions, default 1000), so that watchers and
//               clients reading recent history are not constantly invalidated; skipped when that revision is
//               already compacted. Waits for the physical deletion.
//   2. defrag   (this member): after each compaction that advanced while it was under pressure, and otherwise
//               at most once a minute.
//   3. disarm   (this member's own NOSPACE alarm): once the backend has stayed below 70% of the quota for 3 s
//               (hysteresis, so the alarm does not flap, and an operator's own disarm right after a manual
//               defrag does not race with ours), propose Alarm DEACTIVATE through the log.
//   stuck       this member's alarm is active, the backend is compacted as far as the retention allows and
//               defragmented since, and still above 70%: log why (live data alone too large → delete keys; or
//               the retained history too large), at most once a minute, and keep the alarm.
//
// Every step is logged and counted (MaintenanceCounters).

import type { Logger } from 'pino';
import { AlarmType, type AlarmMember } from '../../api/types';
import { isDomainError } from '../../util/errors';
import { idToHex } from '../membership';
import type { MaintenanceClock } from './clock';
import type { MaintenanceCounters } from './counters';
import type { BackendQuota } from './quota';

export interface QuotaRecoveryOptions {
  /** Revisions of history compaction keeps (current revision - this). */
  retainRevisions: number;
  /** Fraction of the quota above which the member starts compacting and defragmenting. */
  highWatermark: number;
  /** Fraction of the quota below which the NOSPACE alarm is disarmed. */
  lowWatermark: number;
  /** How often the loop looks. */
  checkIntervalMs: number;
  /** How long the backend must stay below the low watermark before the alarm is disarmed. */
  disarmHoldMs: number;
  /** The least time between two defragmentations without a new compaction, and between two "stuck" reports. */
  retryIntervalMs: number;
}

export const DEFAULT_QUOTA_RECOVERY: QuotaRecoveryOptions = {
  retainRevisions: 1000,
  highWatermark: 0.8,
  lowWatermark: 0.7,
  checkIntervalMs: 1000,
  disarmHoldMs: 3000,
  retryIntervalMs: 60 * 1000,
};

export interface QuotaRecoveryDeps {
  memberId: bigint;
  logger: Logger;
  clock: MaintenanceClock;
  counters: MaintenanceCounters;
  quota: BackendQuota;
  store: {
    readonly currentRev: number;
    readonly compactMainRev: number;
    range(key: Buffer, end: Buffer | null, opts?: { limit?: number }): Promise<{ kvs: Array<{ key: Buffer; value: Buffer }> }>;
  };
  isLeader(): boolean;
  alarms(): AlarmMember[];
  /** Propose a compaction at `rev` and wait until its physical deletion finished. */
  compact(rev: number): Promise<void>;
  /** Defragment this member's backend (refreshes the quota's size sample). */
  defrag(): Promise<void>;
  /** Propose Alarm DEACTIVATE NOSPACE for this member. */
  disarm(): Promise<void>;
}

const LIVE_SCAN_PAGE = 100;

export class QuotaRecovery {
  private stopSignal: Promise<void>;
  private resolveStop!: () => void;
  private loop: Promise<void> | undefined;
  private belowSince: number | undefined;
  private lastDefragAt = -Infinity;
  private lastDefragCompactRev: number | undefined;
  private lastStuckReportAt = -Infinity;

  constructor(
    private readonly deps: QuotaRecoveryDeps,
    readonly options: QuotaRecoveryOptions,
  ) {
    this.stopSignal = new Promise((r) => (this.resolveStop = r));
  }

  start(): void {
    if (this.loop || !this.deps.quota.enabled) return;
    this.deps.logger.info(
      {
        'quota-size-bytes': this.deps.quota.maxBytes,
        'retain-revisions': this.options.retainRevisions,
        'high-watermark': this.options.highWatermark,
        'low-watermark': this.options.lowWatermark,
      },
      'enabled automatic quota recovery',
    );
    this.loop = (async () => {
      for (;;) {
        if ((await this.deps.clock.sleep(this.options.checkIntervalMs, this.stopSignal)) === 'stopped') return;
        try {
          await this.step();
        } catch (err) {
          this.deps.logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'automatic quota recovery step failed');
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.resolveStop();
    await this.loop;
  }

  /** One look at the backend (exposed for tests). */
  async step(): Promise<void> {
    const { quota, store, logger, counters, clock } = this.deps;
    const o = this.options;
    const max = quota.maxBytes;
    const nospace = this.deps.alarms().filter((a) => a.alarm === AlarmType.NOSPACE);
    const ownAlarm = nospace.some((a) => BigInt(a.memberID) === this.deps.memberId);
    const leader = this.deps.isLeader();
    const high = () => quota.sizeBytes() > o.highWatermark * max;
    if (!high() && !ownAlarm && !(leader && nospace.length > 0)) {
      this.belowSince = undefined;
      return;
    }

    // 1. Compact as far as the retention allows (the leader proposes; every member applies).
    const target = store.currentRev - o.retainRevisions;
    if (leader && target > store.compactMainRev) {
      logger.info(
        { revision: target, 'retain-revisions': o.retainRevisions, 'db-size-bytes': quota.sizeBytes(), 'quota-size-bytes': max, alarms: nospace.length },
        'automatic quota recovery: compacting',
      );
      counters.quotaRecoveryCompactions++;
      try {
        await this.deps.compact(target);
      } catch (err) {
        if (!isDomainError(err, 'ErrCompacted')) throw err;
      }
    }

    // 2. Defragment this member after a compaction advanced, or now and then.
    if (high() || ownAlarm) {
      const now = clock.now();
      if (store.compactMainRev !== this.lastDefragCompactRev || now - this.lastDefragAt >= o.retryIntervalMs) {
        const before = quota.sizeBytes();
        logger.info({ 'db-size-bytes': before, 'quota-size-bytes': max, 'compact-revision': store.compactMainRev }, 'automatic quota recovery: defragmenting');
        counters.quotaRecoveryDefrags++;
        this.lastDefragAt = now;
        this.lastDefragCompactRev = store.compactMainRev;
        await this.deps.defrag();
        logger.info({ 'db-size-bytes-before': before, 'db-size-bytes': quota.sizeBytes(), 'quota-size-bytes': max }, 'automatic quota recovery: defragmented');
      }
    }

    // 3. Disarm this member's alarm once the backend stays below the low watermark.
    if (!ownAlarm) {
      this.belowSince = undefined;
      return;
    }
    const size = quota.sizeBytes();
    if (size < o.lowWatermark * max) {
      const now = clock.now();
      this.belowSince ??= now;
      if (now - this.belowSince < o.disarmHoldMs) return;
      this.belowSince = undefined;
      logger.warn({ 'local-member-id': idToHex(this.deps.memberId), 'db-size-bytes': size, 'quota-size-bytes': max }, 'automatic quota recovery: disarming NOSPACE alarm');
      await this.deps.disarm();
      counters.quotaRecoveryDisarms++;
      return;
    }
    this.belowSince = undefined;
    const compactedAsFarAsAllowed = store.currentRev - o.retainRevisions <= store.compactMainRev;
    const defraggedSince = this.lastDefragCompactRev === store.compactMainRev;
    if (compactedAsFarAsAllowed && defraggedSince && clock.now() - this.lastStuckReportAt >= o.retryIntervalMs) {
      this.lastStuckReportAt = clock.now();
      counters.quotaRecoveryStuck++;
      await this.reportStuck(size);
    }
  }

  /** Why the alarm stays: live data alone, or the retained history. */
  private async reportStuck(size: number): Promise<void> {
    const { quota, logger } = this.deps;
    const o = this.options;
    const live = await this.liveData();
    const allowed = Math.floor(o.lowWatermark * quota.maxBytes);
    const fields = {
      'local-member-id': idToHex(this.deps.memberId),
      'db-size-bytes': size,
      'quota-size-bytes': quota.maxBytes,
      'disarm-below-bytes': allowed,
      'live-keys': live.keys,
      'live-data-bytes': live.bytes,
      'retain-revisions': o.retainRevisions,
      'compact-revision': this.deps.store.compactMainRev,
    };
    if (live.bytes >= allowed) {
      logger.warn(fields, 'automatic quota recovery cannot free enough space: live data alone exceeds the quota; NOSPACE stays until keys are deleted (then compaction and defragmentation run by themselves) or the quota is raised');
    } else {
      logger.warn(fields, 'automatic quota recovery cannot free enough space: the retained history does not fit in the quota; NOSPACE stays until keys are deleted, the retention is lowered (--experimental-auto-quota-recovery-retain-revisions) or the quota is raised');
    }
  }

  /** Keys and bytes (key + value) of every live key, read a page at a time. */
  private async liveData(): Promise<{ keys: number; bytes: number }> {
    let keys = 0;
    let bytes = 0;
    let from = Buffer.from([0]);
    const all = Buffer.alloc(0);
    for (;;) {
      const r = await this.deps.store.range(from, all, { limit: LIVE_SCAN_PAGE });
      for (const kv of r.kvs) {
        keys++;
        bytes += kv.key.length + kv.value.length;
      }
      if (r.kvs.length < LIVE_SCAN_PAGE) break;
      from = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    return { keys, bytes };
  }
}
