// Polling for tests: wait for a condition with a liveness bound (never a timing assertion).

/**
 * Calls `f` every `everyMs` until it returns something other than undefined, null or false, and returns that.
 * A throw counts as "not yet" (the member may be restarting); after `timeoutMs` it fails naming `what` and the last
 * error.
 */
export async function until<T>(what: string, f: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String((last as { details?: unknown }).details ?? last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** etcd refuses reconfiguration until every peer has been connected for 5 s (HealthInterval): retry while it says so. */
export async function untilHealthy<T>(f: () => Promise<T>, tries = 100): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (err) {
      if ((err as { details?: unknown }).details !== 'etcdserver: unhealthy cluster' || i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
