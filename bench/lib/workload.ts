// What a workload is. A workload runs in worker threads: each worker owns some connections and the clients that
// use them, and every client is a closed loop (issue a request, wait for it, issue the next), like the goroutines
// of etcd's benchmark tool. The main thread may prepare data before and drive something during the run (the put
// loop of watch-latency), and turns the workers' raw records into results after it.

import type { Connection } from './conn';
import type { FlagSpec, Flags } from './flags';

/** Records requests. One per worker; every client of the worker shares it. */
export interface Recorder {
  /**
   * Claims the right to issue one more operation: false once the worker's share of --total is used up or
   * --duration has passed. Waits when --rate is set.
   */
  claim(): Promise<boolean> | boolean;
  /** Times fn as one request under `label`; an error is counted under the label and returned as undefined. */
  time<T>(label: string, fn: () => Promise<T>): Promise<T | undefined>;
  /** Records a request timed elsewhere. */
  record(label: string, startUs: number, endUs: number): void;
  /** Counts a failed request under `label`. */
  fail(label: string, err: unknown): void;
  /** Adds to a named counter (conflicts, retries, progress notifications...). */
  count(name: string, n?: number): void;
  /** The start of the measured window: requests that start before it (warm-up) are not recorded. */
  readonly measureStartUs: number;
}

export interface WorkerContext {
  flags: Flags;
  workerIndex: number;
  workers: number;
  /** This worker's connections; conns[k] is global connection connIndices[k]. */
  conns: Connection[];
  connIndices: number[];
  totalConns: number;
  /** Global indices of this worker's clients; client i uses global connection i % totalConns. */
  clientIndices: number[];
  totalClients: number;
  /** What prepare() returned. */
  prepared: unknown;
  recorder: Recorder;
  /** The connection of global client i (which is one of this worker's). */
  connOf(clientIndex: number): Connection;
}

export interface WorkerRun {
  /** One step function per client; each call issues one operation (which may be several requests). */
  steps: Array<() => Promise<void>>;
  /**
   * Called after every client loop ended and the main thread said stop. `finalRev` is the store revision after the
   * last write (when the workload asks for it). Returns data for finish() (structured-cloneable).
   */
  teardown?(finalRev: number): Promise<unknown>;
}

export interface WorkloadResultExtra {
  /** Histograms computed in the main thread (watch delivery latency), by label. */
  histogramsUs?: Record<string, number[]>;
  /** The measured window in seconds, when the workers' own records cannot tell it (nothing recorded there). */
  seconds?: number;
  /** Extra facts to report. */
  notes?: Record<string, number | string>;
}

export interface Workload {
  name: string;
  summary: string;
  flags: FlagSpec[];
  /** Runs once in the main thread before the workers start (preloading keys, checking arguments). */
  prepare?(flags: Flags, endpoints: string[]): Promise<unknown>;
  /** Runs in each worker: opens streams, grants leases, returns the client steps. */
  setup(ctx: WorkerContext): Promise<WorkerRun>;
  /** Whether teardown needs the store's revision after the run (read by the main thread with a Range). */
  needsFinalRev?: boolean;
  /**
   * Runs in the main thread while the workers run (they start together); the workers are told to stop when it
   * resolves and every client loop has ended. Its return value goes to finish().
   */
  drive?(flags: Flags, endpoints: string[], prepared: unknown, measureStartUs: number): Promise<unknown>;
  /** Combines the workers' teardown data (and drive()'s) into extra histograms and notes. */
  finish?(workerData: unknown[], driveData: unknown, measureStartUs: number): WorkloadResultExtra;
  /** The label whose requests are the workload's throughput (default: all labels together). */
  throughputLabels?: string[];
  /** The label whose latency is the headline figure (default: all labels together). */
  headlineLabel?: string;
}
