// The simulator's command line.
//
//   node dist/test/sim/run.js --seeds 1000 --start 1     run seeds 1..1000, print failures and a summary
//   node dist/test/sim/run.js --seed 42                  replay one seed, printing its whole trace
//   options: --members 3|5  --fault-ticks N  --no-membership  --quiet
//
// A failing seed reproduces exactly: the run depends on nothing but the seed and these options.

import { runSeed, type SimOptions } from './sim';

function main(argv: string[]): number {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      args.set(a.slice(2), next);
      i++;
    } else args.set(a.slice(2), 'true');
  }
  const base: Omit<SimOptions, 'seed'> = {};
  if (args.has('members')) base.members = Number(args.get('members'));
  if (args.has('fault-ticks')) base.faultTicks = Number(args.get('fault-ticks'));
  if (args.has('no-membership')) base.membership = false;
  const quiet = args.has('quiet');

  if (args.has('seed')) {
    const seed = Number(args.get('seed'));
    const r = runSeed({ ...base, seed, trace: true });
    for (const line of r.trace) console.log(line);
    console.log(`seed ${seed}: ${r.ok ? 'ok' : 'FAILED'} [${r.config}]`);
    console.log(JSON.stringify(r.stats));
    if (!r.ok) console.log(r.error);
    return r.ok ? 0 : 1;
  }

  const start = Number(args.get('start') ?? '1');
  const count = Number(args.get('seeds') ?? '100');
  let failed = 0;
  const t0 = process.hrtime.bigint();
  const totals = { events: 0, committed: 0, crashes: 0, elections: 0, snapshotsInstalled: 0, confChanges: 0, maxLiveness: 0 };
  for (let seed = start; seed < start + count; seed++) {
    const r = runSeed({ ...base, seed });
    totals.events += r.stats.events;
    totals.committed += r.stats.committed;
    totals.crashes += r.stats.crashes;
    totals.elections += r.stats.elections;
    totals.snapshotsInstalled += r.stats.snapshotsInstalled;
    totals.confChanges += r.stats.confChanges;
    totals.maxLiveness = Math.max(totals.maxLiveness, r.stats.livenessTicks);
    if (!r.ok) {
      failed++;
      console.log(`seed ${seed} FAILED [${r.config}]\n  ${r.error}`);
      if (!quiet) for (const line of r.trace.slice(-60)) console.log(`    ${line}`);
      console.log(`  replay: node dist/test/sim/run.js --seed ${seed}${base.members ? ` --members ${base.members}` : ''}`);
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${count - failed}/${count} seeds passed (${start}..${start + count - 1}) in ${secs.toFixed(1)}s; ${JSON.stringify(totals)}`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
