// Issue #5, corruption checks (on by default): one member of a three-member cluster corrupts what it applies
// (failpoint corruptKV, test-only); the leader's periodic HashKV comparison raises the CORRUPT alarm naming
// that member, after which Put and DeleteRange fail with "etcdserver: corrupt cluster" (etcd 3.4.23's
// applierV3Corrupt), /health says false, and the corrupted member refuses to restart (the initial check).

import t from 'tap';
import http from 'node:http';
import { status as Status } from '@grpc/grpc-js';
import { startTestCluster } from '../helpers/cluster';
import { rawClient, call } from '../helpers/member';

const b = (s: string) => Buffer.from(s);

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

t.test('a member with corrupted state raises CORRUPT; writes stop; it cannot restart', async (t) => {
  // Only m1 corrupts (the three members share this process's environment).
  process.env.TSETCD_FAILPOINTS = 'corruptKV=m1';
  const c = await startTestCluster(3, { experimentalCorruptCheckTimeMs: 500 });
  delete process.env.TSETCD_FAILPOINTS;
  t.teardown(() => c.destroy());
  const ep = c.members[0]!.endpoint;
  const kv = rawClient(ep, 'etcdserverpb', 'KV');
  const mt = rawClient(ep, 'etcdserverpb', 'Maintenance');
  t.teardown(() => {
    kv.close();
    mt.close();
  });
  const corruptId = c.members[1]!.server.memberId.toString();
  t.ok(c.members[1]!.server.applier.corruptValues && !c.members[0]!.server.applier.corruptValues, 'the failpoint is on m1 only');

  for (let i = 0; i < 10; i++) await call(kv, 'Put', { key: b(`/registry/k${i}`), value: b(`v${i}`) });

  const deadline = Date.now() + 20000;
  let alarms: any[] = [];
  while (Date.now() < deadline) {
    alarms = (await call(mt, 'Alarm', { action: 0, memberID: 0, alarm: 0 })).alarms;
    if (alarms.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(alarms.map((a) => [a.memberID, a.alarm]), [[corruptId, 2]], 'CORRUPT (2) raised, naming the corrupted member');
  const counters = c.members.map((m) => m.server.maintenance.counters);
  t.ok(counters.some((x) => x.corruptAlarmsRaised >= 1 && x.corruptCheckPeersChecked >= 2), 'the leader counted its check and the alarm');

  // etcd 3.4.23's applierV3Corrupt: Put and DeleteRange fail on every member; Range and Txn still work.
  for (const m of c.members) {
    const k = rawClient(m.endpoint, 'etcdserverpb', 'KV');
    await t.rejects(call(k, 'Put', { key: b('/registry/x'), value: b('y') }), { details: 'etcdserver: corrupt cluster', code: Status.DATA_LOSS } as any);
    await t.rejects(call(k, 'DeleteRange', { key: b('/registry/k1') }), { details: 'etcdserver: corrupt cluster' } as any);
    t.equal((await call(k, 'Range', { key: b('/registry/k1') })).kvs.length, 1, 'reads go on');
    k.close();
  }
  const health = await get(`${ep}/health`);
  t.same(health, { status: 503, body: '{"health":"false"}\n' }, '/health is false while CORRUPT is active');
  t.same(await get(`${ep}/health?exclude=CORRUPT`), { status: 200, body: '{"health":"true"}' }, '?exclude=CORRUPT');

  // The corrupted member, restarted, fails its initial check against its peers.
  await c.stop(1);
  await t.rejects(c.restart(1), /found data inconsistency with peers/, 'the initial corruption check refuses to start it');
});
