// The parts of a run (./run.ts) that belong to the hook nemeses (./nemesis-hooks.ts) and the checks that read the
// members' files once they are stopped:
//
// - `leaseExpiry` (F17): the lease workload's evidence against ../checker/lease.ts; fault windows other than
//   clock-skew, and new Raft terms seen in responses, count as disruptions (a new leader restarts lease TTLs);
// - `serverLogs` (C8): every member log scanned for uncaught exceptions, assertion failures, error/fatal lines and
//   unexpected exits, other than injected failpoint panics and what a nemesis that ran declares it causes
//   (Nemesis.expectedLogLines) (../checker/server-logs.ts);
// - `raftLog` (C4): each member's committed Raft log read from its WAL (./wal-log.ts, read-only, torn tails as
//   recovery reads them) and compared with checkLogPrefixes: an index means the same entry on every member.

import fsp from 'node:fs/promises';
import path from 'node:path';
import { checkLeaseExpiry, checkLogPrefixes, scanServerLog, type LogEntry } from '../checker';
import type { FaultCluster } from './cluster';
import { LeaseWorkload } from './lease-workload';
import { nemesisByName, type FaultWindow } from './nemesis';
import { readCommittedLog } from './wal-log';
import type { Rng } from './rng';
import type { CheckResult } from './run';
import type { Clock } from './workload';

/** Lapsed leases are still polled this long after the workload stops, so their expiry is seen. */
const LEASE_DRAIN_MS = 6000;

export function startLeaseWorkload(cluster: FaultCluster, clock: Clock, rng: Rng): LeaseWorkload {
  const w = new LeaseWorkload({ endpoints: cluster.endpoints, names: cluster.names, clock, rng, ttlSeconds: [3, 5], maxLive: 6, timeoutMs: 1500 });
  w.start();
  return w;
}

export function stopLeaseWorkload(w: LeaseWorkload | undefined): Promise<void> {
  return w ? w.stop(LEASE_DRAIN_MS) : Promise.resolve();
}

export function leaseExpiryCheck(w: LeaseWorkload, faults: readonly FaultWindow[]): CheckResult {
  const disruptions = [
    ...faults.filter((f) => f.nemesis !== 'clock-skew').map((f) => ({ start: f.start, end: f.end ?? Infinity })),
    ...w.newTerms.map((t) => ({ start: t.time, end: t.time })),
  ];
  // Tolerance: timer and rounding jitter. Slack: the leader scans for expired leases every 500 ms and the revoke
  // goes through Raft; an election timeout (1 s) and margin for a loaded 2-core machine on top.
  const problems = checkLeaseExpiry(w.leases, { toleranceMs: 500, slackMs: 4000, disruptions }).map((p) => p.message);
  const gone = w.leases.filter((l) => l.observations.some((o) => !o.present) || l.keepAlives.some((k) => k.ttl === 0)).length;
  const renewals = w.leases.reduce((n, l) => n + l.keepAlives.filter((k) => (k.ttl ?? 0) > 0).length, 0);
  return {
    verdict: problems.length ? 'anomaly' : 'ok',
    detail: `${w.leases.length} leases (${gone} seen expire), ${renewals} renewals, ${w.leases.reduce((n, l) => n + l.observations.length, 0)} TimeToLive polls, ${w.newTerms.length} new terms seen`,
    problems: problems.slice(0, 20),
  };
}

/** Checks that run once the members are stopped (their logs complete, their WALs quiet). */
export async function afterStopChecks(cluster: FaultCluster, faults: readonly FaultWindow[], checks: Record<string, CheckResult>): Promise<void> {
  const expected = [...new Set(faults.map((w) => w.nemesis))].flatMap((n) => nemesisByName(n)?.expectedLogLines ?? []);
  // The log streams are ended on exit; let the last lines reach the files.
  await new Promise((r) => setTimeout(r, 200));
  try {
    const problems: string[] = [];
    for (let i = 0; i < cluster.size; i++) {
      const text = await fsp.readFile(cluster.logFile(i), 'utf8').catch(() => '');
      problems.push(...scanServerLog(cluster.names[i]!, text, expected).map((p) => p.message));
    }
    checks.serverLogs = { verdict: problems.length ? 'anomaly' : 'ok', problems: problems.slice(0, 20) };
  } catch (err: any) {
    checks.serverLogs = { verdict: 'error', detail: String(err?.message ?? err) };
  }

  try {
    const logs: { member: string; entries: LogEntry[] }[] = [];
    const details: string[] = [];
    for (let i = 0; i < cluster.size; i++) {
      const name = cluster.names[i]!;
      const l = await readCommittedLog(path.join(cluster.root, 'data', name, 'member', 'wal'));
      logs.push({ member: name, entries: l.entries });
      const first = l.entries[0]?.index;
      details.push(`${name}: ${l.entries.length} committed entries${first !== undefined ? ` ${first}..${first + l.entries.length - 1}` : ''} in ${l.segments} segment(s)${l.tornTail ? `, torn tail at ${l.tornTail}` : ''}`);
    }
    const problems = checkLogPrefixes(logs).map((p) => p.message);
    checks.raftLog = { verdict: problems.length ? 'anomaly' : 'ok', detail: details.join('; '), problems: problems.slice(0, 20) };
  } catch (err: any) {
    checks.raftLog = { verdict: 'error', detail: String(err?.message ?? err) };
  }
}
