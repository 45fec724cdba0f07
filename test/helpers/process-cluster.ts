// Real bin/etcd processes for durability tests: a cluster of N members, each with its own data dir and free
// loopback ports, that can be killed with SIGKILL and restarted with the same flags and data dir; a write load that
// records every acknowledged write with its revision; and the checks that every acknowledged write is on every
// member and that the revision a client observes never goes backwards.
//
// Every process's output goes to <root>/logs/<name>.<start number>.log as well as to memory, so a failed run can be
// read afterwards: the root is kept (and its path printed) when the test fails or DURABILITY_KEEP is set, removed
// when it passes.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePort, runEtcd, type EtcdProcess } from './process';
import type { Test } from 'tap';
import { rawClient, tempDir } from './member';
import { until } from './poll';

export { until };

const b = (s: string) => Buffer.from(s);

/** Every process started by this module, so that a crashing test process still takes them down with it. */
const live = new Set<EtcdProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A unary call with a deadline (a call to a killed member must not hang the test). */
export function callWithDeadline<T = any>(client: any, method: string, req: object, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The revisions one client observes, in real time. A response to a request that was sent after another response
 * arrived must carry a revision at least as high (strictly higher for a write, which creates a revision): etcd's
 * revisions are a linearizable counter, and a restart must not move them backwards.
 */
export class RevisionMonitor {
  /** The highest revision in any response received so far. */
  max = 0;
  readonly violations: string[] = [];

  /** Call before sending a request; pass the result to observe() with the response. */
  floor(): number {
    return this.max;
  }

  observe(floor: number, rev: number, what: string, isWrite: boolean): void {
    if (isWrite ? rev <= floor : rev < floor) {
      this.violations.push(`${what}: revision ${rev} after revision ${floor} had been observed`);
    }
    if (rev > this.max) this.max = rev;
  }
}

export interface AckedWrite {
  value: string;
  rev: number;
}

/**
 * Concurrent writers, each putting a fresh key per request (so that an acknowledged key's mod_revision must equal
 * the revision in its Put response), spread over the given endpoints. A failed write is indeterminate and is not
 * recorded; the writer moves on to the next endpoint and backs off briefly.
 */
export class WriteLoad {
  readonly acked = new Map<string, AckedWrite>();
  failures = 0;
  private stopping = false;
  private writers: Promise<void>[] = [];

  constructor(
    private readonly endpoints: () => string[],
    readonly monitor: RevisionMonitor,
    private readonly opts: { writers?: number; prefix?: string; valueBytes?: number; maxWrites?: number; timeoutMs?: number } = {},
  ) {}

  get prefix(): string {
    return this.opts.prefix ?? 'load/';
  }

  start(): this {
    const n = this.opts.writers ?? 6;
    const pad = 'x'.repeat(Math.max(0, (this.opts.valueBytes ?? 0) - 16));
    let issued = 0;
    this.writers = Array.from({ length: n }, async (_, w) => {
      let target = w;
      let clientFor = '';
      let kv: any = null;
      for (let i = 0; !this.stopping; i++) {
        if (this.opts.maxWrites !== undefined && issued >= this.opts.maxWrites) break;
        issued++;
        const eps = this.endpoints();
        const endpoint = eps[target % eps.length]!;
        if (endpoint !== clientFor) {
          kv?.close();
          kv = rawClient(endpoint, 'etcdserverpb', 'KV');
          clientFor = endpoint;
        }
        const key = `${this.prefix}${String(w).padStart(2, '0')}/${String(i).padStart(7, '0')}`;
        const value = `${w}-${i}${pad}`;
        const floor = this.monitor.floor();
        try {
          const r = await callWithDeadline(kv, 'Put', { key: b(key), value: b(value) }, this.opts.timeoutMs ?? 3000);
          const rev = Number(r.header.revision);
          this.monitor.observe(floor, rev, `Put ${key}`, true);
          this.acked.set(key, { value, rev });
        } catch {
          this.failures++;
          target++;
          await sleep(50);
        }
      }
      kv?.close();
    });
    return this;
  }

  /** Resolves when every writer has finished (all issued writes counted when maxWrites is set). */
  done(): Promise<void> {
    return Promise.all(this.writers).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.done();
  }

  /** A copy of the acknowledged writes so far: all of them returned before the caller's next request is sent. */
  snapshot(): Map<string, AckedWrite> {
    return new Map(this.acked);
  }
}

export interface ProcessClusterOptions {
  size?: number;
  /** Flags added to every member's command line. */
  extraArgs?: string[];
  /** Temp dir prefix. */
  prefix?: string;
  /** Where member `name`'s data dir goes (default <root>/<name>), e.g. on a small file system of its own. */
  dataDirOf?: (name: string, root: string) => string;
}

export interface StatusResult {
  header: { member_id: string; revision: string };
  leader: string;
  raftIndex: string;
  raftAppliedIndex: string;
}

export class ProcessCluster {
  readonly names: string[];
  readonly dataDirs: string[];
  readonly endpoints: string[];
  readonly procs: Array<EtcdProcess | null>;
  /** Member IDs (decimal strings, as Status reports them), learned from the first Status of each member. */
  readonly memberIds: Array<string | null>;
  private readonly starts: number[];
  private readonly initialCluster: string;

  private constructor(
    readonly root: string,
    private readonly peerPorts: number[],
    private readonly clientPorts: number[],
    readonly extraArgs: string[],
    dataDirOf: (name: string, root: string) => string = (name) => path.join(root, name),
  ) {
    const n = peerPorts.length;
    this.names = Array.from({ length: n }, (_, i) => `m${i}`);
    this.dataDirs = this.names.map((name) => dataDirOf(name, root));
    this.endpoints = clientPorts.map((p) => `http://127.0.0.1:${p}`);
    this.procs = this.names.map(() => null);
    this.memberIds = this.names.map(() => null);
    this.starts = this.names.map(() => 0);
    this.initialCluster = this.names.map((name, i) => `${name}=http://127.0.0.1:${peerPorts[i]}`).join(',');
  }

  /**
   * Creates the cluster's directories and ports and starts every member with --initial-cluster-state new. With a
   * tap test, teardown kills every process and removes the root unless the test failed.
   */
  static async start(t: Test | null, opts: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const c = await ProcessCluster.create(t, opts);
    c.names.forEach((_, i) => c.spawn(i, 'new'));
    await Promise.all(c.names.map((_, i) => c.waitReady(i)));
    await c.learnMemberIds();
    return c;
  }

  /** Like start(), without starting anything. */
  static async create(t: Test | null, opts: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const n = opts.size ?? 3;
    const root = await tempDir(opts.prefix ?? 'tsetcd-dura-');
    const ports = await distinctFreePorts(2 * n);
    // DURABILITY_EXTRA_ARGS adds flags to every member of every test (e.g. to rerun the loops with other settings).
    const envArgs = (process.env.DURABILITY_EXTRA_ARGS ?? '').split(' ').filter((a) => a !== '');
    const c = new ProcessCluster(root, ports.slice(0, n), ports.slice(n), [...(opts.extraArgs ?? []), ...envArgs], opts.dataDirOf);
    await fsp.mkdir(path.join(root, 'logs'), { recursive: true });
    if (t) {
      t.teardown(async () => {
        await c.destroy();
        if (t.passing() && !process.env.DURABILITY_KEEP) await fsp.rm(root, { recursive: true, force: true });
        else t.comment(`kept data dirs and process logs in ${root}`);
      });
    }
    return c;
  }

  /** bin/etcd's command line for member i. */
  args(i: number, state: 'new' | 'existing'): string[] {
    return [
      '--name', this.names[i]!, '--data-dir', this.dataDirs[i]!,
      '--listen-client-urls', this.endpoints[i]!, '--advertise-client-urls', this.endpoints[i]!,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPorts[i]}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPorts[i]}`,
      '--initial-cluster', this.initialCluster, '--initial-cluster-token', 'durability',
      '--initial-cluster-state', state,
      ...this.extraArgs,
    ];
  }

  peerUrl(i: number): string {
    return `http://127.0.0.1:${this.peerPorts[i]}`;
  }

  /** Forget member i's ID (after it was removed and added again: a new member gets a new ID). */
  forgetMemberId(i: number): void {
    this.memberIds[i] = null;
  }

  /** The log file of member i's n-th start (1-based), or of its current one. */
  logFile(i: number, start = this.starts[i]!): string {
    return path.join(this.root, 'logs', `${this.names[i]}.${start}.log`);
  }

  /** The output of member i's current process (or of the last one, if it is down). */
  output(i: number): string {
    return this.procs[i]?.output() ?? '';
  }

  /** Everything member i printed across all its starts (from the log files). */
  allOutput(i: number): string {
    let out = '';
    for (let s = 1; s <= this.starts[i]!; s++) {
      try {
        out += fs.readFileSync(this.logFile(i, s), 'utf8');
      } catch {
        // never written
      }
    }
    return out;
  }

  /** Starts member i's process (not waiting for it); its output is appended to its log file. */
  spawn(i: number, state: 'new' | 'existing' = 'existing', opts: { extraArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): EtcdProcess {
    assertDown(this, i);
    this.starts[i]!++;
    const p = runEtcd([...this.args(i, state), ...(opts.extraArgs ?? [])], opts.env);
    const log = fs.createWriteStream(this.logFile(i), { flags: 'a' });
    p.proc.stdout!.on('data', (d: Buffer) => log.write(d));
    p.proc.stderr!.on('data', (d: Buffer) => log.write(d));
    live.add(p);
    void p.exited.then(() => {
      live.delete(p);
      log.end();
    });
    this.procs[i] = p;
    return p;
  }

  async waitReady(i: number, timeoutMs = 30000): Promise<void> {
    await this.procs[i]!.waitFor('ready to serve client requests', timeoutMs);
  }

  /** Restarts member i with the same flags and data dir and waits until it serves clients. */
  async restart(i: number, state: 'new' | 'existing' = 'existing', opts: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
    this.spawn(i, state, opts);
    await this.waitReady(i);
  }

  isUp(i: number): boolean {
    const p = this.procs[i];
    return p !== null && p !== undefined && p.proc.exitCode === null && p.proc.signalCode === null;
  }

  /** kill -9 member i and wait until the process is gone. */
  async kill(i: number): Promise<void> {
    const p = this.procs[i];
    if (!p) return;
    p.proc.kill('SIGKILL');
    await p.exited;
  }

  /** kill -9 several members at once. */
  async killMany(indexes: number[]): Promise<void> {
    for (const i of indexes) this.procs[i]?.proc.kill('SIGKILL');
    await Promise.all(indexes.map((i) => this.procs[i]?.exited));
  }

  async status(i: number, timeoutMs = 2000): Promise<StatusResult> {
    const mt = rawClient(this.endpoints[i]!, 'etcdserverpb', 'Maintenance');
    try {
      return await callWithDeadline<StatusResult>(mt, 'Status', {}, timeoutMs);
    } finally {
      mt.close();
    }
  }

  private async learnMemberIds(): Promise<void> {
    for (let i = 0; i < this.names.length; i++) {
      if (this.memberIds[i] === null && this.isUp(i)) this.memberIds[i] = (await this.status(i)).header.member_id;
    }
  }

  /**
   * The index of the member that the running members agree is the leader (polled until a majority of the running
   * members name the same running leader).
   */
  async leader(timeoutMs = 30000): Promise<number> {
    let found = -1;
    await until(
      'a leader',
      async () => {
        await this.learnMemberIds();
        const votes = new Map<string, number>();
        for (let i = 0; i < this.names.length; i++) {
          if (!this.isUp(i)) continue;
          try {
            const s = await this.status(i);
            if (s.leader !== '0') votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
          } catch {
            // starting, or busy
          }
        }
        for (const [id, count] of votes) {
          const idx = this.memberIds.indexOf(id);
          if (idx >= 0 && this.isUp(idx) && count >= 2) {
            found = idx;
            return true;
          }
        }
        return false;
      },
      timeoutMs,
    );
    return found;
  }

  /** Endpoints of the members whose process is running. */
  liveEndpoints(): string[] {
    return this.endpoints.filter((_, i) => this.isUp(i));
  }

  /**
   * A linearizable Range of every key under `prefix` on member i, retried while the member cannot serve it yet
   * (no leader, catching up, request timed out). The header revision is checked against `monitor`.
   */
  async rangePrefix(i: number, prefix: string, monitor?: RevisionMonitor, timeoutMs = 30000): Promise<{ kvs: Map<string, { value: string; mod: number; create: number }>; rev: number }> {
    const kv = rawClient(this.endpoints[i]!, 'etcdserverpb', 'KV');
    try {
      let out: { kvs: Map<string, { value: string; mod: number; create: number }>; rev: number } | null = null;
      await until(
        `a linearizable range on ${this.names[i]}`,
        async () => {
          const floor = monitor?.floor() ?? 0;
          const r = await callWithDeadline(kv, 'Range', { key: b(prefix), range_end: prefixEnd(b(prefix)) }, 10000);
          const rev = Number(r.header.revision);
          monitor?.observe(floor, rev, `Range on ${this.names[i]}`, false);
          const kvs = new Map<string, { value: string; mod: number; create: number }>();
          for (const x of r.kvs) kvs.set(x.key.toString(), { value: x.value.toString(), mod: Number(x.mod_revision), create: Number(x.create_revision) });
          out = { kvs, rev };
          return true;
        },
        timeoutMs,
        200,
      );
      return out!;
    } finally {
      kv.close();
    }
  }

  /**
   * For every running member: the acknowledged writes that are missing or differ (value, or mod_revision other than
   * the revision acknowledged), as readable lines (empty when all are there). Each member's header revision is
   * checked against the monitor.
   */
  async missingAcked(acked: Map<string, AckedWrite>, prefix: string, monitor: RevisionMonitor): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < this.names.length; i++) {
      if (!this.isUp(i)) continue;
      const { kvs } = await this.rangePrefix(i, prefix, monitor);
      const bad: string[] = [];
      for (const [key, want] of acked) {
        const got = kvs.get(key);
        if (!got) bad.push(`${key} (rev ${want.rev}) missing`);
        else if (got.value !== want.value || got.mod !== want.rev || got.create !== want.rev) {
          bad.push(`${key}: acknowledged ${want.value}@${want.rev}, found ${got.value}@${got.mod} (created ${got.create})`);
        }
      }
      out.set(this.names[i]!, bad.slice(0, 20).concat(bad.length > 20 ? [`... ${bad.length - 20} more`] : []));
    }
    return out;
  }

  /** SIGTERM every running member (SIGKILL after 15 s) and wait for them to exit. */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
        p.proc.kill('SIGTERM');
        const timer = setTimeout(() => p.proc.kill('SIGKILL'), 15000);
        await p.exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Kills every process this cluster started (by PID) and waits for them. */
  async destroy(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
        p.proc.kill('SIGKILL');
        await p.exited;
      }),
    );
  }
}

