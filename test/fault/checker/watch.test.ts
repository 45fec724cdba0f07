// Watch checks: correct logs generated from a simulated committed history are accepted; each planted fault
// (duplicate, reorder, gap, split revision, early progress notification, wrong prev_kv, wrong create flag,
// filter breach, event below the start revision, undeserved compaction cancel) is reported as the property it
// breaks.

import t, { type Test } from 'tap';
import { prefixEnd } from './history';
import { committedFromWatch, Replay } from './replay';
import { Rng, simulate, watchLog } from './simulate';
import { checkWatch, type WatchLog, type WatchProperty } from './watch';

const seed = Number(process.env.CHECKER_SEED ?? 4242);
const sim = simulate({ seed, operations: 400, clients: 4, keys: 6, window: 20, indeterminate: 0.05, leases: true });
const replay = new Replay(sim.committed);
const last = replay.lastRevision;

function logs(rng: Rng) {
  const mid = Math.max(2, Math.floor(last / 2));
  return {
    all: watchLog(replay, { key: '\0', rangeEnd: '\0', startRevision: 1, prevKv: true, progressNotify: true }, { rng, createdRevision: 1, member: 'n1' }),
    prefixFromMid: watchLog(replay, { key: '/k/0', rangeEnd: prefixEnd('/k/0'), startRevision: mid, prevKv: true, progressNotify: true }, { rng, createdRevision: mid + 3 }),
    fromNow: watchLog(replay, { key: '\0', rangeEnd: '\0', prevKv: true }, { rng, createdRevision: mid }),
    singleKey: watchLog(replay, { key: '/k/01', startRevision: 2, prevKv: true, progressNotify: true }, { rng, createdRevision: 5 }),
    noPut: watchLog(replay, { key: '\0', rangeEnd: '\0', startRevision: 2, filters: ['noput'] }, { rng, createdRevision: 2 }),
    future: watchLog(replay, { key: '\0', rangeEnd: '\0', startRevision: last + 20, progressNotify: true }, { rng, createdRevision: last }),
  };
}

t.test(`correct watch logs are accepted (seed ${seed})`, async (t) => {
  const rng = new Rng(seed);
  for (const [name, log] of Object.entries(logs(rng))) {
    const v = checkWatch(log, replay);
    t.same(v.map((x) => x.message), [], name);
  }
  t.ok(replay.problems.length === 0, 'the simulated committed history is sound');
});

t.test('committedFromWatch rebuilds the committed history from a watch from revision 1', async (t) => {
  const log = logs(new Rng(seed)).all;
  const rebuilt = new Replay(committedFromWatch(log.responses));
  t.equal(rebuilt.lastRevision, last);
  t.same(rebuilt.problems, []);
  for (let rev = 2; rev <= last; rev++) t.same(rebuilt.eventsAt(rev), replay.eventsAt(rev), `revision ${rev}`);
  // A member whose watch skipped a revision shows up as a gap.
  const holed = structuredClone(log.responses);
  const victim = holed.find((r) => r.events.length > 0 && r.events.every((e) => e.kv.modRevision === r.events[0]!.kv.modRevision) && r.events[0]!.kv.modRevision > 2)!;
  victim.events = [];
  t.match(new Replay(committedFromWatch(holed)).problems.join('\n'), /follows/);
});

/** Applies `plant` to a fresh copy of the named log; expects `property` among the violations. */
function planted(t: Test, name: string, property: WatchProperty, which: keyof ReturnType<typeof logs>, plant: (log: WatchLog) => boolean): void {
  const log = structuredClone(logs(new Rng(seed))[which]);
  if (!plant(log)) {
    t.fail(`${name}: could not plant (seed ${seed})`);
    return;
  }
  const v = checkWatch(log, replay);
  t.ok(v.some((x) => x.property === property), `${name}: ${property} reported`, { violations: v.map((x) => `${x.property}: ${x.message}`) });
}

const withEvents = (log: WatchLog) => log.responses.map((r, i) => ({ r, i })).filter((x) => x.r.events.length > 0);

