// Nemeses that need hooks in (or around) the member process (faults.md §6.5):
//
// - slow-watch (F16): failpoint beforeSendWatchResponse=sleep(200..1000) on one member, plus a few watch clients
//   that read a catch-up from revision 1 slowly (paused most of the time, so HTTP/2 flow control pushes back and
//   the server's send queue can fill, which makes MVCC hold their events back as victims) and many ordinary watchers on that member, for the hold and 2 s after the failpoint is cleared.
//   The run's own Watcher on that member must still see every event in order (the watch check).
// - clock-skew (F17): the wall clock of one member (the leader in half the cycles) jumps by ±1..60 s for the hold,
//   through the test-only clock shim (test/helpers/clock-shim.ts); the lease workload and its check run alongside.
// - compact-crash (F15): compactBeforeCommitBatch or compactAfterCommitBatch = panic on one member, then a Compact a
//   little below the current revision through another member. The members run with a compaction batch limit of 2
//   (keys and deleted revisions per batch), so the victim dies in the first of several batches; it is restarted at
//   the end of the hold and its revision must never be below the compaction (etcd #17780) and must catch up, else
//   the window's anomalies fail faultExpectations; convergence checks the rest.
//
// Each one proves it injected its fault in its window detail: the failpoint's effect measured (a watch's created
// response delayed by the sleep), the shim's own line in the member's log, the victim's exit status and panic line.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { rawClient } from '../../helpers/member';
import { CLOCK_OFFSET_DIR_ENV, clockOffsetFile } from '../../helpers/clock-shim';
import { prefixEnd } from '../checker/history';
import type { FaultCluster } from './cluster';
import { sleep } from './cluster';
import type { Nemesis, NemesisContext } from './nemesis';
import { KEY_PREFIX } from './workload';

/** What the hook nemeses need from the members and the run beyond their arguments (Nemesis.memberArgs). */
export interface HookSetup {
  env: NodeJS.ProcessEnv;
  /** Run the lease workload and the leaseExpiry check. */
  leases: boolean;
}

const CLOCK_SHIM = path.join(__dirname, '..', '..', 'helpers', 'clock-shim.js');
const clockDir = (root: string) => path.join(root, 'clock');

