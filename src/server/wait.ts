// Small waiting primitives used by the server: one-shot waiters keyed by request ID (etcd pkg/wait.Wait)
// and waiters for an index to be reached (etcd pkg/wait.WaitTime).

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Waiters for a monotonically increasing index. */
export class IndexWaiter {
  private current = 0;
  // Kept sorted by index so trigger() only looks at the front.
  private waiters: Array<{ index: number; d: Deferred<void> }> = [];

  constructor(start: number) {
    this.current = start;
  }

  get index(): number {
    return this.current;
  }

  wait(index: number): Promise<void> {
    if (index <= this.current) return Promise.resolve();
    const d = deferred<void>();
    let i = this.waiters.length;
    while (i > 0 && this.waiters[i - 1]!.index > index) i--;
    this.waiters.splice(i, 0, { index, d });
    return d.promise;
  }

  trigger(index: number): void {
    if (index > this.current) this.current = index;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.index <= this.current) this.waiters[n++]!.d.resolve();
    if (n > 0) this.waiters.splice(0, n);
  }

  rejectAll(err: unknown): void {
    for (const w of this.waiters) w.d.reject(err);
    this.waiters = [];
  }
}
