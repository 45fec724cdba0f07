// One fault run (issue #7): start three bin/etcd members, run a workload (W-KV, ./workload.ts, or the
// kube-apiserver-like W-K8s, ./k8s-workload.ts) and the watchers while a nemesis injects faults, heal, make a final
// write that must succeed, then run the checkers (../checker) and write the run directory:
//
//   <dir>/history.jsonl     one operation per line (the checker's format; see encodeLine), then the fault windows
//                           as lines {"nemesis": ...}
//   <dir>/watch-<member>.jsonl  one WatchLog per line (every watch stream of that member's watcher)
//   <dir>/watch-listwatch.jsonl the k8s workload's ListAndWatch streams
//   <dir>/committed.json    the committed history the replay was built from
//   <dir>/logs/<member>.log every start of that member's process
//   <dir>/summary.json      seed, options, counts, fault windows, the checkers' verdicts
//   <dir>/timeline.svg, timeline.html, timeline.png
//   <dir>/clock/<member>    the member's wall-clock offset, ms (clock-skew, mixed: ./nemesis-hooks.ts)
//
// Everything started is stopped in a finally block, failures included. Data dirs are removed unless keepData.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  checkConvergence,
  checkFinalState,
  checkMemberLists,
  checkLinearizable,
  checkNoLostWrites,
  checkPerKey,
  checkRevisionOracle,
  checkWatches,
  committedFromWatch,
  type CommittedRevision,
  describeOperation,
  type FinalRead,
  type History,
  type MemberStatus,
  patchHistory,
  prefixEnd,
  Replay,
  type WatchLog,
} from '../checker';
import { FaultCluster, sleep } from './cluster';
import { clusterNeeds, MIXED, NemesisRunner, nemesisByName, type FaultWindow } from './nemesis';
import { Rng } from './rng';
import { timelineHtml, timelinePng, timelineSvg } from './timeline';
import { Clock, collectFromRevision1, KEY_PREFIX, KvWorkload, Recorder, toKv, Watcher, type HarnessOp } from './workload';
import { K8sWorkload } from './k8s-workload';
import { rawClient } from '../../helpers/member';
import { afterStopChecks, leaseExpiryCheck, startLeaseWorkload, stopLeaseWorkload } from './hooks-run';
import type { LeaseWorkload } from './lease-workload';
import { hookSetup } from './nemesis-hooks';

export interface RunOptions {
  seed: number;
  nemesis: string;
  /** 'kv' (W-KV, the default) or 'k8s' (W-K8s). */
  workload?: 'kv' | 'k8s';
  durationMs: number;
  dir: string;
  netns?: boolean;
  /** Extra environment for the members (the deliberately broken build: TSETCD_UNSAFE_LOCAL_READS=1). */
  env?: NodeJS.ProcessEnv;
  /** Budget of the global linearizability check, ms. */
  linTimeoutMs?: number;
  clientsPerMember?: number;
  keys?: number;
  holdMs?: [number, number];
  gapMs?: [number, number];
  keepData?: boolean;
  /** Peer proxies in front of the members even if the nemesis does not need them (the same faults through them). */
  peerProxy?: boolean;
  log?: (msg: string) => void;
}

export type Verdict = 'ok' | 'anomaly' | 'unknown' | 'skipped' | 'error';

export interface CheckResult {
  verdict: Verdict;
  detail?: string;
  problems?: string[];
  ms?: number;
}

export interface RunSummary {
  seed: number;
  nemesis: string;
  workload: string;
  durationMs: number;
  netns: boolean | string;
  env: Record<string, string>;
  dir: string;
  replay: string;
  startedAt: string;
  wallMs: number;
  operations: { total: number; ok: number; failedReads: number; indeterminate: number; clients: number; qps: number };
  watch: { streams: number; responses: number; events: number };
  /** What the workload did beyond the history (the k8s ListAndWatch streams and why they ended). */
  workloadDetail?: string;
  faults: FaultWindow[];
  finalWrite: boolean;
  checks: Record<string, CheckResult>;
  /** 'ok' only if every check is ok; 'anomaly' if any found one; otherwise 'unknown' (or 'error'). */
  verdict: Verdict;
  anomalies: string[];
  error?: string;
}

