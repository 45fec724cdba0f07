// The side-by-side run: for each workload of the suite, a fresh real etcd and a fresh server of ours (same flags,
// same member count, loopback ports from 30000 up, temporary data directories), the same preload on both, then
// the workload alternately against ours and etcd for --rounds rounds, so drift on the machine hits both. Writes
// bench/results/latest.json and latest.md, and the throughput-vs-clients chart.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commonFlags, parseFlags, type FlagSpec, type Flags } from '../lib/flags';
import { newHistogram, summarize, type Histogram, type LatencySummary } from '../lib/histogram';
import { resultJson, runWorkload, type RunResult } from '../lib/runner';
import { formatDurationMs } from '../lib/util';
import { workloadByName } from '../workloads';
import { loadAverage } from './proc';
import { writeChart, type ChartSeries } from './chart';
import {
  buildOurs,
  clusterCpuSeconds,
  clusterPeakRss,
  ensureEtcd,
  etcdBinary,
  oursBinary,
  startCluster,
  stopCluster,
  type Cluster,
  type ServerBinary,
  type ServerName,
} from './servers';

export const compareFlags: FlagSpec[] = [
  { name: 'duration', kind: 'duration', default: 3000, help: 'Measured time of each run' },
  { name: 'warmup', kind: 'duration', default: 1000, help: 'Unrecorded time before each run' },
  { name: 'rounds', kind: 'int', default: 2, help: 'Runs per server per workload (ours, etcd, ours, etcd, ...)' },
  { name: 'members', kind: 'int', default: 1, help: 'Members per cluster (1 or 3), all on loopback' },
  { name: 'workloads', kind: 'strings', default: [], help: 'Only these suite entries (ids, comma-separated)' },
  { name: 'clients', kind: 'int', default: 32, help: 'Clients of the suite workloads' },
  { name: 'conns', kind: 'int', default: 8, help: 'Connections of the suite workloads' },
  { name: 'chart', kind: 'bool', default: true, help: 'Also measure put throughput vs clients and draw the chart' },
  { name: 'chart-clients', kind: 'strings', default: ['1', '8', '32', '100'], help: 'Client counts of the chart' },
  { name: 'ours-ref', kind: 'string', default: '', help: 'Benchmark this git commit of our server (built in a temp dir) instead of the work tree' },
  { name: 'out', kind: 'string', default: '', help: 'Results directory (default bench/results)' },
  { name: 'workers', kind: 'int', default: 0, help: 'Generator worker threads (0 = automatic)' },
  { name: 'transport', kind: 'string', default: 'h2', help: 'Client transport of the workloads: h2 (lean, default here) or grpc-js' },
];

interface SuiteEntry {
  id: string;
  workload: string;
  /** Flags after the common ones (--clients, --conns, --duration, --warmup are added). */
  args: string[];
  /** Runs against each fresh server before the measured rounds (not measured). */
  preload?: Array<{ workload: string; args: string[] }>;
  /** Extra rows: a label of the result shown as its own line. */
  rows?: Array<{ label: string; title: string; throughput: boolean }>;
  why: string;
}

const rangePreload = [
  { workload: 'put', args: ['--prefix', 'foo', '--key-size', '0', '--val-size', '256', '--total', '1', '--clients', '1', '--conns', '1'] },
  { workload: 'put', args: ['--prefix', 'range/', '--sequential-keys', '--key-space-size', '1000', '--total', '1000', '--val-size', '256', '--clients', '16', '--conns', '4'] },
];

