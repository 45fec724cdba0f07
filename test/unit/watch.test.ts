// Watch: live notification, history replay joined to live, filters, cancel, compaction, progress, victims,
// and a seeded random workload checked against a model of the event log.

import t from 'tap';
import { MvccStore, type MvccOptions, type TxnWrite, type WatchResponse, type WatchStream } from '../../src/mvcc';
import { isDomainError } from '../../src/util/errors';
import { EventType, type LeaseAttacher } from '../../src/mvcc/types';
import { prefixEnd } from '../../src/util/bytes';
import { decodeKeyValue } from '../../src/mvcc/backend';

const b = (s: string) => Buffer.from(s);
const all = Buffer.alloc(0);
const quiet = { info() {}, warn() {} };
const noLeases: LeaseAttacher = { getLease: () => 0n, attach() {}, detach() {} };

async function open(dir: string, extra: Partial<MvccOptions> = {}): Promise<MvccStore> {
  return MvccStore.open({ dir, lessor: noLeases, logger: quiet, ...extra });
}

class Applier {
  index = 0;
  constructor(private readonly s: MvccStore) {}
  txn(f: (tw: TxnWrite) => void): number {
    const tw = this.s.write(++this.index);
    f(tw);
    tw.end();
    return tw.rev;
  }
  put(key: string, value = 'v'): number {
    return this.txn((tw) => tw.put(b(key), b(value), 0n));
  }
  del(key: string, end: Buffer | null = null): number {
    return this.txn((tw) => tw.deleteRange(b(key), end));
  }
}

/** A consumer with a switchable "buffer full". */
class Sink {
  readonly responses: WatchResponse[] = [];
  accept: (r: WatchResponse) => boolean = () => true;
  readonly send = (r: WatchResponse): boolean => {
    if (!this.accept(r)) return false;
    this.responses.push(r);
    return true;
  };
  events(id: number): string[] {
    return this.responses
      .filter((r) => r.watchId === id)
      .flatMap((r) => r.events.map((e) => `${e.type === EventType.Put ? 'PUT' : 'DEL'} ${e.kv.key.toString()}@${e.kv.modRevision}`));
  }
  take(): WatchResponse[] {
    return this.responses.splice(0);
  }
}

t.test('synced watchers get live events, one response per revision', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  a.put('before'); // 2: must never be seen
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 0, key: b('foo'), end: null, startRev: 0 });
  ws.watch({ id: 1, key: b('f'), end: prefixEnd(b('f')), startRev: 0 });
  ws.watch({ id: 2, key: b('b'), end: all, startRev: 0 });
  t.equal(ws.isSynced(0), true);
  a.txn((tw) => {
    tw.put(b('foo'), b('1'), 0n);
    tw.put(b('fa'), b('1'), 0n);
    tw.put(b('zz'), b('1'), 0n);
  }); // 3
  a.del('foo'); // 4
  t.strictSame(sink.events(0), ['PUT foo@3', 'DEL foo@4']);
  t.strictSame(sink.events(1), ['PUT foo@3', 'PUT fa@3', 'DEL foo@4']);
  t.strictSame(sink.events(2), ['PUT foo@3', 'PUT fa@3', 'PUT zz@3', 'DEL foo@4']);
  const r0 = sink.responses.filter((r) => r.watchId === 1);
  t.strictSame(r0.map((r) => r.revision), [3, 4], 'one response per revision');
  const put = r0[0]!.events[0]!.kv;
  t.equal(put.createRevision, put.modRevision, 'a creation has create_revision == mod_revision');
  t.equal(put.version, 1);
  const del = r0[1]!.events[0]!;
  t.equal(del.type, EventType.Delete);
  t.equal(del.kv.modRevision, 4, 'a deletion carries the deletion revision');
  ws.close();
  await s.close();
});

