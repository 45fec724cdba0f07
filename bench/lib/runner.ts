// The main-thread side of a run: spreads connections and clients over worker threads, starts them together,
// measures the generator's own CPU, and merges what the workers recorded into one result.

import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Connection } from './conn';
import type { Flags } from './flags';
import { decodeHistogram, newHistogram, recordUs, summarize, textHistogram, type Histogram, type LatencySummary } from './histogram';
import { encode, pb, paths, toNumber } from './proto';
import { nowUs } from './util';
import type { GoMessage, WorkerResult, WorkerSettings } from './worker';
import type { Workload } from './workload';

export interface LabelResult {
  ops: number;
  errors: number;
  throughput: number;
  latency: LatencySummary;
}

export interface GeneratorLoad {
  workers: number;
  /** CPU seconds the whole generator process used during the run (all threads). */
  cpuSeconds: number;
  wallSeconds: number;
  /** cpuSeconds / wallSeconds. */
  coresUsed: number;
  /** The busiest worker's event-loop utilisation (1 = it never waited for the network). */
  maxWorkerElu: number;
  /** True when a worker's event loop was busy more than 80% of the time: the generator may have limited the run. */
  saturated: boolean;
}

export interface RunResult {
  workload: string;
  endpoints: string[];
  settings: Record<string, unknown>;
  ops: number;
  errors: number;
  seconds: number;
  /** Requests per second of the throughput labels. */
  throughput: number;
  /** The headline latency (all requests, or the workload's headline label). */
  latency: LatencySummary;
  labels: Record<string, LabelResult>;
  counters: Record<string, number>;
  notes: Record<string, number | string>;
  firstErrors: string[];
  generator: GeneratorLoad;
  /** Not serialised into results files; for the text report and merging rounds. */
  histogram?: Histogram;
  labelHistograms?: Record<string, Histogram>;
}

/** Serialisable copy of a result (histogram objects dropped). */
export function resultJson(r: RunResult): Omit<RunResult, 'histogram' | 'labelHistograms'> {
  const { histogram: _h, labelHistograms: _l, ...rest } = r;
  return rest;
}

export function autoWorkers(clients: number, conns: number): number {
  // One worker handles a few thousand requests per second per core-second of client work; past ~32 clients a
  // second worker keeps the generator's event loop from becoming the limit. There are never more workers than
  // connections (a connection's clients stay in one worker) or cores.
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const wanted = clients >= 32 ? 2 : 1;
  return Math.max(1, Math.min(wanted, conns, cores));
}

/** The store's current revision (header.revision of a Range), read through a fresh connection. */
export async function currentRevision(endpoint: string): Promise<number> {
  const c = new Connection(endpoint);
  try {
    await c.ready();
    const t = pb();
    const res = await c.unary(paths.range, encode(t.RangeRequest, { key: Buffer.from('\0'), limit: 1 }));
    const decoded = t.RangeResponse.decode(res) as unknown as { header?: { revision?: unknown } };
    return toNumber(decoded.header?.revision);
  } finally {
    c.close();
  }
}

