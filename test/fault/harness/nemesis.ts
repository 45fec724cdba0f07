// Nemeses: the faults a run injects, each as inject() → a heal function. The schedule (which victim, how long,
// the gaps) comes from the run's seeded Rng. Every fault window is recorded (name, detail, start, end in run ms)
// and goes into the history file and the timeline. Ids refer to docs/faults.md §6.5 (F-numbers).

import type { FaultCluster } from './cluster';
import { sleep } from './cluster';
import type { Rng } from './rng';
import type { Clock, Recorder } from './workload';
import { rawClient } from '../../helpers/member';
import { blackholeUntilSnapshot, flakyNetwork, isolateLeader, snapshotCrash } from './nemesis-net';
import { DISK_NEMESES } from './nemesis-disk';
import { HOOK_NEMESES } from './nemesis-hooks';

export interface FaultWindow {
  nemesis: string;
  detail: string;
  start: number;
  end?: number;
  error?: string;
  /** What the nemesis itself found wrong with the cluster's reaction (e.g. C7: a member did not restart). */
  anomaly?: string;
}

export interface NemesisContext {
  cluster: FaultCluster;
  rng: Rng;
  clock: Clock;
  recorder: Recorder;
  log: (msg: string) => void;
}

export interface Nemesis {
  name: string;
  /** The faults.md matrix row it covers. */
  matrix: string;
  needsNetns?: boolean;
  /** The cluster must run with peer proxies (cluster.ts peerProxy). */
  peerProxy?: boolean;
  /** Extra bin/etcd arguments the members need for this fault. */
  memberArgs?: string[];
  /** The members must run under the power-loss shim (slows every write, so 'mixed' does not offer this nemesis). */
  powerLoss?: boolean;
  /** How long the fault lasts, ms, instead of the run's schedule. */
  holdMs?: [number, number];
  /** Member log lines this fault causes on purpose (a refusal to start): not a serverLogs problem (C8). */
  expectedLogLines?: RegExp[];
  /** Injects the fault; returns a description, the function that ends it (which may update `detail` or return what
   * it saw, appended to the window's detail), and a list inject or heal may add anomalies to (they fail the run:
   * check faultExpectations). */
  inject(ctx: NemesisContext): Promise<{ detail: string; heal: () => Promise<void | string>; anomalies?: string[] }>;
}

const others = (i: number) => [0, 1, 2].filter((j) => j !== i);

async function leaderOrRandom(ctx: NemesisContext): Promise<number> {
  const l = await ctx.cluster.leader(3000);
  return l >= 0 ? l : ctx.rng.int(0, 2);
}

async function followerOrRandom(ctx: NemesisContext): Promise<number> {
  const l = await ctx.cluster.leader(3000);
  return l >= 0 ? ctx.rng.pick(others(l)) : ctx.rng.int(0, 2);
}

/** Restart a member that is down (a crash nemesis's heal); tolerate it being up already. */
async function restart(ctx: NemesisContext, i: number): Promise<void> {
  if (!ctx.cluster.isUp(i)) await ctx.cluster.restart(i);
}

const killNemesis = (name: string, matrix: string, choose: (ctx: NemesisContext) => Promise<number[]>): Nemesis => ({
  name,
  matrix,
  async inject(ctx) {
    const victims = await choose(ctx);
    await Promise.all(victims.map((i) => ctx.cluster.kill(i)));
    return {
      detail: `kill -9 ${victims.map((i) => ctx.cluster.names[i]).join(',')}`,
      heal: async () => {
        await Promise.all(victims.map((i) => restart(ctx, i)));
      },
    };
  },
});

const pauseNemesis = (name: string, matrix: string, choose: (ctx: NemesisContext) => Promise<number>): Nemesis => ({
  name,
  matrix,
  async inject(ctx) {
    const i = await choose(ctx);
    ctx.cluster.pause(i);
    return { detail: `SIGSTOP ${ctx.cluster.names[i]}`, heal: async () => ctx.cluster.resume(i) };
  },
});

const isolateNemesis = (name: string, matrix: string, choose: (ctx: NemesisContext) => Promise<number>): Nemesis => ({
  name,
  matrix,
  needsNetns: true,
  async inject(ctx) {
    const i = await choose(ctx);
    await ctx.cluster.net!.isolate(i);
    return { detail: `blackhole ${ctx.cluster.names[i]} <-> peers (clients still reach it)`, heal: () => ctx.cluster.net!.heal() };
  },
});

/** Failpoints whose `panic` crashes a member in the write or apply path (F4). */
export const CRASH_FAILPOINTS = ['beforeApply', 'afterApply', 'raftBeforeSave', 'raftAfterSave', 'walBeforeSync', 'walAfterSync'];