function assertDown(c: ProcessCluster, i: number): void {
  if (c.isUp(i)) throw new Error(`member ${c.names[i]} is still running`);
}

/** `count` different free ports (outside 20000-30000, the conformance suite's range; Linux picks ephemeral ports above it). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < count) {
    const p = await freePort();
    if (p >= 20000 && p <= 30000) continue;
    out.add(p);
  }
  return [...out];
}

function prefixEnd(key: Buffer): Buffer {
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * The durability check after a fault: every write acknowledged so far is on every running member, at the revision
 * its Put returned, and no response (writes, and these reads) showed a revision lower than one seen before.
 */
export async function checkAcked(t: Test, c: ProcessCluster, load: WriteLoad, label: string): Promise<void> {
  const acked = load.snapshot();
  t.ok(acked.size > 0, `${label}: ${acked.size} writes acknowledged so far`);
  const missing = await c.missingAcked(acked, load.prefix, load.monitor);
  t.equal(missing.size, c.liveEndpoints().length, `${label}: checked ${missing.size} running members`);
  for (const [name, bad] of missing) t.same(bad, [], `${label}: ${name} has every acknowledged write at its revision`);
  t.same(load.monitor.violations, [], `${label}: the observed revision never decreased`);
}

/** A small seeded PRNG (mulberry32) so that a failing choice sequence can be replayed with DURABILITY_SEED. */
export function seededRandom(): { seed: number; next: () => number } {
  const seed = process.env.DURABILITY_SEED ? Number(process.env.DURABILITY_SEED) : Math.floor(Math.random() * 2 ** 31);
  let a = seed >>> 0;
  return {
    seed,
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let x = a;
      x = Math.imul(x ^ (x >>> 15), x | 1);
      x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** Waits until the load has `n` more acknowledged writes than now: the cluster takes writes again. */
export async function waitForProgress(load: WriteLoad, n: number, what: string, timeoutMs = 30000): Promise<number> {
  const from = load.acked.size;
  await until(`${n} more acknowledged writes ${what}`, () => load.acked.size >= from + n, timeoutMs, 50);
  return load.acked.size - from;
}

/** The JSON log lines in `output` whose msg is `msg`. */
export function logLines(output: string, msg: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of output.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.msg === msg) out.push(o);
    } catch {
      // not a log line
    }
  }
  return out;
}