export async function runWorkload(workload: Workload, flags: Flags, endpoints: string[]): Promise<RunResult> {
  const clients = flags.int('clients');
  const conns = flags.int('conns');
  if (clients < 1 || conns < 1) throw new Error('--clients and --conns must be at least 1');
  const workers = Math.min(flags.int('workers') > 0 ? flags.int('workers') : autoWorkers(clients, conns), conns);
  const durationMs = flags.int('duration');
  const warmupMs = durationMs > 0 ? flags.int('warmup') : 0;
  const total = flags.int('total');
  const prepared = workload.prepare ? await workload.prepare(flags, endpoints) : undefined;

  // Connection j lives in worker j mod W; client i uses connection i mod conns, so it lives with its connection.
  const plans: WorkerSettings[] = [];
  for (let w = 0; w < workers; w++) {
    const connIndices: number[] = [];
    for (let j = w; j < conns; j += workers) connIndices.push(j);
    const clientIndices: number[] = [];
    for (let i = 0; i < clients; i++) if ((i % conns) % workers === w) clientIndices.push(i);
    plans.push({
      workload: workload.name,
      options: flags.values,
      endpoints,
      workerIndex: w,
      workers,
      connIndices,
      totalConns: conns,
      clientIndices,
      totalClients: clients,
      prepared,
    });
  }

  const script = path.join(__dirname, 'worker.js');
  const threads = plans.map((p) => new Worker(script, { workerData: p }));
  const fatal = new Promise<never>((_, reject) => {
    for (const t of threads) {
      t.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'fatal') reject(new Error(`worker failed: ${m.message}`));
      });
      t.on('error', reject);
    }
  });
  const waitAll = <T>(type: string): Promise<T[]> =>
    Promise.race([
      Promise.all(
        threads.map(
          (t) =>
            new Promise<T>((resolve) => {
              const on = (m: { type: string }): void => {
                if (m.type === type) {
                  t.off('message', on);
                  resolve(m as T);
                }
              };
              t.on('message', on);
            }),
        ),
      ),
      fatal,
    ]);

  try {
    await waitAll('ready');
    const startUs = nowUs() + 20_000;
    const measureStartUs = startUs + warmupMs * 1000;
    const endUs = durationMs > 0 ? measureStartUs + durationMs * 1000 : Infinity;
    const rate = flags.int('rate');
    const cpu0 = process.cpuUsage();
    const wall0 = nowUs();
    const clientsDone = waitAll<{ type: string }>('clients-done');
    const results = waitAll<WorkerResult>('result');
    plans.forEach((p, w) => {
      // --total is split in proportion to each worker's clients.
      const share = durationMs > 0 ? Infinity : Math.floor((total * (w + 1)) / workers) - Math.floor((total * w) / workers);
      const go: GoMessage = {
        type: 'go',
        startUs,
        // With --total every request counts (a timer may wake a worker a little before startUs).
        measureStartUs: durationMs > 0 ? measureStartUs : 0,
        endUs,
        budget: p.clientIndices.length === 0 ? 0 : share,
        rate: rate > 0 ? rate / workers : 0,
      };
      threads[w]!.postMessage(go);
    });
    const driveData = workload.drive ? await Promise.race([workload.drive(flags, endpoints, prepared, durationMs > 0 ? measureStartUs : startUs), fatal]) : undefined;
    await clientsDone;
    const cpu = process.cpuUsage(cpu0);
    const wallSeconds = (nowUs() - wall0) / 1e6;
    const finalRev = workload.needsFinalRev ? await currentRevision(endpoints[0]!) : 0;
    for (const t of threads) t.postMessage({ type: 'stop', finalRev });
    const got = await results;
    return merge(workload, flags, endpoints, workers, got, driveData, durationMs > 0 ? measureStartUs : startUs, {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      wallSeconds,
    });
  } finally {
    await Promise.all(threads.map((t) => t.terminate()));
  }
}

function merge(
  workload: Workload,
  flags: Flags,
  endpoints: string[],
  workers: number,
  results: WorkerResult[],
  driveData: unknown,
  measureStartUs: number,
  cpu: { cpuSeconds: number; wallSeconds: number },
): RunResult {
  const labelHistograms: Record<string, Histogram> = {};
  const labelCounts: Record<string, { ops: number; errors: number }> = {};
  const counters: Record<string, number> = {};
  const firstErrors: string[] = [];
  let lastEndUs = 0;
  let firstStartUs = Infinity;
  for (const r of results) {
    for (const [label, rec] of Object.entries(r.labels)) {
      const h = labelHistograms[label] ?? newHistogram();
      h.add(decodeHistogram(rec.histogram));
      labelHistograms[label] = h;
      const c = labelCounts[label] ?? { ops: 0, errors: 0 };
      c.ops += rec.count;
      c.errors += rec.errors;
      labelCounts[label] = c;
    }
    for (const [k, v] of Object.entries(r.counters)) counters[k] = (counters[k] ?? 0) + v;
    for (const e of r.firstErrors) if (firstErrors.length < 5) firstErrors.push(e);
    lastEndUs = Math.max(lastEndUs, r.lastEndUs);
    firstStartUs = Math.min(firstStartUs, r.firstStartUs);
  }
  const extra = workload.finish ? workload.finish(results.map((r) => r.teardown), driveData, measureStartUs) : {};
  for (const [label, values] of Object.entries(extra.histogramsUs ?? {})) {
    const h = newHistogram();
    for (const v of values) recordUs(h, v);
    labelHistograms[label] = h;
    labelCounts[label] = { ops: values.length, errors: 0 };
  }
  // The measured window: from its start (or the first request, with --total) to the last response.
  const windowStart = Math.max(measureStartUs, Math.min(firstStartUs, lastEndUs));
  const seconds = Math.max(1e-6, extra.seconds ?? (lastEndUs - windowStart) / 1e6);
  const labels: Record<string, LabelResult> = {};
  for (const [label, h] of Object.entries(labelHistograms)) {
    const c = labelCounts[label]!;
    labels[label] = { ops: c.ops, errors: c.errors, throughput: c.ops / seconds, latency: summarize(h) };
  }
  const tpLabels = workload.throughputLabels ?? Object.keys(labelCounts).filter((l) => !(extra.histogramsUs && l in extra.histogramsUs));
  let ops = 0;
  let errors = 0;
  for (const l of tpLabels) {
    ops += labelCounts[l]?.ops ?? 0;
    errors += labelCounts[l]?.errors ?? 0;
  }
  let headline: Histogram;
  if (workload.headlineLabel !== undefined) headline = labelHistograms[workload.headlineLabel] ?? newHistogram();
  else {
    headline = newHistogram();
    for (const l of tpLabels) if (labelHistograms[l]) headline.add(labelHistograms[l]);
  }
  const maxWorkerElu = Math.max(0, ...results.map((r) => r.elu));
  const settings: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags.values)) if (k !== '_args' && k !== 'endpoints' && k !== 'json') settings[k] = v;
  if (flags.args.length > 0) settings.args = flags.args;
  return {
    workload: workload.name,
    endpoints,
    settings,
    ops,
    errors,
    seconds,
    throughput: ops / seconds,
    latency: summarize(headline),
    labels,
    counters,
    notes: extra.notes ?? {},
    firstErrors,
    generator: {
      workers,
      cpuSeconds: cpu.cpuSeconds,
      wallSeconds: cpu.wallSeconds,
      coresUsed: cpu.cpuSeconds / Math.max(cpu.wallSeconds, 1e-6),
      maxWorkerElu,
      saturated: maxWorkerElu > 0.8,
    },
    histogram: headline,
    labelHistograms,
  };
}

