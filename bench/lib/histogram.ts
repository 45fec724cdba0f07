// Latency histograms: HdrHistogram (hdr-histogram-js) of microseconds, 3 significant digits, 1 µs to 10 min.
// Workers record into their own histograms and send them to the main thread compressed; the main thread adds them.

import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

const highestTrackableUs = 600_000_000;

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableUs, numberOfSignificantValueDigits: 3 });
}

export function recordUs(h: Histogram, us: number): void {
  h.recordValue(Math.min(Math.max(1, Math.round(us)), highestTrackableUs));
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(text: string): Histogram {
  const decoded = hdr.decodeFromCompressedBase64(text);
  // Copy into a histogram of our own shape, so add() never has to resize.
  const h = newHistogram();
  h.add(decoded);
  return h;
}

/** Latency figures in milliseconds. */
export interface LatencySummary {
  count: number;
  meanMs: number;
  minMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number): number => Math.round(us) / 1000;
  if (h.totalCount === 0) return { count: 0, meanMs: 0, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
  return {
    count: h.totalCount,
    meanMs: ms(h.mean),
    minMs: ms(h.minNonZeroValue),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}

/**
 * A text histogram like etcd benchmark's report ("Response time histogram"): ten buckets from the fastest to the
 * slowest request, with a bar per bucket.
 */
export function textHistogram(h: Histogram): string {
  if (h.totalCount === 0) return '  (no samples)\n';
  const min = h.minNonZeroValue;
  const max = h.maxValue;
  const buckets = 10;
  const step = (max - min) / buckets || 1;
  const counts = new Array<number>(buckets + 1).fill(0);
  // Walk the recorded values by percentile steps (cheap and exact enough for a picture).
  let prev = 0;
  for (let b = 1; b <= buckets + 1; b++) {
    const upper = b === buckets + 1 ? max : min + step * b;
    const below = countAtOrBelow(h, upper);
    counts[b - 1] = below - prev;
    prev = below;
  }
  const top = Math.max(...counts, 1);
  let out = '';
  for (let b = 0; b <= buckets; b++) {
    const upperMs = (b === buckets ? max : min + step * (b + 1)) / 1000;
    const bar = '∎'.repeat(Math.round((counts[b]! / top) * 40));
    out += `  ${upperMs.toFixed(4).padStart(10)} [${String(counts[b]).padStart(8)}]\t|${bar}\n`;
  }
  return out;
}

function countAtOrBelow(h: Histogram, value: number): number {
  // Binary search over percentiles: the smallest percentile whose value exceeds `value`.
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 30; i++) {
    const mid = (lo + hi) / 2;
    if (h.getValueAtPercentile(mid) <= value) lo = mid;
    else hi = mid;
  }
  return Math.round((lo / 100) * h.totalCount);
}
