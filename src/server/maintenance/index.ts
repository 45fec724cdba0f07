// Maintenance that runs itself (issue #5): auto-compaction, the space quota with its NOSPACE alarm and
// automatic recovery, non-blocking defragmentation, corruption checks, and /health. One object per member,
// owned by EtcdServer (server.maintenance), which calls its hooks:
//
//   constructor          EtcdServer's constructor
//   initialCheck()       EtcdServer.start, for a member restarting from existing data, before it joins
//   start()              when the node loop starts
//   afterApply()         after an entry that may add data was applied with a waiter (etcd quotaApplierV3)
//   stop()               EtcdServer.close, before the store closes
//
// Everything else (the request-path quota check, Defragment, /health) is called by the services.

import type { Logger } from 'pino';
import { AlarmAction, AlarmType, type AlarmMember } from '../../api/types';
import type { MvccStore } from '../../mvcc';
import type { Applier, ApplyResult } from '../apply';
import { ErrNoSpace, serverError } from '../errors';
import type { InternalRequest } from '../request';
import type { RaftCluster } from '../cluster';
import type { TlsMaterial } from '../tls';
import { parseCompactionRetention } from '../config';
import { failpointEnabled } from '../failpoints';
import { realClock, type MaintenanceClock } from './clock';
import { Compactor } from './compactor';
import { CorruptionChecker, DEFAULT_CORRUPT_CHECK_TIME_MS } from './corrupt';
import { newMaintenanceCounters, type MaintenanceCounters } from './counters';
import { checkHealth, healthHandler, type Health } from './health';
import { BackendQuota, MAX_QUOTA_BYTES, type QuotaRequest } from './quota';
import { DEFAULT_QUOTA_RECOVERY, QuotaRecovery, type QuotaRecoveryOptions } from './quota-recovery';

export { ManualClock, realClock, type MaintenanceClock } from './clock';
export type { MaintenanceCounters } from './counters';

/** Knobs that are not flags: for tests and embedders. */
export interface MaintenanceTuning {
  clock: MaintenanceClock;
  quotaRecovery: Partial<QuotaRecoveryOptions>;
  /** How often the backend size is measured for the quota (etcd reads bolt's size on every request). */
  sizeRefreshMs: number;
}

/** The configuration fields maintenance reads (a subset of ServerConfig; all optional for embedders). */
export interface MaintenanceConfig {
  quotaBackendBytes: number;
  autoCompactionMode?: string;
  autoCompactionRetention?: string;
  /** Default true here (etcd: false). */
  experimentalInitialCorruptCheck?: boolean;
  /** Default 1 min here (etcd: 0, off); 0 turns the periodic check off. */
  experimentalCorruptCheckTimeMs?: number;
  /** Default true; false leaves NOSPACE to the operator, as in etcd. */
  experimentalAutoQuotaRecovery?: boolean;
  experimentalAutoQuotaRecoveryRetainRevisions?: number;
  /** Keys per physical compaction batch (etcd counts revisions; default 1000 in both). */
  experimentalCompactionBatchLimit?: number;
  /** The pause between two physical compaction batches (etcd 3.4: 10 ms, fixed). */
  experimentalCompactionSleepIntervalMs?: number;
  maintenance?: Partial<MaintenanceTuning>;
}

/**
 * How the MVCC store paces a physical compaction (MvccOptions): batches of --experimental-compaction-batch-limit
 * keys with --experimental-compaction-sleep-interval between them, as etcd does, so that the writes and reads
 * arriving during a large compaction are not queued behind it.
 */
export function compactionPacing(cfg: MaintenanceConfig): { compactionBatchLimit?: number; compactionPause?: () => Promise<void> } {
  const sleepMs = cfg.experimentalCompactionSleepIntervalMs ?? 10;
  return {
    ...(cfg.experimentalCompactionBatchLimit !== undefined && cfg.experimentalCompactionBatchLimit > 0 ? { compactionBatchLimit: cfg.experimentalCompactionBatchLimit } : {}),
    ...(sleepMs > 0 ? { compactionPause: () => new Promise<void>((r) => setTimeout(r, sleepMs)) } : {}),
  };
}

/** What maintenance needs from the server core. */
export interface MaintenanceHost {
  readonly memberId: bigint;
  readonly name: string;
  readonly logger: Logger;
  readonly store: MvccStore;
  readonly applier: Applier;
  readonly cluster: RaftCluster;
  readonly requestTimeoutMs: number;
  readonly clientTls: TlsMaterial | undefined;
  /** Measures the backend's physical size. */
  measureDbSize(): Promise<number>;
  isLeader(): boolean;
  leader(): bigint;
  propose(body: Omit<InternalRequest, 'ID'>): Promise<ApplyResult>;
  linearizableReadNotify(): Promise<void>;
}

const DEFAULT_SIZE_REFRESH_MS = 1000;

