// Starting and stopping the servers under test: a real etcd and ours, 1 or N members on loopback, each member with
// a fresh temporary data directory and the same flags. Every process started here is tracked and killed when the
// benchmark exits, however it exits.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { currentRevision } from '../lib/runner';
import { sleep } from '../lib/util';
import { cpuSeconds, peakRssMiB } from './proc';

export type ServerName = 'ours' | 'etcd';

export interface ServerBinary {
  name: ServerName;
  /** The program and the arguments before etcd's flags (node and its flags plus bin/etcd, or the etcd binary). */
  command: string;
  prefixArgs: string[];
  describe: string;
}

export interface Member {
  name: string;
  clientUrl: string;
  endpoint: string;
  process: ChildProcess;
  pid: number;
  logFile: string;
}

export interface Cluster {
  server: ServerName;
  members: Member[];
  dataRoot: string;
  endpoints: string[];
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = (): void => {
    for (const p of live) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

let nextPort = 30000;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The next free loopback port from 30000 up. */
export async function allocatePort(): Promise<number> {
  for (;;) {
    const p = nextPort++;
    if (p > 40000) throw new Error('no free port between 30000 and 40000');
    if (await portFree(p)) return p;
  }
}

export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function tail(file: string, lines = 5): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts `members` members of one server on loopback and waits until each answers a Range. */
export async function startCluster(bin: ServerBinary, members: number, opts: { extraEnv?: Record<string, string> } = {}): Promise<Cluster> {
  installExitHooks();
  const dataRoot = makeTempDir(`tsetcd-bench-${bin.name}-`);
  const ports: Array<{ client: number; peer: number }> = [];
  for (let i = 0; i < members; i++) ports.push({ client: await allocatePort(), peer: await allocatePort() });
  const names = ports.map((_, i) => `${bin.name}-${i}`);
  const initialCluster = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(',');
  const started: Member[] = [];
  const cluster: Cluster = { server: bin.name, members: started, dataRoot, endpoints: [] };
  try {
    for (let i = 0; i < members; i++) {
      const p = ports[i]!;
      const clientUrl = `http://127.0.0.1:${p.client}`;
      const peerUrl = `http://127.0.0.1:${p.peer}`;
      const args = [
        ...bin.prefixArgs,
        '--name', names[i]!,
        '--data-dir', path.join(dataRoot, names[i]!),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', 'tsetcd-bench',
      ];
      const logFile = path.join(dataRoot, `${names[i]}.log`);
      const fd = fs.openSync(logFile, 'a');
      const child = spawn(bin.command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.extraEnv } });
      fs.closeSync(fd);
      live.add(child);
      child.once('exit', () => live.delete(child));
      started.push({ name: names[i]!, clientUrl, endpoint: `127.0.0.1:${p.client}`, process: child, pid: child.pid ?? -1, logFile });
    }
    cluster.endpoints = started.map((m) => m.endpoint);
    await Promise.all(started.map((m) => waitReady(bin, m, members)));
    return cluster;
  } catch (err) {
    await stopCluster(cluster, { keepData: false });
    throw err;
  }
}

