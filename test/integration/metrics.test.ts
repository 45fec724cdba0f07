// /metrics on the client URL and on --listen-metrics-urls: etcd's names and labels, values read from the server.

import t from 'tap';
import { startTestMember, rawClient, call } from '../helpers/member';
import { freePort } from '../helpers/process';
import { SERVER_VERSION } from '../../src/server/version';

const b = (s: string) => Buffer.from(s);

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

t.test('/metrics on the client URL and on --listen-metrics-urls', async (t) => {
  const port = await freePort();
  const m = await startTestMember({ listenMetricsUrls: [`http://127.0.0.1:${port}`] });
  t.teardown(() => m.destroy());
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  let rev = 0;
  for (let i = 0; i < 5; i++) rev = Number((await call(kv, 'Put', { key: b(`k${i}`), value: b('v') })).header.revision);
  kv.close();
  for (const base of [m.endpoint, `http://127.0.0.1:${port}`]) {
    const res = await fetch(`${base}/metrics`);
    t.equal(res.status, 200, `${base}/metrics answers`);
    t.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    t.ok(text.includes(`etcd_server_version{server_version="${SERVER_VERSION}"} 1`), 'etcd_server_version with its label');
    t.equal(metric(text, 'etcd_server_has_leader'), 1);
    t.equal(metric(text, 'etcd_server_is_leader'), 1);
    t.equal(metric(text, 'etcd_debugging_mvcc_current_revision'), rev, 'current revision');
    t.ok((metric(text, 'etcd_server_proposals_applied_total') ?? 0) >= 5, 'applied proposals counted');
    t.ok((metric(text, 'etcd_mvcc_db_total_size_in_bytes') ?? 0) > 0, 'db size');
    t.ok(text.includes('process_cpu_user_seconds_total'), 'process metrics');
  }
  t.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200, '/health on the metrics URL');
  t.equal((await fetch(`${m.endpoint}/metrics`, { method: 'POST' })).status, 405, 'GET only');
});