export class Maintenance {
  readonly counters: MaintenanceCounters = newMaintenanceCounters();
  readonly quota: BackendQuota;
  readonly clock: MaintenanceClock;
  readonly compactor: Compactor | undefined;
  readonly recovery: QuotaRecovery | undefined;
  readonly corruption: CorruptionChecker;
  private readonly logger: Logger;
  private defragging: Promise<void> | null = null;
  private sizeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly stopSignal: Promise<void>;
  private resolveStop!: () => void;

  constructor(
    private readonly host: MaintenanceHost,
    private readonly cfg: MaintenanceConfig,
  ) {
    this.stopSignal = new Promise((r) => (this.resolveStop = r));
    const tuning = cfg.maintenance ?? {};
    this.clock = tuning.clock ?? realClock;
    this.logger = host.logger;
    this.quota = new BackendQuota(cfg.quotaBackendBytes, { measure: () => host.measureDbSize(), writtenBytes: () => host.store.writtenBytes });
    this.logQuota();

    const mode = cfg.autoCompactionMode || 'periodic';
    const retention = parseCompactionRetention(mode, cfg.autoCompactionRetention ?? '0');
    if (retention > 0 && (mode === 'periodic' || mode === 'revision')) {
      this.compactor = new Compactor(mode, retention, {
        clock: this.clock,
        logger: host.logger.child({ component: 'compactor' }),
        rev: () => host.store.currentRev,
        compact: async (rev) => {
          this.counters.autoCompactions++;
          await host.propose({ compaction: { revision: rev, physical: false } });
        },
        paused: () => !host.isLeader(),
        onFailed: () => this.counters.autoCompactionFailures++,
      });
    }

    if (cfg.experimentalAutoQuotaRecovery !== false) {
      const options: QuotaRecoveryOptions = { ...DEFAULT_QUOTA_RECOVERY, ...tuning.quotaRecovery };
      if (cfg.experimentalAutoQuotaRecoveryRetainRevisions !== undefined) options.retainRevisions = cfg.experimentalAutoQuotaRecoveryRetainRevisions;
      this.recovery = new QuotaRecovery(
        {
          memberId: host.memberId,
          logger: host.logger.child({ component: 'quota-recovery' }),
          clock: this.clock,
          counters: this.counters,
          quota: this.quota,
          store: host.store,
          isLeader: () => host.isLeader(),
          alarms: () => host.applier.listAlarms(),
          compact: async (rev) => {
            const res = await host.propose({ compaction: { revision: rev, physical: true } });
            // The physical deletion stops with the store; never hold up stop() on it.
            if (res.kind === 'compact') await Promise.race([res.done, this.stopSignal]);
          },
          defrag: () => this.defrag(),
          disarm: async () => {
            await host.propose({ alarm: { action: AlarmAction.DEACTIVATE, memberID: host.memberId.toString(), alarm: AlarmType.NOSPACE } });
          },
        },
        options,
      );
    }

    this.corruption = new CorruptionChecker({
      memberId: host.memberId,
      logger: host.logger,
      store: host.store,
      peers: () => [...host.cluster.members.values()].filter((m) => m.id !== host.memberId).map((m) => ({ id: m.id, clientUrls: m.clientUrls })),
      clusterSize: () => host.cluster.votingMembers().length,
      isLeader: () => host.isLeader(),
      linearizableReadNotify: () => host.linearizableReadNotify(),
      raiseCorrupt: async (id) => {
        await host.propose({ alarm: { action: AlarmAction.ACTIVATE, memberID: id.toString(), alarm: AlarmType.CORRUPT } });
      },
      requestTimeoutMs: host.requestTimeoutMs,
      clientTls: host.clientTls,
      clock: this.clock,
      counters: this.counters,
    });

    if (failpointEnabled('corruptKV', host.name)) {
      host.logger.warn({ failpoint: 'corruptKV' }, 'failpoint enabled: this member corrupts the values it applies');
      host.applier.corruptValues = true;
    }
  }

  /** etcd NewBackendQuota's log lines. */
  private logQuota(): void {
    const q = this.cfg.quotaBackendBytes;
    if (q < 0) this.logger.info({ 'quota-name': 'v3-applier', 'quota-size-bytes': q }, 'disabled backend quota');
    else if (q === 0) this.logger.info({ 'quota-name': 'v3-applier', 'quota-size-bytes': this.quota.maxBytes }, 'enabled backend quota with default value');
    else {
      if (q > MAX_QUOTA_BYTES) this.logger.warn({ 'quota-name': 'v3-applier', 'quota-size-bytes': q, 'quota-maximum-size-bytes': MAX_QUOTA_BYTES }, 'quota exceeds the maximum value');
      this.logger.info({ 'quota-name': 'v3-applier', 'quota-size-bytes': q }, 'enabled backend quota');
    }
  }

  /** The initial corruption check of a member restarting from existing data (throws on a mismatch). */
  async initialCheck(): Promise<void> {
    if (this.cfg.experimentalInitialCorruptCheck === false) return;
    await this.corruption.checkInitialHashKV();
  }

