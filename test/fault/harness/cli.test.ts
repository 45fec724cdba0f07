// The run plans and the table across runs (cli.ts), without starting any member.

import t from 'tap';
import { fullPlan, quickPlan, summaryTable, WORKLOADS } from './cli';
import { MIXED, NEMESES } from './nemesis';
import type { RunSummary } from './run';

t.test('--full runs every nemesis with each workload once, plus a mixed run each', async (t) => {
  const plan = fullPlan(7, true);
  for (const n of ['none', MIXED, ...NEMESES.map((x) => x.name)]) {
    for (const w of WORKLOADS) t.equal(plan.filter((p) => p.nemesis === n && p.workload === w).length, 1, `${n} × ${w}`);
  }
  t.equal(plan.length, 2 * (NEMESES.length + 2));
  t.same(fullPlan(7, true), plan, 'the seed fixes the plan');
  t.notOk(fullPlan(7, false).some((p) => NEMESES.find((n) => n.name === p.nemesis)?.needsNetns), 'no namespace nemesis without namespaces');
});

t.test('--quick keeps its runs and gives some of them the k8s workload', async (t) => {
  const plan = quickPlan(7, true);
  t.equal(plan[0]!.nemesis, 'none');
  t.equal(plan[0]!.workload, 'kv', 'the baseline is W-KV');
  t.equal(plan.length, 9, 'the baseline, 6 core faults, 2 extras');
  const k8s = plan.filter((p) => p.workload === 'k8s').length;
  t.ok(k8s >= 3 && k8s <= 5, `${k8s} of ${plan.length} runs with k8s`);
});

t.test('the table has one row per nemesis and workload, with the anomalous checks and their seeds', async (t) => {
  const run = (nemesis: string, workload: string, seed: number, verdict: RunSummary['verdict'], anomalies: string[] = []): RunSummary => ({
    seed, nemesis, workload, verdict, anomalies, env: {},
    operations: { total: 100, ok: 90, failedReads: 5, indeterminate: 5, clients: 6, qps: 10 },
  }) as unknown as RunSummary;
  const table = summaryTable([
    run('kill-random', 'kv', 1, 'ok'),
    run('kill-random', 'k8s', 2, 'anomaly', ['watch']),
    run('kill-random', 'kv', 3, 'unknown'),
    run('none', 'k8s', 4, 'ok'),
  ]);
  const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| fault'));
  t.equal(rows.length, 3);
  t.match(rows[0]!, /^\| kill-random \| F1 \| kv \| 2 \| 1 \| 0 \| 1 \| 0 \| 200 \(10\) \| unknown \(3\) \|$/);
  t.match(rows[1]!, /^\| kill-random \| F1 \| k8s \| 1 \| 0 \| 1 \| 0 \| 0 \| 100 \(5\) \| watch \(2\) \|$/);
  t.match(rows[2]!, /^\| none \| F0 \| k8s \| 1 \| 1 /);
});
