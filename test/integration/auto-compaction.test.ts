// Issue #5: auto-compaction on a real member with an injected clock (no waiting minutes): revision and periodic
// modes compact through the log with etcd's log lines; and /health on the client URL as etcd 3.4.23 answers it.

import t from 'tap';
import http from 'node:http';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';
import { captureLogs } from '../helpers/log-capture';
import { ManualClock } from '../../src/server/maintenance';
import { until } from '../helpers/poll';

const b = (s: string) => Buffer.from(s);


t.test('revision mode: every 5 minutes, keep the last N revisions', async (t) => {
  const clock = new ManualClock();
  const logs = captureLogs();
  const m: TestMember = await startTestMember({ autoCompactionMode: 'revision', autoCompactionRetention: '5', maintenance: { clock } }, undefined, { logger: logs.logger });
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  t.teardown(async () => {
    kv.close();
    await m.destroy();
  });
  for (let i = 0; i < 20; i++) await call(kv, 'Put', { key: b('/registry/k'), value: b(String(i)) });
  const rev = m.server.store.currentRev;
  t.equal(m.server.store.compactMainRev, -1);
  await clock.advance(4 * 60 * 1000);
  t.equal(m.server.store.compactMainRev, -1, 'nothing before 5 minutes');
  await clock.advance(60 * 1000);
  await until('the compaction', () => m.server.store.compactMainRev === rev - 5);
  const started = await logs.waitFor('starting auto revision compaction');
  t.same([started.revision, started['revision-compaction-retention']], [rev - 5, 5]);
  await logs.waitFor('completed auto revision compaction');
  await t.rejects(call(kv, 'Range', { key: b('/registry/k'), revision: rev - 6 }), { details: 'etcdserver: mvcc: required revision has been compacted' } as any);
  t.equal((await call(kv, 'Range', { key: b('/registry/k'), revision: rev - 5 })).kvs.length, 1, 'the last 5 revisions are kept');
  t.equal(m.server.maintenance.counters.autoCompactions, 1);
});

t.test('periodic mode: compacts at the revision of one retention ago', async (t) => {
  const clock = new ManualClock();
  const logs = captureLogs();
  const m: TestMember = await startTestMember({ autoCompactionMode: 'periodic', autoCompactionRetention: '10m', maintenance: { clock } }, undefined, { logger: logs.logger });
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  t.teardown(async () => {
    kv.close();
    await m.destroy();
  });
  await until('the compactor', () => m.server.maintenance.compactor!.revs.length === 1);
  const first = m.server.maintenance.compactor!.revs[0]!;
  // One write per minute for ten minutes.
  for (let minute = 0; minute < 10; minute++) {
    await call(kv, 'Put', { key: b('/registry/p'), value: b(String(minute)) });
    await clock.advance(60 * 1000);
  }
  await until('the compaction', () => m.server.store.compactMainRev === first);
  const line = await logs.waitFor('starting auto periodic compaction');
  t.same([line.revision, line['compact-period']], [first, '10m0s']);
});

function get(url: string, method = 'GET'): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('/health: alarms, ?exclude=, method, format (etcd 3.4.23)', async (t) => {
  const m: TestMember = await startTestMember({ experimentalAutoQuotaRecovery: false });
  const mt = rawClient(m.endpoint, 'etcdserverpb', 'Maintenance');
  t.teardown(async () => {
    mt.close();
    await m.destroy();
  });
  const ok = { status: 200, body: '{"health":"true"}', type: 'text/plain; charset=utf-8' };
  const bad = { status: 503, body: '{"health":"false"}\n', type: 'text/plain; charset=utf-8' };
  t.same(await get(`${m.endpoint}/health`), ok);
  const id = (await call(mt, 'Status', {})).header.member_id;
  await call(mt, 'Alarm', { action: 1, memberID: id, alarm: 1 });
  t.same(await get(`${m.endpoint}/health`), bad, 'NOSPACE: unhealthy');
  t.same(await get(`${m.endpoint}/health?exclude=NOSPACE`), ok, 'unless NOSPACE is excluded');
  t.same(await get(`${m.endpoint}/health?exclude=CORRUPT`), bad);
  t.equal((await get(`${m.endpoint}/health`, 'POST')).status, 405);
  await call(mt, 'Alarm', { action: 2, memberID: id, alarm: 1 });
  t.same(await get(`${m.endpoint}/health`), ok);
  t.ok(m.server.maintenance.counters.healthSuccess >= 3 && m.server.maintenance.counters.healthFailures >= 2, 'counted');
});
