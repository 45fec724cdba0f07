// A short smoke of the fault harness (issue #7), small enough for `npm test`: one run with a crash nemesis on the
// real build, whose checkers must all pass, and one run of the deliberately broken build
// (TSETCD_UNSAFE_LOCAL_READS=1: linearizable reads skip ReadIndex) under a leader partition, which the checkers
// must report as an anomaly. The longer runs are `npm run faults -- --quick` (CI) and `-- --full` (nightly).
// FAULTS_SKIP=1 skips it. The seeds are printed; rerun one with `npm run faults -- --seed S --nemesis N`.

import fsp from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { tempDir } from '../helpers/member';
import { netnsUnavailable } from '../helpers/netns';
import { randomSeed } from './harness/rng';
import { runOne } from './harness/run';

t.setTimeout(170_000);

t.test('fault harness smoke', { skip: process.env.FAULTS_SKIP ? 'FAULTS_SKIP is set' : false }, async (t) => {
  const root = await tempDir('tsetcd-faults-smoke-');
  const netns = !(await netnsUnavailable());
  const log = (m: string) => t.comment(m);
  let failed = false;

  const seed1 = randomSeed();
  const ok = await runOne({ seed: seed1, nemesis: 'kill-random', durationMs: 6000, dir: path.join(root, 'kill'), netns, log, linTimeoutMs: 20_000, holdMs: [500, 1500] });
  t.equal(ok.finalWrite, true, `kill-random (seed ${seed1}): the cluster takes writes after healing`);
  // 'unknown' (the search budget ran out) is not a failure of the server; anything found is.
  t.not(ok.verdict, 'anomaly', `kill-random (seed ${seed1}): no anomaly (${ok.anomalies.join(', ') || 'none'})`);
  t.not(ok.verdict, 'error', `kill-random (seed ${seed1}): the run completed${ok.error ? `: ${ok.error}` : ''}`);
  failed ||= ok.verdict !== 'ok';

  const seed2 = randomSeed();
  const nemesis = netns ? 'partition-leader' : 'pause-leader';
  const bad = await runOne({
    seed: seed2, nemesis, durationMs: 8000, dir: path.join(root, 'unsafe'), netns, log, linTimeoutMs: 20_000,
    env: { TSETCD_UNSAFE_LOCAL_READS: '1' }, holdMs: [2000, 3000], gapMs: [500, 1000],
  });
  t.equal(bad.verdict, 'anomaly', `the broken build under ${nemesis} (seed ${seed2}) is reported: ${bad.anomalies.join(', ') || bad.verdict}`);
  failed ||= bad.verdict !== 'anomaly';

  if (failed) t.comment(`kept the run directories in ${root}`);
  else await fsp.rm(root, { recursive: true, force: true });
});