t.test('history replay joins live events with no gap and no duplicate', async (t) => {
  const s = await open(t.testdir(), { watchLimits: { syncMaxEntries: 3, batchMaxRevs: 2 } });
  const a = new Applier(s);
  for (let i = 0; i < 10; i++) a.put(i % 2 === 0 ? 'k' : 'other', `${i}`); // 2..11
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 7, key: b('k'), end: null, startRev: 4 });
  t.equal(ws.isSynced(7), false, 'startRev <= currentRev: unsynced');
  t.strictSame(sink.responses, [], 'nothing sent at registration');
  a.put('k', 'while unsynced'); // 12
  let rounds = 0;
  while ((await s.syncWatchers()) > 0) {
    rounds++;
    if (rounds === 2) a.put('k', 'during catch-up'); // 13
    t.ok(rounds < 50, 'converges');
  }
  t.ok(rounds >= 2, `catch-up took ${rounds} extra rounds with small limits`);
  t.equal(ws.isSynced(7), true);
  a.put('k', 'live'); // 14
  t.strictSame(sink.events(7), ['PUT k@4', 'PUT k@6', 'PUT k@8', 'PUT k@10', 'PUT k@12', 'PUT k@13', 'PUT k@14']);
  const revs = sink.responses.map((r) => r.revision);
  t.strictSame(revs, [...revs].sort((x, y) => x - y), 'response revisions ascend');
  for (const r of sink.responses) {
    for (const e of r.events) t.ok(e.kv.modRevision <= r.revision, 'a response never claims less than its events');
  }
  ws.close();
  await s.close();
});

t.test('replay sees writes that are not in LevelDB yet', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  a.put('k', '1'); // 2
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 2 });
  await s.syncWatchers();
  a.put('k', '2'); // 3, live
  a.put('other'); // 4
  ws.watch({ id: 2, key: b('k'), end: null, startRev: 2 });
  t.ok(s.pendingBytes > 0);
  await s.syncWatchers();
  t.strictSame(sink.events(1), ['PUT k@2', 'PUT k@3']);
  t.strictSame(sink.events(2), ['PUT k@2', 'PUT k@3']);
  ws.close();
  await s.close();
});

t.test('filters, cancel, future start, duplicate ids, empty ranges', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 0, filterPut: true });
  ws.watch({ id: 2, key: b('k'), end: null, startRev: 0, filterDelete: true });
  ws.watch({ id: 3, key: b('k'), end: null, startRev: 0 });
  ws.watch({ id: 4, key: b('k'), end: null, startRev: 4 });
  a.put('k'); // 2
  a.del('k'); // 3
  t.equal(ws.cancel(3), true);
  t.equal(ws.cancel(3), false, 'already canceled');
  t.equal(ws.cancel(99), false);
  a.put('k'); // 4
  t.strictSame(sink.events(1), ['DEL k@3']);
  t.strictSame(sink.events(2), ['PUT k@2', 'PUT k@4']);
  t.strictSame(sink.events(3), ['PUT k@2', 'DEL k@3']);
  t.strictSame(sink.events(4), ['PUT k@4'], 'future start revision');
  const code = (f: () => void) => {
    try {
      f();
      return 'no error';
    } catch (err) {
      return isDomainError(err) ? err.code : String(err);
    }
  };
  t.equal(code(() => ws.watch({ id: 1, key: b('x'), end: null, startRev: 0 })), 'ErrWatcherDuplicateID');
  t.equal(code(() => ws.watch({ id: 9, key: b('b'), end: b('a'), startRev: 0 })), 'ErrEmptyWatcherRange');
  ws.watch({ id: 3, key: b('k'), end: null, startRev: 0 });
  t.equal(ws.isSynced(3), true, 'a canceled id can be reused');
  ws.close();
  a.put('k');
  t.equal(sink.events(3).length, 2, 'closed stream gets nothing');
  await s.close();
});

t.test('a compacted start revision gets the compaction response after registration, then the watcher is dropped', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  for (let i = 0; i < 6; i++) a.put('k', `${i}`); // 2..7
  await (await s.compact(5, ++a.index)).done;
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 3 });
  ws.watch({ id: 2, key: b('k'), end: null, startRev: 5 });
  t.strictSame(sink.responses, [], 'nothing at registration (the server sends created first)');
  await s.syncWatchers();
  const compacted = sink.responses.filter((r) => r.watchId === 1);
  t.strictSame(compacted, [{ watchId: 1, events: [], revision: 7, compactRevision: 5 }]);
  t.equal(ws.cancel(1), false, 'dropped');
  t.strictSame(sink.events(2), ['PUT k@5', 'PUT k@6', 'PUT k@7'], 'start == compaction revision is fine');
  a.put('k'); // 8
  t.strictSame(sink.events(1), []);
  ws.close();
  await s.close();
});

