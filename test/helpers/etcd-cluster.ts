// A cluster of real bin/etcd processes for tests: on loopback with free ports, or one member per network
// namespace (test/helpers/netns.ts) on fixed ports. Every process it starts is tracked by PID and killed by
// killAll() (register it with t.teardown, so that a failing test leaves nothing behind).

import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, runEtcd, type EtcdProcess } from './process';
import { rawClient, tempDir } from './member';

export interface ProcessClusterOptions {
  /** Member names; default a, b, c. */
  names?: string[];
  /** Each member's host for its client and peer URLs; default 127.0.0.1 for all. */
  hosts?: string[];
  /** Each member's network namespace, if any. */
  netns?: string[];
  /** Fixed ports (inside namespaces, every member can use the same); default free loopback ports. */
  clientPorts?: number[];
  peerPorts?: number[];
  token?: string;
  /** More flags for every member. */
  extraArgs?: string[];
}

export interface ProcessCluster {
  readonly names: string[];
  /** Client URLs, http://host:port. */
  readonly endpoints: string[];
  readonly peerUrls: string[];
  readonly root: string;
  /** The running process of member i (undefined while stopped). */
  readonly procs: Array<EtcdProcess | undefined>;
  /** bin/etcd's flags for member i. */
  args(i: number, state: 'new' | 'existing'): string[];
  /** Starts member i (again) and waits until it serves clients. */
  start(i: number, state?: 'new' | 'existing'): Promise<EtcdProcess>;
  /** Sends `signal` to member i and waits for it to exit. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Kills every process still running (SIGKILL) and removes the data dirs. */
  killAll(): Promise<void>;
}

/** Maintenance.Status of one endpoint, with a deadline. */
export async function statusOf(endpoint: string, timeoutMs = 3000): Promise<any> {
  const mt = rawClient(endpoint, 'etcdserverpb', 'Maintenance');
  try {
    return await new Promise((resolve, reject) => {
      mt.Status({}, { deadline: Date.now() + timeoutMs }, (err: any, res: any) => (err ? reject(err) : resolve(res)));
    });
  } finally {
    mt.close();
  }
}

/**
 * The index (into `endpoints`) of the member every reachable member of `among` agrees is the leader, polling
 * until they agree and the leader itself says so; rejects after `timeoutMs`.
 */
export async function agreedLeader(endpoints: string[], among: number[], timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const ss = await Promise.all(among.map((i) => statusOf(endpoints[i]!)));
      const leaders = new Set(ss.map((s) => s.leader));
      const lead = ss[0]!.leader;
      const li = ss.findIndex((s) => s.header.member_id === lead);
      if (leaders.size === 1 && lead !== '0' && li >= 0) return among[li]!;
      last = JSON.stringify(ss.map((s) => ({ member: s.header.member_id, leader: s.leader, term: s.raftTerm })));
    } catch (err: any) {
      last = String(err?.details ?? err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`members ${among.join(',')} did not agree on a leader within ${timeoutMs} ms: ${last}`);
}

export async function startProcessCluster(opts: ProcessClusterOptions = {}): Promise<ProcessCluster> {
  const names = opts.names ?? ['a', 'b', 'c'];
  const hosts = opts.hosts ?? names.map(() => '127.0.0.1');
  const clientPorts = opts.clientPorts ?? (await Promise.all(names.map(() => freePort())));
  const peerPorts = opts.peerPorts ?? (await Promise.all(names.map(() => freePort())));
  const endpoints = names.map((_, i) => `http://${hosts[i]}:${clientPorts[i]}`);
  const peerUrls = names.map((_, i) => `http://${hosts[i]}:${peerPorts[i]}`);
  const initialCluster = names.map((name, i) => `${name}=${peerUrls[i]}`).join(',');
  const root = await tempDir('tsetcd-procs-');
  const procs: Array<EtcdProcess | undefined> = names.map(() => undefined);
  const args = (i: number, state: 'new' | 'existing') => [
    '--name', names[i]!, '--data-dir', path.join(root, names[i]!),
    '--listen-client-urls', endpoints[i]!, '--advertise-client-urls', endpoints[i]!,
    '--listen-peer-urls', peerUrls[i]!, '--initial-advertise-peer-urls', peerUrls[i]!,
    '--initial-cluster', initialCluster, '--initial-cluster-token', opts.token ?? 'proc-cluster', '--initial-cluster-state', state,
    ...(opts.extraArgs ?? []),
  ];
  const launch = (i: number, state: 'new' | 'existing') => {
    if (procs[i]) throw new Error(`member ${names[i]} is already running`);
    const p = runEtcd(args(i, state), {}, { netns: opts.netns?.[i] });
    procs[i] = p;
    void p.exited.then(() => {
      if (procs[i] === p) procs[i] = undefined;
    });
    return p;
  };
  const cluster: ProcessCluster = {
    names,
    endpoints,
    peerUrls,
    root,
    procs,
    args,
    async start(i, state = 'existing') {
      const p = launch(i, state);
      await p.waitFor('ready to serve client requests', 60_000);
      return p;
    },
    async kill(i, signal = 'SIGKILL') {
      const p = procs[i];
      if (!p) return;
      p.proc.kill(signal);
      await p.exited;
    },
    async killAll() {
      const running = procs.filter((p): p is EtcdProcess => p !== undefined);
      for (const p of running) p.proc.kill('SIGKILL');
      await Promise.all(running.map((p) => p.exited));
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  try {
    const started = names.map((_, i) => launch(i, 'new'));
    await Promise.all(started.map((p) => p.waitFor('ready to serve client requests', 60_000)));
  } catch (err) {
    await cluster.killAll();
    throw err;
  }
  return cluster;
}

/** A unary call with a deadline (the raw clients in member.ts have none). */
export function callWithDeadline<T = any>(client: any, method: string, req: object, timeoutMs: number, metadata?: Record<string, string>): Promise<T> {
  const grpc = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  return new Promise((resolve, reject) => {
    client[method](req, md, { deadline: Date.now() + timeoutMs }, (err: any, res: T) => (err ? reject(err) : resolve(res)));
  });
}
