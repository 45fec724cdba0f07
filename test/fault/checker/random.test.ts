// Randomized: histories from a sequential simulation with random concurrency windows and indeterminate writes
// (simulate.ts) must be accepted by every checker; after one planted mutation that is illegal by construction
// they must be rejected. Seeds are printed; rerun one with CHECKER_SEED=<seed> CHECKER_RUNS=1.

import t from 'tap';
import type { KeyValue, Operation, RangeOutput } from './history';
import { checkLinearizable } from './linearizable';
import { patchHistory } from './patch';
import { checkPerKey } from './register';
import { Replay } from './replay';
import { checkRevisionOracle } from './revision-oracle';
import { Rng, simulate } from './simulate';
import type { CommittedRevision } from './replay';

const base = Number(process.env.CHECKER_SEED ?? 7001);
const runs = Number(process.env.CHECKER_RUNS ?? 24);

type Kind = 'stale-header' | 'future-value' | 'duplicate-revision' | 'stale-value' | 'lost-committed';
interface Mutation {
  kind: Kind;
  description: string;
  history: Operation[];
  committed: CommittedRevision[];
  /** Which checkers must reject it. */
  wgl: boolean;
  perKey: boolean;
}

const revisionOf = (op: Operation): number | undefined => (op.output && 'revision' in op.output ? op.output.revision : undefined);
const isLatestRead = (op: Operation): boolean => op.input.type === 'range' && !op.input.revision && op.output !== undefined && 'kvs' in op.output;
const singleKey = (op: Operation): string | undefined => (op.input.type === 'range' && op.input.rangeEnd === undefined ? op.input.key : undefined);

function clone(h: Operation[]): Operation[] {
  return h.map((op) => ({ ...op, output: op.output ? structuredClone(op.output) : undefined }));
}

/** Tries the mutation kinds in a random order; returns the first that applies. */
function mutate(rng: Rng, history: Operation[], committed: CommittedRevision[]): Mutation | undefined {
  const kinds: Kind[] = ['stale-header', 'future-value', 'duplicate-revision', 'stale-value', 'lost-committed'];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rng.intn(i + 1);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const done = history.map((op, i) => ({ op, i })).filter((x) => x.op.output !== undefined && revisionOf(x.op) !== undefined);
  const putsTo = (key: string) => done.filter((x) => x.op.input.type === 'put' && x.op.input.key === key);
  for (const kind of kinds) {
    const h = clone(history);
    const reads = done.filter((x) => isLatestRead(x.op));
    switch (kind) {
      case 'stale-header': {
        // A read whose header is below a revision some earlier-returned operation already had.
        const cands = reads.map(({ op, i }) => {
          const m = Math.max(-1, ...done.filter((a) => a.op.ret < op.call).map((a) => revisionOf(a.op)!));
          return { i, m };
        }).filter((x) => x.m >= 2);
        if (!cands.length) continue;
        const x = rng.pick(cands);
        (h[x.i]!.output as RangeOutput).revision = x.m - 1;
        return { kind, description: `read #${x.i} header set to ${x.m - 1}`, history: h, committed, wgl: true, perKey: false };
      }
      case 'future-value': {
        // A read returns a value written by a put called after the read returned.
        const cands: { i: number; kv: KeyValue }[] = [];
        for (const { op, i } of reads) {
          const key = singleKey(op);
          if (!key) continue;
          for (const p of putsTo(key)) {
            if (p.op.call > op.ret) cands.push({ i, kv: { key, value: (p.op.input as { value: string }).value, modRevision: revisionOf(p.op)! } });
          }
        }
        if (!cands.length) continue;
        const x = rng.pick(cands);
        const out = h[x.i]!.output as RangeOutput;
        out.kvs = [x.kv];
        out.count = undefined;
        return { kind, description: `read #${x.i} returns future ${x.kv.value}`, history: h, committed, wgl: true, perKey: true };
      }
      case 'duplicate-revision': {
        const puts = done.filter((x) => x.op.input.type === 'put');
        if (puts.length < 2) continue;
        const a = rng.pick(puts);
        const b = rng.pick(puts.filter((x) => x.i !== a.i));
        if (!b) continue;
        (h[b.i]!.output as { revision: number }).revision = revisionOf(a.op)!;
        return { kind, description: `put #${b.i} reports put #${a.i}'s revision ${revisionOf(a.op)}`, history: h, committed, wgl: true, perKey: false };
      }
      case 'stale-value': {
        // Read B saw v2 (put P2); P1 wrote v1 to the same key and returned before P2 was called, and P2 returned
        // before B was called: B returning v1 is stale in every linearization.
        const cands: { i: number; kv: KeyValue }[] = [];
        for (const { op, i } of reads) {
          const key = singleKey(op);
          const seen = (op.output as RangeOutput).kvs[0];
          if (!key || !seen) continue;
          const p2 = putsTo(key).find((p) => (p.op.input as { value: string }).value === seen.value);
          if (!p2 || !(p2.op.ret < op.call)) continue;
          for (const p1 of putsTo(key)) {
            if (p1.op.ret < p2.op.call) cands.push({ i, kv: { key, value: (p1.op.input as { value: string }).value, modRevision: revisionOf(p1.op)! } });
          }
        }
        if (!cands.length) continue;
        const x = rng.pick(cands);
        const out = h[x.i]!.output as RangeOutput;
        out.kvs = [x.kv];
        return { kind, description: `read #${x.i} returns stale ${x.kv.value}`, history: h, committed, wgl: true, perKey: true };
      }
      case 'lost-committed': {
        // The committed history loses an acknowledged put (its value replaced by one nobody wrote).
        const acked = new Set(done.filter((x) => x.op.input.type === 'put').map((x) => (x.op.input as { value: string }).value));
        const cands = committed.filter((c) => c.events.some((e) => e.type === 'put' && acked.has(e.value!)));
        if (!cands.length) continue;
        const victim = rng.pick(cands);
        const c2 = committed.map((c) => (c === victim ? { revision: c.revision, events: c.events.map((e) => (e.type === 'put' ? { ...e, value: `lost-${e.value}` } : e)) } : c));
        return { kind, description: `committed revision ${victim.revision} loses its put`, history, committed: c2, wgl: false, perKey: false };
      }
    }
  }
  return undefined;
}