t.test('progress: single watcher and the whole stream', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  a.put('k'); // 2
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  t.equal(ws.requestProgressAll(), true, 'no watchers: answered');
  t.strictSame(sink.take(), [{ watchId: -1, events: [], revision: 2, compactRevision: 0 }]);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 0 });
  ws.watch({ id: 2, key: b('k'), end: null, startRev: 2 });
  t.equal(ws.requestProgressAll(), false, 'refused while watcher 2 is unsynced');
  t.equal(ws.requestProgress(2), false);
  t.equal(ws.requestProgress(1), true);
  t.strictSame(sink.take(), [{ watchId: 1, events: [], revision: 2, compactRevision: 0 }]);
  await s.syncWatchers();
  sink.take();
  t.equal(ws.requestProgressAll(), true);
  t.strictSame(sink.take(), [{ watchId: -1, events: [], revision: 2, compactRevision: 0 }]);
  ws.watch({ id: 3, key: b('k'), end: null, startRev: 10 });
  t.equal(ws.requestProgressAll(), false, 'never promise a revision below start_revision - 1');
  ws.cancel(3);
  sink.accept = () => false;
  t.equal(ws.requestProgressAll(), false, 'a refused send is reported');
  ws.close();
  await s.close();
});

t.test('victims: a refused send is retried later, in order, and never blocks others', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  const slow = new Sink();
  const fast = new Sink();
  const wsSlow = s.newWatchStream(slow.send);
  const wsFast = s.newWatchStream(fast.send);
  wsSlow.watch({ id: 1, key: b('k'), end: all, startRev: 0 });
  wsFast.watch({ id: 1, key: b('k'), end: all, startRev: 0 });
  a.put('k1'); // 2 delivered
  slow.accept = () => false;
  a.put('k2'); // 3 refused -> victim
  a.put('k3'); // 4 not even tried
  t.equal(wsSlow.isSynced(1), false);
  t.equal(wsSlow.requestProgressAll(), false, 'a victim is not synced');
  await s.syncWatchers(); // still refused
  a.txn((tw) => {
    tw.put(b('k4'), b('v'), 0n);
    tw.put(b('k5'), b('v'), 0n);
  }); // 5
  t.strictSame(fast.events(1), ['PUT k1@2', 'PUT k2@3', 'PUT k3@4', 'PUT k4@5', 'PUT k5@5'], 'others unaffected');
  t.strictSame(slow.events(1), ['PUT k1@2']);
  slow.accept = () => true;
  await s.syncWatchers(); // victim retried, then catch-up from history
  while ((await s.syncWatchers()) > 0);
  a.put('k6'); // 6 live again
  t.strictSame(slow.events(1), ['PUT k1@2', 'PUT k2@3', 'PUT k3@4', 'PUT k4@5', 'PUT k5@5', 'PUT k6@6']);
  t.strictSame(slow.responses.map((r) => r.revision), [2, 3, 5, 6]);
  t.equal(wsSlow.isSynced(1), true);
  wsSlow.close();
  wsFast.close();
  await s.close();
});

t.test('syncWatchers never runs concurrently with itself', async (t) => {
  const s = await open(t.testdir());
  const a = new Applier(s);
  for (let i = 0; i < 20; i++) a.put('k', `${i}`);
  const sink = new Sink();
  const ws = s.newWatchStream(sink.send);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 2 });
  const p1 = s.syncWatchers();
  ws.watch({ id: 2, key: b('k'), end: null, startRev: 10 });
  const p2 = s.syncWatchers();
  const p3 = s.syncWatchers();
  t.equal(p2, p3, 'one follow-up run for all callers during a run');
  await Promise.all([p1, p2, p3]);
  t.equal(sink.events(1).length, 20);
  t.equal(sink.events(2).length, 12);
  ws.close();
  await s.close();
});

