// Watch end to end over real gRPC: created before events, history replay joined to live, prev_kv, filters,
// several watches on one stream, cancel, progress (requested and periodic), compaction cancel, fragments.

import t from 'tap';
import { startTestMember, rawClient, call, type TestMember } from '../helpers/member';
import { RawWatch } from '../helpers/watch';

const b = (s: string) => Buffer.from(s);
let m: TestMember;
let kv: any;

t.before(async () => {
  m = await startTestMember({ watchProgressNotifyIntervalMs: 300 });
  kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
});
t.teardown(async () => {
  kv.close();
  await m.destroy();
});

const put = (k: string, v: string) => call(kv, 'Put', { key: b(k), value: b(v) });
const del = (k: string) => call(kv, 'DeleteRange', { key: b(k) });

t.test('live events with prev_kv; created first with current revision', async (t) => {
  const w = new RawWatch(m.endpoint);
  const cur = (await call(kv, 'Range', { key: b('x') })).header.revision;
  w.create({ key: b('w/'), range_end: b('w0'), prev_kv: true });
  const created = await w.next();
  t.equal(created.created, true);
  t.equal(created.header.revision, cur);
  const id = created.watch_id;
  await put('w/a', '1');
  await put('w/a', '2');
  await del('w/a');
  await put('other', 'x');
  const evs = await w.events(3);
  t.same(evs.map((e: any) => e.type), [0, 0, 1]);
  t.equal(evs[0].kv.create_revision, evs[0].kv.mod_revision, 'a create has create == mod');
  t.notOk(evs[0].prev_kv, 'no prev_kv on create');
  t.equal(evs[1].prev_kv.value.toString(), '1');
  t.equal(evs[2].prev_kv.value.toString(), '2');
  t.equal(evs[2].kv.key.toString(), 'w/a');
  t.ok(Number(evs[2].kv.mod_revision) > Number(evs[1].kv.mod_revision));
  t.equal((await w.none(200)), null, 'nothing for keys outside the range');
  w.send({ cancel_request: { watch_id: id } });
  const c = await w.next();
  t.equal(c.canceled, true);
  t.equal(c.watch_id, id);
  w.close();
});

t.test('historical replay joins live with no gap or duplicate', async (t) => {
  const first = await put('h/k', '0');
  for (let i = 1; i < 20; i++) await put('h/k', String(i));
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('h/k'), start_revision: first.header.revision, prev_kv: true });
  t.equal((await w.next()).created, true);
  const p = (async () => {
    for (let i = 20; i < 30; i++) await put('h/k', String(i));
  })();
  const evs = await w.events(30);
  await p;
  t.same(evs.map((e: any) => e.kv.value.toString()), Array.from({ length: 30 }, (_, i) => String(i)));
  for (let i = 1; i < 30; i++) t.equal(evs[i].prev_kv.value.toString(), String(i - 1));
  w.close();
});

t.test('filters, watch ids, several watches per stream', async (t) => {
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('f'), filters: [0] }); // NOPUT
  const a = await w.next();
  w.create({ key: b('f'), watch_id: 7 });
  const c = await w.next();
  t.equal(c.watch_id, '7');
  w.create({ key: b('f'), watch_id: 7 });
  const dup = await w.next();
  t.equal(dup.canceled, true);
  t.match(dup.cancel_reason, /duplicate watch ID/);
  await put('f', '1');
  await del('f');
  const got: any[] = [];
  got.push(await w.next(), await w.next(), await w.next());
  const forA = got.filter((r) => r.watch_id === a.watch_id).flatMap((r) => r.events);
  const forC = got.filter((r) => r.watch_id === '7').flatMap((r) => r.events);
  t.same(forA.map((e: any) => e.type), [1], 'NOPUT watch sees only the delete');
  t.same(forC.map((e: any) => e.type), [0, 1]);
  w.close();
});

t.test('progress: requested (watch_id -1) and periodic', async (t) => {
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('p'), progress_notify: true });
  await w.next();
  const p = await put('zzz', 'x');
  w.send({ progress_request: {} });
  // A periodic notification (every 300 ms here) may come first; the requested one carries watch_id -1.
  let r = await w.next();
  while (r.watch_id !== '-1') {
    t.equal(r.events.length, 0, 'only progress notifications before the requested one');
    r = await w.next();
  }
  t.equal(r.events.length, 0);
  t.equal(r.header.revision, p.header.revision, 'progress reports the current revision');
  const periodic = await w.next(2000);
  t.equal(periodic.events.length, 0);
  t.equal(periodic.created, false);
  t.not(periodic.watch_id, '-1');
  w.close();
});

t.test('compacted start revision: created, then canceled with compact_revision', async (t) => {
  const p1 = await put('cw', '1');
  const p2 = await put('cw', '2');
  await call(kv, 'Compact', { revision: p2.header.revision });
  const w = new RawWatch(m.endpoint);
  w.create({ key: b('cw'), start_revision: p1.header.revision });
  const created = await w.next();
  t.equal(created.created, true);
  const c = await w.next();
  t.equal(c.canceled, true);
  t.equal(c.compact_revision, p2.header.revision);
  // From exactly the compaction revision works, with prev_kv of the event at it unavailable only if compacted.
  w.create({ key: b('cw'), start_revision: p2.header.revision });
  t.equal((await w.next()).created, true);
  const ev = await w.next();
  t.equal(ev.events[0].kv.value.toString(), '2');
  w.close();
});

t.test('fragment splits large responses', async (t) => {
  const big = 'x'.repeat(500 * 1024);
  for (const i of [1, 2, 3]) await put('fr/' + i, big);
  const w = new RawWatch(m.endpoint);
  // One txn updates three 500 KiB values: with prev_kv the response is ~3 MiB, over --max-request-bytes.
  w.create({ key: b('fr/'), range_end: b('fr0'), fragment: true, prev_kv: true });
  await w.next();
  await call(kv, 'Txn', {
    compare: [],
    success: [1, 2, 3].map((i) => ({ request_put: { key: b('fr/' + i), value: b(big) } })),
    failure: [],
  });
  const r1 = await w.next();
  t.equal(r1.fragment, true);
  const rest: any[] = [r1];
  while (rest[rest.length - 1].fragment) rest.push(await w.next());
  t.ok(rest.length >= 2);
  t.equal(rest.flatMap((r) => r.events).length, 3);
  t.ok(rest.flatMap((r) => r.events).every((e: any) => e.prev_kv && e.prev_kv.value.length === big.length));
  w.close();
});