/** The report etcd's benchmark prints (Summary, histogram, latency distribution), plus the generator's load. */
export function textReport(r: RunResult): string {
  const l = r.latency;
  let out = `\n${r.workload} against ${r.endpoints.join(',')}\n\nSummary:\n`;
  out += `  Total:\t${r.seconds.toFixed(4)} secs.\n`;
  out += `  Slowest:\t${(l.maxMs / 1000).toFixed(4)} secs.\n`;
  out += `  Fastest:\t${(l.minMs / 1000).toFixed(4)} secs.\n`;
  out += `  Average:\t${(l.meanMs / 1000).toFixed(4)} secs.\n`;
  out += `  Requests/sec:\t${r.throughput.toFixed(4)}\n`;
  out += `  Requests:\t${r.ops} (errors: ${r.errors})\n`;
  if (r.histogram) out += `\nResponse time histogram (ms):\n${textHistogram(r.histogram)}`;
  out += `\nLatency distribution:\n  50% in ${l.p50Ms.toFixed(3)} ms.\n  90% in ${l.p90Ms.toFixed(3)} ms.\n  99% in ${l.p99Ms.toFixed(3)} ms.\n  99.9% in ${l.p999Ms.toFixed(3)} ms.\n`;
  const labels = Object.entries(r.labels);
  if (labels.length > 1) {
    out += '\nBy request type:\n';
    for (const [name, s] of labels) {
      out += `  ${name.padEnd(18)} ${String(s.ops).padStart(8)} ops ${s.throughput.toFixed(1).padStart(10)}/s  p50 ${s.latency.p50Ms.toFixed(3)} ms  p99 ${s.latency.p99Ms.toFixed(3)} ms  p99.9 ${s.latency.p999Ms.toFixed(3)} ms${s.errors ? `  errors ${s.errors}` : ''}\n`;
    }
  }
  if (Object.keys(r.counters).length > 0) out += `\nCounters: ${Object.entries(r.counters).map(([k, v]) => `${k}=${v}`).join(' ')}\n`;
  if (Object.keys(r.notes).length > 0) out += `Notes: ${Object.entries(r.notes).map(([k, v]) => `${k}=${v}`).join(' ')}\n`;
  if (r.firstErrors.length > 0) out += `\nFirst errors:\n${r.firstErrors.map((e) => `  ${e}`).join('\n')}\n`;
  const g = r.generator;
  out += `\nGenerator: ${g.workers} worker thread(s), ${g.cpuSeconds.toFixed(2)} CPU s over ${g.wallSeconds.toFixed(2)} s (${g.coresUsed.toFixed(2)} cores), busiest worker event loop ${(g.maxWorkerElu * 100).toFixed(0)}% busy${g.saturated ? ' — SATURATED (>80%): the generator may be the bottleneck; try --transport h2, --workers, --conns' : ' — not saturated'}\n`;
  return out;
}