// The model: the global event log; a watcher must receive exactly the events at or after its effective start
// revision that match its range and filters, in order, once (or a prefix of them if canceled).
t.test('random workload against a model of the event log', async (t) => {
  const dir = t.testdir();
  const s = await open(dir, { watchLimits: { maxWatchersPerSync: 5, batchMaxRevs: 3, syncMaxEntries: 25 } });
  const a = new Applier(s);
  let seed = Number(process.env.WATCH_SEED ?? 99);
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const keys = ['a', 'b', 'c', 'ca', 'cb', 'd'];
  const log: Array<{ rev: number; type: 'PUT' | 'DEL'; key: string }> = [];
  const live = new Set<string>();

  interface W {
    ws: WatchStream;
    sink: Sink;
    id: number;
    key: string;
    end: string | null; // '' = from key
    start: number;
    filterPut: boolean;
    filterDelete: boolean;
    canceled: boolean;
  }
  const streams: Array<{ ws: WatchStream; sink: Sink }> = [];
  for (let i = 0; i < 3; i++) {
    const sink = new Sink();
    streams.push({ ws: s.newWatchStream(sink.send), sink });
  }
  const watchers: W[] = [];
  let nextId = 0;
  let inflight: Promise<number> | null = null;

  for (let step = 0; step < 1500; step++) {
    const action = rand(100);
    if (action < 45) {
      const rev = a.txn((tw) => {
        const ops = 1 + rand(3);
        for (let i = 0; i < ops; i++) {
          const k = keys[rand(keys.length)]!;
          if (rand(3) === 0) {
            if (tw.deleteRange(b(k), null) > 0) live.delete(k);
          } else {
            tw.put(b(k), b(`${step}`), 0n);
            live.add(k);
          }
        }
      });
      // Rebuild this revision's events from the store's own view would be circular; use the changes instead.
      void rev;
    } else if (action < 55) {
      const st = streams[rand(streams.length)]!;
      const kind = rand(3);
      const key = keys[rand(keys.length)]!;
      const end = kind === 0 ? null : kind === 1 ? '' : key + '\xff';
      const startRev = rand(3) === 0 ? 0 : 1 + rand(s.currentRev + 2);
      const w: W = {
        ws: st.ws,
        sink: st.sink,
        id: nextId++,
        key,
        end,
        start: startRev <= 0 ? s.currentRev + 1 : startRev,
        filterPut: rand(8) === 0,
        filterDelete: rand(8) === 0,
        canceled: false,
      };
      st.ws.watch({
        id: w.id,
        key: b(key),
        end: end === null ? null : end === '' ? all : Buffer.from(end, 'latin1'),
        startRev,
        filterPut: w.filterPut,
        filterDelete: w.filterDelete,
      });
      watchers.push(w);
    } else if (action < 58 && watchers.length > 0) {
      const w = watchers[rand(watchers.length)]!;
      if (!w.canceled) {
        t.equal(w.ws.cancel(w.id), true);
        w.canceled = true;
      }
    } else if (action < 75) {
      if (inflight === null) inflight = s.syncWatchers();
      else if (rand(2) === 0) {
        await inflight;
        inflight = null;
      }
    } else if (action < 85) {
      const st = streams[rand(streams.length)]!;
      const p = rand(3);
      st.sink.accept = p === 0 ? () => rand(2) === 0 : () => true;
    } else if (action < 88) {
      await s.forceCommit();
    } else {
      await new Promise<void>((resolve) => queueMicrotask(resolve));
    }
  }
  if (inflight !== null) await inflight;
  for (const st of streams) st.sink.accept = () => true;
  let rounds = 0;
  while ((await s.syncWatchers()) > 0) {
    if (++rounds > 50000) {
      t.fail(`does not drain: ${JSON.stringify(s.watcherStats())} at ${s.currentRev}`);
      break;
    }
  }

  // The event log, from the store's history (every revision from 2 to current).
  for await (const e of (s as unknown as { backend: { scanKeyBucket(a: number, b: number): AsyncGenerator<{ rev: { main: number }; tombstone: boolean; kv: { key: Buffer } | null; value: Buffer }> } }).backend.scanKeyBucket(0, s.currentRev)) {
    const kv = e.kv ?? decodeKeyValue(e.value);
    log.push({ rev: e.rev.main, type: e.tombstone ? 'DEL' : 'PUT', key: kv.key.toString('latin1') });
  }
  // Within one revision a key may change several times; etcd sends all of them in order.
  const inRange = (w: W, k: string) => {
    if (w.end === null) return k === w.key;
    if (w.end === '') return k >= w.key;
    return k >= w.key && k < w.end;
  };
  let checked = 0;
  for (const w of watchers) {
    const want = log
      .filter((e) => e.rev >= w.start && inRange(w, e.key))
      .filter((e) => !(e.type === 'PUT' && w.filterPut) && !(e.type === 'DEL' && w.filterDelete))
      .map((e) => `${e.type} ${e.key}@${e.rev}`);
    const got = w.sink.events(w.id);
    if (w.canceled) {
      t.strictSame(got, want.slice(0, got.length), `watcher ${w.id} (canceled) got a prefix`);
    } else {
      t.strictSame(got, want, `watcher ${w.id} [${w.key}, ${JSON.stringify(w.end)}) from ${w.start}`);
      checked++;
    }
    const resp = w.sink.responses.filter((r) => r.watchId === w.id && r.events.length > 0);
    for (let i = 1; i < resp.length; i++) {
      t.ok(resp[i]!.events[0]!.kv.modRevision > resp[i - 1]!.revision, `watcher ${w.id}: responses do not overlap`);
    }
  }
  t.ok(checked > 20, `${checked} watchers checked`);
  for (const st of streams) st.ws.close();
  await s.close();
});