export const NEMESES: Nemesis[] = [
  killNemesis('kill-random', 'F1', async (ctx) => [ctx.rng.int(0, 2)]),
  killNemesis('kill-leader', 'F2', async (ctx) => [await leaderOrRandom(ctx)]),
  killNemesis('kill-all', 'F3', async () => [0, 1, 2]),
  {
    name: 'failpoint-crash',
    matrix: 'F4',
    async inject(ctx) {
      const i = ctx.rng.int(0, 2);
      const fp = ctx.rng.pick(CRASH_FAILPOINTS);
      const p = ctx.cluster.procs[i];
      await ctx.cluster.failpoint(i, fp, 'panic');
      // It fires on the next write that reaches it (the workload writes continuously).
      const fired = p ? await Promise.race([p.exited.then(() => true), sleep(5000).then(() => false)]) : false;
      if (!fired) await ctx.cluster.failpoint(i, fp, undefined).catch(() => {});
      return {
        detail: `${fp}=panic on ${ctx.cluster.names[i]}${fired ? '' : ' (did not fire within 5 s; cleared)'}`,
        heal: () => restart(ctx, i),
      };
    },
  },
  pauseNemesis('pause-leader', 'F6', leaderOrRandom),
  pauseNemesis('pause-follower', 'F7', followerOrRandom),
  isolateNemesis('partition-member', 'F8', async (ctx) => ctx.rng.int(0, 2)),
  isolateNemesis('partition-leader', 'F10', leaderOrRandom),
  {
    name: 'partition-bridge',
    matrix: 'F11',
    needsNetns: true,
    async inject(ctx) {
      // Cut one pair only: the third member still talks to both (a non-transitive partition).
      const i = ctx.rng.int(0, 2);
      const j = ctx.rng.pick(others(i));
      await ctx.cluster.net!.cut(i, j);
      return { detail: `blackhole ${ctx.cluster.names[i]} <-> ${ctx.cluster.names[j]}`, heal: () => ctx.cluster.net!.heal() };
    },
  },
  {
    name: 'slow-disk',
    matrix: 'F13',
    async inject(ctx) {
      const i = ctx.rng.next() < 0.5 ? await leaderOrRandom(ctx) : ctx.rng.int(0, 2);
      const ms = ctx.rng.pick([200, 500, 1000]);
      await ctx.cluster.failpoint(i, 'walBeforeSync', `sleep(${ms})`);
      return {
        detail: `walBeforeSync=sleep(${ms}) on ${ctx.cluster.names[i]}`,
        heal: async () => {
          if (ctx.cluster.isUp(i)) await ctx.cluster.failpoint(i, 'walBeforeSync', undefined);
        },
      };
    },
  },
  {
    name: 'move-leader',
    matrix: 'F14 (MoveLeader only)',
    async inject(ctx) {
      const l = await ctx.cluster.leader(3000);
      if (l < 0) return { detail: 'no leader to move', heal: async () => {} };
      const target = ctx.rng.pick(others(l));
      await ctx.cluster.learnIds();
      let detail = `MoveLeader ${ctx.cluster.names[l]} -> ${ctx.cluster.names[target]}`;
      try {
        await ctx.cluster.maintenance(l, 'MoveLeader', { targetID: ctx.cluster.memberIds[target] }, 10_000);
      } catch (err: any) {
        detail += ` (failed: ${err?.details ?? err})`;
      }
      return { detail, heal: async () => {} };
    },
  },
  {
    name: 'compact-defrag',
    matrix: 'F15 (compaction + defrag under load; no compaction failpoints)',
    async inject(ctx) {
      const i = ctx.rng.int(0, 2);
      const s = await ctx.cluster.status(i).catch(() => undefined);
      const rev = s ? Number(s.header.revision) : 0;
      // A compaction a little below the current revision, recorded as an operation of its own client.
      const target = Math.max(1, rev - ctx.rng.int(5, 30));
      const kv = rawClient(ctx.cluster.endpoints[i]!, 'etcdserverpb', 'KV');
      const out = await ctx.recorder.run(ctx.recorder.newClientId(), kv, ctx.cluster.names[i]!, { type: 'compact', revision: target }, 5000);
      kv.close();
      let defrag = 'defragment ok';
      try {
        await ctx.cluster.maintenance(i, 'Defragment', {}, 10_000);
      } catch (err: any) {
        defrag = `defragment failed: ${err?.details ?? err}`;
      }
      return { detail: `compact ${target} on ${ctx.cluster.names[i]} (${out === undefined ? 'failed' : JSON.stringify(out)}); ${defrag}`, heal: async () => {} };
    },
  },
  flakyNetwork,
  isolateLeader,
  blackholeUntilSnapshot,
  snapshotCrash,
  ...DISK_NEMESES,
  // slow-watch (F16), clock-skew (F17), compact-crash (F15): ./nemesis-hooks.ts
  ...HOOK_NEMESES,
];