t.test('simulated histories are accepted, and rejected after one mutation', async (t) => {
  t.comment(`seeds ${base}..${base + runs - 1} (CHECKER_SEED=<seed> CHECKER_RUNS=1 to rerun one)`);
  const caught = new Map<Kind, number>();
  for (let seed = base; seed < base + runs; seed++) {
    const rng = new Rng(seed * 7919);
    const sim = simulate({
      seed,
      operations: 150 + rng.intn(150),
      clients: 2 + rng.intn(5),
      keys: 3 + rng.intn(8),
      window: 5 + rng.intn(40),
      indeterminate: rng.pick([0, 0.03, 0.1]),
      leases: rng.chance(0.5),
    });
    const replay = new Replay(sim.committed);
    // Unpatched, the indeterminate writes may make the search too wide: a budget, and 'unknown' is acceptable.
    const raw = checkLinearizable(sim.history, { maxSteps: 20_000 });
    if (raw.result === 'illegal') t.fail(`seed ${seed}: WGL rejects a simulated history:\n${raw.explanation}`);
    const lin = checkLinearizable(patchHistory(sim.history, replay).history, { maxSteps: 2_000_000 });
    if (lin.result !== 'ok') t.fail(`seed ${seed}: WGL rejects a simulated history (patched):\n${lin.explanation}`);
    const reg = checkPerKey(sim.history);
    if (reg.result !== 'ok') t.fail(`seed ${seed}: per-key rejects a simulated history:\n${reg.explanation}`);
    const oracle = checkRevisionOracle(sim.history, replay);
    if (!oracle.ok) t.fail(`seed ${seed}: oracle rejects a simulated history:\n${oracle.violations.slice(0, 5).map((v) => v.message).join('\n')}`);

    const m = mutate(rng, sim.history, sim.committed);
    if (!m) {
      t.comment(`seed ${seed}: no mutation applies`);
      continue;
    }
    caught.set(m.kind, (caught.get(m.kind) ?? 0) + 1);
    if (m.wgl) {
      const r = checkLinearizable(patchHistory(m.history, replay).history, { maxSteps: 2_000_000 });
      if (r.result !== 'illegal') t.fail(`seed ${seed}: WGL accepts the mutation (${m.description}): ${r.result}`);
    }
    if (m.perKey) {
      const r = checkPerKey(m.history);
      if (r.result !== 'illegal') t.fail(`seed ${seed}: per-key accepts the mutation (${m.description}): ${r.result}`);
    }
    const o = checkRevisionOracle(m.history, new Replay(m.committed));
    if (o.ok) t.fail(`seed ${seed}: oracle accepts the mutation (${m.description})`);
  }
  t.comment(`mutations: ${[...caught].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.pass(`${runs} seeds`);
});
