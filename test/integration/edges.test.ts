// Bad and extreme input gets etcd's answer, never a crash: 64-bit revisions at 0, -1, 2^53 and int64 max,
// inverted ranges, oversized messages at the gRPC layer, and HTTP/2 keepalive pings on an idle connection
// (kube-apiserver's client pings every 30 s; a GOAWAY would drop every watch on the connection).

import t from 'tap';
import http2 from 'node:http2';
import { status } from '@grpc/grpc-js';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';

const b = (s: string) => Buffer.from(s);
let m: TestMember;
let kv: any;

t.before(async () => {
  m = await startTestMember();
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  await call(kv, 'Put', { key: b('e'), value: b('1') });
});
t.teardown(async () => {
  kv.close();
  await m.destroy();
});

async function code(p: Promise<unknown>): Promise<[number, string] | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err: any) {
    return [err.code, err.details];
  }
}

const FUTURE: [number, string] = [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'];

t.test('revisions at the edges of int64', async (t) => {
  t.equal(await code(call(kv, 'Range', { key: b('e'), revision: 0 })), 'ok', '0 = current');
  t.equal(await code(call(kv, 'Range', { key: b('e'), revision: -1 })), 'ok', 'negative = current, as etcd');
  t.same(await code(call(kv, 'Range', { key: b('e'), revision: String(2 ** 53) })), FUTURE);
  t.same(await code(call(kv, 'Range', { key: b('e'), revision: String(2 ** 53 + 1) })), FUTURE);
  t.same(await code(call(kv, 'Range', { key: b('e'), revision: '9223372036854775807' })), FUTURE);
  t.same(await code(call(kv, 'Compact', { revision: '9223372036854775807' })), FUTURE);
  t.same(await code(call(kv, 'Txn', { compare: [], success: [{ request_range: { key: b('e'), revision: '9223372036854775807' } }], failure: [] })), FUTURE);
  const w = await call(kv, 'Put', { key: b('e'), value: b('2') });
  t.ok(Number(w.header.revision) > 1, 'still serving');
});

t.test('inverted and degenerate ranges', async (t) => {
  const r = await call(kv, 'Range', { key: b('z'), range_end: b('a') });
  t.same(r.kvs, []);
  t.equal(r.count, '0');
  const d = await call(kv, 'DeleteRange', { key: b('z'), range_end: b('a') });
  t.equal(d.deleted, '0');
});

t.test('messages above the gRPC receive limit are refused by gRPC, nothing written', async (t) => {
  const before = (await call(kv, 'Range', { key: b('e') })).header.revision;
  const res = await code(call(kv, 'Put', { key: b('huge'), value: Buffer.alloc(2.5 * 1024 * 1024) }));
  t.not(res, 'ok');
  t.equal((res as [number, string])[0], status.RESOURCE_EXHAUSTED);
  t.equal((await call(kv, 'Range', { key: b('e') })).header.revision, before);
});

t.test('keepalive pings on an idle connection never get GOAWAY', async (t) => {
  const session = http2.connect(m.endpoint);
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  session.on('error', () => {});
  await new Promise<void>((resolve) => session.once('connect', () => resolve()));
  for (let i = 0; i < 20; i++) {
    const ok = await new Promise<boolean>((resolve) => session.ping((err) => resolve(!err)));
    t.ok(ok, `ping ${i} acknowledged`);
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(goaway, false);
  t.equal(session.closed, false);
  session.close();
});
