// The auto-compactor (maintenance/compactor.ts) on a manual clock: etcd v3compactor's periodic and revision
// schedules without waiting minutes, leader-only operation, ErrCompacted as success, retry after a failure;
// and the quota's cost functions (etcd quota.go).

import t from 'tap';
import pino from 'pino';
import { Compactor, REVISION_MODE_INTERVAL_MS } from '../../src/server/maintenance/compactor';
import { ManualClock } from '../../src/server/maintenance/clock';
import { BackendQuota, costTxn } from '../../src/server/maintenance/quota';
import { DomainError } from '../../src/util/errors';

const MIN = 60 * 1000;
const silent = pino({ level: 'silent' });

function setup(mode: 'periodic' | 'revision', retention: number, opts: { rev?: (clock: ManualClock) => number; fail?: (rev: number) => Error | null } = {}) {
  const clock = new ManualClock();
  const compacted: Array<{ at: number; rev: number }> = [];
  let paused = false;
  const c = new Compactor(mode, retention, {
    clock,
    logger: silent,
    // One revision a minute.
    rev: opts.rev ? () => opts.rev!(clock) : () => 100 + Math.floor(clock.now() / MIN),
    compact: async (rev) => {
      const err = opts.fail?.(rev) ?? null;
      if (err) throw err;
      compacted.push({ at: clock.now() / MIN, rev });
    },
    paused: () => paused,
  });
  c.run();
  return { clock, compacted, c, pause: (p: boolean) => (paused = p) };
}

t.test('periodic 1h: samples every 6 min, compacts after 1 h at the revision of 1 h before, then hourly', async (t) => {
  const { clock, compacted, c } = setup('periodic', 60 * MIN);
  await clock.advance(59 * MIN);
  t.same(compacted, [], 'nothing before a whole retention has passed');
  await clock.advance(1 * MIN);
  t.same(compacted, [{ at: 60, rev: 100 }], 'at 1 h, the revision sampled at the start');
  await clock.advance(59 * MIN);
  t.equal(compacted.length, 1);
  await clock.advance(1 * MIN);
  // The window keeps retention/interval + 1 = 11 samples: at 2 h its oldest is the one taken at 54 min.
  t.same(compacted[1], { at: 120, rev: 154 });
  await c.stop();
});

t.test('periodic 5s: retention below an hour, interval retention/10', async (t) => {
  const { clock, compacted, c } = setup('periodic', 5000, { rev: (clock) => 1000 + clock.now() / 500 });
  await clock.advance(4500);
  t.same(compacted, []);
  await clock.advance(500);
  t.same(compacted.map((x) => x.rev), [1000]);
  await clock.advance(5000);
  t.same(compacted.map((x) => x.rev), [1000, 1009], 'the oldest of the last 11 samples (every 0.5 s)');
  await c.stop();
});

t.test('periodic 24h: compacts first after 24 h, then every hour', async (t) => {
  const { clock, compacted, c } = setup('periodic', 24 * 60 * MIN);
  await clock.advance(24 * 60 * MIN - 6 * MIN);
  t.same(compacted, []);
  await clock.advance(6 * MIN);
  t.equal(compacted.length, 1);
  t.equal(compacted[0]!.rev, 100, 'the revision of 24 h before');
  await clock.advance(60 * MIN);
  t.equal(compacted.length, 2, 'then hourly');
  await c.stop();
});

t.test('periodic: a failed compaction is retried at the next sample; ErrCompacted counts as success', async (t) => {
  let failures = 1;
  const { clock, compacted, c } = setup('periodic', 60 * MIN, {
    fail: () => (failures-- > 0 ? new Error('etcdserver: request timed out') : null),
  });
  await clock.advance(60 * MIN);
  t.same(compacted, []);
  await clock.advance(6 * MIN);
  t.same(compacted, [{ at: 66, rev: 100 }], 'retried 6 min later (the window still starts at the first sample)');
  await c.stop();

  const s2 = setup('periodic', 60 * MIN, { fail: () => new DomainError('ErrCompacted', 'mvcc: required revision has been compacted') });
  await s2.clock.advance(60 * MIN);
  await s2.clock.advance(6 * MIN);
  t.equal(s2.clock.waiters, 1, 'still running');
  await s2.c.stop();
});

t.test('revision mode: every 5 minutes, current revision - retention, not twice the same', async (t) => {
  let rev = 5;
  const { clock, compacted, c } = setup('revision', 10, { rev: () => rev });
  await clock.advance(REVISION_MODE_INTERVAL_MS);
  t.same(compacted, [], 'revision - retention <= 0: nothing');
  rev = 100;
  await clock.advance(REVISION_MODE_INTERVAL_MS);
  t.same(compacted.map((x) => x.rev), [90]);
  await clock.advance(REVISION_MODE_INTERVAL_MS);
  t.same(compacted.map((x) => x.rev), [90], 'no new revision: no compaction');
  rev = 250;
  await clock.advance(REVISION_MODE_INTERVAL_MS - 1);
  t.equal(compacted.length, 1);
  await clock.advance(1);
  t.same(compacted.map((x) => x.rev), [90, 240]);
  await c.stop();
});

t.test('only the leader compacts (paused on followers)', async (t) => {
  const { clock, compacted, c, pause } = setup('revision', 10, { rev: (clock) => 100 + clock.now() / MIN });
  pause(true);
  await clock.advance(3 * REVISION_MODE_INTERVAL_MS);
  t.same(compacted, []);
  pause(false);
  await clock.advance(REVISION_MODE_INTERVAL_MS);
  t.same(compacted.map((x) => x.rev), [100 + 20 - 10]);
  await c.stop();
  t.equal(clock.waiters, 0, 'stop ends the loop');
});

t.test('quota cost (etcd quota.go)', async (t) => {
  const put = (k: string, v: string) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
  t.equal(costTxn({ compare: [], success: [put('a', 'xx'), put('b', 'y')], failure: [put('c', 'zzzzzz')] }), 256 + 1 + 2 + (256 + 1 + 1), 'the larger branch');
  t.equal(costTxn({ compare: [], success: [{ request_txn: { compare: [], success: [put('a', 'b')], failure: [] } }], failure: [] }), 0, 'nested puts cost nothing in etcd 3.4');
  let written = 0;
  const q = new BackendQuota(10_000, { measure: async () => 5000, writtenBytes: () => written });
  await q.refresh();
  t.equal(q.sizeBytes(), 5000);
  written = 3000;
  t.equal(q.sizeBytes(), 8000, 'writes since the sample count');
  t.ok(q.available({ put: put('k', 'v'.repeat(1000)).request_put }));
  t.notOk(q.available({ put: put('k', 'v'.repeat(1800)).request_put }), 'size + cost must stay below the quota');
  t.ok(q.available({ txn: { compare: [], success: [], failure: [] } }), 'no cost: always admitted');
  t.equal(new BackendQuota(0, { measure: async () => 0, writtenBytes: () => 0 }).maxBytes, 2 * 1024 ** 3, '0 means the 2 GiB default');
  t.notOk(new BackendQuota(-1, { measure: async () => 0, writtenBytes: () => 0 }).enabled, 'negative disables the quota');
});