export const suite: SuiteEntry[] = [
  { id: 'put', workload: 'put', args: ['--key-size', '8', '--val-size', '256', '--key-space-size', '100000'], why: 'random keys over 100k, 256 B values' },
  { id: 'range-l', workload: 'range', args: ['foo', '--consistency', 'l'], preload: rangePreload, why: 'one key, linearizable (ReadIndex round)' },
  { id: 'range-s', workload: 'range', args: ['foo', '--consistency', 's'], preload: rangePreload, why: 'one key, serializable (local read)' },
  { id: 'range-page', workload: 'range', args: ['range/', '--prefix', '--limit', '100'], preload: rangePreload, why: '100 of 1,000 keys (count over all 1,000), linearizable' },
  { id: 'range-count', workload: 'range', args: ['range/', '--prefix', '--count-only'], preload: rangePreload, why: 'count of 1,000 keys, linearizable' },
  { id: 'txn-put', workload: 'txn-put', args: ['--key-size', '8', '--val-size', '256', '--key-space-size', '100000'], why: 'one Put per Txn, sequential keys' },
  {
    id: 'txn-mixed',
    workload: 'txn-mixed',
    args: ['--key-size', '8', '--val-size', '256', '--key-space-size', '1000', '--rw-ratio', '4', '--limit', '100'],
    rows: [
      { label: 'read', title: 'txn-mixed: reads', throughput: true },
      { label: 'write', title: 'txn-mixed: writes', throughput: true },
    ],
    why: '4 reads (range of 100) per write',
  },
  {
    id: 'watch-latency',
    workload: 'watch-latency',
    args: ['--streams', '10', '--watchers-per-stream', '10', '--put-rate', '100'],
    rows: [{ label: 'put', title: 'watch-latency: the puts', throughput: false }],
    why: '100 watchers on one key, 100 puts/s; throughput = events delivered/s',
  },
  { id: 'lease-keepalive', workload: 'lease-keepalive', args: [], why: 'KeepAliveOnce: a stream per request, as etcd\'s tool' },
  {
    id: 'kube',
    workload: 'kube',
    args: [],
    rows: [
      { label: 'update', title: 'kube: CAS updates', throughput: true },
      { label: 'list-page', title: 'kube: list pages (500)', throughput: true },
      { label: 'watch-delivery', title: 'kube: watch delivery', throughput: false },
    ],
    why: 'the kube-apiserver mix (bench/README.md)',
  },
];

interface SideSummary {
  runs: number;
  ops: number;
  errors: number;
  throughput: number;
  /** Per-round throughputs. */
  rounds: number[];
  latency: LatencySummary;
  labels: Record<string, { throughput: number; latency: LatencySummary }>;
  /** Server CPU seconds during the measured runs (all members), and per 1,000 requests. */
  serverCpuSeconds: number;
  serverCpuMsPer1k: number;
  /** Peak RSS (VmHWM) per member at the end of the entry, MiB. */
  peakRssMiB: number[];
  generatorMaxElu: number;
  generatorCoresUsed: number;
  generatorSaturated: boolean;
  firstErrors: string[];
  counters: Record<string, number>;
}

