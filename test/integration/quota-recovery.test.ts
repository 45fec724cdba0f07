// Issue #5, the space quota: kube-like churn (objects under /registry/... updated over and over) into a small
// --quota-backend-bytes raises NOSPACE through the log; writes then fail with etcd's exact error while reads and
// deletes go on; the automatic recovery (compaction keeping recent history, defragmentation) clears the alarm
// with no manual step and no live key is lost. With live data alone above the quota the alarm stays and the log
// says why; deleting keys then lets the recovery clear it.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';
import { captureLogs } from '../helpers/log-capture';
import { until } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);
const NOSPACE = 'etcdserver: mvcc: database space exceeded';

async function alarms(mt: any): Promise<Array<{ memberID: string; alarm: string | number }>> {
  return (await call(mt, 'Alarm', { action: 0, memberID: 0, alarm: 0 })).alarms;
}


// Fast recovery timings for the test (defaults: every 1 s, disarm after 3 s below 70%, retry every minute).
const tuning = (highWatermark: number) => ({
  sizeRefreshMs: 200,
  quotaRecovery: { checkIntervalMs: 200, disarmHoldMs: 600, retryIntervalMs: 2000, highWatermark },
});

t.test('kube-like churn into a small quota: NOSPACE, deletes still work, automatic recovery, no live key lost', async (t) => {
  const logs = captureLogs();
  // The recovery acts only above 95% here, so that the churn reliably reaches the quota first.
  const m: TestMember = await startTestMember(
    { quotaBackendBytes: 3 * 1024 * 1024, experimentalAutoQuotaRecoveryRetainRevisions: 50, maintenance: tuning(0.95) },
    undefined,
    { logger: logs.logger },
  );
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(async () => {
    kv.close();
    mt.close();
    await m.destroy();
  });

  // 40 pods, rewritten with 16 KiB of incompressible status each time. For every key: the last acknowledged
  // value, and the values attempted since (a write refused by the apply-path quota check was applied anyway,
  // as in etcd).
  const keys = Array.from({ length: 40 }, (_, i) => `/registry/pods/default/pod-${i}`);
  const acked = new Map<string, Buffer>();
  const attempted = new Map<string, Buffer[]>();
  let refusal: any;
  let writes = 0;
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; refusal === undefined; i += 4) {
        const key = keys[i % keys.length]!;
        const value = randomBytes(16 * 1024);
        attempted.set(key, [...(attempted.get(key) ?? []), value]);
        try {
          await call(kv, 'Put', { key: b(key), value });
          acked.set(key, value);
          attempted.set(key, []);
          writes++;
        } catch (err) {
          refusal ??= err;
        }
      }
    }),
  );
  t.equal(refusal.details, NOSPACE, 'the exact etcd error');
  t.equal(refusal.code, Status.RESOURCE_EXHAUSTED);
  t.ok(writes > 100, `${writes} writes before the quota was reached`);
  const raised = await alarms(mt);
  t.same(raised.map((a) => [a.memberID, a.alarm]), [[(await call(mt, 'Status', {})).header.member_id, 1]], 'NOSPACE (1) raised for this member');

  // While NOSPACE is active: puts and txns with puts fail, reads and deletes work.
  await t.rejects(call(kv, 'Put', { key: b('/registry/pods/default/new'), value: b('x') }), { details: NOSPACE } as any);
  const txnPut = { compare: [], success: [{ request_put: { key: b('/registry/x'), value: b('y') } }], failure: [] };
  await t.rejects(call(kv, 'Txn', txnPut), { details: NOSPACE } as any);
  const lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
  await t.rejects(call(lease, 'LeaseGrant', { TTL: 60 }), { details: NOSPACE } as any);
  lease.close();
  const r = await call(kv, 'Range', { key: b('/registry/'), range_end: b('/registry0'), count_only: true });
  t.equal(Number(r.count), keys.length, 'reads work');
  const gone = keys[0]!;
  const d = await call(kv, 'DeleteRange', { key: b(gone) });
  t.equal(Number(d.deleted), 1, 'deletes work');
  acked.delete(gone);
  attempted.delete(gone);

  // Automatic recovery: no manual compaction, defragmentation or disarm.
  await until('the alarm to clear', async () => (await alarms(mt)).length === 0);
  t.pass('NOSPACE cleared by itself');
  await logs.waitFor('automatic quota recovery: compacting');
  await logs.waitFor('automatic quota recovery: defragmented');
  await logs.waitFor('automatic quota recovery: disarming NOSPACE alarm');
  await logs.waitFor('alarm disarmed');
  const c = m.server.maintenance.counters;
  t.ok(c.quotaAlarmsRaised >= 1 && c.quotaRecoveryCompactions >= 1 && c.quotaRecoveryDefrags >= 1 && c.quotaRecoveryDisarms === 1, 'counted');
  const st = await call(mt, 'Status', {});
  t.ok(Number(st.dbSize) < 0.7 * 3 * 1024 * 1024, `backend back below 70% of the quota (${st.dbSize} bytes)`);

  // No live key lost: every key holds its last acknowledged value (or a later attempted one).
  const all = await call(kv, 'Range', { key: b('/registry/'), range_end: b('/registry0') });
  t.equal(all.kvs.length, keys.length - 1);
  for (const kv of all.kvs) {
    const k = kv.key.toString();
    const ok = acked.get(k)?.equals(kv.value) || (attempted.get(k) ?? []).some((v) => v.equals(kv.value));
    t.ok(ok, `${k} kept its latest value`);
  }
  t.notOk(all.kvs.some((kv: any) => kv.key.toString() === gone), 'the deleted key stays deleted');
  // History within the retention is still readable (watchers are not all invalidated).
  const rev = Number(all.header.revision);
  const old = await call(kv, 'Range', { key: b('/registry/'), range_end: b('/registry0'), revision: rev - 20, count_only: true });
  t.ok(Number(old.count) > 0, 'recent history kept');
  await call(kv, 'Put', { key: b('/registry/pods/default/after'), value: b('ok') });
  t.pass('writes work again');
});