/** The member environment and extra workload for nemesis `kind` (`mixed`: for all of them). */
export function hookSetup(kind: string, root: string, mixed: boolean): HookSetup {
  const s: HookSetup = { env: {}, leases: false };
  if (mixed || kind === 'clock-skew') {
    s.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --require ${CLOCK_SHIM}`.trim();
    s.env[CLOCK_OFFSET_DIR_ENV] = clockDir(root);
    s.leases = true;
  }
  return s;
}

/** The member's "restored mvcc store" log line (src/mvcc/kvstore.ts) after byte `from`, if it is there. */
async function restoredStore(c: FaultCluster, i: number, from: number): Promise<{ currentRev: number; compactRev: number } | undefined> {
  const text = (await fsp.readFile(c.logFile(i)).catch(() => Buffer.alloc(0))).subarray(from).toString();
  for (const line of text.split('\n')) {
    if (!line.includes('"restored mvcc store"')) continue;
    try {
      const x = JSON.parse(line);
      return { currentRev: Number(x.currentRev), compactRev: Number(x.compactRev) };
    } catch {
      // a torn line: keep looking
    }
  }
  return undefined;
}

/** A watch on `k/` from `startRevision`; `slow` pauses the stream and reads only in short bursts. */
function extraWatch(endpoint: string, startRevision: number, slow: boolean): { received: () => number; close: () => void } {
  const client = rawClient(endpoint, 'etcdserverpb', 'Watch');
  const stream = client.Watch();
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  stream.on('data', (r: any) => {
    received++;
    // Started below the compaction: go on from there.
    if (r.canceled && Number(r.compact_revision) > 0) stream.write({ create_request: { key: Buffer.from(KEY_PREFIX), range_end: Buffer.from(prefixEnd(KEY_PREFIX)), start_revision: Number(r.compact_revision), prev_kv: true } });
  });
  stream.on('error', () => {});
  stream.write({ create_request: { key: Buffer.from(KEY_PREFIX), range_end: Buffer.from(prefixEnd(KEY_PREFIX)), start_revision: startRevision, prev_kv: true, progress_notify: true } });
  if (slow) {
    stream.pause();
    const burst = () => {
      stream.resume();
      setTimeout(() => stream.pause(), 10);
      timer = setTimeout(burst, 300 + Math.floor(received % 7) * 50);
    };
    timer = setTimeout(burst, 300);
  }
  return {
    received: () => received,
    close: () => {
      clearTimeout(timer);
      try {
        stream.cancel();
      } catch {
        // gone
      }
      client.close();
    },
  };
}

/** How long the created response of a fresh watch on member i takes (ms), or undefined if none within timeoutMs. */
function createdLatency(endpoint: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const client = rawClient(endpoint, 'etcdserverpb', 'Watch');
    const stream = client.Watch();
    const t0 = performance.now();
    const done = (v: number | undefined) => {
      clearTimeout(timer);
      try {
        stream.cancel();
      } catch {
        // gone
      }
      client.close();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    stream.on('data', (r: any) => {
      if (r.created) done(Math.round(performance.now() - t0));
    });
    stream.on('error', () => done(undefined));
    stream.write({ create_request: { key: Buffer.from(`${KEY_PREFIX}probe`), start_revision: 0 } });
  });
}

async function leaderOrRandom(ctx: NemesisContext): Promise<{ i: number; leader: boolean }> {
  const l = await ctx.cluster.leader(3000);
  return l >= 0 ? { i: l, leader: true } : { i: ctx.rng.int(0, 2), leader: false };
}

export const HOOK_NEMESES: Nemesis[] = [
  {
    name: 'slow-watch',
    matrix: 'F16',
    async inject(ctx) {
      const c = ctx.cluster;
      const i = ctx.rng.int(0, 2);
      const ms = ctx.rng.int(200, 1000);
      const before = await createdLatency(c.endpoints[i]!, 3000);
      await c.failpoint(i, 'beforeSendWatchResponse', `sleep(${ms})`);
      const after = await createdLatency(c.endpoints[i]!, ms + 3000);
      const s = await c.status(i).catch(() => undefined);
      const rev = s ? Number(s.header.revision) : 1;
      // Slow readers catch up from far back (many responses to push through a paused stream); the others start
      // near the current revision, some in the future.
      const slow = Array.from({ length: ctx.rng.int(2, 4) }, () => extraWatch(c.endpoints[i]!, 1, true));
      const many = Array.from({ length: ctx.rng.int(10, 30) }, () => extraWatch(c.endpoints[i]!, Math.max(1, rev + ctx.rng.int(-100, 20)), false));
      const detail = `beforeSendWatchResponse=sleep(${ms}) on ${c.names[i]}: a new watch's created response took ${after ?? 'more than ' + (ms + 3000)} ms (${before ?? '?'} ms before); ${slow.length} slow readers from revision 1, ${many.length} watchers from around ${rev}`;
      return {
        detail,
        heal: async () => {
          if (c.isUp(i)) await c.failpoint(i, 'beforeSendWatchResponse', undefined);
          // The sleep throttled every stream alike; without it the slow readers' catch-up from revision 1 backs up
          // their HTTP/2 windows and the server's send queues while everything else on the member goes full speed.
          await sleep(2000);
          for (const w of [...slow, ...many]) w.close();
          return `slow readers got ${slow.map((w) => w.received()).join('/')} responses, the watchers ${many.reduce((n, w) => n + w.received(), 0)}`;
        },
      };
    },
  },
  {
    name: 'clock-skew',
    matrix: 'F17',
    async inject(ctx) {
      const c = ctx.cluster;
      const pickLeader = ctx.rng.next() < 0.5;
      const { i, leader } = pickLeader ? await leaderOrRandom(ctx) : { i: ctx.rng.int(0, 2), leader: false };
      const offsetMs = ctx.rng.int(1, 60) * 1000 * (ctx.rng.next() < 0.5 ? -1 : 1);
      const file = clockOffsetFile(clockDir(c.root), c.names[i]!);
      const from = c.logSize(i);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(file, String(offsetMs));
      const sign = offsetMs >= 0 ? '+' : '';
      const seen = await c.logShows(i, `clock-shim: wall clock offset now ${sign}${offsetMs} ms`, from, 2000);
      return {
        detail: `wall clock of ${c.names[i]}${leader ? ' (leader)' : ''} ${sign}${offsetMs / 1000} s: ${seen ? "the shim's line is in its log" : 'NOT confirmed in its log within 2 s'}`,
        heal: async () => {
          await fsp.writeFile(file, '0');
        },
      };
    },
  },
  {
    name: 'compact-crash',
    matrix: 'F15 (crash during a multi-batch compaction)',
    // At most 2 keys (and about as many deleted revisions) per compaction batch: several batches, even on 5 keys.
    memberArgs: ['--experimental-compaction-batch-limit', '2'],
    async inject(ctx) {
      const c = ctx.cluster;
      const anomalies: string[] = [];
      const i = ctx.rng.int(0, 2);
      const via = ctx.rng.pick([0, 1, 2].filter((j) => j !== i));
      const fp = ctx.rng.pick(['compactBeforeCommitBatch', 'compactAfterCommitBatch']);
      const p = c.procs[i];
      if (!p) return { detail: `${c.names[i]} is down; nothing injected`, heal: async () => {} };
      const s = await c.status(via);
      const rev = Number(s.header.revision);
      const target = Math.max(2, rev - ctx.rng.int(5, 30));
      const from = c.logSize(i);
      await c.failpoint(i, fp, 'panic');
      const kv = rawClient(c.endpoints[via]!, 'etcdserverpb', 'KV');
      const out = await ctx.recorder.run(ctx.recorder.newClientId(), kv, c.names[via]!, { type: 'compact', revision: target }, 5000);
      kv.close();
      const code = await Promise.race([p.exited, sleep(5000).then(() => 'alive' as const)]);
      const panicked = code === 2 && (await c.logShows(i, `panic: failpoint ${fp}`, from, 1000));
      if (code === 'alive') await c.failpoint(i, fp, undefined).catch(() => {});
      const detail = `${fp}=panic on ${c.names[i]}, compact ${target} via ${c.names[via]} (${out === undefined ? 'failed' : JSON.stringify(out)}): ${panicked ? `${c.names[i]} panicked in the compaction (exit 2)` : code === 'alive' ? 'did not fire within 5 s; cleared' : `exit ${code} without the panic line`}`;
      return {
        detail,
        anomalies,
        heal: async () => {
          if (c.isUp(i)) return 'it was up already';
          const restartedFrom = c.logSize(i);
          await c.restart(i);
          // What the member restored from its backend, before Raft replays anything. If that includes the
          // compaction it crashed in (persisted with the consistent index, so it is resumed at open), every revision
          // up to the compaction must be there too (etcd #17780). If not, the crash came before the compaction was
          // persisted and the Compact entry is replayed from the WAL with everything before it.
          const restored = await restoredStore(c, i, restartedFrom);
          const resumed = await c.logShows(i, `"resume scheduled compaction","scheduledCompactRev":${target}`, restartedFrom, 1000);
          if (!restored) anomalies.push(`${c.names[i]}'s log has no "restored mvcc store" line after its restart`);
          else if (resumed && restored.currentRev < target) anomalies.push(`${c.names[i]} resumed the compaction at ${target} but restored revision ${restored.currentRev}, below it`);
          // Then it must catch up with the revision the cluster had before the crash.
          const deadline = Date.now() + 10_000;
          let now = 0;
          while (now < rev && Date.now() < deadline) {
            now = await c.status(i).then((x) => Number(x.header.revision), () => now);
            if (now < rev) await sleep(200);
          }
          if (now < rev) anomalies.push(`${c.names[i]} stayed at revision ${now} after its restart, below the ${rev} the cluster had before the crash`);
          return `restored revision ${restored?.currentRev} (compacted ${restored?.compactRev})${resumed ? ' and resumed the compaction' : ', the Compact entry replayed from the WAL'}, caught up to ${now} (cluster was at ${rev})`;
        },
      };
    },
  },
];