t.test('planted faults are reported', async (t) => {
  planted(t, 'duplicated event', 'Unique', 'all', (log) => {
    const x = withEvents(log)[3];
    if (!x) return false;
    const dup = structuredClone(x.r);
    log.responses.splice(x.i + 1, 0, dup);
    return true;
  });
  planted(t, 'duplicated event is also unreliable', 'Reliable', 'all', (log) => {
    const x = withEvents(log)[3];
    if (!x) return false;
    log.responses.splice(x.i + 1, 0, structuredClone(x.r));
    return true;
  });
  planted(t, 'out-of-order event', 'Ordered', 'all', (log) => {
    const xs = withEvents(log);
    if (xs.length < 6) return false;
    const a = xs[4]!.r;
    const b = xs[5]!.r;
    [a.events, b.events] = [b.events, a.events];
    a.revision = Math.max(a.revision, ...a.events.map((e) => e.kv.modRevision));
    return true;
  });
  planted(t, 'lost event', 'Reliable', 'prefixFromMid', (log) => {
    const x = withEvents(log)[1];
    if (!x) return false;
    x.r.events.shift();
    if (x.r.events.length === 0) log.responses.splice(x.i, 1);
    return true;
  });
  planted(t, 'revision split across responses', 'Atomic', 'all', (log) => {
    const x = withEvents(log).find((y) => {
      const revs = y.r.events.map((e) => e.kv.modRevision);
      return revs.some((r, j) => j > 0 && r === revs[j - 1]);
    });
    if (!x) return false;
    const revs = x.r.events.map((e) => e.kv.modRevision);
    const j = revs.findIndex((r, k) => k > 0 && r === revs[k - 1]);
    const tail = x.r.events.splice(j);
    log.responses.splice(x.i + 1, 0, { revision: x.r.revision, events: tail });
    return true;
  });
  planted(t, 'progress notification ahead of the events', 'Bookmarkable', 'all', (log) => {
    const xs = withEvents(log);
    const x = xs[5];
    if (!x) return false;
    log.responses.splice(x.i, 0, { revision: x.r.events[0]!.kv.modRevision, events: [] });
    return true;
  });
  planted(t, 'progress notification below start_revision-1', 'Bookmarkable', 'future', (log) => {
    log.responses.push({ revision: last, events: [] });
    return true;
  });
  planted(t, 'wrong prev_kv', 'PrevKV', 'all', (log) => {
    for (const { r } of withEvents(log)) {
      for (const e of r.events) {
        if (e.prevKv) {
          e.prevKv = { ...e.prevKv, value: 'not-it' };
          return true;
        }
      }
    }
    return false;
  });
  planted(t, 'update flagged as a creation', 'IsCreate', 'all', (log) => {
    for (const { r } of withEvents(log)) {
      for (const e of r.events) {
        if (e.type === 'put' && e.kv.createRevision !== e.kv.modRevision) {
          e.kv.createRevision = e.kv.modRevision;
          return true;
        }
      }
    }
    return false;
  });
  planted(t, 'event outside the watched range', 'Filter', 'singleKey', (log) => {
    const x = withEvents(log)[0];
    if (!x) return false;
    x.r.events[0]!.kv.key = '/k/02';
    return true;
  });
  planted(t, 'put delivered to a noput watch', 'Filter', 'noPut', (log) => {
    const x = withEvents(log)[0];
    if (!x) return false;
    x.r.events[0]!.type = 'put';
    return true;
  });
  planted(t, 'event below the start revision', 'Resumable', 'prefixFromMid', (log) => {
    const first = replay.eventsAt(2)[0]!;
    log.responses.splice(1, 0, { revision: 2, events: [{ type: first.type, kv: first.kv ?? { key: first.key, value: '', modRevision: 2 } }] });
    return true;
  });
  planted(t, 'first event skips the start revision', 'Resumable', 'prefixFromMid', (log) => {
    const x = withEvents(log)[0];
    if (!x) return false;
    x.r.events.shift();
    if (x.r.events.length === 0) log.responses.splice(x.i, 1);
    return true;
  });
  planted(t, 'compaction cancel that was not owed', 'Canceled', 'prefixFromMid', (log) => {
    log.responses.push({ revision: last, events: [], canceled: true, compactRevision: 3 });
    return true;
  });
  planted(t, 'events after a cancel', 'Canceled', 'all', (log) => {
    const x = withEvents(log)[2];
    if (!x) return false;
    log.responses.splice(x.i, 0, { revision: 0, events: [], canceled: true });
    return true;
  });
  planted(t, 'event beyond the committed history', 'Reliable', 'all', (log) => {
    log.responses.push({ revision: last + 1, events: [{ type: 'put', kv: { key: '/k/00', value: 'ghost', modRevision: last + 1, createRevision: last + 1, version: 1 } }] });
    return true;
  });
});