t.test('live data alone above the quota: the alarm stays and the log says why; deleting keys lets it recover', async (t) => {
  const logs = captureLogs();
  const quota = 1024 * 1024;
  const m: TestMember = await startTestMember(
    { quotaBackendBytes: quota, experimentalAutoQuotaRecoveryRetainRevisions: 10, maintenance: tuning(0.8) },
    undefined,
    { logger: logs.logger },
  );
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(async () => {
    kv.close();
    mt.close();
    await m.destroy();
  });
  // Distinct objects, never rewritten: nothing for compaction to free.
  let n = 0;
  for (;; n++) {
    try {
      await call(kv, 'Put', { key: b(`/registry/configmaps/default/cm-${String(n).padStart(4, '0')}`), value: randomBytes(16 * 1024) });
    } catch (err: any) {
      t.equal(err.details, NOSPACE);
      break;
    }
  }
  t.ok(n > 30, `${n} objects stored`);
  const line = await logs.waitFor('live data alone exceeds the quota');
  t.equal(line['quota-size-bytes'], quota);
  t.ok((line['live-data-bytes'] as number) >= 0.7 * quota, 'the log gives the live data size');
  t.ok(m.server.maintenance.counters.quotaRecoveryStuck >= 1);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal((await alarms(mt)).length, 1, 'the alarm stays');
  await t.rejects(call(kv, 'Put', { key: b('/registry/x'), value: b('y') }), { details: NOSPACE } as any);

  // The way out: delete objects (one by one, so that the recovery's compaction can go past the deletions).
  for (let i = 0; i < n / 2; i++) await call(kv, 'DeleteRange', { key: b(`/registry/configmaps/default/cm-${String(i).padStart(4, '0')}`) });
  await until('the alarm to clear', async () => (await alarms(mt)).length === 0);
  t.pass('recovered after deletions, with no manual step');
  await call(kv, 'Put', { key: b('/registry/x'), value: b('y') });
});

t.test('--experimental-auto-quota-recovery=false: NOSPACE stays until the operator disarms it (etcd)', async (t) => {
  const m: TestMember = await startTestMember({ experimentalAutoQuotaRecovery: false, maintenance: tuning(0.8) });
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(async () => {
    mt.close();
    await m.destroy();
  });
  t.equal(m.server.maintenance.recovery, undefined);
  const id = (await call(mt, 'Status', {})).header.member_id;
  await call(mt, 'Alarm', { action: 1, memberID: id, alarm: 1 });
  await new Promise((r) => setTimeout(r, 1000));
  t.equal((await alarms(mt)).length, 1);
  await call(mt, 'Alarm', { action: 2, memberID: id, alarm: 1 });
  t.same(await alarms(mt), []);
});
