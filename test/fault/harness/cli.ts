// npm run faults -- [options]: runs fault runs (./run.ts) and writes a table across them.
//
//   --quick                 a seeded random subset: the baseline plus kill, pause, partition and failpoint crash
//                           runs, ~12 s of traffic each (about 5 minutes on 2 cores), a seeded half of the fault
//                           runs with the k8s workload
//   --full                  every nemesis (F0..F15 as available) × both workloads (one seed each) × 20 s, plus a
//                           60 s mixed run (F19) per workload
//   --nemesis NAME          one nemesis (repeatable); names: none, mixed, and those in nemesis.ts
//   --workload W            with --nemesis: kv (W-KV, the default), k8s (W-K8s: kube-apiserver-like), or both
//   --runs N                runs per nemesis (default 1)
//   --duration S            seconds of traffic per run
//   --seed N                the master seed (printed; every run's seed derives from it, or is it with one run)
//   --out DIR               where run directories and table.md go (default $TMPDIR/tsetcd-faults-<time>)
//   --unsafe-local-reads    start the members with TSETCD_UNSAFE_LOCAL_READS=1 (the deliberately broken build)
//   --expect-anomaly        exit 0 only if every run reported an anomaly (for the broken build)
//   --no-netns              run on loopback even as root (partition nemeses are then unavailable)
//   --lin-timeout S         budget of the linearizability check per run (default 60)
//   --keep-data             keep the members' data dirs
//
// Exit status: 0 if every run's verdict is ok (or, with --expect-anomaly, anomaly), 1 otherwise.

import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { netnsUnavailable } from '../../helpers/netns';
import { destroyAllClusters } from './cluster';
import { MIXED, NEMESES } from './nemesis';
import { randomSeed, Rng } from './rng';
import { runOne, type RunOptions, type RunSummary } from './run';

export type WorkloadName = 'kv' | 'k8s';
export const WORKLOADS: readonly WorkloadName[] = ['kv', 'k8s'];

export interface Plan {
  nemesis: string;
  workload: WorkloadName;
  seed: number;
  durationMs: number;
}

const QUICK_CORE = ['kill-random', 'kill-leader', 'pause-leader', 'partition-leader', 'partition-member', 'failpoint-crash'];

/** The runs of --quick: the baseline, then the core faults in a seeded random order, then two random extras; every
 * fault run gets a workload from a seeded alternation, so about half use k8s. */
export function quickPlan(seed: number, netns: boolean, durationMs = 12_000, extras = 2): Plan[] {
  const rng = new Rng(seed);
  const avail = new Set(NEMESES.filter((n) => netns || !n.needsNetns).map((n) => n.name));
  const core = QUICK_CORE.filter((n) => avail.has(n));
  const rest = [...avail].filter((n) => !core.includes(n));
  const chosen = ['none', ...shuffle(core, rng)];
  for (let i = 0; i < extras && rest.length; i++) chosen.push(rest.splice(rng.int(0, rest.length - 1), 1)[0]!);
  const first = rng.int(0, 1);
  return chosen.map((nemesis, k) => ({ nemesis, workload: k === 0 ? 'kv' : WORKLOADS[(k + first) % 2]!, seed: rng.int(1, 2 ** 31 - 1), durationMs }));
}

