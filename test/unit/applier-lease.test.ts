// LeaseGrant and LeaseRevoke responses carry the store revision right after their apply (etcd builds these headers
// in the applier). The waiting request resumes later, after the rest of the Ready batch may have been applied, so
// reading the current revision then would report a later revision (found by the W-KV lease workload's review).

import t from 'tap';
import { MvccStore } from '../../src/mvcc';
import { Lessor } from '../../src/lease/lessor';
import { Applier, type ApplyResult } from '../../src/server/apply';
import type { InternalRequest } from '../../src/server/request';

const quiet = { info() {}, warn() {} };
const b = (s: string) => Buffer.from(s);

t.test('lease grant and revoke results carry the revision at their apply', async (t) => {
  const lessor = new Lessor({ minTtlSeconds: 1, clock: { now: () => 0 } });
  const store = await MvccStore.open({ dir: t.testdir(), lessor, logger: quiet as never });
  t.teardown(() => store.close());
  const applier = new Applier(store, lessor, {
    header: (rev) => ({ cluster_id: '1', member_id: '1', revision: rev, raft_term: 1 }) as never,
    onClusterVersion() {},
    onMemberAttributes() {},
  });
  let index = 0;
  const apply = (r: Omit<InternalRequest, 'ID'>): Promise<ApplyResult> => applier.apply(++index, { ID: index, ...r } as InternalRequest);

  const grant = await apply({ lease_grant: { ID: '7', TTL: 60 } } as never);
  t.match(grant, { kind: 'lease_grant', rev: 1 }, 'a grant writes no revision');
  await apply({ put: { key: b('a'), value: b('1'), lease: '7' } } as never);
  await apply({ put: { key: b('b'), value: b('2'), lease: '7' } } as never);
  t.equal(store.currentRev, 3);
  const revoke = await apply({ lease_revoke: { ID: '7' } } as never);
  t.match(revoke, { kind: 'lease_revoke', rev: 4 }, 'both keys deleted in one new revision');
  await apply({ put: { key: b('c'), value: b('3') } } as never);
  t.equal(store.currentRev, 5, 'a later entry moves the store on; the revoke result keeps its own revision');
  t.match(revoke, { rev: 4 });

  await apply({ lease_grant: { ID: '8', TTL: 60 } } as never);
  const empty = await apply({ lease_revoke: { ID: '8' } } as never);
  t.match(empty, { kind: 'lease_revoke', rev: 5 }, 'a revoke that deletes nothing writes no revision');
});
