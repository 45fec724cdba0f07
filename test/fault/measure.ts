// Speed of the checkers on simulated histories (not a test; run by hand):
//   npx tsc -p . && node dist/test/fault/measure.js [operations] [seeds]
// Results are noted in test/fault/README.md.

import { performance } from 'node:perf_hooks';
import { checkLinearizable } from './checker/linearizable';
import { patchHistory } from './checker/patch';
import { checkPerKey } from './checker/register';
import { Replay } from './checker/replay';
import { checkRevisionOracle } from './checker/revision-oracle';
import { simulate } from './checker/simulate';

const operations = Number(process.argv[2] ?? 2000);
const seeds = Number(process.argv[3] ?? 3);
const time = <T>(f: () => T): [T, number] => {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
};
const budget = () => ({ now: () => performance.now(), deadline: performance.now() + 20_000 });

for (const clients of [5, 10]) {
  for (const indeterminate of [0, 0.03, 0.1]) {
    for (let seed = 1; seed <= seeds; seed++) {
      const sim = simulate({ seed, operations, clients, keys: 10, window: 30, indeterminate, leases: true });
      const replay = new Replay(sim.committed);
      const open = sim.history.filter((o) => o.output === undefined).length;
      const [raw, tRaw] = time(() => checkLinearizable(sim.history, budget()));
      const [patched, tPatch] = time(() => patchHistory(sim.history, replay));
      const [lin, tLin] = time(() => checkLinearizable(patched.history, budget()));
      const [reg, tReg] = time(() => checkPerKey(sim.history, budget()));
      const [oracle, tOracle] = time(() => checkRevisionOracle(sim.history, replay));
      console.log(
        `ops ${operations} clients ${clients} indeterminate ${open} (p=${indeterminate}) seed ${seed}: ` +
        `WGL raw ${raw.result} ${tRaw.toFixed(0)} ms (${raw.steps} steps); ` +
        `patch ${tPatch.toFixed(0)} ms (dropped ${patched.dropped}, resolved ${patched.resolved}, open ${patched.open}) + WGL ${lin.result} ${tLin.toFixed(0)} ms (${lin.steps} steps); ` +
        `per-key ${reg.result} ${tReg.toFixed(0)} ms; oracle ${oracle.ok ? 'ok' : 'FAIL'} ${tOracle.toFixed(0)} ms`,
      );
    }
  }
}
