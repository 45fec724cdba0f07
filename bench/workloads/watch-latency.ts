// watch-latency: etcd benchmark's `watch-latency` — --streams Watch streams with --watchers-per-stream watchers
// each, all on one key, while one extra connection puts that key at --put-rate. A watcher's latency for an event
// is, as in etcd's tool, the time from the Put's response to the event's arrival (0 if the event came first);
// "watch-e2e" measures from the Put's request instead. Puts: --put-total, or --put-rate × --duration.

import { Connection, type BidiStream, type Transport } from '../lib/conn';
import { paths, pb, toNumber } from '../lib/proto';
import { nowUs, randBytes, sleep } from '../lib/util';
import type { Workload } from '../lib/workload';
import { bytes, decodeHeaderRevision, omitDefaults, putRequest } from './common';

interface Prepared {
  key: Uint8Array;
  value: Uint8Array;
}

interface WatcherState {
  lastRev: number;
  events: number;
}

interface Teardown {
  /** Flat [revision, arrivalUs] pairs of every event at every watcher. */
  arrivals: number[];
  watchers: number;
  incomplete: number;
}

interface DriveData {
  /** Flat [revision, startUs, endUs] per successful put. */
  puts: number[];
  errors: number;
  firstError: string;
}

const ignore = (): void => undefined;

export interface WatchEvent {
  type: number;
  kv: { key: Uint8Array; mod_revision: unknown; create_revision: unknown; version: unknown } | null;
  prev_kv: unknown;
}

export interface WatchResponseMsg {
  header?: { revision?: unknown };
  watch_id: unknown;
  created: boolean;
  canceled: boolean;
  compact_revision: unknown;
  cancel_reason: string;
  events: WatchEvent[];
}

export function decodeWatchResponse(b: Buffer): WatchResponseMsg {
  return pb().WatchResponse.decode(b) as unknown as WatchResponseMsg;
}

/** Sends one create request and waits for its `created` response (clientv3 creates watchers one at a time). */
export function createWatch(stream: BidiStream, create: Record<string, unknown>): Promise<number> {
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer): void => {
      const r = decodeWatchResponse(b);
      if (!r.created) return;
      stream.off('data', onData);
      stream.off('error', onError);
      if (r.canceled) reject(new Error(`watch create canceled: ${r.cancel_reason}`));
      else resolve(toNumber(r.watch_id));
    };
    const onError = (e: Error): void => {
      stream.off('data', onData);
      reject(e);
    };
    stream.on('data', onData);
    stream.on('error', onError);
    stream.write(bytes(pb().WatchRequest.encode({ create_request: omitDefaults(create) }).finish()));
  });
}