/** F19: every cycle picks one of the others. */
export const MIXED = 'mixed';

export function nemesisByName(name: string): Nemesis | undefined {
  return NEMESES.find((n) => n.name === name);
}

/** What the cluster must provide for a run of `kind`: 'mixed' gets what every nemesis needs. */
export function clusterNeeds(kind: string): { peerProxy: boolean; memberArgs: string[]; powerLoss: boolean } {
  const ns = kind === MIXED ? NEMESES.filter((n) => !n.powerLoss) : [nemesisByName(kind)].filter((n): n is Nemesis => n !== undefined);
  // Flag → value, so that two nemeses asking for the same flag do not repeat it.
  const args = new Map<string, string>();
  for (const n of ns) for (let i = 0; i + 1 < (n.memberArgs ?? []).length; i += 2) args.set(n.memberArgs![i]!, n.memberArgs![i + 1]!);
  return { peerProxy: ns.some((n) => n.peerProxy), memberArgs: [...args].flat(), powerLoss: ns.some((n) => n.powerLoss) };
}

export interface ScheduleOptions {
  /** Total time of the fault phase, ms. */
  durationMs: number;
  /** How long a fault lasts, ms. */
  holdMs: [number, number];
  /** Quiet time between faults, ms. */
  gapMs: [number, number];
}

/**
 * Runs faults of the given kind (or 'mixed', or 'none') until `durationMs` has passed or stop() is called, each
 * healed before the next; records every window. Heals whatever is open if anything throws.
 */
export class NemesisRunner {
  readonly windows: FaultWindow[] = [];
  private stopped = false;
  private done: Promise<void> | undefined;

  constructor(private readonly kind: string, private readonly ctx: NemesisContext, private readonly o: ScheduleOptions) {}

  available(): Nemesis[] {
    return NEMESES.filter((n) => (!n.needsNetns || this.ctx.cluster.net) && (!n.peerProxy || this.ctx.cluster.proxies.length > 0) && (!n.powerLoss || this.ctx.cluster.powerLossJournal(0)));
  }

  start(): void {
    this.done = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  private async wait(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopped && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
  }

  private async run(): Promise<void> {
    if (this.kind === 'none') return;
    const { rng, clock, log } = this.ctx;
    const end = Date.now() + this.o.durationMs;
    while (!this.stopped && Date.now() < end) {
      await this.wait(rng.int(this.o.gapMs[0], this.o.gapMs[1]));
      if (this.stopped || Date.now() >= end) break;
      const n = this.kind === MIXED ? rng.pick(this.available()) : nemesisByName(this.kind)!;
      const w: FaultWindow = { nemesis: n.name, detail: '', start: clock.now() };
      this.windows.push(w);
      let heal: (() => Promise<void | string>) | undefined;
      let injected: { detail: string; anomalies?: string[] } | undefined;
      try {
        const r = await n.inject(this.ctx);
        w.detail = r.detail;
        heal = r.heal;
        injected = r;
        log(`  nemesis ${n.name}: ${r.detail}`);
        const [holdMin, holdMax] = n.holdMs ?? this.o.holdMs;
        await this.wait(rng.int(holdMin, holdMax));
      } catch (err: any) {
        w.error = String(err?.message ?? err);
        log(`  nemesis ${n.name} failed: ${w.error}`);
      } finally {
        let seen: void | string = undefined;
        try {
          seen = await heal?.();
        } catch (err: any) {
          w.error = `${w.error ? w.error + '; ' : ''}heal: ${err?.message ?? err}`;
          log(`  nemesis ${n.name} heal failed: ${err?.message ?? err}`);
        }
        // A heal may add to what happened (the ID a replaced member got, what the proxies counted) and to the
        // anomalies found.
        if (injected) w.detail = injected.detail;
        if (seen) {
          w.detail += `; ${seen}`;
          log(`  nemesis ${n.name} healed: ${seen}`);
        }
        if (injected?.anomalies?.length) {
          w.anomaly = injected.anomalies.join('; ');
          log(`  nemesis ${n.name} anomaly: ${w.anomaly}`);
        }
        w.end = clock.now();
      }
    }
  }
}
