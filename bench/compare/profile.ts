// `profile`: our server under `node --cpu-prof` while `put` runs at 100 clients, then a summary of where the CPU
// time went: self time by function and by module (our src/ folders, packages in node_modules, Node internals, GC).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commonFlags, parseFlags, type FlagSpec, type Flags } from '../lib/flags';
import { runWorkload, textReport } from '../lib/runner';
import { formatDurationMs } from '../lib/util';
import { workloadByName } from '../workloads';
import { buildOurs, oursBinary, startCluster, stopCluster } from './servers';

export const profileFlags: FlagSpec[] = [
  { name: 'duration', kind: 'duration', default: 10_000, help: 'Measured time of the put run' },
  { name: 'warmup', kind: 'duration', default: 2000, help: 'Unrecorded time first' },
  { name: 'clients', kind: 'int', default: 100, help: 'Clients' },
  { name: 'conns', kind: 'int', default: 25, help: 'Connections' },
  { name: 'ours-ref', kind: 'string', default: '', help: 'Profile this git commit of our server instead of the work tree' },
  { name: 'top', kind: 'int', default: 20, help: 'Functions to list' },
  { name: 'out', kind: 'string', default: '', help: 'Results directory (default bench/results)' },
  { name: 'analyze', kind: 'string', default: '', help: 'Only summarise this existing .cpuprofile' },
];

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  functions: Array<{ name: string; module: string; selfMs: number; percent: number }>;
  modules: Array<{ module: string; selfMs: number; percent: number }>;
}

/** Groups a script URL: our src/<folder>, a package in node_modules, a Node internal, or a V8 pseudo-frame. */
export function moduleOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return '(garbage collector)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return '(program: native, not attributed)';
    return '(native / V8 builtins)';
  }
  if (url.startsWith('node:')) return `node internals (${url.slice(5).split('/')[0]})`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/dist\/(src\/[^/]+)\//.exec(url);
  if (m) return m[1]!;
  const f = /\/dist\/(src\/[^/]+)$/.exec(url);
  if (f) return f[1]!;
  return url.replace(/^file:\/\//, '');
}

export function summarizeProfile(p: CpuProfile, top: number): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fn = new Map<string, { name: string; module: string; us: number }>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const module = moduleOf(url, functionName);
    if (module === '(idle)') continue;
    total += us;
    const file = url === '' ? '' : ` ${path.basename(url)}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${file}`;
    const f = fn.get(key) ?? { name: key, module, us: 0 };
    f.us += us;
    fn.set(key, f);
    mod.set(module, (mod.get(module) ?? 0) + us);
  }
  const pct = (us: number): number => Math.round((1000 * us) / Math.max(total, 1)) / 10;
  return {
    totalMs: Math.round(total / 1000),
    functions: [...fn.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ name: f.name, module: f.module, selfMs: Math.round(f.us / 1000), percent: pct(f.us) })),
    modules: [...mod.entries()].sort((a, b) => b[1] - a[1]).map(([module, us]) => ({ module, selfMs: Math.round(us / 1000), percent: pct(us) })),
  };
}

export function profileText(s: ProfileSummary): string {
  let out = `CPU time sampled (excluding idle): ${s.totalMs} ms\n\nSelf time by module:\n`;
  for (const m of s.modules) out += `  ${String(m.percent).padStart(5)}%  ${String(m.selfMs).padStart(7)} ms  ${m.module}\n`;
  out += '\nTop functions by self time:\n';
  for (const f of s.functions) out += `  ${String(f.percent).padStart(5)}%  ${String(f.selfMs).padStart(7)} ms  ${f.name}  [${f.module}]\n`;
  return out;
}

export async function runProfile(c: Flags): Promise<number> {
  const outDir = c.str('out') !== '' ? path.resolve(c.str('out')) : path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  if (c.str('analyze') !== '') {
    process.stdout.write(profileText(summarizeProfile(JSON.parse(fs.readFileSync(c.str('analyze'), 'utf8')) as CpuProfile, c.int('top'))));
    return 0;
  }
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const build = buildOurs(c.str('ours-ref'), log);
  // Not a tracked temp dir: the profile must outlive this process (open it in Chrome DevTools).
  const profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-bench-prof-'));
  const bin = oursBinary(build, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  const cluster = await startCluster(bin, 1);
  let report = '';
  try {
    const args = ['--key-size', '8', '--val-size', '256', '--key-space-size', '100000', '--clients', String(c.int('clients')), '--conns', String(c.int('conns')), '--duration', formatDurationMs(c.int('duration')), '--warmup', formatDurationMs(c.int('warmup')), '--transport', 'h2'];
    const put = workloadByName('put');
    const r = await runWorkload(put, parseFlags(args, [...commonFlags, ...put.flags]), cluster.endpoints);
    report = textReport(r);
  } finally {
    // A clean exit (SIGTERM → process.exit) is what makes Node write the profile.
    await stopCluster(cluster, { keepData: true });
  }
  const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${profDir} (did the server exit cleanly?)`);
  const profile = JSON.parse(fs.readFileSync(path.join(profDir, files[0]!), 'utf8')) as CpuProfile;
  const summary = summarizeProfile(profile, c.int('top'));
  const text = profileText(summary);
  fs.writeFileSync(path.join(outDir, 'profile-put-100-clients.json'), `${JSON.stringify({ server: bin.describe, date: new Date().toISOString(), summary }, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'profile-put-100-clients.txt'), `${report}\n${text}`);
  process.stdout.write(`${report}\n${text}\nProfile: ${path.join(profDir, files[0]!)} (open in Chrome DevTools); summary in ${outDir}/profile-put-100-clients.{json,txt}\n`);
  return 0;
}