/** Every nemesis with each workload (one seed each), then a long mixed run per workload. */
export function fullPlan(seed: number, netns: boolean): Plan[] {
  const rng = new Rng(seed);
  const out: Plan[] = [];
  for (const n of ['none', ...NEMESES.filter((x) => netns || !x.needsNetns).map((x) => x.name)]) {
    for (const workload of WORKLOADS) out.push({ nemesis: n, workload, seed: rng.int(1, 2 ** 31 - 1), durationMs: 20_000 });
  }
  for (const workload of WORKLOADS) out.push({ nemesis: MIXED, workload, seed: rng.int(1, 2 ** 31 - 1), durationMs: 60_000 });
  return out;
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function matrixId(nemesis: string): string {
  if (nemesis === 'none') return 'F0';
  if (nemesis === MIXED) return 'F19';
  return NEMESES.find((n) => n.name === nemesis)?.matrix ?? '?';
}

/** The markdown table across runs: fault × workload → runs, verdicts, anomalous checks and their seeds. */
export function summaryTable(runs: readonly RunSummary[]): string {
  const rows = new Map<string, RunSummary[]>();
  for (const r of runs) {
    const k = `${r.nemesis}\u0000${r.workload}`;
    let l = rows.get(k);
    if (!l) rows.set(k, (l = []));
    l.push(r);
  }
  const lines = [
    '| fault | matrix | workload | runs | ok | anomalies | unknown | errors | ops (indeterminate) | anomalous checks (seed) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [k, l] of rows) {
    const [nemesis, workload] = k.split('\u0000') as [string, string];
    const count = (v: string) => l.filter((r) => r.verdict === v).length;
    const ops = l.reduce((n, r) => n + r.operations.total, 0);
    const ind = l.reduce((n, r) => n + r.operations.indeterminate, 0);
    const bad = l.filter((r) => r.verdict !== 'ok').map((r) => `${r.anomalies.join('+') || r.verdict} (${r.seed})`).join(', ');
    lines.push(`| ${nemesis} | ${matrixId(nemesis)} | ${workload} | ${l.length} | ${count('ok')} | ${count('anomaly')} | ${count('unknown')} | ${count('error')} | ${ops} (${ind}) | ${bad || '–'} |`);
  }
  const env = runs.find((r) => Object.keys(r.env).length)?.env;
  return `# Fault runs\n\n${runs.length} runs${env ? `, members started with ${JSON.stringify(env)}` : ''}.\n\n${lines.join('\n')}\n`;
}

function parseArgs(argv: string[]): Record<string, string | boolean | string[]> {
  const out: Record<string, string | boolean | string[]> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2);
    if (['quick', 'full', 'unsafe-local-reads', 'expect-anomaly', 'no-netns', 'keep-data', 'peer-proxy', 'help'].includes(name)) out[name] = true;
    else if (name === 'nemesis') {
      const l = (out.nemesis as string[] | undefined) ?? [];
      l.push(argv[++i]!);
      out.nemesis = l;
    }
    else out[name] = argv[++i]!;
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    console.log('usage: npm run faults -- (--quick | --full | --nemesis NAME... [--workload kv|k8s|both]) [--seed N] [--runs N] [--duration S] [--out DIR] [--unsafe-local-reads] [--expect-anomaly] [--no-netns] [--lin-timeout S] [--keep-data] [--peer-proxy]');
    console.log(`nemeses: none, ${MIXED}, ${NEMESES.map((n) => `${n.name} (${n.matrix}${n.needsNetns ? ', netns' : ''})`).join(', ')}`);
    return 0;
  }
  const seed = args.seed !== undefined ? Number(args.seed) : randomSeed();
  const netnsWhy = args['no-netns'] ? 'disabled' : await netnsUnavailable();
  const netns = !netnsWhy;
  const durationMs = args.duration !== undefined ? Number(args.duration) * 1000 : undefined;
  let plan: Plan[];
  if (args.workload !== undefined && !args.nemesis) throw new Error('--workload goes with --nemesis (--quick and --full choose the workloads themselves)');
  if (args.full) plan = fullPlan(seed, netns);
  else if (args.nemesis) {
    const rng = new Rng(seed);
    const runs = Number(args.runs ?? 1);
    const names = args.nemesis as string[];
    const w = String(args.workload ?? 'kv');
    if (w !== 'both' && !WORKLOADS.includes(w as WorkloadName)) throw new Error(`unknown workload ${w} (kv, k8s or both)`);
    const workloads = w === 'both' ? WORKLOADS : [w as WorkloadName];
    const single = names.length === 1 && runs === 1 && workloads.length === 1;
    plan = names.flatMap((nemesis) => workloads.flatMap((workload) => Array.from({ length: runs }, () => ({ nemesis, workload, seed: single ? seed : rng.int(1, 2 ** 31 - 1), durationMs: durationMs ?? 15_000 }))));
  } else plan = quickPlan(seed, netns, durationMs ?? 12_000, args.runs !== undefined ? Number(args.runs) : 2);
  if (durationMs !== undefined) plan = plan.map((p) => ({ ...p, durationMs }));
  const out = String(args.out ?? path.join(os.tmpdir(), `tsetcd-faults-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  await fsp.mkdir(out, { recursive: true });
  console.log(`fault runs: seed ${seed}, ${plan.length} runs, network namespaces: ${netns ? 'yes' : `no (${netnsWhy})`}, output ${out}`);
  const env: NodeJS.ProcessEnv = args['unsafe-local-reads'] ? { TSETCD_UNSAFE_LOCAL_READS: '1' } : {};
  const summaries: RunSummary[] = [];
  for (const [k, p] of plan.entries()) {
    const opts: RunOptions = {
      seed: p.seed,
      nemesis: p.nemesis,
      workload: p.workload,
      durationMs: p.durationMs,
      dir: path.join(out, `${String(k + 1).padStart(2, '0')}-${p.nemesis}-${p.workload}-${p.seed}`),
      netns,
      env,
      linTimeoutMs: Number(args['lin-timeout'] ?? 60) * 1000,
      keepData: Boolean(args['keep-data']),
      peerProxy: Boolean(args['peer-proxy']),
    };
    summaries.push(await runOne(opts));
    await fsp.writeFile(path.join(out, 'table.md'), summaryTable(summaries));
  }
  const table = summaryTable(summaries);
  console.log('\n' + table);
  console.log(`table: ${path.join(out, 'table.md')}`);
  const expect = args['expect-anomaly'] ? 'anomaly' : 'ok';
  return summaries.every((s) => s.verdict === expect) ? 0 : 1;
}

if (require.main === module) {
  // Ctrl-C: kill the members and remove the namespaces before leaving.
  process.once('SIGINT', () => {
    console.error('interrupted: stopping the clusters');
    void destroyAllClusters().finally(() => process.exit(130));
  });
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(2);
    },
  );
}
