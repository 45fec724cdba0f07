// Lease expiry (faults.md F17): a lease must not expire before its TTL has run out since the client last renewed
// it, and one the client stopped renewing must expire not much later than that. Leases are timed by the leader's
// monotonic clock (etcd's lessor, ours: performance.now), so a jump of any member's wall clock must change neither.
//
// The evidence, all in one monotonic clock of the harness (ms since the run started):
// - the grant and every KeepAlive: call time, return time, and the TTL answered (> 0: renewed; 0: the leader no
//   longer has it; undefined: no answer, so it may or may not have renewed);
// - LeaseTimeToLive polls: whether the lease still existed (TTL -1 means it is gone).
//
// Bounds:
// - early: a renewal answered with TTL > 0 took effect after its call, so the lease lives at least until
//   (last such call, or the grant's call) + TTL. A "gone" answer that came back before that, less `toleranceMs`,
//   is an early expiry.
// - late: any renewal took effect before its answer (or, unanswered, at the latest when it was sent plus the
//   request timeout, which the workload folds into `ret`), so the lease should be gone by last renewal + TTL +
//   `slackMs` (the leader's expiry scan and the revoke's round through Raft). A poll sent after that which still
//   found it is a late expiry. A new leader restarts every lease's TTL (etcd Promote, plus an election timeout), so
//   a disruption (a fault window, or a new Raft term seen in a response) moves the bound to its end + TTL + slack.

import type { Problem } from './convergence';

export interface LeaseKeepAlive {
  call: number;
  /** When the answer came, or for an unanswered renewal the latest time it could still have taken effect. */
  ret: number;
  /** The TTL answered: > 0 renewed, 0 not found (expired); undefined if there was no answer. */
  ttl?: number;
}

export interface LeaseObservation {
  call: number;
  ret: number;
  /** TimeToLive answered TTL >= 0 (the lease exists) rather than -1. */
  present: boolean;
  member: string;
}

export interface LeaseRecord {
  id: string;
  /** The granted TTL, ms. */
  ttlMs: number;
  grantCall: number;
  grantRet: number;
  keepAlives: LeaseKeepAlive[];
  observations: LeaseObservation[];
}

export interface LeaseCheckOptions {
  /** How much earlier than the bound a lease may vanish (timer and rounding jitter), ms. */
  toleranceMs: number;
  /** How much later than last renewal + TTL a lapsed lease may still exist, ms. */
  slackMs: number;
  /** Times a new leader may have restarted the leases' TTLs. */
  disruptions: readonly { start: number; end: number }[];
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)}s`;

export function checkLeaseExpiry(leases: readonly LeaseRecord[], o: LeaseCheckOptions): Problem[] {
  const out: Problem[] = [];
  const disruptions = [...o.disruptions].sort((a, b) => a.start - b.start);
  for (const l of leases) {
    // Early: the first evidence that it was gone, against the last acknowledged renewal.
    let renewedFrom = l.grantCall;
    for (const k of l.keepAlives) if (k.ttl !== undefined && k.ttl > 0) renewedFrom = Math.max(renewedFrom, k.call);
    const notBefore = renewedFrom + l.ttlMs - o.toleranceMs;
    const gone = [
      ...l.observations.filter((x) => !x.present).map((x) => ({ at: x.ret, how: `TimeToLive on ${x.member} found no lease` })),
      ...l.keepAlives.filter((k) => k.ttl === 0).map((k) => ({ at: k.ret, how: 'KeepAlive answered TTL 0' })),
    ].sort((a, b) => a.at - b.at)[0];
    if (gone && gone.at < notBefore) {
      out.push({
        message: `lease ${l.id} (TTL ${fmt(l.ttlMs)}) expired early: ${gone.how} at ${fmt(gone.at)}, but it was renewed at ${fmt(renewedFrom)} and must live until ${fmt(renewedFrom + l.ttlMs)}`,
      });
    }
    // Late: the bound after the last renewal, moved past every disruption that starts before it.
    let lastRenewal = l.grantRet;
    for (const k of l.keepAlives) lastRenewal = Math.max(lastRenewal, k.ret);
    let deadline = lastRenewal + l.ttlMs + o.slackMs;
    for (const d of disruptions) {
      if (d.start <= deadline && d.end >= lastRenewal) deadline = Math.max(deadline, d.end + l.ttlMs + o.slackMs);
    }
    const lingering = l.observations.find((x) => x.present && x.call > deadline);
    if (lingering) {
      out.push({
        message: `lease ${l.id} (TTL ${fmt(l.ttlMs)}) expired late: last renewed by ${fmt(lastRenewal)}, so gone by ${fmt(deadline)}, but TimeToLive on ${lingering.member} still found it at ${fmt(lingering.call)}`,
      });
    }
  }
  return out;
}
