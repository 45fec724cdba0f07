// End-of-test checks: convergence across members, committed log prefixes, final state against the committed
// history, and "no acknowledged write lost" from the client history and a final read alone.

import t from 'tap';
import { checkConvergence, checkFinalState, checkLogPrefixes, checkMemberLists, checkNoLostWrites } from './convergence';
import { c, del, kv, put } from './fixtures';
import { Replay } from './replay';

t.test('convergence: revision, compact revision, HashKV', async (t) => {
  const ok = [
    { member: 'n1', revision: 10, compactRevision: 4, hash: 123, hashRevision: 10 },
    { member: 'n2', revision: 10, compactRevision: 4, hash: 123, hashRevision: 10 },
    { member: 'n3', revision: 10, compactRevision: 4, hash: 999, hashRevision: 9 },
  ];
  t.same(checkConvergence(ok), []);
  t.match(checkConvergence([ok[0]!, { ...ok[1]!, revision: 9 }])[0]?.message, /n2 is at revision 9/);
  t.match(checkConvergence([ok[0]!, { ...ok[1]!, compactRevision: 3 }])[0]?.message, /compact revision 3/);
  t.match(checkConvergence([ok[0]!, { ...ok[1]!, hash: 124 }])[0]?.message, /HashKV at revision 10/);
});

t.test('committed log prefixes agree', async (t) => {
  const a = { member: 'n1', entries: [{ index: 1, term: 1, data: 'x' }, { index: 2, term: 1, data: 'y' }] };
  const b = { member: 'n2', entries: [{ index: 1, term: 1, data: 'x' }] };
  t.same(checkLogPrefixes([a, b]), []);
  t.match(checkLogPrefixes([a, { member: 'n3', entries: [{ index: 2, term: 2, data: 'z' }] }])[0]?.message, /index 2: n1 has term 1/);
  t.match(checkLogPrefixes([{ member: 'n4', entries: [{ index: 2, term: 1, data: 'y' }, { index: 2, term: 1, data: 'y' }] }])[0]?.message, /follows/);
});

t.test('final state equals the committed history', async (t) => {
  const replay = new Replay([c(2, ['put', 'a', 'v1']), c(3, ['put', 'b', 'v2']), c(4, ['delete', 'a'])]);
  t.same(checkFinalState(replay, [{ member: 'n1', revision: 4, kvs: [kv('b', 'v2', 3)] }]), []);
  t.match(checkFinalState(replay, [{ member: 'n2', revision: 4, kvs: [kv('a', 'v1', 2), kv('b', 'v2', 3)] }])[0]?.message, /a: "v1"@2 \(committed: absent\)/);
  t.match(checkFinalState(replay, [{ member: 'n3', revision: 3, kvs: [kv('a', 'v1', 2), kv('b', 'v2', 3)] }])[0]?.message, /ends at revision 3/);
});

t.test('no acknowledged write lost', async (t) => {
  const h = [put(0, 0, 10, 'a', 'v1', 2), put(0, 20, 30, 'b', 'v2', 3), put(1, 25, 40, 'a', 'v3', 4)];
  t.same(checkNoLostWrites(h, { member: 'n1', revision: 4, kvs: [kv('a', 'v3', 4, 2, 2), kv('b', 'v2', 3)] }), []);
  t.match(checkNoLostWrites(h, { member: 'n1', revision: 4, kvs: [kv('a', 'v1', 2), kv('b', 'v2', 3)] })[0]?.message, /lost write: .*"a"="v3"/);
  t.match(checkNoLostWrites(h, { member: 'n1', revision: 4, kvs: [kv('a', 'v3', 4, 2, 2)] })[0]?.message, /"b"="v2".*absent/);
  // A key may be gone if a delete could have removed it afterwards (acknowledged later, or indeterminate).
  t.same(checkNoLostWrites([...h, del(2, 50, 60, 'b', 5)], { member: 'n1', revision: 5, kvs: [kv('a', 'v3', 4, 2, 2)] }), []);
  t.same(checkNoLostWrites([...h, del(2, 50, Infinity, 'b', undefined)], { member: 'n1', revision: 5, kvs: [kv('a', 'v3', 4, 2, 2)] }), []);
});

t.test('member lists: equal on every member, the expected IDs, no learner left', async (t) => {
  const m = (id: string, name: string, isLearner = false) => ({ id, name, peerURLs: [`http://10.0.0.${name.slice(1)}:2380`], isLearner });
  const list = [m('11', 'n1'), m('22', 'n2'), m('33', 'n3')];
  const ids = ['11', '22', '33'];
  t.same(checkMemberLists([{ member: 'n1', members: list }, { member: 'n2', members: [...list].reverse() }], ids), []);
  // n3 still has the member it replaced (it missed the conf changes).
  const stale = [m('11', 'n1'), m('22', 'n2'), m('99', 'n3')];
  const p = checkMemberLists([{ member: 'n1', members: list }, { member: 'n3', members: stale }], ids).map((x) => x.message);
  t.match(p[0], /n3 lists .*99 n3.*n1 lists .*33 n3/);
  t.match(p[1], /n3 lists members 11,22,99, expected 11,22,33/);
  t.match(checkMemberLists([{ member: 'n1', members: [m('11', 'n1'), m('22', 'n2'), m('33', 'n3', true)] }], ids)[0]?.message, /still lists 33 n3 .* as a learner/);
  t.match(checkMemberLists([{ member: 'n1', members: [m('11', 'n1'), { ...m('22', 'n2'), peerURLs: ['http://x:1'] }, m('33', 'n3')] }, { member: 'n2', members: list }], ids)[0]?.message, /n2 lists/);
});
