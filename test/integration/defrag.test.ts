// Issue #5, defragmentation: it must not stop a member from serving. A client writes and reads at a steady rate
// while a large physical compaction and then Defragment run on the same member; no request may wait longer
// than LATENCY_BOUND_MS, and the database shrinks after compaction + defragmentation.
//
// Why 250 ms: on an idle machine every request here takes a few milliseconds and the worst one during the
// defragmentation stays well under 100 ms (LevelDB compacts on a libuv worker thread; our event loop only
// waits for its own batches). This machine has 2 cores shared with other engineers' test runs, where a
// stray GC pause or a descheduled fsync alone has been seen to take ~100 ms; 250 ms keeps the test about
// blocking (etcd 3.4's own defrag blocks every request for the whole copy, seconds on a database this size)
// rather than about scheduling noise.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startTestMember, rawClient, call } from '../helpers/member';

const LATENCY_BOUND_MS = 250;
const b = (s: string) => Buffer.from(s);

t.test('defragment while a client writes and reads: no request waits more than the bound; dbSize drops', async (t) => {
  const m = await startTestMember();
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const probe = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(async () => {
    kv.close();
    probe.close();
    mt.close();
    await m.destroy();
  });

  // ~24 MB of history over 2,000 keys (each rewritten 12 times), in Txns of 100 puts of 1 KiB.
  const KEYS = 2000;
  for (let round = 0; round < 12; round++) {
    for (let start = 0; start < KEYS; start += 100) {
      const success = [];
      for (let i = start; i < start + 100; i++) success.push({ request_put: { key: b(`/registry/events/e-${i}`), value: randomBytes(1024) } });
      await call(kv, 'Txn', { compare: [], success, failure: [] });
    }
  }
  const rev = Number((await call(kv, 'Range', { key: b('x') })).header.revision);
  const before = await call(mt, 'Status', {});

  // The steady client: one Put and one linearizable Range every 10 ms, each timed.
  let stop = false;
  let during = false;
  const latencies: number[] = [];
  let worstDuring = 0;
  let requestsDuring = 0;
  const steady = (async () => {
    for (let i = 0; !stop; i++) {
      for (const op of ['Put', 'Range'] as const) {
        const started = performance.now();
        if (op === 'Put') await call(probe, 'Put', { key: b(`/registry/leases/probe-${i % 10}`), value: b(String(i)) });
        else await call(probe, 'Range', { key: b('/registry/events/e-1') });
        const took = performance.now() - started;
        latencies.push(took);
        if (during) {
          requestsDuring++;
          worstDuring = Math.max(worstDuring, took);
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  // The window covers the large compaction (22,000 revisions deleted) and the defragmentation after it.
  during = true;
  const compactStarted = performance.now();
  await call(kv, 'Compact', { revision: rev, physical: true });
  const compactMs = performance.now() - compactStarted;
  const started = performance.now();
  await call(mt, 'Defragment', {});
  const defragMs = performance.now() - started;
  during = false;
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await steady;

  const after = await call(mt, 'Status', {});
  t.comment(`compaction took ${compactMs.toFixed(0)} ms, defrag ${defragMs.toFixed(0)} ms; ${requestsDuring} requests during it, worst ${worstDuring.toFixed(1)} ms; dbSize ${before.dbSize} -> ${after.dbSize}`);
  t.ok(requestsDuring >= 2, 'requests were served during the defragmentation');
  t.ok(worstDuring < LATENCY_BOUND_MS, `no request waited more than ${LATENCY_BOUND_MS} ms during compaction + defrag (worst ${worstDuring.toFixed(1)} ms)`);
  t.ok(Number(after.dbSize) < Number(before.dbSize) / 2, 'dbSize dropped after compaction + defragmentation');
  t.ok(Number(after.dbSizeInUse) <= Number(after.dbSize), 'dbSizeInUse is at most dbSize');
  t.ok(Number(after.dbSizeInUse) >= KEYS * 1024 * 0.9, 'dbSizeInUse still holds the live data');
  t.equal(m.server.maintenance.counters.defrags, 1);
  const r = await call(kv, 'Range', { key: b('/registry/events/'), range_end: b('/registry/events0'), count_only: true });
  t.equal(Number(r.count), KEYS, 'every key still there');
});
