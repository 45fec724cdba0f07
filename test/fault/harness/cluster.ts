// The cluster a fault run drives: three real bin/etcd processes, each with its own data dir and log file, each
// with a GOFAIL_HTTP endpoint so failpoints can be set at run time. With root and iproute2 every member runs in a
// network namespace of its own (test/helpers/netns.ts), which makes peer partitions possible (blackhole routes);
// otherwise the members run on loopback with free ports, and the nemeses that need namespaces are unavailable.
// With `peerProxy`, each member's advertised peer URL is a peer proxy (peer-proxy.ts) that forwards to the member's
// real peer listener: in a namespace, the proxy runs in the member's namespace on its address (so blackhole routes
// and a downed link still cut it off) and the member listens on 127.0.0.1 there; on loopback, on a port of its own.
//
// Every process is started by this module and tracked by PID; destroy() kills what is still running (SIGCONT
// first, in case it was paused), then removes the namespaces. It never touches a process it did not start.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { createNetns, netnsUnavailable, type NetnsTopology } from '../../helpers/netns';
import { freePort, runEtcd, type EtcdProcess } from '../../helpers/process';
import { rawClient } from '../../helpers/member';
import { spawnPeerProxy, type LinkCounters, type LinkRule, type PeerProxyProcess } from './peer-proxy';
import type { ListedMember } from '../checker';

const live = new Set<EtcdProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.proc.kill('SIGCONT');
      p.proc.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/** A unary gRPC call with a deadline. */
export function unary<T = any>(client: any, method: string, req: object, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + timeoutMs }, (err: any, res: T) => (err ? reject(err) : resolve(res)));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function portOutsideConformance(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 20000 || p > 30000) return p;
  }
}

export interface FaultClusterOptions {
  root: string;
  /** Use network namespaces if possible (default true). */
  netns?: boolean;
  /** Extra environment for every member (e.g. TSETCD_UNSAFE_LOCAL_READS). */
  env?: NodeJS.ProcessEnv;
  extraArgs?: string[];
  /** Put a peer proxy in front of every member's peer listener (peer-proxy.ts), seeded from `seed`. */
  peerProxy?: boolean;
  seed?: number;
  /** Start every member under the power-loss shim (test/helpers/powerloss.ts), journal per member: powerLossJournal(i). */
  powerLoss?: boolean;
  log?: (msg: string) => void;
}

/** A proxy rule between members by index (0..2); see LinkRule. */
export type MemberLinkRule = Omit<LinkRule, 'from' | 'to'> & { from: number; to: number };

const POWERLOSS_SHIM = path.join(__dirname, '..', '..', 'helpers', 'powerloss.js');

const clusters = new Set<FaultCluster>();

/** Destroys every cluster not destroyed yet (for a SIGINT handler). */
export async function destroyAllClusters(): Promise<void> {
  await Promise.all([...clusters].map((c) => c.destroy()));
}

export class FaultCluster {
  readonly names = ['n1', 'n2', 'n3'];
  readonly procs: Array<EtcdProcess | undefined> = [undefined, undefined, undefined];
  readonly paused = [false, false, false];
  readonly starts = [0, 0, 0];
  memberIds: Array<string | undefined> = [undefined, undefined, undefined];
  /** One per member when the cluster runs with peer proxies, else empty. */
  readonly proxies: PeerProxyProcess[] = [];
  private constructor(
    readonly root: string,
    readonly net: NetnsTopology | undefined,
    /** Why namespaces are not used, if they are not. */
    readonly netnsWhy: string | undefined,
    readonly endpoints: string[],
    readonly peerUrls: string[],
    readonly gofail: string[],
    /** Where each member listens for peers: its peerUrls, or behind a proxy, the address the proxy forwards to. */
    readonly peerListenUrls: string[],
    private readonly opts: FaultClusterOptions,
  ) {}