  start(): void {
    const tuning = this.cfg.maintenance ?? {};
    void this.quota.refresh().catch(() => {});
    this.sizeTimer = setInterval(() => {
      if (this.stopped) return;
      this.quota.refresh().catch((err) => this.logger.warn({ error: String(err) }, 'failed to read backend size'));
    }, tuning.sizeRefreshMs ?? DEFAULT_SIZE_REFRESH_MS);
    this.compactor?.run();
    this.recovery?.start();
    this.corruption.start(this.cfg.experimentalCorruptCheckTimeMs ?? DEFAULT_CORRUPT_CHECK_TIME_MS);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.resolveStop();
    if (this.sizeTimer) clearInterval(this.sizeTimer);
    await Promise.all([this.compactor?.stop(), this.recovery?.stop(), this.corruption.stop()]);
    await this.defragging?.catch(() => {});
  }

  // --- quota (etcd v3rpc/quota.go and quotaApplierV3) ---

  /**
   * The request-path check (etcd quotaAlarmer.check): a request that does not fit raises NOSPACE for this
   * member through the log and is refused with "etcdserver: mvcc: database space exceeded". Returns whether
   * the request may go on.
   */
  async checkQuota(r: QuotaRequest): Promise<boolean> {
    if (this.quota.available(r)) return true;
    this.counters.quotaRejectedRequests++;
    await this.raiseNoSpace();
    return false;
  }

  /**
   * etcd quotaApplierV3, judged just before a Put, Txn or LeaseGrant with a waiter on this member is applied:
   * whether it does not fit. It is applied all the same, and its waiter then gets noSpaceAfterApply().
   */
  overQuota(req: InternalRequest): boolean {
    const q: QuotaRequest | undefined = req.put ? { put: req.put } : req.txn ? { txn: req.txn } : req.lease_grant ? { lease_grant: req.lease_grant } : undefined;
    if (q === undefined || this.quota.available(q)) return false;
    this.counters.quotaRejectedRequests++;
    return true;
  }

  /**
   * etcd applyEntryNormal for an ErrNoSpace result: raise NOSPACE through the log unless one is active, then
   * answer ErrNoSpace. Always rejects.
   */
  async noSpaceAfterApply(): Promise<never> {
    if (!this.host.applier.hasAlarm(AlarmType.NOSPACE)) await this.raiseNoSpace();
    throw serverError(ErrNoSpace, 'etcdserver: mvcc: database space exceeded');
  }

  /** Proposes Alarm ACTIVATE NOSPACE for this member (a no-op in the log when it is already active). */
  async raiseNoSpace(): Promise<void> {
    const already = this.host.applier.listAlarms(AlarmType.NOSPACE).some((a) => BigInt(a.memberID) === this.host.memberId);
    if (!already) {
      this.counters.quotaAlarmsRaised++;
      this.logger.warn({ 'quota-size-bytes': this.quota.maxBytes, 'db-size-bytes': this.quota.sizeBytes() }, 'message exceeded backend quota; raising alarm');
    }
    await this.host
      .propose({ alarm: { action: AlarmAction.ACTIVATE, memberID: this.host.memberId.toString(), alarm: AlarmType.NOSPACE } })
      .catch((err) => this.logger.warn({ error: String(err) }, 'failed to raise the NOSPACE alarm'));
  }

  // --- defragmentation ---

  /**
   * Defragments this member's backend: a full LevelDB compaction, on the libuv thread pool, so reads and writes
   * go on meanwhile (etcd's defrag blocks them). Concurrent callers share one run.
   */
  defrag(): Promise<void> {
    this.defragging ??= (async () => {
      const store = this.host.store;
      const started = performance.now();
      const before = await this.host.measureDbSize().catch(() => 0);
      this.logger.info({ 'current-db-size-bytes': before, 'current-db-size-in-use-bytes': await store.dbSizeInUse().catch(() => 0) }, 'defragmenting');
      try {
        await store.defrag();
        await this.quota.refresh();
        this.counters.defrags++;
        this.logger.info(
          { 'current-db-size-bytes-diff': this.quota.measuredBytes() - before, 'current-db-size-bytes': this.quota.measuredBytes(), took: `${Math.round(performance.now() - started)}ms` },
          'defragmented',
        );
      } catch (err) {
        this.counters.defragFailures++;
        this.logger.warn({ error: String(err) }, 'failed to defragment');
        throw err;
      }
    })().finally(() => {
      this.defragging = null;
    });
    return this.defragging;
  }

  // --- health ---

  health(excluded: ReadonlySet<string>): Promise<Health> {
    return checkHealth(
      { alarms: (): AlarmMember[] => this.host.applier.listAlarms(), leader: () => this.host.leader(), linearizableReadNotify: () => this.host.linearizableReadNotify() },
      excluded,
      this.logger,
      this.counters,
    );
  }

  /** The /health route for the client front. */
  healthRoute(): ReturnType<typeof healthHandler> {
    return healthHandler((excluded) => this.health(excluded));
  }
}
