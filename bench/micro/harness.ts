// A tiny harness for the micro benchmarks: run a function for at least --time (default 2 s) after a warm-up, print
// "name: N ops/s", and append the figure to a JSON line on stdout's last line for run-all.ts to collect.

import { nowUs } from '../lib/util';

export interface MicroResult {
  name: string;
  opsPerSecond: number;
  /** What one op is (an entry, a key, a message...). */
  unit: string;
  ops: number;
  seconds: number;
  note?: string;
}

const results: MicroResult[] = [];

function minSeconds(): number {
  const i = process.argv.indexOf('--time');
  const v = i !== -1 ? Number(process.argv[i + 1]) : 2;
  return Number.isFinite(v) && v > 0 ? v : 2;
}

/**
 * Calls `step` (which does `opsPerStep` ops) until the time is up, after a warm-up of a tenth of it, and records
 * ops per second.
 */
export async function measure(name: string, unit: string, opsPerStep: number, step: () => unknown, note?: string): Promise<MicroResult> {
  const total = minSeconds();
  const warmupEnd = nowUs() + total * 1e5;
  while (nowUs() < warmupEnd) await step();
  let ops = 0;
  const t0 = nowUs();
  const end = t0 + total * 1e6;
  while (nowUs() < end) {
    await step();
    ops += opsPerStep;
  }
  const seconds = (nowUs() - t0) / 1e6;
  const r: MicroResult = { name, opsPerSecond: ops / seconds, unit, ops, seconds, ...(note ? { note } : {}) };
  results.push(r);
  process.stdout.write(`${name.padEnd(48)} ${Math.round(r.opsPerSecond).toLocaleString('en-US').padStart(12)} ${unit}/s${note ? `  (${note})` : ''}\n`);
  return r;
}

/** Prints the collected results as one JSON line (read by run-all.ts). */
export function done(): void {
  process.stdout.write(`@@results ${JSON.stringify(results)}\n`);
}

export const silentLogger = {
  info: (): void => undefined,
  warn: (): void => undefined,
  error: (): void => undefined,
  debug: (): void => undefined,
};
