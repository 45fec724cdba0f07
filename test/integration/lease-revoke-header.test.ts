// Regression for the fault run mixed seed 1661965180 (revisionOracle: "phantom-write: revision 1186 ([delete k/4])
// matches no issued request"; linearizable: "lease revoke 3000015 -> rev 1187, the model would answer here: rev
// 1186"): LeaseRevoke answered with the store revision when its proposal resolved, which already included the next
// write of the same applied batch. Like etcd (newHeader at apply), the header is the revision right after the
// revoke itself; the same for LeaseGrant.

import t from 'tap';
import { call, rawClient, startTestMember } from '../helpers/member';

const b = (s: string) => Buffer.from(s);

t.test('F19 mixed (F9 blackhole-until-snapshot), seed 1661965180: revokes and puts applied together answer with their own revisions', async (t) => {
  const m = await startTestMember();
  const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
  const lease = rawClient(m.endpoint, 'etcdserverpb', 'Lease');
  t.teardown(async () => {
    kv.close();
    lease.close();
    await m.destroy();
  });
  for (let round = 0; round < 5; round++) {
    const ids: string[] = [];
    let base = 0;
    for (let i = 0; i < 8; i++) {
      const g = await call(lease, 'LeaseGrant', { TTL: 3600 });
      ids.push(g.ID);
      base = Number((await call(kv, 'Put', { key: b(`a${i}`), value: b(`v${round}.${i}`), lease: g.ID })).header.revision);
    }
    // Sent together, so the proposals land in a few Readys and are applied back to back: every one of these 16
    // writes (a revoke deletes its key) has a revision of its own, and must answer with it.
    const answers = await Promise.all([
      ...ids.map((id) => call(lease, 'LeaseRevoke', { ID: id })),
      ...ids.map((_, i) => call(kv, 'Put', { key: b(`b${i}`), value: b(`w${round}.${i}`) })),
    ]);
    const revs = answers.map((a) => Number(a.header.revision)).sort((x, y) => x - y);
    t.same(revs, Array.from({ length: 16 }, (_, i) => base + 1 + i), `round ${round}: 16 writes, 16 revisions`);
  }
});