/** JSON with bigint ("123n" as {"$bigint":"123"}) and Infinity ("Infinity") preserved. */
export function encodeLine(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? { $bigint: String(v) } : v === Infinity ? 'Infinity' : v));
}
export function decodeLine(s: string): any {
  return JSON.parse(s, (_k, v) => (v && typeof v === 'object' && typeof v.$bigint === 'string' ? BigInt(v.$bigint) : v === 'Infinity' ? Infinity : v));
}

/** Reads a run directory's history.jsonl back: the operations and the fault windows. */
export function readHistory(file: string): { ops: HarnessOp[]; faults: FaultWindow[] } {
  const ops: HarnessOp[] = [];
  const faults: FaultWindow[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const x = decodeLine(line);
    if (x.nemesis !== undefined) faults.push(x);
    else ops.push(x);
  }
  return { ops, faults };
}

function short(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** The committed history for the replay: a fresh watch from revision 1 if the store was never compacted below
 * what is needed, else the union of every recorded watch stream (events grouped by revision, first seen wins). */
async function committedHistory(cluster: FaultCluster, finalRev: number, logs: readonly WatchLog[]): Promise<{ committed: CommittedRevision[]; source: string }> {
  for (let i = 0; i < 3; i++) {
    const r = await collectFromRevision1(cluster.endpoints[i]!, finalRev, 20_000);
    if (!r.error) return { committed: committedFromWatch(r.responses), source: `watch from revision 1 on ${cluster.names[i]}` };
    if (r.error.startsWith('canceled')) break;
  }
  const byRev = new Map<number, CommittedRevision>();
  for (const l of logs) {
    for (const resp of l.responses) {
      const revs = new Map<number, CommittedRevision>();
      for (const e of resp.events) {
        const rev = e.kv.modRevision;
        let c = revs.get(rev);
        if (!c) revs.set(rev, (c = { revision: rev, events: [] }));
        c.events.push(e.type === 'put' ? { type: 'put', key: e.kv.key, value: e.kv.value, lease: e.kv.lease ?? 0n } : { type: 'delete', key: e.kv.key });
      }
      for (const [rev, c] of revs) if (!byRev.has(rev)) byRev.set(rev, c);
    }
  }
  return { committed: [...byRev.values()].sort((a, b) => a.revision - b.revision), source: 'union of the recorded watch streams (the store was compacted)' };
}

function timed<T>(f: () => T): { value: T; ms: number } {
  const t = performance.now();
  const value = f();
  return { value, ms: Math.round(performance.now() - t) };
}

export async function runOne(o: RunOptions): Promise<RunSummary> {
  const log = o.log ?? ((m: string) => console.log(m));
  const started = Date.now();
  const rng = new Rng(o.seed);
  const clock = new Clock();
  const recorder = new Recorder(clock);
  await fsp.mkdir(o.dir, { recursive: true });
  const summary: RunSummary = {
    seed: o.seed,
    nemesis: o.nemesis,
    workload: o.workload ?? 'kv',
    durationMs: o.durationMs,
    netns: false,
    env: Object.fromEntries(Object.entries(o.env ?? {}).map(([k, v]) => [k, String(v)])),
    dir: o.dir,
    replay: `npm run faults -- --seed ${o.seed} --nemesis ${o.nemesis}${o.workload === 'k8s' ? ' --workload k8s' : ''} --duration ${o.durationMs / 1000}${o.env?.TSETCD_UNSAFE_LOCAL_READS ? ' --unsafe-local-reads' : ''}${o.netns === false ? ' --no-netns' : ''}${o.peerProxy ? ' --peer-proxy' : ''}`,
    startedAt: new Date(started).toISOString(),
    wallMs: 0,
    operations: { total: 0, ok: 0, failedReads: 0, indeterminate: 0, clients: 0, qps: 0 },
    watch: { streams: 0, responses: 0, events: 0 },
    faults: [],
    finalWrite: false,
    checks: {},
    verdict: 'error',
    anomalies: [],
  };
  if (o.nemesis !== 'none' && o.nemesis !== MIXED && !nemesisByName(o.nemesis)) throw new Error(`unknown nemesis ${o.nemesis}`);
  log(`run ${path.basename(o.dir)}: seed ${o.seed}, nemesis ${o.nemesis}, workload ${summary.workload}, ${short(o.durationMs)}`);
  const needs = clusterNeeds(o.nemesis);
  const hooks = hookSetup(o.nemesis, o.dir, o.nemesis === MIXED);
  const cluster = await FaultCluster.create({ root: o.dir, netns: o.netns, env: { ...o.env, ...hooks.env }, log, seed: o.seed, peerProxy: needs.peerProxy || o.peerProxy, extraArgs: needs.memberArgs, powerLoss: needs.powerLoss });
  summary.netns = cluster.net ? true : `no (${cluster.netnsWhy})`;
  const watchers = cluster.endpoints.map((e, i) => new Watcher(e, cluster.names[i]!, clock));
  let workload: KvWorkload | K8sWorkload | undefined;
  let nemesis: NemesisRunner | undefined;
  let leases: LeaseWorkload | undefined;
  try {
    const nem = nemesisByName(o.nemesis);
    if (nem?.needsNetns && !cluster.net) throw new Error(`nemesis ${o.nemesis} needs network namespaces: ${cluster.netnsWhy}`);
    await cluster.startAll();
    for (const w of watchers) w.start();
    const common = { endpoints: cluster.endpoints, names: cluster.names, clientsPerMember: o.clientsPerMember ?? 2, timeoutMs: 1500, thinkMs: [5, 25] as [number, number], rng: rng.fork(1) };
    workload = o.workload === 'k8s'
      ? new K8sWorkload(recorder, { ...common, keys: o.keys ?? 8, pageSize: 3, compactEveryMs: [2000, 4000], clock })
      : new KvWorkload(recorder, { ...common, keys: o.keys ?? 5 });
    workload.start();
    if (hooks.leases) leases = startLeaseWorkload(cluster, clock, rng.fork(3));
    nemesis = new NemesisRunner(o.nemesis, { cluster, rng: rng.fork(2), clock, recorder, log }, {
      durationMs: Math.max(0, o.durationMs - 1000),
      holdMs: o.holdMs ?? [1000, 4000],
      gapMs: o.gapMs ?? [1000, 2500],
    });
    await sleep(1000); // traffic before the first fault
    nemesis.start();
    await sleep(Math.max(0, o.durationMs - 1000));
    await nemesis.stop();
    await workload.stop();
    await stopLeaseWorkload(leases);
  } catch (err: any) {
    summary.error = String(err?.stack ?? err);
    log(`  error: ${err?.message ?? err}`);
  } finally {
    await nemesis?.stop().catch(() => {});
    await workload?.stop().catch(() => {});
    await stopLeaseWorkload(leases).catch(() => {});
  }
  summary.faults = nemesis?.windows ?? [];
  // C7 and the like: what the nemeses found when they checked the cluster's reaction to a fault (a member that did
  // not restart, or one that served after damage it must refuse). Recorded before healing, which may fail on it.
  const flagged = summary.faults.filter((w) => w.anomaly);
  summary.checks.faultExpectations = {
    verdict: flagged.length ? 'anomaly' : 'ok',
    detail: `${summary.faults.length} fault windows`,
    problems: flagged.length ? flagged.slice(0, 20).map((w) => `${w.nemesis} at ${short(w.start)}: ${w.anomaly}`) : undefined,
  };

  try {
    if (summary.error) throw new Error('run failed before checking');
    // Heal: everything resumed and running, then the final write must succeed (liveness).
    for (let i = 0; i < 3; i++) cluster.resume(i);
    await cluster.healNetwork();
    for (let i = 0; i < 3; i++) if (!cluster.isUp(i)) await cluster.restart(i);
    const client = recorder.newClientId();
    let finalRev = 0;
    const deadline = Date.now() + 30_000;
    let id = client;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const i = attempt % 3;
      const kv = rawClient(cluster.endpoints[i]!, 'etcdserverpb', 'KV');
      const out = await recorder.run(id, kv, cluster.names[i]!, { type: 'put', key: `${KEY_PREFIX}tombstone`, value: `tombstone.${attempt}` }, 3000);
      kv.close();
      if (out) {
        finalRev = (out as { revision: number }).revision;
        break;
      }
      id = recorder.newClientId();
      await sleep(500);
    }
    summary.finalWrite = finalRev > 0;
    if (!summary.finalWrite) {
      summary.checks.liveness = { verdict: 'anomaly', detail: 'the final write did not succeed within 30 s of healing' };
      throw new Error('no final write');
    }
    summary.checks.liveness = { verdict: 'ok', detail: `final write at revision ${finalRev}` };
    // Every member at the final revision (or 30 s passed: convergence reports it).
    const until = Date.now() + 30_000;
    for (let i = 0; i < 3; i++) {
      for (;;) {
        const s = await cluster.status(i).catch(() => undefined);
        if ((s && Number(s.header.revision) >= finalRev) || Date.now() > until) break;
        await sleep(200);
      }
    }
    await Promise.all(watchers.map((w) => w.stopAt(finalRev, 15_000)));
  } catch (err: any) {
    if (!summary.error) summary.error = String(err?.message ?? err);
  }

  const history = recorder.ops;
  const listWatchLogs = workload instanceof K8sWorkload ? workload.watchLogs.filter((l) => l.responses.length > 0) : [];
  const watchLogs = [...watchers.flatMap((w) => w.logs).filter((l) => l.responses.length > 0), ...listWatchLogs];
  if (workload instanceof K8sWorkload) summary.workloadDetail = workload.describe();
  try {
    if (summary.finalWrite) await check(cluster, history, watchLogs, summary, o, log);
  } catch (err: any) {
    summary.checks.harness = { verdict: 'error', detail: String(err?.stack ?? err) };
  } finally {
    await cluster.destroy();
  }
  if (leases && summary.finalWrite) summary.checks.leaseExpiry = leaseExpiryCheck(leases, summary.faults);
  await afterStopChecks(cluster, summary.faults, summary.checks);

  // Artefacts.
  const ok = history.filter((x) => x.output !== undefined).length;
  const failedReads = history.filter((x) => x.output === undefined && x.input.type === 'range').length;
  summary.operations = {
    total: history.length,
    ok,
    failedReads,
    indeterminate: history.length - ok - failedReads,
    clients: new Set(history.map((x) => x.client)).size,
    qps: Math.round(history.length / (o.durationMs / 1000)),
  };
  summary.watch = { streams: watchLogs.length, responses: watchLogs.reduce((n, l) => n + l.responses.length, 0), events: watchLogs.reduce((n, l) => n + l.responses.reduce((m, r) => m + r.events.length, 0), 0) };
  const verdicts = Object.values(summary.checks).map((c) => c.verdict);
  summary.verdict = verdicts.includes('anomaly') ? 'anomaly' : summary.error || verdicts.includes('error') ? 'error' : verdicts.includes('unknown') ? 'unknown' : 'ok';
  summary.anomalies = Object.entries(summary.checks).filter(([, c]) => c.verdict === 'anomaly').map(([k]) => k);
  summary.wallMs = Date.now() - started;
  await fsp.writeFile(path.join(o.dir, 'history.jsonl'), [...history.map(encodeLine), ...summary.faults.map(encodeLine)].join('\n') + '\n');
  for (const w of watchers) {
    await fsp.writeFile(path.join(o.dir, `watch-${w.member}.jsonl`), w.logs.filter((l) => l.responses.length > 0).map(encodeLine).join('\n') + '\n');
  }
  if (listWatchLogs.length) await fsp.writeFile(path.join(o.dir, 'watch-listwatch.jsonl'), listWatchLogs.map(encodeLine).join('\n') + '\n');
  await fsp.writeFile(path.join(o.dir, 'summary.json'), JSON.stringify(JSON.parse(encodeLine(summary)), null, 2) + '\n');
  const svg = timelineSvg(history, summary.faults, `seed ${o.seed} · ${o.nemesis} · ${summary.workload} · ${summary.verdict}${summary.anomalies.length ? ` (${summary.anomalies.join(', ')})` : ''}`);
  await fsp.writeFile(path.join(o.dir, 'timeline.svg'), svg);
  await fsp.writeFile(path.join(o.dir, 'timeline.png'), timelinePng(svg));
  await fsp.writeFile(path.join(o.dir, 'timeline.html'), timelineHtml(svg, summary));
  if (!o.keepData) await fsp.rm(path.join(o.dir, 'data'), { recursive: true, force: true });
  log(`  ${summary.verdict}${summary.anomalies.length ? ` (${summary.anomalies.join(', ')})` : ''}: ${summary.operations.total} ops (${summary.operations.indeterminate} indeterminate, ${summary.operations.failedReads} failed reads), ${summary.faults.length} faults, ${short(summary.wallMs)} → ${o.dir}`);
  return summary;
}

