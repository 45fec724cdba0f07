// /metrics: Prometheus text format (prom-client), one registry per member so that members embedded in one process
// do not mix. Every value is read from the server when scraped; nothing here is on a request's path.
//
// Names are etcd's where etcd has the metric (etcd_server_*, etcd_mvcc_*, etcd_network_*, etcd_debugging_*), with
// etcd's labels; what etcd has no metric for is prefixed tsetcd_. Not exported yet: etcd's request counters
// (etcd_mvcc_put_total, grpc_server_handled_total, ...), which need counting on the request path.

import { Registry, Gauge, collectDefaultMetrics } from 'prom-client';
import type { HttpRoute } from './client-front';
import type { EtcdServer } from './etcd-server';
import { StateType } from '../raft';
import { idToHex } from './membership';
import { CLUSTER_VERSION, SERVER_VERSION } from './version';

type Labels = Record<string, string>;

/** A gauge whose value(s) come from `read` at scrape time (counters exported as etcd exports them, as totals). */
function scraped(registry: Registry, name: string, help: string, read: () => number | Array<[Labels, number]>, labelNames: string[] = []): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      const v = read();
      this.reset();
      if (typeof v === 'number') this.set(v);
      else for (const [labels, n] of v) this.set(labels, n);
    },
  });
}

function byPeer(m: Map<string, number>, label: string): Array<[Labels, number]> {
  return [...m].map(([peer, n]) => [{ [label]: peer }, n]);
}

export function createMetricsRegistry(srv: EtcdServer): Registry {
  const r = new Registry();
  collectDefaultMetrics({ register: r });
  const status = () => srv.raftStatus();

  scraped(r, 'etcd_server_version', 'Which version is running. 1 for \'server_version\' label with current version.', () => [[{ server_version: SERVER_VERSION }, 1]], ['server_version']);
  scraped(r, 'etcd_cluster_version', 'Which version is running. 1 for \'cluster_version\' label with current cluster version', () => [[{ cluster_version: CLUSTER_VERSION }, 1]], ['cluster_version']);
  scraped(r, 'etcd_server_id', 'Server or member ID in hexadecimal format. 1 for \'server_id\' label with current ID.', () => [[{ server_id: idToHex(srv.memberId) }, 1]], ['server_id']);
  scraped(r, 'etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (srv.leader() !== 0n ? 1 : 0));
  scraped(r, 'etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (status().raftState === StateType.Leader ? 1 : 0));
  scraped(r, 'etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', () => (srv.cluster.members.get(srv.memberId)?.isLearner ? 1 : 0));
  scraped(r, 'etcd_server_leader_changes_seen_total', 'The number of leader changes seen.', () => srv.leaderChanges);
  scraped(r, 'etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => status().commit);
  scraped(r, 'etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => srv.applied.index);
  scraped(r, 'etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => srv.pendingProposals);

  scraped(r, 'etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', () => srv.maintenance.quota.sizeBytes());
  scraped(r, 'etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', () => srv.maintenance.quota.maxBytes);
  scraped(r, 'etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => srv.store.currentRev);
  scraped(r, 'etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => Math.max(0, srv.store.compactMainRev));

  // Snapshots: how followers were caught up, and the snapshots this member took.
  scraped(r, 'etcd_network_snapshot_send_success', 'Total number of successful snapshot sends', () => byPeer(srv.snapshotPeers.sent, 'To'), ['To']);
  scraped(r, 'etcd_network_snapshot_send_failures', 'Total number of snapshot send failures', () => byPeer(srv.snapshotPeers.sendFailures, 'To'), ['To']);
  scraped(r, 'etcd_network_snapshot_receive_success', 'Total number of successful snapshot receives', () => byPeer(srv.snapshotPeers.received, 'From'), ['From']);
  scraped(r, 'tsetcd_snapshots_taken_total', 'Snapshots taken by this member every --snapshot-count applied entries (marker, log compaction, WAL release).', () => srv.snapshotStats.taken);
  scraped(r, 'tsetcd_snapshots_applied_total', 'Snapshots received from the leader and installed by this member.', () => srv.snapshotStats.applied);

  // Self-running maintenance (src/server/maintenance): etcd's names where it has them.
  const c = () => srv.maintenance.counters;
  scraped(r, 'etcd_server_health_success', 'The total number of successful health checks', () => c().healthSuccess);
  scraped(r, 'etcd_server_health_failures', 'The total number of failed health checks', () => c().healthFailures);
  const ours: Array<[string, string, keyof ReturnType<typeof c>]> = [
    ['tsetcd_auto_compactions_total', 'Auto-compactions proposed by this member (leader).', 'autoCompactions'],
    ['tsetcd_auto_compaction_failures_total', 'Auto-compactions that failed.', 'autoCompactionFailures'],
    ['tsetcd_quota_alarms_raised_total', 'NOSPACE alarms raised by this member.', 'quotaAlarmsRaised'],
    ['tsetcd_quota_rejected_requests_total', 'Requests refused with "database space exceeded".', 'quotaRejectedRequests'],
    ['tsetcd_quota_recovery_compactions_total', 'Compactions proposed by the automatic quota recovery.', 'quotaRecoveryCompactions'],
    ['tsetcd_quota_recovery_defrags_total', 'Defragmentations run by the automatic quota recovery.', 'quotaRecoveryDefrags'],
    ['tsetcd_quota_recovery_disarms_total', 'NOSPACE alarms disarmed by the automatic quota recovery.', 'quotaRecoveryDisarms'],
    ['tsetcd_quota_recovery_stuck_total', 'Recovery rounds that could not free enough space.', 'quotaRecoveryStuck'],
    ['tsetcd_defrags_total', 'Defragmentations of this member\'s backend.', 'defrags'],
    ['tsetcd_defrag_failures_total', 'Defragmentations that failed.', 'defragFailures'],
    ['tsetcd_corrupt_checks_total', 'Corruption checks run (initial and periodic).', 'corruptChecks'],
    ['tsetcd_corrupt_check_failures_total', 'Corruption checks that could not complete.', 'corruptCheckFailures'],
    ['tsetcd_corrupt_alarms_raised_total', 'CORRUPT alarms raised.', 'corruptAlarmsRaised'],
  ];
  for (const [name, help, key] of ours) scraped(r, name, help, () => c()[key]);
  return r;
}

/** GET /metrics, as etcd's promhttp handler. */
export function metricsRoute(registry: Registry): HttpRoute {
  return (req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  };
}
