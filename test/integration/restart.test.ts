// Everything survives a clean restart: data, the revision counter, leases (with their keys), the compaction
// point, alarms; and re-applying the WAL after restart is idempotent.

import t from 'tap';
import fs from 'node:fs/promises';
import { startTestMember, tempDir, rawClient, call } from '../helpers/member';

const b = (s: string) => Buffer.from(s);

t.test('state survives restart', async (t) => {
  const dir = await tempDir();
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  let m = await startTestMember({}, dir);
  let kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  let lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
  const g = await call(lease, 'LeaseGrant', { TTL: 600 });
  await call(kv, 'Put', { key: b('a'), value: b('1') });
  const p2 = await call(kv, 'Put', { key: b('a'), value: b('2') });
  await call(kv, 'Put', { key: b('leased'), value: b('x'), lease: g.ID });
  await call(kv, 'Compact', { revision: p2.header.revision });
  const before = await call(kv, 'Range', { key: b('a') });
  kv.close();
  lease.close();
  const memberId = m.memberId;
  await m.close();

  m = await startTestMember({}, dir);
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
  t.equal(m.memberId, memberId, 'same member identity');
  const after = await call(kv, 'Range', { key: b('a') });
  t.same(after.kvs, before.kvs);
  t.equal(after.header.revision, before.header.revision, 'revision preserved (no replay duplicates)');
  try {
    await call(kv, 'Range', { key: b('a'), revision: 2 });
    t.fail('compaction point lost');
  } catch (err: any) {
    t.equal(err.details, 'etcdserver: mvcc: required revision has been compacted');
  }
  const ttl = await call(lease, 'LeaseTimeToLive', { ID: g.ID, keys: true });
  t.equal(ttl.grantedTTL, '600');
  t.same(ttl.keys.map((k: Buffer) => k.toString()), ['leased']);
  const p = await call(kv, 'Put', { key: b('a'), value: b('3') });
  t.equal(Number(p.header.revision), Number(before.header.revision) + 1);
  kv.close();
  lease.close();
  await m.close();
});