  static async create(opts: FaultClusterOptions): Promise<FaultCluster> {
    await fsp.mkdir(path.join(opts.root, 'logs'), { recursive: true });
    let net: NetnsTopology | undefined;
    let why: string | undefined = opts.netns === false ? 'disabled (--no-netns)' : await netnsUnavailable();
    if (!why) {
      try {
        net = await createNetns(3);
      } catch (err) {
        why = err instanceof Error ? err.message : String(err);
      }
    }
    let endpoints: string[], peerUrls: string[], gofail: string[], peerListenUrls: string[];
    if (net) {
      // Inside its own namespace every member can use the same ports.
      endpoints = net.addresses.map((a) => `http://${a}:2379`);
      peerUrls = net.addresses.map((a) => `http://${a}:2380`);
      gofail = net.addresses.map((a) => `${a}:2381`);
      peerListenUrls = opts.peerProxy ? net.addresses.map(() => 'http://127.0.0.1:2390') : peerUrls;
    } else {
      const ports: number[] = [];
      while (ports.length < 12) {
        const p = await portOutsideConformance();
        if (!ports.includes(p)) ports.push(p);
      }
      endpoints = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[i]}`);
      peerUrls = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[3 + i]}`);
      gofail = [0, 1, 2].map((i) => `127.0.0.1:${ports[6 + i]}`);
      peerListenUrls = opts.peerProxy ? [0, 1, 2].map((i) => `http://127.0.0.1:${ports[9 + i]}`) : peerUrls;
    }
    const c = new FaultCluster(opts.root, net, why, endpoints, peerUrls, gofail, peerListenUrls, opts);
    clusters.add(c);
    if (opts.peerProxy) {
      try {
        for (let i = 0; i < 3; i++) {
          const [listenHost, listenPort] = hostPort(peerUrls[i]!);
          const [targetHost, targetPort] = hostPort(peerListenUrls[i]!);
          c.proxies.push(await spawnPeerProxy({
            listenHost, listenPort, targetHost, targetPort, seed: (opts.seed ?? 0) + i, netns: net?.namespaces[i],
            log: (line) => opts.log?.(`  peer proxy of ${c.names[i]}: ${line}`),
          }));
        }
      } catch (err) {
        await c.destroy();
        throw err;
      }
    }
    return c;
  }

  get size(): number {
    return 3;
  }

  args(i: number, state: 'new' | 'existing'): string[] {
    const initialCluster = this.names.map((n, j) => `${n}=${this.peerUrls[j]}`).join(',');
    return [
      '--name', this.names[i]!, '--data-dir', this.dataDir(i),
      '--listen-client-urls', this.endpoints[i]!, '--advertise-client-urls', this.endpoints[i]!,
      '--listen-peer-urls', this.peerListenUrls[i]!, '--initial-advertise-peer-urls', this.peerUrls[i]!,
      '--initial-cluster', initialCluster, '--initial-cluster-token', 'faults', '--initial-cluster-state', state,
      // etcd's slowest robustness setting; a 2-core box shared by three members needs it (faults.md §6.2).
      '--heartbeat-interval', '100', '--election-timeout', '1000',
      ...(this.opts.extraArgs ?? []),
    ];
  }

  dataDir(i: number): string {
    return path.join(this.root, 'data', this.names[i]!);
  }

  /** The shim's journal of member i, or undefined if the members run without it. */
  powerLossJournal(i: number): string | undefined {
    return this.opts.powerLoss ? path.join(this.root, 'powerloss', `${this.names[i]}.journal`) : undefined;
  }

  logFile(i: number): string {
    return path.join(this.root, 'logs', `${this.names[i]}.log`);
  }

  /** The size of member i's log file, bytes: a position to look for lines after (logShows). */
  logSize(i: number): number {
    try {
      return fs.statSync(this.logFile(i)).size;
    } catch {
      return 0;
    }
  }

  /** Waits until member i's log contains `text` after byte `from`; returns whether it did within timeoutMs. */
  async logShows(i: number, text: string, from: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const buf = await fsp.readFile(this.logFile(i)).catch(() => Buffer.alloc(0));
      if (buf.subarray(from).toString().includes(text)) return true;
      if (Date.now() > deadline) return false;
      await sleep(100);
    }
  }

  spawn(i: number, state: 'new' | 'existing'): EtcdProcess {
    if (this.procs[i]) throw new Error(`${this.names[i]} is already running`);
    this.starts[i]!++;
    const journal = this.powerLossJournal(i);
    if (journal) fs.mkdirSync(path.dirname(journal), { recursive: true });
    // Added to, not replacing, NODE_OPTIONS from the run's environment (the clock shim of nemesis-hooks.ts).
    const shim = journal ? { NODE_OPTIONS: `${this.opts.env?.NODE_OPTIONS ?? ''} --require ${POWERLOSS_SHIM}`.trim(), TSETCD_POWERLOSS_JOURNAL: journal, TSETCD_POWERLOSS_ROOT: this.dataDir(i) } : {};
    const p = runEtcd(this.args(i, state), { ...this.opts.env, ...shim, GOFAIL_HTTP: this.gofail[i]! }, { netns: this.net?.namespaces[i] });
    const log = fs.createWriteStream(this.logFile(i), { flags: 'a' });
    log.write(`--- start ${this.starts[i]} pid ${p.proc.pid} ${new Date().toISOString()}\n`);
    p.proc.stdout!.on('data', (d: Buffer) => log.write(d));
    p.proc.stderr!.on('data', (d: Buffer) => log.write(d));
    live.add(p);
    this.procs[i] = p;
    this.paused[i] = false;
    void p.exited.then((code) => {
      live.delete(p);
      log.end(`--- exit ${code} signal ${p.proc.signalCode}\n`);
      if (this.procs[i] === p) this.procs[i] = undefined;
    });
    return p;
  }

  async startAll(): Promise<void> {
    const ps = [0, 1, 2].map((i) => this.spawn(i, 'new'));
    await Promise.all(ps.map((p) => p.waitFor('ready to serve client requests', 60_000)));
    await this.learnIds();
  }

  isUp(i: number): boolean {
    return this.procs[i] !== undefined;
  }

  async restart(i: number): Promise<void> {
    if (this.procs[i]) return;
    const p = this.spawn(i, 'existing');
    await p.waitFor('ready to serve client requests', 60_000);
  }

  async kill(i: number): Promise<void> {
    const p = this.procs[i];
    if (!p) return;
    p.proc.kill('SIGKILL');
    if (this.paused[i]) p.proc.kill('SIGCONT');
    await p.exited;
  }

  pause(i: number): void {
    const p = this.procs[i];
    if (!p) return;
    p.proc.kill('SIGSTOP');
    this.paused[i] = true;
  }

  resume(i: number): void {
    const p = this.procs[i];
    if (p && this.paused[i]) p.proc.kill('SIGCONT');
    this.paused[i] = false;
  }

  status(i: number, timeoutMs = 2000): Promise<any> {
    return this.maintenance(i, 'Status', {}, timeoutMs);
  }

  /** One unary call of `service` on member i, over a client of its own. */
  private async call<T>(i: number, service: 'Maintenance' | 'Cluster', method: string, req: object, timeoutMs: number): Promise<T> {
    const client = rawClient(this.endpoints[i]!, 'etcdserverpb', service);
    try {
      return await unary<T>(client, method, req, timeoutMs);
    } finally {
      client.close();
    }
  }

  maintenance<T = any>(i: number, method: string, req: object, timeoutMs = 5000): Promise<T> {
    return this.call<T>(i, 'Maintenance', method, req, timeoutMs);
  }

  async learnIds(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      if (this.memberIds[i] || !this.isUp(i) || this.paused[i]) continue;
      try {
        this.memberIds[i] = String((await this.status(i)).header.member_id);
      } catch {
        // later
      }
    }
  }

  /** The member a majority of the reachable members name as leader, or -1 if none within timeoutMs. */
  async leader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await this.learnIds();
      const votes = new Map<string, number>();
      await Promise.all([0, 1, 2].map(async (i) => {
        if (!this.isUp(i) || this.paused[i]) return;
        try {
          const s = await this.status(i, 1000);
          if (s.leader !== '0') votes.set(String(s.leader), (votes.get(String(s.leader)) ?? 0) + 1);
        } catch {
          // down or busy
        }
      }));
      for (const [id, n] of votes) {
        const idx = this.memberIds.indexOf(id);
        if (n >= 2 && idx >= 0 && this.isUp(idx) && !this.paused[idx]) return idx;
      }
      await sleep(100);
    }
    return -1;
  }

  /** A Cluster-service call on member i. */
  clusterCall<T = any>(i: number, method: string, req: object, timeoutMs = 5000): Promise<T> {
    return this.call<T>(i, 'Cluster', method, req, timeoutMs);
  }

  /** Member i's own view of the membership (MemberList without linearizable: what that member has applied). */
  async memberList(i: number): Promise<ListedMember[]> {
    const r = await this.clusterCall(i, 'MemberList', {});
    return r.members.map((m: any) => ({ id: String(m.ID), name: m.name, peerURLs: [...m.peerURLs].sort(), isLearner: Boolean(m.isLearner) }));
  }

  /** A running member other than i to send conf changes through (the leader if it is one of them). */
  private async via(i: number): Promise<number> {
    const l = await this.leader(5000);
    if (l >= 0 && l !== i) return l;
    const j = [0, 1, 2].find((k) => k !== i && this.isUp(k) && !this.paused[k]);
    if (j === undefined) throw new Error(`no running member to reconfigure ${this.names[i]} through`);
    return j;
  }

  /**
   * Retries a conf change until it is applied or 30 s pass. A retry after an attempt that timed out but was applied
   * gets `alreadyDone` (member not found, peer URL exists, not a learner), which counts as success.
   */
  private async reconfigure<T>(what: string, call: () => Promise<T>, alreadyDone: RegExp): Promise<T | undefined> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await call();
      } catch (err: any) {
        const msg = String(err?.details ?? err?.message ?? err);
        if (alreadyDone.test(msg)) return undefined;
        if (Date.now() > deadline) throw new Error(`${what}: ${msg}`);
        await sleep(300);
      }
    }
  }

  /**
   * F14, first half: MemberRemove member i through another member, kill its process (a removed member may also
   * exit by itself) and delete its data dir. Returns the removed ID (undefined if it was not in the list).
   */
  async removeMember(i: number): Promise<string | undefined> {
    const via = await this.via(i);
    const old = (await this.memberList(via)).find((m) => m.peerURLs.includes(this.peerUrls[i]!));
    if (old) await this.reconfigure(`MemberRemove ${this.names[i]}`, () => this.clusterCall(via, 'MemberRemove', { ID: old.id }), /member not found/);
    await this.kill(i);
    await fsp.rm(this.dataDir(i), { recursive: true, force: true });
    this.memberIds[i] = undefined;
    return old?.id;
  }

  /**
   * F14, second half: MemberAdd the same peer URL (as a learner if asked), start member i with an empty data dir
   * and --initial-cluster-state existing, wait until it serves; a learner is promoted once the leader finds it in
   * sync (MemberPromote is retried while it answers "…which is in sync with leader"). Then waits until the member
   * has caught up with the revision the cluster had when it was added. Returns the new member ID and how often a
   * promotion was refused as not in sync yet.
   */
  async addMember(i: number, learner: boolean): Promise<{ id: string; notInSync: number }> {
    const via = await this.via(i);
    await this.reconfigure(`MemberAdd ${this.names[i]}`, () => this.clusterCall(via, 'MemberAdd', { peerURLs: [this.peerUrls[i]!], isLearner: learner }), /Peer URLs already exists/);
    const added = (await this.memberList(via)).find((m) => m.peerURLs.includes(this.peerUrls[i]!));
    if (!added) throw new Error(`MemberAdd ${this.names[i]}: not in ${this.names[via]}'s member list afterwards`);
    this.memberIds[i] = added.id;
    const target = Number((await this.status(via)).header.revision);
    const p = this.spawn(i, 'existing');
    await p.waitFor('ready to serve client requests', 60_000);
    let notInSync = 0;
    if (learner) {
      const promote = () => this.clusterCall(via, 'MemberPromote', { ID: added.id }, 5000).catch((err: any) => {
        if (/in sync with leader/.test(String(err?.details))) notInSync++;
        throw err;
      });
      await this.reconfigure(`MemberPromote ${this.names[i]}`, promote, /can only promote a learner member$/);
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await this.status(i).catch(() => undefined);
      if (s && Number(s.header.revision) >= target && !s.isLearner) break;
      if (Date.now() > deadline) throw new Error(`${this.names[i]} did not catch up to revision ${target} as a voter within 30 s`);
      await sleep(200);
    }
    return { id: added.id, notInSync };
  }

  /** F14: removeMember then addMember (etcd robustness's MemberReplace; with `learner`, via a learner). */
  async replace(i: number, learner: boolean): Promise<{ oldId: string | undefined; newId: string; notInSync: number }> {
    const oldId = await this.removeMember(i);
    const { id, notInSync } = await this.addMember(i, learner);
    return { oldId, newId: id, notInSync };
  }

  /** PUT (term) or DELETE (term undefined) a failpoint on member i over its GOFAIL_HTTP endpoint. */
  failpoint(i: number, name: string, term: string | undefined): Promise<void> {
    const [host, port] = this.gofail[i]!.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      const req = http.request({ host, port: Number(port), path: `/${name}`, method: term === undefined ? 'DELETE' : 'PUT', timeout: 3000 }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`failpoint ${name}: HTTP ${res.statusCode}`))));
      });
      req.on('timeout', () => req.destroy(new Error(`failpoint ${name}: timeout`)));
      req.on('error', reject);
      req.end(term ?? '');
    });
  }

  /** Sets the peer proxies' rules (replacing all; [] heals). Needs every member's ID, learnt from Status. */
  async setLinkRules(rules: readonly MemberLinkRule[]): Promise<void> {
    if (this.proxies.length === 0) throw new Error('the cluster runs without peer proxies');
    await this.learnIds();
    const hex = (i: number) => {
      const id = this.memberIds[i];
      if (id === undefined) throw new Error(`the member ID of ${this.names[i]} is not known yet`);
      return BigInt(id).toString(16);
    };
    const byId = rules.length === 0 ? [] : rules.map((r) => ({ ...r, from: hex(r.from), to: hex(r.to) }));
    await Promise.all(this.proxies.map((p) => p.request('rules', { rules: byId })));
  }

  /** The proxies' counters per link, named by member ("n1->n2"), summed over the proxies. */
  async proxyStats(): Promise<Record<string, LinkCounters>> {
    const name = new Map(this.memberIds.map((id, i) => [id === undefined ? '' : BigInt(id).toString(16), this.names[i]!]));
    const out: Record<string, LinkCounters> = {};
    for (const p of this.proxies) {
      for (const [link, c] of Object.entries(await p.request('stats'))) {
        const [from, to] = link.split('->') as [string, string];
        const key = `${name.get(from) ?? from}->${name.get(to) ?? to}`;
        const sum = (out[key] ??= { forwarded: 0, dropped: 0, delayed: 0, duplicated: 0, reordered: 0, blackholed: 0, resets: 0 });
        for (const k of Object.keys(c) as Array<keyof LinkCounters>) sum[k] += c[k];
      }
    }
    return out;
  }

  /** Removes every network fault: blackhole routes, downed links, proxy rules. */
  async healNetwork(): Promise<void> {
    await this.net?.heal();
    if (this.proxies.length) await this.setLinkRules([]);
  }

  private destroying: Promise<void> | undefined;

  /** Kill everything still running (paused ones too), then remove the namespaces. Safe to call twice, and
   * concurrently (a SIGINT handler and the run's finally block both wait for the same teardown). */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown().finally(() => clusters.delete(this));
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const running = this.procs.filter((p): p is EtcdProcess => p !== undefined);
    for (const p of running) {
      p.proc.kill('SIGCONT');
      p.proc.kill('SIGKILL');
    }
    await Promise.all(running.map((p) => p.exited));
    await Promise.all(this.proxies.map((p) => p.kill()));
    if (this.net) {
      await this.net.heal().catch(() => {});
      await this.net.destroy();
    }
  }
}

function hostPort(url: string): [string, number] {
  const u = new URL(url);
  return [u.hostname, Number(u.port)];
}
