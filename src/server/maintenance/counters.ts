// Counters of everything the self-running maintenance does, kept on the server (EtcdServer.maintenance.counters)
// so that a later /metrics endpoint can export them. Names follow etcd's metrics where one exists
// (etcd_server_health_success/failures, etcd_debugging_mvcc_db_compaction_total...), in camelCase.

export interface MaintenanceCounters {
  /** Auto-compactions (periodic or revision mode) proposed, and how many failed. */
  autoCompactions: number;
  autoCompactionFailures: number;
  /** NOSPACE alarms this member raised (request path or apply path). */
  quotaAlarmsRaised: number;
  /** Requests refused with "database space exceeded" by this member's quota check. */
  quotaRejectedRequests: number;
  /** Automatic quota recovery: compactions proposed, defragmentations run, NOSPACE alarms disarmed. */
  quotaRecoveryCompactions: number;
  quotaRecoveryDefrags: number;
  quotaRecoveryDisarms: number;
  /** Recovery rounds that could not free enough space (live data or retained history too large). */
  quotaRecoveryStuck: number;
  /** Defragmentations of this member's backend (any cause) and their failures. */
  defrags: number;
  defragFailures: number;
  /** Corruption checks run by this member (initial + periodic), peers compared, and CORRUPT alarms raised. */
  corruptChecks: number;
  corruptCheckPeersChecked: number;
  corruptCheckFailures: number;
  corruptAlarmsRaised: number;
  /** /health answers (etcd_server_health_success / etcd_server_health_failures). */
  healthSuccess: number;
  healthFailures: number;
}

export function newMaintenanceCounters(): MaintenanceCounters {
  return {
    autoCompactions: 0,
    autoCompactionFailures: 0,
    quotaAlarmsRaised: 0,
    quotaRejectedRequests: 0,
    quotaRecoveryCompactions: 0,
    quotaRecoveryDefrags: 0,
    quotaRecoveryDisarms: 0,
    quotaRecoveryStuck: 0,
    defrags: 0,
    defragFailures: 0,
    corruptChecks: 0,
    corruptCheckPeersChecked: 0,
    corruptCheckFailures: 0,
    corruptAlarmsRaised: 0,
    healthSuccess: 0,
    healthFailures: 0,
  };
}