export const watchLatency: Workload = {
  name: 'watch-latency',
  summary: 'Benchmark watch latency',
  flags: [
    { name: 'streams', kind: 'int', default: 10, help: 'Total watch streams' },
    { name: 'watchers-per-stream', kind: 'int', default: 10, help: 'Total watchers per stream' },
    { name: 'prevkv', kind: 'bool', default: false, help: 'PrevKV enabled on watch requests' },
    { name: 'put-total', kind: 'int', default: 1000, help: 'Total number of put requests (ignored with --duration)' },
    { name: 'put-rate', kind: 'int', default: 100, help: 'Number of keys to put per second' },
    { name: 'key-size', kind: 'int', default: 32, help: 'Key size of watch response' },
    { name: 'val-size', kind: 'int', default: 32, help: 'Value size of watch response' },
  ],
  throughputLabels: ['watch'],
  headlineLabel: 'watch',
  needsFinalRev: true,
  async prepare(flags) {
    return { key: randBytes(flags.int('key-size')), value: randBytes(flags.int('val-size')) } satisfies Prepared;
  },
  async setup(ctx) {
    const p = ctx.prepared as Prepared;
    const key = Buffer.from(p.key);
    const streamsTotal = ctx.flags.int('streams');
    const perStream = ctx.flags.int('watchers-per-stream');
    const arrivals: number[] = [];
    const watchers = new Map<string, WatcherState>();
    const streams: Array<BidiStream> = [];
    for (let s = 0; s < streamsTotal; s++) {
      // Stream s belongs to client s mod clients, like clientv3.NewWatcher(clients[s % len(clients)]).
      const client = s % ctx.totalClients;
      if (!ctx.clientIndices.includes(client)) continue;
      const stream = ctx.connOf(client).bidi(paths.watch);
      streams.push(stream);
      const mine = new Map<number, WatcherState>();
      for (let w = 0; w < perStream; w++) {
        const id = await createWatch(stream, { key, prev_kv: ctx.flags.bool('prevkv') });
        const st = { lastRev: 0, events: 0 };
        mine.set(id, st);
        watchers.set(`${s}/${id}`, st);
      }
      stream.on('data', (b: Buffer) => {
        const at = nowUs();
        const r = decodeWatchResponse(b);
        const st = mine.get(toNumber(r.watch_id));
        if (st === undefined) return;
        for (const ev of r.events) {
          const rev = toNumber(ev.kv?.mod_revision);
          arrivals.push(rev, at);
          st.events++;
          if (rev > st.lastRev) st.lastRev = rev;
        }
      });
      stream.on('error', ignore);
    }
    return {
      steps: [],
      async teardown(finalRev: number): Promise<Teardown> {
        const deadline = nowUs() + 10_000_000;
        const behind = (): number => [...watchers.values()].filter((w) => w.lastRev < finalRev).length;
        while (behind() > 0 && nowUs() < deadline) await sleep(5);
        const incomplete = behind();
        for (const s of streams) s.cancel();
        return { arrivals, watchers: watchers.size, incomplete };
      },
    };
  },
  async drive(flags, endpoints, prepared, measureStartUs) {
    const p = prepared as Prepared;
    const conn = new Connection(endpoints[0]!, flags.str('transport') as Transport);
    await conn.ready();
    const rate = flags.int('put-rate');
    const durationMs = flags.int('duration');
    const warmupMs = durationMs > 0 ? flags.int('warmup') : 0;
    const total = durationMs > 0 ? Math.max(1, Math.round((rate * (durationMs + warmupMs)) / 1000)) : flags.int('put-total');
    const request = putRequest(Buffer.from(p.key), Buffer.from(p.value));
    const data: DriveData = { puts: [], errors: 0, firstError: '' };
    // Paced evenly from the workers' start (etcd uses a token bucket with a burst of one second's puts).
    const startUs = measureStartUs - warmupMs * 1000;
    const wait = startUs - nowUs();
    if (wait > 0) await sleep(wait / 1000);
    try {
      for (let i = 0; i < total; i++) {
        const slot = startUs + (i * 1e6) / rate;
        const ahead = slot - nowUs();
        if (ahead > 1000) await sleep(ahead / 1000);
        const t0 = nowUs();
        try {
          const res = await conn.unary(paths.put, request);
          const t1 = nowUs();
          data.puts.push(decodeHeaderRevision(res), t0, t1);
        } catch (err) {
          data.errors++;
          if (data.firstError === '') data.firstError = err instanceof Error ? err.message : String(err);
        }
      }
    } finally {
      conn.close();
    }
    return data;
  },
  finish(workerData, driveData, measureStartUs) {
    const d = driveData as DriveData;
    const putAt = new Map<number, { start: number; end: number }>();
    const put: number[] = [];
    let first = Infinity;
    let lastPut = 0;
    for (let i = 0; i < d.puts.length; i += 3) {
      const [rev, start, end] = [d.puts[i]!, d.puts[i + 1]!, d.puts[i + 2]!];
      if (start < measureStartUs) continue;
      putAt.set(rev, { start, end });
      put.push(end - start);
      first = Math.min(first, start);
      lastPut = Math.max(lastPut, start);
    }
    const watch: number[] = [];
    const e2e: number[] = [];
    let watchers = 0;
    let incomplete = 0;
    for (const w of workerData as Teardown[]) {
      watchers += w.watchers;
      incomplete += w.incomplete;
      for (let i = 0; i < w.arrivals.length; i += 2) {
        const p = putAt.get(w.arrivals[i]!);
        if (p === undefined) continue;
        const at = w.arrivals[i + 1]!;
        watch.push(Math.max(0, at - p.end));
        e2e.push(at - p.start);
      }
    }
    return {
      histogramsUs: { watch, 'watch-e2e': e2e, put },
      // Events per second of put time (the put schedule spans (puts - 1) intervals of 1/rate, plus one interval):
      // --put-rate x watchers when the server keeps up with the schedule, less when the puts fall behind it.
      seconds: (lastPut - first) / 1e6 + (put.length > 0 ? (lastPut - first) / 1e6 / Math.max(1, put.length - 1) : 0),
      notes: { watchers, puts: put.length, putErrors: d.errors, watchersIncomplete: incomplete, ...(d.firstError ? { firstPutError: d.firstError } : {}) },
    };
  },
};
