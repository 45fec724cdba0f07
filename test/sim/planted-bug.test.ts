// The simulator must be able to fail. This test plants the classic Raft bug — a leader that commits an entry of
// an older term by counting the replicas that have it (Raft §5.4.2, Figure 8) — and requires the checker to catch
// it within a few hundred seeds. If this test fails, the simulation has lost its teeth.

import t from 'tap';
import { Raft } from '../../src/raft/raft';
import { runSeed } from './sim';

t.test('a leader that commits old-term entries by counting replicas is caught', async (t) => {
  const proto = Raft.prototype as unknown as { maybeCommit(this: any): boolean };
  const original = proto.maybeCommit;
  // The bug: commit whatever a quorum has, whatever its term.
  proto.maybeCommit = function (this: any): boolean {
    const mci = this.prs.committed();
    if (mci > this.raftLog.committed) {
      this.raftLog.commitTo(mci);
      return true;
    }
    return false;
  };
  try {
    let caught: { seed: number; error: string } | undefined;
    for (let seed = 1; seed <= 2000 && !caught; seed++) {
      const r = runSeed({ seed, members: 3 });
      if (!r.ok) caught = { seed, error: r.error ?? 'failed' };
    }
    t.ok(caught, caught ? `caught at seed ${caught.seed}: ${caught.error}` : 'the planted bug went unnoticed for 2000 seeds');
  } finally {
    proto.maybeCommit = original;
  }
  // And with the bug removed, the same seeds are clean again.
  const clean = runSeed({ seed: 1, members: 3 });
  t.ok(clean.ok, 'the unmodified core passes');
});
