// Small helpers shared by the load generator, the compare driver and the micro benchmarks.

import { randomBytes } from 'node:crypto';

/** Monotonic microseconds, process-wide: comparable between worker threads (CLOCK_MONOTONIC via uv_hrtime). */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Go's encoding/binary.PutVarint (zig-zag varint) into the front of `buf`, which is how etcd's benchmark turns a key
 * number into a key of --key-size bytes (the rest stays zero). Returns buf.
 */
export function putVarint(buf: Buffer, n: number): Buffer {
  buf.fill(0);
  // Zig-zag: (n << 1) ^ (n >> 63), done in doubles so it works past 2^31.
  let ux = n >= 0 ? n * 2 : -n * 2 - 1;
  let i = 0;
  while (ux >= 0x80 && i < buf.length) {
    buf[i++] = (ux % 0x80) | 0x80;
    ux = Math.floor(ux / 0x80);
  }
  if (i < buf.length) buf[i] = ux;
  return buf;
}

export function randBytes(n: number): Buffer {
  return randomBytes(n);
}

/** Go duration syntax ("500ms", "10s", "1m30s", "2h") or a bare number of seconds. Returns milliseconds. */
export function parseDurationMs(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== text.length || consumed === 0) throw new Error(`invalid duration "${text}"`);
  return total;
}

export function formatDurationMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** The etcd prefix end: the key with its last byte below 0xff incremented and everything after it dropped. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** A seeded PRNG (mulberry32), so a workload's key choices can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