async function check(cluster: FaultCluster, history: History, watchLogs: WatchLog[], summary: RunSummary, o: RunOptions, log: (m: string) => void): Promise<void> {
  const checks = summary.checks;
  // Convergence: same revision, compact revision and HashKV on every member.
  const statuses = await Promise.all([0, 1, 2].map((i) => cluster.status(i).catch(() => undefined)));
  const revs = statuses.map((s) => (s ? Number(s.header.revision) : 0));
  const hashRev = Math.max(...revs);
  const members: MemberStatus[] = [];
  const finals: FinalRead[] = [];
  for (let i = 0; i < 3; i++) {
    const name = cluster.names[i]!;
    try {
      const h = await cluster.maintenance(i, 'HashKV', { revision: hashRev }, 10_000);
      members.push({ member: name, revision: revs[i]!, compactRevision: Number(h.compact_revision), hash: Number(h.hash), hashRevision: Number(h.hash_revision) });
    } catch (err: any) {
      members.push({ member: name, revision: revs[i]!, compactRevision: -1 });
    }
    const kv = rawClient(cluster.endpoints[i]!, 'etcdserverpb', 'KV');
    try {
      const r = await new Promise<any>((res, rej) => kv.Range({ key: Buffer.from(KEY_PREFIX), range_end: Buffer.from(prefixEnd(KEY_PREFIX)) }, { deadline: Date.now() + 10_000 }, (e: any, x: any) => (e ? rej(e) : res(x))));
      finals.push({ member: name, revision: Number(r.header.revision), kvs: r.kvs.map(toKv) });
    } catch {
      // reported below
    } finally {
      kv.close();
    }
  }
  const conv = checkConvergence(members).map((p) => p.message);
  if (finals.length < 3) conv.push(`only ${finals.length} of 3 members answered the final read`);
  // The membership too (F14 replaces members): every member's own list, equal, and the three the harness started.
  const lists = await Promise.all([0, 1, 2].map(async (i) => ({ member: cluster.names[i]!, members: await cluster.memberList(i).catch(() => undefined) })));
  for (const l of lists) if (!l.members) conv.push(`${l.member} did not answer MemberList`);
  await cluster.learnIds();
  const expectedIds = cluster.memberIds.map((id, i) => id ?? `(unknown id of ${cluster.names[i]})`);
  conv.push(...checkMemberLists(lists.flatMap((l) => (l.members ? [{ member: l.member, members: l.members }] : [])), expectedIds).map((p) => p.message));
  const listed = lists.find((l) => l.members)?.members ?? [];
  checks.convergence = {
    verdict: conv.length ? 'anomaly' : 'ok',
    problems: conv.slice(0, 20),
    detail: `${members.map((m) => `${m.member}: rev ${m.revision} compact ${m.compactRevision} hash ${m.hash}@${m.hashRevision}`).join('; ')}; members ${listed.map((m) => `${m.name}=${m.id}${m.isLearner ? ' (learner)' : ''}`).join(', ')}`,
  };

  const lost = finals.flatMap((f) => checkNoLostWrites(history, f).map((p) => p.message));
  checks.noLostWrites = { verdict: lost.length ? 'anomaly' : 'ok', problems: lost.slice(0, 20) };

  // The committed history and the checks against it.
  const { committed, source } = await committedHistory(cluster, hashRev, watchLogs);
  await fsp.writeFile(path.join(o.dir, 'committed.json'), encodeLine({ source, committed }) + '\n');
  const replay = new Replay(committed);
  checks.committedHistory = { verdict: replay.problems.length ? 'anomaly' : 'ok', detail: `${committed.length} revisions from ${source}`, problems: replay.problems.slice(0, 20) };
  const fin = checkFinalState(replay, finals).map((p) => p.message);
  checks.finalState = { verdict: fin.length ? 'anomaly' : 'ok', problems: fin.slice(0, 20) };

  const oracle = timed(() => checkRevisionOracle(history, replay));
  checks.revisionOracle = {
    verdict: oracle.value.ok ? 'ok' : 'anomaly',
    ms: oracle.ms,
    problems: oracle.value.violations.slice(0, 20).map((v) => `${v.kind}: ${v.message}`),
  };
  // Every compaction issued (acknowledged or not): a delete at exactly that revision is optional for a watch that
  // read it from history (see WatchOptions.compactRevisions).
  const compactRevisions = history.flatMap((x) => (x.input.type === 'compact' ? [x.input.revision] : []));
  // W-K8s writes one key per revision, and kube needs prev_kv on every update and delete (kube-contract.md §7.2).
  const k8s = o.workload === 'k8s';
  const watch = timed(() => checkWatches(watchLogs, replay, { compactRevisions, expectUniqueRevision: k8s, requirePrevKv: k8s }));
  checks.watch = { verdict: watch.value.ok ? 'ok' : 'anomaly', ms: watch.ms, detail: `${watchLogs.length} streams${summary.workloadDetail ? `; ${summary.workloadDetail}` : ''}`, problems: watch.value.violations.slice(0, 20).map((v) => `${v.property} (${watchLogs[v.watch]?.name}): ${v.message}`) };

  // The searches run on the history with indeterminate writes resolved from the committed history (checker/patch.ts).
  const patch = patchHistory(history, replay);
  checks.patch = { verdict: 'ok', detail: `indeterminate writes: ${patch.dropped} never committed (dropped), ${patch.resolved} resolved to their revision, ${patch.open} left open` };
  const perKey = timed(() => checkPerKey(patch.history, { now: () => performance.now(), deadline: performance.now() + 30_000 }));
  checks.perKeyRegister = { verdict: perKey.value.result === 'ok' ? 'ok' : perKey.value.result === 'illegal' ? 'anomaly' : 'unknown', ms: perKey.ms, detail: perKey.value.key ? `key ${perKey.value.key}` : undefined, problems: perKey.value.explanation ? [perKey.value.explanation] : undefined };

  log(`  checking linearizability of ${patch.history.length} operations, ${patch.open} indeterminate (budget ${short(o.linTimeoutMs ?? 60_000)})`);
  const lin = timed(() => checkLinearizable(patch.history, { now: () => performance.now(), deadline: performance.now() + (o.linTimeoutMs ?? 60_000) }));
  checks.linearizable = {
    verdict: lin.value.result === 'ok' ? 'ok' : lin.value.result === 'illegal' ? 'anomaly' : 'unknown',
    ms: lin.ms,
    detail: `${lin.value.operations.length} operations, ${lin.value.steps} steps`,
    problems: lin.value.explanation ? [lin.value.explanation] : undefined,
  };
  if (lin.value.result === 'illegal' && lin.value.blocked !== undefined) {
    checks.linearizable.detail += `; blocked at ${describeOperation(lin.value.operations[lin.value.blocked]!, lin.value.blocked)}`;
  }
}