t.test('expectUniqueRevision rejects two events at one revision', async (t) => {
  const log: WatchLog = {
    request: { key: '\0', rangeEnd: '\0', startRevision: 2 },
    responses: [{ revision: 2, events: [{ type: 'put', kv: { key: 'a', value: 'x', modRevision: 2 } }, { type: 'put', kv: { key: 'b', value: 'y', modRevision: 2 } }] }],
  };
  const r = new Replay([{ revision: 2, events: [{ type: 'put', key: 'a', value: 'x' }, { type: 'put', key: 'b', value: 'y' }] }]);
  t.same(checkWatch(log, r), []);
  t.ok(checkWatch(log, r, 0, { expectUniqueRevision: true }).some((v) => v.property === 'Unique'));
});

t.test('F19 mixed, seed 1374094923: a delete at exactly a compaction revision is optional (etcd drops its tombstone), nothing else is', async (t) => {
  // The first delete in the committed history after revision 2, and a log from revision 1 missing it.
  let delRev = 0;
  for (let rev = 3; rev <= last && delRev === 0; rev++) if (replay.eventsAt(rev).some((e) => e.type === 'delete')) delRev = rev;
  t.ok(delRev > 0, `a delete to drop (seed ${seed})`);
  const log = structuredClone(logs(new Rng(seed)).all);
  let removed = 0;
  for (const r of log.responses) {
    const before = r.events.length;
    r.events = r.events.filter((e) => !(e.type === 'delete' && e.kv.modRevision === delRev));
    removed += before - r.events.length;
  }
  t.ok(removed > 0, 'the delete was in the log');
  t.ok(checkWatch(log, replay).some((v) => v.property === 'Reliable'), 'without the compaction, the gap is reported');
  t.same(checkWatch(log, replay, 0, { compactRevisions: [delRev] }).map((v) => v.message), [], 'with a compaction at that revision it is accepted');
  t.ok(checkWatch(log, replay, 0, { compactRevisions: [delRev + 1] }).some((v) => v.property === 'Reliable'), 'a compaction at another revision does not excuse it');
  // Delivered anyway (a synced watch gets it live): still fine.
  t.same(checkWatch(logs(new Rng(seed)).all, replay, 0, { compactRevisions: [delRev] }).map((v) => v.message), [], 'delivered is fine too');
});

t.test('requirePrevKv: a missing prev_kv is reported, except on an event at exactly a compaction revision', async (t) => {
  const r = new Replay([
    { revision: 2, events: [{ type: 'put', key: 'a', value: 'x' }] },
    { revision: 3, events: [{ type: 'put', key: 'a', value: 'y' }] },
    { revision: 4, events: [{ type: 'delete', key: 'a' }] },
  ]);
  const log: WatchLog = {
    request: { key: 'a', startRevision: 3, prevKv: true },
    responses: [
      { revision: 4, events: [], created: true },
      { revision: 4, events: [{ type: 'put', kv: { key: 'a', value: 'y', modRevision: 3, createRevision: 2, version: 2 }, prevKv: null }] },
      { revision: 4, events: [{ type: 'delete', kv: { key: 'a', value: '', modRevision: 4 }, prevKv: null }] },
    ],
  };
  t.same(checkWatch(log, r), [], 'not required: nil is tolerated');
  t.same(checkWatch(log, r, 0, { requirePrevKv: true }).map((v) => v.property), ['PrevKV', 'PrevKV'], 'required: both are reported');
  const excused = checkWatch(log, r, 0, { requirePrevKv: true, compactRevisions: [3] });
  t.same(excused.map((v) => v.property), ['PrevKV'], 'a compaction at 3 excuses the put at 3 only');
  t.match(excused[0]!.message, /existed at revision 3/, 'the delete at 4 is still reported');
});
