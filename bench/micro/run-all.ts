// `npm run bench:micro`: runs every micro benchmark in its own process (a fresh heap each), prints their figures
// and writes them to bench/results/micro.json. `--time S` sets the measured seconds per figure (default 2).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MicroResult } from './harness';

const scripts = ['wal', 'key-index', 'mvcc', 'proto'];

function main(): number {
  const passThrough = process.argv.slice(2);
  const all: Record<string, MicroResult[]> = {};
  let failed = 0;
  for (const name of scripts) {
    process.stdout.write(`\n== ${name}\n`);
    const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`), ...passThrough], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = (r.stdout ?? '').split('\n');
    for (const l of lines) if (!l.startsWith('@@results ') && l !== '') process.stdout.write(`${l}\n`);
    const json = lines.find((l) => l.startsWith('@@results '));
    if (r.status !== 0 || json === undefined) {
      failed++;
      process.stdout.write(`${name}: FAILED (exit ${r.status})\n`);
      continue;
    }
    all[name] = JSON.parse(json.slice('@@results '.length)) as MicroResult[];
  }
  const out = path.resolve(__dirname, '..', '..', '..', 'bench', 'results', 'micro.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, results: all }, null, 2)}\n`);
  process.stdout.write(`\nWrote ${out}\n`);
  return failed === 0 ? 0 : 1;
}

process.exit(main());
