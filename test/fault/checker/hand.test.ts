// The checkers on hand-written histories (fixtures.ts): each must reach the verdict the fixture states, and the
// explanations must point at the operation at fault.

import t from 'tap';
import { c, fixtures, get, put } from './fixtures';
import { patchHistory } from './patch';
import { checkLinearizable } from './linearizable';
import { checkPerKey } from './register';
import { Replay } from './replay';
import { checkRevisionOracle } from './revision-oracle';
import { prepareHistory } from './history';

for (const f of fixtures) {
  t.test(f.name, async (t) => {
    const lin = checkLinearizable(f.history);
    t.equal(lin.result, f.wgl, `WGL: ${lin.explanation ?? 'ok'}`);
    const reg = checkPerKey(f.history);
    t.equal(reg.result, f.perKey, `per key: ${reg.explanation ?? 'ok'}`);
    const oracle = checkRevisionOracle(f.history, new Replay(f.committed));
    t.equal(oracle.ok ? 'ok' : 'illegal', f.oracle, `oracle: ${oracle.violations.map((v) => `${v.kind}: ${v.message}`).join('\n') || 'ok'}`);
  });
}

t.test('the explanation names the operation that cannot be linearized', async (t) => {
  const h = [put(0, 0, 10, 'a', 'v1', 2), put(1, 20, 30, 'a', 'v2', 3), get(2, 40, 50, 'a', 2, [{ key: 'a', value: 'v1', modRevision: 2 }])];
  const r = checkLinearizable(h);
  t.equal(r.result, 'illegal');
  t.equal(r.blocked, 2, 'the stale read');
  t.same(r.longestPrefix, [0, 1]);
  t.match(r.explanation, /could not be linearized[\s\S]*client 2 \[40, 50\]: range "a" -> rev 2/);
  t.match(r.explanation, /the model would answer here: rev 3 \[a="v2"/);
});

t.test('the oracle names the violated property', async (t) => {
  const f = fixtures.find((x) => x.name.startsWith('planted real-time'))!;
  const r = checkRevisionOracle(f.history, new Replay(f.committed));
  t.same(r.violations.map((v) => v.kind), ['real-time']);
  const lost = fixtures.find((x) => x.name.startsWith('planted lost write'))!;
  t.ok(checkRevisionOracle(lost.history, new Replay(lost.committed)).violations.some((v) => v.kind === 'lost-write'));
  const phantom = fixtures.find((x) => x.name.startsWith('planted phantom'))!;
  t.ok(checkRevisionOracle(phantom.history, new Replay(phantom.committed)).violations.some((v) => v.kind === 'phantom-write'));
});

t.test('a search that runs out of budget answers unknown', async (t) => {
  // 12 concurrent puts to one key, then a read of a value none of them wrote: WGL must try every order.
  const h = [];
  for (let i = 0; i < 12; i++) h.push(put(i, 0, 100, 'a', `v${i}`));
  h.push(get(99, 200, 210, 'a', 14, [{ key: 'a', value: 'nope', modRevision: 14 }]));
  const r = checkLinearizable(h, { maxSteps: 2000 });
  t.equal(r.result, 'unknown');
  let now = 0;
  const r2 = checkLinearizable(h, { now: () => (now += 1), deadline: 3 });
  t.equal(r2.result, 'unknown', 'an injected clock past the deadline');
  t.equal(checkLinearizable(h).result, 'illegal', 'without a budget it finishes');
});

t.test('prepareHistory drops failed reads and rejects overlapping client operations', async (t) => {
  const h = prepareHistory([
    { client: 0, call: 0, ret: 5, input: { type: 'range', key: 'a' }, output: undefined },
    { client: 0, call: 6, ret: 9, input: { type: 'put', key: 'a', value: 'x' }, output: undefined },
  ]);
  t.equal(h.length, 1);
  t.equal(h[0]!.ret, Infinity, 'a failed write is open until +∞');
  t.throws(() => prepareHistory([put(0, 0, 10, 'a', 'v1', 2), put(0, 5, 15, 'a', 'v2', 3)]), /overlapping/);
});

t.test('patch drops an indeterminate lease grant that nothing names, and keeps one that is used', async (t) => {
  const h = [
    { client: 0, call: 0, ret: Infinity, input: { type: 'leaseGrant' as const, id: 5n }, output: undefined },
    { client: 1, call: 0, ret: Infinity, input: { type: 'leaseGrant' as const, id: 6n }, output: undefined },
    put(2, 10, 20, 'a', 'v1', 2, 6n),
  ];
  const r = patchHistory(h, new Replay([c(2, ['put', 'a', 'v1', 6n])]));
  t.equal(r.dropped, 1);
  t.same(r.history.filter((x) => x.input.type === 'leaseGrant').map((x) => (x.input as { id: bigint }).id), [6n], 'the used grant stays (open)');
  t.equal(checkLinearizable(r.history).result, 'ok');
});
