// Auto-compaction: a port of etcd 3.4's v3compactor (etcdserver/api/v3compactor/{periodic,revision}.go), with
// the same schedule, the same log lines (zap messages) and an injectable clock.
//
// periodic (--auto-compaction-retention=1h, or a bare number of hours):
//   every retention/10 (at most 6 min: the interval is capped at 1 h), record the current revision; keep the
//   last retention/interval + 1 of them, so revs[0] is the revision of about one retention ago. Once a whole
//   retention has passed since the last success (since the start, the first time), compact at revs[0]; after
//   that, compact every min(retention, 1 h). A failed compaction is retried at the next sample.
//   Example, retention 1 h: samples every 6 min; first compaction after 1 h at the revision of 1 h before,
//   then every hour.
// revision (--auto-compaction-retention=1000): every 5 minutes, compact at current revision - 1000, unless
//   that is <= 0 or the same revision as the last success.
//
// Compaction is a proposal through the log (the Compact RPC's path), made only while this member is the leader
// (etcd pauses the compactor on followers). ErrCompacted counts as success, as in etcd.

import type { Logger } from 'pino';
import { isDomainError } from '../../util/errors';
import type { MaintenanceClock } from './clock';
import { formatGoDurationMs } from '../config';

export type CompactionMode = 'periodic' | 'revision';

export interface CompactorDeps {
  clock: MaintenanceClock;
  logger: Logger;
  /** The current store revision (etcd RevGetter). */
  rev(): number;
  /** Propose a compaction at `rev` and wait for its apply (etcd Compactable). */
  compact(rev: number): Promise<void>;
  /** etcd Pause/Resume: the compactor works only while this returns false (i.e. on the leader). */
  paused(): boolean;
  onCompacted?(): void;
  onFailed?(): void;
}

/** etcd revInterval: revision mode checks every 5 minutes. */
export const REVISION_MODE_INTERVAL_MS = 5 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
/** etcd retryDivisor. */
const RETRY_DIVISOR = 10;

export class Compactor {
  private readonly stopSignal: Promise<void>;
  private resolveStop!: () => void;
  private done: Promise<void> | undefined;
  /** Periodic mode: the sampled revisions (revs[0] is the one of about one retention ago). */
  readonly revs: number[] = [];

  /** `retention` is in milliseconds (periodic) or revisions (revision), as parseCompactionRetention returns. */
  constructor(
    readonly mode: CompactionMode,
    readonly retention: number,
    private readonly deps: CompactorDeps,
  ) {
    this.stopSignal = new Promise((r) => (this.resolveStop = r));
  }

  run(): void {
    if (this.done) return;
    this.done = this.mode === 'periodic' ? this.runPeriodic() : this.runRevision();
  }

  async stop(): Promise<void> {
    this.resolveStop();
    await this.done;
  }

  private async compact(rev: number): Promise<boolean> {
    try {
      await this.deps.compact(rev);
      return true;
    } catch (err) {
      if (isDomainError(err, 'ErrCompacted')) return true;
      throw err;
    }
  }

  private async runPeriodic(): Promise<void> {
    const { clock, logger } = this.deps;
    const period = this.retention;
    const compactInterval = Math.min(period, HOUR_MS);
    const retryInterval = compactInterval / RETRY_DIVISOR;
    const retentions = Math.floor(period / retryInterval) + 1;
    let lastSuccess = clock.now();
    let baseInterval = period;
    for (;;) {
      this.revs.push(this.deps.rev());
      if (this.revs.length > retentions) this.revs.shift();
      if ((await clock.sleep(retryInterval, this.stopSignal)) === 'stopped') return;
      if (this.deps.paused()) continue;
      if (clock.now() - lastSuccess < baseInterval) continue;
      // Wait up to the initial given period, then compact every compactInterval.
      if (baseInterval === period) baseInterval = compactInterval;
      const rev = this.revs[0]!;
      logger.info({ revision: rev, 'compact-period': formatGoDurationMs(period) }, 'starting auto periodic compaction');
      const started = clock.now();
      try {
        await this.compact(rev);
        logger.info({ revision: rev, 'compact-period': formatGoDurationMs(period), took: formatGoDurationMs(clock.now() - started) }, 'completed auto periodic compaction');
        lastSuccess = clock.now();
        this.deps.onCompacted?.();
      } catch (err) {
        logger.warn({ revision: rev, 'compact-period': formatGoDurationMs(period), 'retry-interval': formatGoDurationMs(retryInterval), error: String(err) }, 'failed auto periodic compaction');
        this.deps.onFailed?.();
      }
    }
  }

  private async runRevision(): Promise<void> {
    const { clock, logger } = this.deps;
    let prev = 0;
    for (;;) {
      if ((await clock.sleep(REVISION_MODE_INTERVAL_MS, this.stopSignal)) === 'stopped') return;
      if (this.deps.paused()) continue;
      const rev = this.deps.rev() - this.retention;
      if (rev <= 0 || rev === prev) continue;
      logger.info({ revision: rev, 'revision-compaction-retention': this.retention }, 'starting auto revision compaction');
      const started = clock.now();
      try {
        await this.compact(rev);
        prev = rev;
        logger.info({ revision: rev, 'revision-compaction-retention': this.retention, took: formatGoDurationMs(clock.now() - started) }, 'completed auto revision compaction');
        this.deps.onCompacted?.();
      } catch (err) {
        logger.warn({ revision: rev, 'revision-compaction-retention': this.retention, 'retry-interval': formatGoDurationMs(REVISION_MODE_INTERVAL_MS), error: String(err) }, 'failed auto revision compaction');
        this.deps.onFailed?.();
      }
    }
  }
}