async function waitReady(bin: ServerBinary, m: Member, members: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited: string | null = null;
  m.process.once('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
  for (;;) {
    if (exited !== null) {
      const hint = bin.name === 'ours' && members > 1 ? ' (multi-member clusters need the Raft transport; see issue #3)' : '';
      throw new Error(`${bin.name} member ${m.name} ${exited} before it was ready${hint}. Last log lines:\n${tail(m.logFile)}`);
    }
    try {
      await currentRevision(m.endpoint);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${bin.name} member ${m.name} did not answer within 30 s. Last log lines:\n${tail(m.logFile)}`);
      await sleep(100);
    }
  }
}

/** SIGTERM, then SIGKILL after 10 s; removes the data directory unless keepData. */
export async function stopCluster(cluster: Cluster, opts: { keepData: boolean }): Promise<void> {
  await Promise.all(
    cluster.members.map(async (m) => {
      const p = m.process;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }),
  );
  if (!opts.keepData) removeTempDir(cluster.dataRoot);
}

export function clusterCpuSeconds(c: Cluster): number {
  return c.members.reduce((a, m) => a + cpuSeconds(m.pid), 0);
}

/** Peak RSS per member (MiB). */
export function clusterPeakRss(c: Cluster): number[] {
  return c.members.map((m) => peakRssMiB(m.pid));
}

// ---------------------------------------------------------------------------------------------------------------
// The binaries.

export const ETCD_BINARY = '/usr/bin/etcd';

/** Makes sure Debian's etcd-server is installed (installing it if missing) and returns its version line. */
export function ensureEtcd(log: (s: string) => void): string {
  if (!fs.existsSync(ETCD_BINARY)) {
    log('etcd is not installed: apt-get install -y etcd-server');
    let r = spawnSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'inherit' });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit' });
      r = spawnSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'inherit' });
    }
    if (r.status !== 0 || !fs.existsSync(ETCD_BINARY)) throw new Error('could not install etcd-server (apt-get install -y etcd-server failed; are you root?)');
  }
  const v = spawnSync(ETCD_BINARY, ['--version'], { encoding: 'utf8' });
  const line = /etcd Version: (\S+)/.exec(v.stdout ?? '')?.[1] ?? 'unknown';
  if (line !== '3.4.23') log(`note: etcd is ${line}, the figures in bench/README.md are against 3.4.23`);
  return line;
}

export function etcdBinary(): ServerBinary {
  return { name: 'etcd', command: ETCD_BINARY, prefixArgs: [], describe: `${ETCD_BINARY}` };
}

const repoRoot = path.resolve(__dirname, '..', '..', '..');

export interface OursBuild {
  root: string;
  /** `git describe`-like: commit and whether the work tree had changes. */
  revision: string;
}

/**
 * Our server: the work tree (built with the project's tsc), or with `ref` a clean export of that git commit built in
 * a temporary directory (so other people's unfinished work in the tree does not decide the figures).
 */
export function buildOurs(ref: string, log: (s: string) => void): OursBuild {
  const git = (args: string[], cwd = repoRoot): string => {
    const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  if (ref === '' || ref === 'worktree') {
    log('building our server from the work tree (tsc -p .)');
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.'], { cwd: repoRoot, encoding: 'utf8' });
    if (r.status !== 0) log(`warning: tsc reported errors in the work tree (it still emitted); if our server misbehaves, try --ours-ref HEAD\n${(r.stdout ?? '').split('\n').slice(0, 5).join('\n')}`);
    let revision = 'worktree';
    try {
      revision = `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'src', 'bin', 'proto']) === '' ? '' : '+changes'}`;
    } catch {
      // not a git checkout
    }
    return { root: repoRoot, revision };
  }
  const commit = git(['rev-parse', '--short', ref]);
  const root = makeTempDir(`tsetcd-bench-build-${commit}-`);
  log(`building our server from ${ref} (${commit}) in ${root}`);
  const archive = spawnSync('git', ['archive', commit, 'src', 'bin', 'proto', 'package.json', 'tsconfig.json'], { cwd: repoRoot, maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${commit} failed: ${archive.stderr.toString()}`);
  const untar = spawnSync('tar', ['-x', '-C', root], { input: archive.stdout });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr.toString()}`);
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'));
  const tsconfig = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.json'), 'utf8')) as { include: string[] };
  tsconfig.include = ['src/**/*.ts'];
  fs.writeFileSync(path.join(root, 'tsconfig.json'), JSON.stringify(tsconfig));
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.'], { cwd: root, encoding: 'utf8' });
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'server', 'main-etcd.js'))) throw new Error(`building ${ref} failed:\n${r.stdout}`);
  return { root, revision: commit };
}

export function oursBinary(build: OursBuild, nodeFlags: string[] = []): ServerBinary {
  return {
    name: 'ours',
    command: process.execPath,
    prefixArgs: [...nodeFlags, path.join(build.root, 'bin', 'etcd')],
    describe: `node ${nodeFlags.join(' ')} bin/etcd (${build.revision})`.replace(/ +/g, ' '),
  };
}
