// The worker-thread side of a run. Clients always run in worker threads, so the main thread only measures and
// drives. Protocol with runner.ts:
//   runner → worker: workerData (the run's settings)
//   worker → runner: {type: 'ready'}                   connections open, workload set up
//   runner → worker: {type: 'go', startUs, ...}        start issuing at startUs
//   worker → runner: {type: 'clients-done'}            every client loop ended
//   runner → worker: {type: 'stop', finalRev}
//   worker → runner: {type: 'result', ...}

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { endpointOf, openConnections, errorMessage, type Connection, type Transport } from './conn';
import { Flags, type Options } from './flags';
import { encodeHistogram, newHistogram, recordUs, type Histogram } from './histogram';
import { nowUs, sleep } from './util';
import type { Recorder, WorkerContext } from './workload';
import { workloadByName } from '../workloads';

export interface WorkerSettings {
  workload: string;
  options: Options;
  endpoints: string[];
  workerIndex: number;
  workers: number;
  connIndices: number[];
  totalConns: number;
  clientIndices: number[];
  totalClients: number;
  prepared: unknown;
}

export interface GoMessage {
  type: 'go';
  startUs: number;
  /** Requests starting before this are warm-up. */
  measureStartUs: number;
  /** Stop issuing at this time (duration mode), or Infinity. */
  endUs: number;
  /** This worker's share of --total (duration mode: Infinity). */
  budget: number;
  /** Requests per second for this worker (0 = unlimited). */
  rate: number;
}

export interface LabelRecord {
  histogram: string;
  count: number;
  errors: number;
}

export interface WorkerResult {
  type: 'result';
  labels: Record<string, LabelRecord>;
  firstErrors: string[];
  counters: Record<string, number>;
  firstStartUs: number;
  lastEndUs: number;
  /** Event-loop utilisation of this worker between go and the end of its client loops (1 = saturated). */
  elu: number;
  teardown: unknown;
}

class WorkerRecorder implements Recorder {
  readonly histograms = new Map<string, { h: Histogram; count: number; errors: number }>();
  readonly firstErrors: string[] = [];
  readonly counters: Record<string, number> = {};
  firstStartUs = Infinity;
  lastEndUs = 0;
  measureStartUs = Infinity;
  private endUs = Infinity;
  private budget = Infinity;
  private intervalUs = 0;
  private nextSlotUs = 0;

  start(go: GoMessage): void {
    this.measureStartUs = go.measureStartUs;
    this.endUs = go.endUs;
    this.budget = go.budget;
    this.intervalUs = go.rate > 0 ? 1e6 / go.rate : 0;
    this.nextSlotUs = go.startUs;
  }

  claim(): Promise<boolean> | boolean {
    if (this.budget <= 0) return false;
    const now = nowUs();
    if (now >= this.endUs) return false;
    this.budget--;
    if (this.intervalUs === 0) return true;
    const slot = Math.max(this.nextSlotUs, now);
    this.nextSlotUs = slot + this.intervalUs;
    if (slot - now < 1000) return true;
    return sleep((slot - now) / 1000).then(() => nowUs() < this.endUs);
  }

  private slot(label: string): { h: Histogram; count: number; errors: number } {
    let s = this.histograms.get(label);
    if (s === undefined) {
      s = { h: newHistogram(), count: 0, errors: 0 };
      this.histograms.set(label, s);
    }
    return s;
  }

  record(label: string, startUs: number, endUs: number): void {
    if (startUs < this.measureStartUs) return;
    const s = this.slot(label);
    recordUs(s.h, endUs - startUs);
    s.count++;
    if (startUs < this.firstStartUs) this.firstStartUs = startUs;
    if (endUs > this.lastEndUs) this.lastEndUs = endUs;
  }

  fail(label: string, err: unknown): void {
    this.slot(label).errors++;
    if (this.firstErrors.length < 5) this.firstErrors.push(`${label}: ${errorMessage(err)}`);
  }

  count(name: string, n = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + n;
  }

  async time<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
    const t0 = nowUs();
    try {
      const r = await fn();
      this.record(label, t0, nowUs());
      return r;
    } catch (err) {
      this.fail(label, err);
      return undefined;
    }
  }
}

function nextMessage<T extends { type: string }>(type: T['type']): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type === type) {
        parentPort!.off('message', on);
        resolve(m as T);
      }
    };
    parentPort!.on('message', on);
  });
}

async function main(): Promise<void> {
  const settings = workerData as WorkerSettings;
  const workload = workloadByName(settings.workload);
  const flags = new Flags(settings.options);
  const conns: Connection[] = await openConnections(
    settings.connIndices.map((g) => endpointOf(settings.endpoints, g)),
    flags.str('transport') as Transport,
  );
  const byGlobal = new Map<number, Connection>();
  settings.connIndices.forEach((g, k) => byGlobal.set(g, conns[k]!));
  const recorder = new WorkerRecorder();
  const ctx: WorkerContext = {
    flags,
    workerIndex: settings.workerIndex,
    workers: settings.workers,
    conns,
    connIndices: settings.connIndices,
    totalConns: settings.totalConns,
    clientIndices: settings.clientIndices,
    totalClients: settings.totalClients,
    prepared: settings.prepared,
    recorder,
    connOf(i: number): Connection {
      const c = byGlobal.get(i % settings.totalConns);
      if (c === undefined) throw new Error(`client ${i} does not belong to worker ${settings.workerIndex}`);
      return c;
    },
  };
  const run = await workload.setup(ctx);
  const goPromise = nextMessage<GoMessage & { type: 'go' }>('go');
  parentPort!.postMessage({ type: 'ready' });
  const go = await goPromise;
  recorder.start(go);
  const wait = go.startUs - nowUs();
  if (wait > 0) await sleep(wait / 1000);
  const elu0 = performance.eventLoopUtilization();
  await Promise.all(
    run.steps.map(async (step) => {
      for (;;) {
        const ok = recorder.claim();
        if (!(ok === true || (ok !== false && (await ok)))) break;
        await step();
      }
    }),
  );
  const stopPromise = nextMessage<{ type: 'stop'; finalRev: number }>('stop');
  parentPort!.postMessage({ type: 'clients-done' });
  const stop = await stopPromise;
  // Until the end of teardown: watch workloads have no client loops, their work is receiving events.
  const teardown = run.teardown ? await run.teardown(stop.finalRev) : undefined;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  for (const c of conns) c.close();
  const labels: Record<string, LabelRecord> = {};
  for (const [label, s] of recorder.histograms) labels[label] = { histogram: encodeHistogram(s.h), count: s.count, errors: s.errors };
  const result: WorkerResult = {
    type: 'result',
    labels,
    firstErrors: recorder.firstErrors,
    counters: recorder.counters,
    firstStartUs: recorder.firstStartUs,
    lastEndUs: recorder.lastEndUs,
    elu,
    teardown,
  };
  parentPort!.postMessage(result);
}

main().catch((err: unknown) => {
  parentPort!.postMessage({ type: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
});
