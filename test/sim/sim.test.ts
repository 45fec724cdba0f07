// The deterministic simulation, as a test: a few hundred seeds for 3 and for 5 initial members (each seed also picks
// its configuration and fault intensities), a replay check, and a check that the faults actually happen.
//
// More seeds: SIM_SEEDS=2000 npx tap dist/test/sim/sim.test.js, or the CLI (node dist/test/sim/run.js --seeds N).
// A failure prints the seed, its configuration, the violated invariant, the tail of the trace, and the command that
// replays it with the full trace.

import t from 'tap';
import { runSeed, type SimResult } from './sim';

const seeds = Number(process.env.SIM_SEEDS ?? '400');
const start = Number(process.env.SIM_START ?? '1');

function report(t: tap.Test, r: SimResult, members: number): void {
  t.fail(`seed ${r.seed} (${members} members): ${r.error}`, {
    config: r.config,
    trace: r.trace.slice(-40).join('\n'),
    replay: `node dist/test/sim/run.js --seed ${r.seed} --members ${members}`,
  });
}

const totals = { crashes: 0, lostRecords: 0, partitions: 0, snapshotsInstalled: 0, compactions: 0, confChanges: 0, readsAnswered: 0, elections: 0, transfers: 0, messagesDropped: 0, committed: 0 };

for (const members of [3, 5]) {
  t.test(`${seeds} seeds, ${members} members`, async (t) => {
    let failed = 0;
    for (let seed = start; seed < start + seeds; seed++) {
      const r = runSeed({ seed, members });
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += r.stats[k];
      if (!r.ok) {
        failed++;
        report(t, r, members);
        if (failed >= 3) break;
      }
    }
    if (failed === 0) t.pass(`seeds ${start}..${start + seeds - 1} hold every invariant and recover after healing`);
  });
}

t.test('the faults happen', async (t) => {
  for (const [k, v] of Object.entries(totals)) t.ok(v > 0, `${k}: ${v}`);
});

t.test('a seed replays exactly', async (t) => {
  for (const seed of [7, 1234, 99991]) {
    const a = runSeed({ seed });
    const b = runSeed({ seed });
    t.equal(a.traceHash, b.traceHash, `seed ${seed}: same trace`);
    t.same(a.stats, b.stats, `seed ${seed}: same statistics`);
    const c = runSeed({ seed, trace: true });
    const d = runSeed({ seed, trace: true });
    t.equal(c.traceHash, d.traceHash, `seed ${seed}: same full trace`);
    t.same(c.stats, a.stats, `seed ${seed}: tracing does not change the run`);
  }
});
