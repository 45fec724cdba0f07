// The clock the maintenance loops wait on (etcd's compactor uses clockwork.Clock for the same reason): real
// timers in production, a manual clock in tests so that a five-minute compaction interval takes no time.

export interface MaintenanceClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves after `ms` milliseconds, or early (to 'stopped') when `stop` settles. */
  sleep(ms: number, stop: Promise<void>): Promise<'elapsed' | 'stopped'>;
}

export const realClock: MaintenanceClock = {
  now: () => performance.now(),
  sleep(ms, stop) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('elapsed'), ms);
      void stop.then(() => {
        clearTimeout(timer);
        resolve('stopped');
      });
    });
  },
};

/**
 * A clock that moves only when told (clockwork's FakeClock): advance(ms) fires every sleep that falls due, in
 * deadline order, letting the woken loops run before it returns.
 */
export class ManualClock implements MaintenanceClock {
  private t = 0;
  private sleepers: Array<{ at: number; wake: (v: 'elapsed' | 'stopped') => void }> = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, stop: Promise<void>): Promise<'elapsed' | 'stopped'> {
    return new Promise((resolve) => {
      const s = { at: this.t + ms, wake: resolve };
      this.sleepers.push(s);
      void stop.then(() => {
        this.sleepers = this.sleepers.filter((x) => x !== s);
        resolve('stopped');
      });
    });
  }

  /** Number of pending sleeps (a loop that is waiting on this clock). */
  get waiters(): number {
    return this.sleepers.length;
  }

  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at);
      const next = this.sleepers[0];
      if (next === undefined || next.at > end) break;
      this.sleepers.shift();
      this.t = next.at;
      next.wake('elapsed');
      // Let the woken loop run up to its next sleep (it may await I/O: a few macrotask turns).
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    }
    this.t = end;
  }
}