interface EntryResult {
  id: string;
  workload: string;
  command: string;
  why: string;
  rows?: SuiteEntry['rows'];
  ours: SideSummary | null;
  etcd: SideSummary | null;
  error?: string;
  runs: Array<{ server: ServerName; round: number; serverCpuSeconds: number; result: ReturnType<typeof resultJson> }>;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

function flagsFor(workloadName: string, args: string[]): Flags {
  const w = workloadByName(workloadName);
  return parseFlags(args, [...commonFlags, ...w.flags]);
}

function commonArgs(c: Flags): string[] {
  const a = ['--clients', String(c.int('clients')), '--conns', String(c.int('conns')), '--duration', formatDurationMs(c.int('duration')), '--warmup', formatDurationMs(c.int('warmup'))];
  if (c.int('workers') > 0) a.push('--workers', String(c.int('workers')));
  a.push('--transport', c.str('transport'));
  return a;
}

async function preload(entry: SuiteEntry, cluster: Cluster): Promise<void> {
  for (const p of entry.preload ?? []) {
    const r = await runWorkload(workloadByName(p.workload), flagsFor(p.workload, [...p.args, '--workers', '1', '--transport', 'h2']), cluster.endpoints);
    if (r.errors > 0) throw new Error(`preload ${p.workload} on ${cluster.server}: ${r.firstErrors.join('; ')}`);
  }
}

function summarizeSide(results: Array<{ r: RunResult; cpu: number }>, rss: number[]): SideSummary {
  const h = newHistogram();
  const labelH: Record<string, Histogram> = {};
  const labelOps: Record<string, { ops: number; seconds: number }> = {};
  let ops = 0;
  let errors = 0;
  let seconds = 0;
  let cpu = 0;
  const counters: Record<string, number> = {};
  for (const { r, cpu: c } of results) {
    if (r.histogram) h.add(r.histogram);
    for (const [label, lh] of Object.entries(r.labelHistograms ?? {})) {
      const acc = labelH[label] ?? newHistogram();
      acc.add(lh);
      labelH[label] = acc;
      const lo = labelOps[label] ?? { ops: 0, seconds: 0 };
      lo.ops += r.labels[label]?.ops ?? 0;
      lo.seconds += r.seconds;
      labelOps[label] = lo;
    }
    ops += r.ops;
    errors += r.errors;
    seconds += r.seconds;
    cpu += c;
    for (const [k, v] of Object.entries(r.counters)) counters[k] = (counters[k] ?? 0) + v;
  }
  const labels: SideSummary['labels'] = {};
  for (const [label, lh] of Object.entries(labelH)) labels[label] = { throughput: labelOps[label]!.ops / Math.max(labelOps[label]!.seconds, 1e-9), latency: summarize(lh) };
  return {
    runs: results.length,
    ops,
    errors,
    throughput: ops / Math.max(seconds, 1e-9),
    rounds: results.map(({ r }) => r.throughput),
    latency: summarize(h),
    labels,
    serverCpuSeconds: cpu,
    serverCpuMsPer1k: ops > 0 ? (cpu * 1000 * 1000) / ops : 0,
    peakRssMiB: rss,
    generatorMaxElu: Math.max(0, ...results.map(({ r }) => r.generator.maxWorkerElu)),
    generatorCoresUsed: Math.max(0, ...results.map(({ r }) => r.generator.coresUsed)),
    generatorSaturated: results.some(({ r }) => r.generator.saturated),
    firstErrors: results.flatMap(({ r }) => r.firstErrors).slice(0, 5),
    counters,
  };
}

async function runEntry(entry: SuiteEntry, bins: Record<ServerName, ServerBinary>, c: Flags): Promise<EntryResult> {
  const args = [...entry.args, ...commonArgs(c)];
  const command = `node dist/bench/cli.js ${entry.workload} ${args.join(' ')}`;
  const out: EntryResult = { id: entry.id, workload: entry.workload, command, why: entry.why, rows: entry.rows, ours: null, etcd: null, runs: [] };
  const clusters: Partial<Record<ServerName, Cluster>> = {};
  try {
    for (const name of ['ours', 'etcd'] as const) {
      clusters[name] = await startCluster(bins[name], c.int('members'));
      await preload(entry, clusters[name]!);
    }
    const got: Record<ServerName, Array<{ r: RunResult; cpu: number }>> = { ours: [], etcd: [] };
    for (let round = 1; round <= c.int('rounds'); round++) {
      for (const name of ['ours', 'etcd'] as const) {
        const cluster = clusters[name]!;
        const cpu0 = clusterCpuSeconds(cluster);
        const r = await runWorkload(workloadByName(entry.workload), flagsFor(entry.workload, args), cluster.endpoints);
        const cpu = clusterCpuSeconds(cluster) - cpu0;
        got[name].push({ r, cpu });
        out.runs.push({ server: name, round, serverCpuSeconds: cpu, result: resultJson(r) });
        log(`  ${entry.id.padEnd(16)} ${name.padEnd(5)} round ${round}: ${r.throughput.toFixed(0).padStart(7)} ops/s  p99 ${r.latency.p99Ms.toFixed(2)} ms  server CPU ${cpu.toFixed(2)} s  generator ${(r.generator.maxWorkerElu * 100).toFixed(0)}% busy${r.errors ? `  errors ${r.errors}: ${r.firstErrors[0]}` : ''}`);
      }
    }
    for (const name of ['ours', 'etcd'] as const) out[name] = summarizeSide(got[name], clusterPeakRss(clusters[name]!));
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
    log(`  ${entry.id}: FAILED: ${out.error}`);
  } finally {
    for (const cl of Object.values(clusters)) if (cl) await stopCluster(cl, { keepData: false });
  }
  return out;
}

async function runChart(bins: Record<ServerName, ServerBinary>, c: Flags): Promise<{ series: ChartSeries[]; points: unknown[] }> {
  const clientsList = c.list('chart-clients').map(Number);
  const series: ChartSeries[] = [
    { name: 'ours', points: [] },
    { name: 'etcd', points: [] },
  ];
  const points: unknown[] = [];
  const clusters: Partial<Record<ServerName, Cluster>> = {};
  try {
    for (const name of ['ours', 'etcd'] as const) clusters[name] = await startCluster(bins[name], c.int('members'));
    for (const clients of clientsList) {
      const conns = Math.max(1, Math.ceil(clients / 4));
      const args = ['--key-size', '8', '--val-size', '256', '--key-space-size', '100000', '--clients', String(clients), '--conns', String(conns), '--duration', formatDurationMs(c.int('duration')), '--warmup', formatDurationMs(c.int('warmup')), '--transport', c.str('transport')];
      for (const name of ['ours', 'etcd'] as const) {
        const r = await runWorkload(workloadByName('put'), flagsFor('put', args), clusters[name]!.endpoints);
        series[name === 'ours' ? 0 : 1]!.points.push({ x: clients, y: r.throughput, p99Ms: r.latency.p99Ms });
        points.push({ server: name, clients, conns, throughput: r.throughput, p99Ms: r.latency.p99Ms, errors: r.errors, generator: r.generator });
        log(`  chart put --clients ${String(clients).padEnd(4)} ${name.padEnd(5)}: ${r.throughput.toFixed(0).padStart(7)} ops/s  p99 ${r.latency.p99Ms.toFixed(2)} ms  generator ${(r.generator.maxWorkerElu * 100).toFixed(0)}% busy`);
      }
    }
  } finally {
    for (const cl of Object.values(clusters)) if (cl) await stopCluster(cl, { keepData: false });
  }
  return { series, points };
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const ratio = (a: number, b: number): string => (b > 0 && Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '—');
const spread = (s: SideSummary): string => {
  if (s.rounds.length < 2) return '';
  const min = Math.min(...s.rounds);
  const max = Math.max(...s.rounds);
  return ` (±${((100 * (max - min)) / 2 / Math.max(s.throughput, 1e-9)).toFixed(0)}%)`;
};

export function markdown(meta: Record<string, unknown>, entries: EntryResult[], chartFile: string | null): string {
  let md = `# tsetcd vs etcd ${String(meta.etcdVersion)}: latest side-by-side run\n\n`;
  md += `Generated by \`${String(meta.command)}\` on ${String(meta.date)}: ${String(meta.members)} member(s) each, ${String(meta.cpus)} CPUs (${String(meta.cpuModel)}), Node ${String(meta.node)}, our server ${String(meta.ours)}. `;
  md += `Each workload ran ${String(meta.rounds)} × ${String(meta.duration)} (after ${String(meta.warmup)} warm-up) per server, alternating ours/etcd, on fresh servers; client transport ${String(meta.transport)}. Load average before/after: ${String(meta.loadBefore)} / ${String(meta.loadAfter)}.\n\n`;
  md += 'Throughput ratio = ours / etcd (above 1 is better for us); p99 ratio = ours / etcd (below 1 is better for us). ± is half the spread between rounds. Server CPU is user+system seconds of all members during the measured runs; RSS is peak (VmHWM) per member.\n\n';
  md += '| workload | ours ops/s | etcd ops/s | ratio | ours p99 ms | etcd p99 ms | p99 ratio | ours p50 / p99.9 ms | etcd p50 / p99.9 ms | ours CPU s (ms/1k req) | etcd CPU s (ms/1k req) | ours RSS MiB | etcd RSS MiB |\n';
  md += '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  const notes: string[] = [];
  for (const e of entries) {
    const o = e.ours;
    const t = e.etcd;
    if (o === null || t === null) {
      md += `| ${e.id} | failed | | | | | | | | | | | |\n`;
      notes.push(`${e.id}: ${e.error ?? 'no result'}`);
      continue;
    }
    md += `| **${e.id}** | ${fmt(o.throughput)}${spread(o)} | ${fmt(t.throughput)}${spread(t)} | ${ratio(o.throughput, t.throughput)} | ${fmt(o.latency.p99Ms, 2)} | ${fmt(t.latency.p99Ms, 2)} | ${ratio(o.latency.p99Ms, t.latency.p99Ms)} | ${fmt(o.latency.p50Ms, 2)} / ${fmt(o.latency.p999Ms, 2)} | ${fmt(t.latency.p50Ms, 2)} / ${fmt(t.latency.p999Ms, 2)} | ${fmt(o.serverCpuSeconds, 1)} (${fmt(o.serverCpuMsPer1k, 0)}) | ${fmt(t.serverCpuSeconds, 1)} (${fmt(t.serverCpuMsPer1k, 0)}) | ${o.peakRssMiB.map((x) => fmt(x)).join(', ')} | ${t.peakRssMiB.map((x) => fmt(x)).join(', ')} |\n`;
    for (const row of e.rows ?? []) {
      const ol = o.labels[row.label];
      const tl = t.labels[row.label];
      if (!ol || !tl) continue;
      const tp = row.throughput ? [fmt(ol.throughput), fmt(tl.throughput), ratio(ol.throughput, tl.throughput)] : ['', '', ''];
      md += `| ↳ ${row.title} | ${tp[0]} | ${tp[1]} | ${tp[2]} | ${fmt(ol.latency.p99Ms, 2)} | ${fmt(tl.latency.p99Ms, 2)} | ${ratio(ol.latency.p99Ms, tl.latency.p99Ms)} | ${fmt(ol.latency.p50Ms, 2)} / ${fmt(ol.latency.p999Ms, 2)} | ${fmt(tl.latency.p50Ms, 2)} / ${fmt(tl.latency.p999Ms, 2)} | | | | |\n`;
    }
    if (o.errors > 0 || t.errors > 0) notes.push(`${e.id}: errors ours ${o.errors} ${o.firstErrors[0] ?? ''}; etcd ${t.errors} ${t.firstErrors[0] ?? ''}`);
    const sat = [o.generatorSaturated ? 'ours' : '', t.generatorSaturated ? 'etcd' : ''].filter((x) => x !== '');
    if (sat.length > 0) notes.push(`${e.id}: the generator was saturated (a worker event loop >80% busy) in the ${sat.join(' and ')} runs; those figures are a floor for the server.`);
  }
  md += '\nGenerator load (busiest worker event loop, % of time busy; cores used by the whole generator process):\n\n| workload | ours runs | etcd runs |\n| --- | ---: | ---: |\n';
  for (const e of entries) {
    if (!e.ours || !e.etcd) continue;
    md += `| ${e.id} | ${(e.ours.generatorMaxElu * 100).toFixed(0)}%, ${e.ours.generatorCoresUsed.toFixed(2)} cores | ${(e.etcd.generatorMaxElu * 100).toFixed(0)}%, ${e.etcd.generatorCoresUsed.toFixed(2)} cores |\n`;
  }
  if (notes.length > 0) md += `\nNotes:\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  md += '\nCommands (each against a running server; the compare driver adds --endpoints):\n\n';
  for (const e of entries) md += `- ${e.id} (${e.why}): \`${e.command}\`\n`;
  if (chartFile !== null) md += `\n![put throughput vs clients](${chartFile})\n`;
  return md;
}

export async function runCompare(c: Flags): Promise<number> {
  const members = c.int('members');
  if (members !== 1 && members !== 3) throw new Error('--members must be 1 or 3');
  const wanted = c.list('workloads');
  for (const w of wanted) if (!suite.some((e) => e.id === w)) throw new Error(`unknown suite entry "${w}" (known: ${suite.map((e) => e.id).join(', ')})`);
  const entries = wanted.length > 0 ? suite.filter((e) => wanted.includes(e.id)) : suite;
  const outDir = c.str('out') !== '' ? path.resolve(c.str('out')) : path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });

  const etcdVersion = ensureEtcd(log);
  const ours = buildOurs(c.str('ours-ref'), log);
  const bins: Record<ServerName, ServerBinary> = { ours: oursBinary(ours), etcd: etcdBinary() };
  log(`ours: ${bins.ours.describe}\netcd: ${bins.etcd.describe} ${etcdVersion}\n`);

  // Fail early and clearly when a server cannot start with these settings (e.g. ours with --members 3 before Raft).
  for (const name of ['etcd', 'ours'] as const) {
    const cl = await startCluster(bins[name], members);
    await stopCluster(cl, { keepData: false });
  }

  const loadBefore = loadAverage();
  const results: EntryResult[] = [];
  for (const e of entries) {
    log(`${e.id}: ${e.why}`);
    results.push(await runEntry(e, bins, c));
  }
  let chart: { series: ChartSeries[]; points: unknown[] } | null = null;
  let chartFile: string | null = null;
  if (c.bool('chart')) {
    log('chart: put throughput vs clients');
    chart = await runChart(bins, c);
    chartFile = `put-throughput-vs-clients${members > 1 ? `-${members}m` : ''}.svg`;
    writeChart(path.join(outDir, chartFile), chart.series, {
      title: `put throughput vs clients (${members} member${members > 1 ? 's' : ''}, 256 B values, conns = clients/4)`,
      xLabel: 'clients',
      yLabel: 'requests/s',
    });
  }
  const cpus = os.cpus();
  const meta = {
    command: `npm run bench -- --compare ${process.argv.slice(2).filter((a) => a !== '--compare' && a !== 'compare').join(' ')}`.trim(),
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    etcdVersion,
    ours: bins.ours.describe,
    members,
    duration: formatDurationMs(c.int('duration')),
    warmup: formatDurationMs(c.int('warmup')),
    rounds: c.int('rounds'),
    transport: c.str('transport'),
    clients: c.int('clients'),
    conns: c.int('conns'),
    loadBefore: loadBefore.join(' '),
    loadAfter: loadAverage().join(' '),
  };
  const suffix = members > 1 ? `-${members}m` : '';
  fs.writeFileSync(path.join(outDir, `latest${suffix}.json`), `${JSON.stringify({ meta, entries: results, chart: chart?.points ?? null }, null, 2)}\n`);
  const md = markdown(meta, results, chartFile);
  fs.writeFileSync(path.join(outDir, `latest${suffix}.md`), md);
  process.stdout.write(`\n${md}\nWrote ${path.join(outDir, `latest${suffix}.json`)} and latest${suffix}.md${chartFile ? ` and ${chartFile}` : ''}\n`);
  return results.every((r) => r.error === undefined) ? 0 : 1;
}