// Regression for the fault run mixed seed 1661965180 (watch, Bookmarkable: "progress notification 1 (response 219)
// goes back from 197" on a follower installing the leader's snapshot): while the database was replaced the store's
// revision restarted from 1, and a progress notification then went back in time. The store now keeps its old
// revision until the new database is loaded (MvccStore.restore publishes at the end), and progress is refused
// during the replace as well.
t.test('F19 mixed (F9 blackhole-until-snapshot), seed 1661965180: no progress notification while the database is replaced', async (t) => {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const root = t.testdir();
  // The leader's newer database.
  const leader = await open(path.join(root, 'leader'));
  const la = new Applier(leader);
  for (let i = 0; i < 6; i++) la.put('k'); // 2..7
  await leader.close();

  let during: { answered: boolean; revision: number } | undefined;
  let ws: WatchStream | undefined;
  const sink = new Sink();
  const dir = path.join(root, 'member');
  const s = await open(dir, {
    beforeRestore: async () => {
      if (!ws) return; // the first open
      const answered = ws.requestProgressAll();
      during = { answered, revision: s.currentRev };
    },
  });
  const a = new Applier(s);
  a.put('k'); // 2
  a.put('k'); // 3
  ws = s.newWatchStream(sink.send);
  ws.watch({ id: 1, key: b('k'), end: null, startRev: 0 });
  t.equal(ws.requestProgressAll(), true);
  t.strictSame(sink.take(), [{ watchId: -1, events: [], revision: 3, compactRevision: 0 }]);

  await s.replaceDatabase(async () => {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.cp(path.join(root, 'leader'), dir, { recursive: true });
  });
  t.same(during, { answered: false, revision: 3 }, 'refused during the replace; the revision does not go back meanwhile');
  t.strictSame(sink.take(), [], 'nothing sent during the replace');
  await s.syncWatchers();
  t.strictSame(sink.events(1), ['PUT k@4', 'PUT k@5', 'PUT k@6', 'PUT k@7'], 'the watcher catches up from the new history');
  sink.take();
  t.equal(ws.requestProgressAll(), true);
  t.strictSame(sink.take(), [{ watchId: -1, events: [], revision: 7, compactRevision: 0 }]);
  ws.close();
  await s.close();
});
