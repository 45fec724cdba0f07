// Command line, ETCD_* environment and --config-file parsing for bin/etcd, with etcd's behaviour and texts
// (etcd v3.5 etcdmain/config.go, help.go, pkg/flags; Go's flag package).
//
// One table, FLAGS, drives everything: each row is an etcd flag with its value type, the ServerConfig field it sets,
// its config-file key, its ETCD_* variable (derived from the name) and its --help text.
//
// Go flag semantics, which etcd users and etcd's own tests rely on:
//   --flag value, --flag=value, -flag value, -flag=value      (one or two dashes, same meaning)
//   --bool-flag, --bool-flag=true, --bool-flag=false          (a bool never takes the next argument)
//   parsing stops at the first non-flag argument or at "--"; any leftover argument is an error
//   a flag given twice: the last one wins
// The tokenizer below implements these rules (commander cannot: it has no single-dash long options, no
// "--bool=false", and keeps parsing after positional arguments); the tokens then go through commander, which applies
// the table's value parsers and records where each value came from ('cli' or 'env').

import fs from 'node:fs';
import { Command, Option } from 'commander';
import YAML from 'yaml';
import {
  configError,
  defaultConfig,
  DEFAULT_QUOTA_BACKEND_BYTES,
  isConfigError,
  MAX_UINT32,
  MSG_UNSET_ADVERTISE_CLIENT_URLS,
  parseGoBool,
  parseGoDurationMs,
  parseGoInt,
  parseUrlList,
  validateConfig,
  type ServerConfig,
} from './config';
import { formatLogLine, type LogLevel } from './logger';
import { versionText } from './version';

// ---------------------------------------------------------------------------------------------------------------
// The flag table

export type FlagKind =
  | 'string'
  | 'bool'
  | 'uint' // Go uint/uint64: base-0 integer literal
  | 'int' // Go int/int64
  | 'uint32' // etcd flags.Uint32Value: decimal only, strconv's own error text
  | 'duration' // Go time.Duration, held in ms
  | 'urls' // etcd flags.UniqueURLs: comma-separated, validated, sorted
  | 'cors' // UniqueURLs with the "*" exception
  | 'strings' // etcd flags.StringsValue: comma-separated, in order
  | 'unique-strings' // etcd flags.UniqueStringsValue: comma-separated, de-duplicated, sorted
  | 'enum' // etcd flags.SelectiveStringValue
  | 'ignored'; // etcd flags.IgnoredFlag: a removed flag, accepted like a bool and ignored

export type FlagValue = string | boolean | number | string[];

export type HelpSection =
  | 'Member'
  | 'Clustering'
  | 'Security'
  | 'Auth'
  | 'Profiling and Monitoring'
  | 'Logging'
  | 'Experimental distributed tracing'
  | 'v2 Proxy (Deprecated and to be decommissioned in v3.6)'
  | 'Experimental feature'
  | 'Unsafe feature';

export interface FlagSpec {
  /** The flag, without dashes. */
  name: string;
  kind: FlagKind;
  /** The ServerConfig field it sets, as a dotted path ('clientTls.certFile'); '' = kept in otherFlags only. */
  field: string;
  /** Its key in etcd's YAML config file, dotted for nested keys; null = not settable from the file. */
  yaml: string | null;
  /** The ETCD_* environment variable (etcd pkg/flags FlagToEnv). */
  env: string;
  /** --help section; null = not listed (legacy and ignored flags). */
  section: HelpSection | null;
  /** The default as --help shows it, e.g. "'default'" or "300" ('' = none shown). */
  usageDefault: string;
  help: string;
  /** For 'enum': the accepted values. */
  valids?: readonly string[];
  /**
   * 'supported': sets a field the server acts on. 'accepted': a real etcd flag that this server parses but does not
   * act on (logged at debug level when set). 'ignored': removed from etcd long ago, etcd warns and ignores it too.
   */
  status: 'supported' | 'accepted' | 'ignored';
}

interface Row {
  kind: FlagKind;
  field: string;
  section: HelpSection | null;
  def: string;
  help: string;
  yaml?: string | null;
  valids?: readonly string[];
  status?: FlagSpec['status'];
}

function flagToEnv(name: string): string {
  return `ETCD_${name.replace(/-/g, '_').toUpperCase()}`;
}

const M: HelpSection = 'Member';
const C: HelpSection = 'Clustering';
const S: HelpSection = 'Security';
const A: HelpSection = 'Auth';
const P: HelpSection = 'Profiling and Monitoring';
const L: HelpSection = 'Logging';
const T: HelpSection = 'Experimental distributed tracing';
const X: HelpSection = 'v2 Proxy (Deprecated and to be decommissioned in v3.6)';
const E: HelpSection = 'Experimental feature';
const U: HelpSection = 'Unsafe feature';
const CTS = 'client-transport-security';
const PTS = 'peer-transport-security';

// Rows are in etcd v3.5.21 help.go order; help texts are help.go's.
const ROWS: Record<string, Row> = {
  // Member
  name: { kind: 'string', field: 'name', section: M, def: "'default'", help: 'Human-readable name for this member.' },
  'data-dir': { kind: 'string', field: 'dataDir', section: M, def: "'${name}.etcd'", help: 'Path to the data directory.' },
  'wal-dir': { kind: 'string', field: 'walDir', section: M, def: "''", help: 'Path to the dedicated wal directory.' },
  'snapshot-count': { kind: 'uint', field: 'snapshotCount', section: M, def: "'10000'", help: 'Number of committed transactions to trigger a snapshot to disk.' },
  'heartbeat-interval': { kind: 'uint', field: 'heartbeatIntervalMs', section: M, def: "'100'", help: 'Time (in milliseconds) of a heartbeat interval.' },
  'election-timeout': { kind: 'uint', field: 'electionTimeoutMs', section: M, def: "'1000'", help: 'Time (in milliseconds) for an election to timeout. See tuning documentation for details.' },
  'initial-election-tick-advance': { kind: 'bool', field: 'initialElectionTickAdvance', section: M, def: "'true'", help: 'Whether to fast-forward initial election ticks on boot for faster election.' },
  'listen-peer-urls': { kind: 'urls', field: 'listenPeerUrls', section: M, def: "'http://localhost:2380'", help: 'List of URLs to listen on for peer traffic.' },
  'listen-client-urls': { kind: 'urls', field: 'listenClientUrls', section: M, def: "'http://localhost:2379'", help: 'List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified.' },
  'listen-client-http-urls': { kind: 'urls', field: 'listenClientHttpUrls', section: M, def: "''", help: 'List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.' },
  'max-snapshots': { kind: 'uint', field: 'maxSnapshots', section: M, def: "'5'", help: 'Maximum number of snapshot files to retain (0 is unlimited).' },
  'max-wals': { kind: 'uint', field: 'maxWals', section: M, def: "'5'", help: 'Maximum number of wal files to retain (0 is unlimited).' },
  'quota-backend-bytes': { kind: 'int', field: 'quotaBackendBytes', section: M, def: "'0'", help: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).' },
  'backend-bbolt-freelist-type': { kind: 'string', field: 'backendBboltFreelistType', section: M, def: "'map'", help: 'BackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).', status: 'accepted' },
  'backend-batch-interval': { kind: 'duration', field: 'backendBatchIntervalMs', section: M, def: "''", help: 'BackendBatchInterval is the maximum time before commit the backend transaction.', status: 'accepted' },
  'backend-batch-limit': { kind: 'int', field: 'backendBatchLimit', section: M, def: "'0'", help: 'BackendBatchLimit is the maximum operations before commit the backend transaction.', status: 'accepted' },
  'max-txn-ops': { kind: 'uint', field: 'maxTxnOps', section: M, def: "'128'", help: 'Maximum number of operations permitted in a transaction.' },
  'max-request-bytes': { kind: 'uint', field: 'maxRequestBytes', section: M, def: "'1572864'", help: 'Maximum client request size in bytes the server will accept.' },
  'max-concurrent-streams': { kind: 'uint32', field: 'maxConcurrentStreams', section: M, def: "'math.MaxUint32'", help: 'Maximum concurrent streams that each client can open at a time.' },
  'enable-grpc-gateway': { kind: 'bool', field: 'enableGrpcGateway', section: M, def: '', help: 'Enable GRPC gateway.' },
  'grpc-keepalive-min-time': { kind: 'duration', field: 'grpcKeepaliveMinTimeMs', section: M, def: "'5s'", help: 'Minimum duration interval that a client should wait before pinging server.' },
  'grpc-keepalive-interval': { kind: 'duration', field: 'grpcKeepaliveIntervalMs', section: M, def: "'2h'", help: 'Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).' },
  'grpc-keepalive-timeout': { kind: 'duration', field: 'grpcKeepaliveTimeoutMs', section: M, def: "'20s'", help: 'Additional duration of wait before closing a non-responsive connection (0 to disable).' },
  'socket-reuse-port': { kind: 'bool', field: 'socketReusePort', section: M, def: "'false'", help: 'Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.', yaml: 'socket-options.reuse-port', status: 'accepted' },
  'socket-reuse-address': { kind: 'bool', field: 'socketReuseAddress', section: M, def: "'false'", help: 'Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state.', yaml: 'socket-options.reuse-address', status: 'accepted' },
  'raft-read-timeout': { kind: 'duration', field: 'raftReadTimeoutMs', section: M, def: "'5s'", help: 'Read timeout set on each rafthttp connection', yaml: null },
  'raft-write-timeout': { kind: 'duration', field: 'raftWriteTimeoutMs', section: M, def: "'5s'", help: 'Write timeout set on each rafthttp connection', yaml: null },

  // Clustering
  'initial-advertise-peer-urls': { kind: 'urls', field: 'initialAdvertisePeerUrls', section: C, def: "'http://localhost:2380'", help: "List of this member's peer URLs to advertise to the rest of the cluster." },
  'initial-cluster': { kind: 'string', field: 'initialCluster', section: C, def: "'default=http://localhost:2380'", help: 'Initial cluster configuration for bootstrapping.' },
  'initial-cluster-state': { kind: 'enum', field: 'initialClusterState', section: C, def: "'new'", valids: ['new', 'existing'], help: "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster).\n    After successful initialization (bootstrapping or adding), flag is ignored on restarts." },
  'initial-cluster-token': { kind: 'string', field: 'initialClusterToken', section: C, def: "'etcd-cluster'", help: 'Initial cluster token for the etcd cluster during bootstrap.\n    Specifying this can protect you from unintended cross-cluster interaction when running multiple clusters.' },
  'advertise-client-urls': { kind: 'urls', field: 'advertiseClientUrls', section: C, def: "'http://localhost:2379'", help: "List of this member's client URLs to advertise to the public.\n    The client URLs advertised should be accessible to machines that talk to etcd cluster. etcd client libraries parse these URLs to connect to the cluster." },
  discovery: { kind: 'string', field: 'discovery', section: C, def: "''", help: 'Discovery URL used to bootstrap the cluster.', status: 'accepted' },
  'discovery-fallback': { kind: 'enum', field: 'discoveryFallback', section: C, def: "'proxy'", valids: ['exit', 'proxy'], help: "Expected behavior ('exit' or 'proxy') when discovery services fails.\n    \"proxy\" supports v2 API only.", status: 'accepted' },
  'discovery-proxy': { kind: 'string', field: 'discoveryProxy', section: C, def: "''", help: 'HTTP proxy to use for traffic to discovery service.', status: 'accepted' },
  'discovery-srv': { kind: 'string', field: 'discoverySrv', section: C, def: "''", help: 'DNS srv domain used to bootstrap the cluster.', status: 'accepted' },
  'discovery-srv-name': { kind: 'string', field: 'discoverySrvName', section: C, def: "''", help: 'Suffix to the dns srv name queried when bootstrapping.', status: 'accepted' },
  'strict-reconfig-check': { kind: 'bool', field: 'strictReconfigCheck', section: C, def: "'true'", help: 'Reject reconfiguration requests that would cause quorum loss.' },
  'pre-vote': { kind: 'bool', field: 'preVote', section: C, def: "'true'", help: 'Enable to run an additional Raft election phase.' },
  'auto-compaction-retention': { kind: 'string', field: 'autoCompactionRetention', section: C, def: "'0'", help: 'Auto compaction retention length. 0 means disable auto compaction.' },
  'auto-compaction-mode': { kind: 'string', field: 'autoCompactionMode', section: C, def: "'periodic'", help: "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention." },
  'enable-v2': { kind: 'bool', field: 'enableV2', section: C, def: "'false'", help: 'Accept etcd V2 client requests. Deprecated and to be decommissioned in v3.6.', status: 'accepted' },
  'v2-deprecation': { kind: 'enum', field: 'v2Deprecation', section: C, def: "'not-yet'", valids: ['not-yet', 'write-only', 'write-only-drop-data', 'gone'], help: "Phase of v2store deprecation. Allows to opt-in for higher compatibility mode.\n    Supported values:\n      'not-yet'                // Issues a warning if v2store have meaningful content (default in v3.5)\n      'write-only'             // Custom v2 state is not allowed (planned default in v3.6)\n      'write-only-drop-data'   // Custom v2 state will get DELETED !\n      'gone'                   // v2store is not maintained any longer. (planned default in v3.7)", status: 'accepted' },

  // Security
  'cert-file': { kind: 'string', field: 'clientTls.certFile', section: S, def: "''", help: 'Path to the client server TLS cert file.', yaml: `${CTS}.cert-file` },
  'key-file': { kind: 'string', field: 'clientTls.keyFile', section: S, def: "''", help: 'Path to the client server TLS key file.', yaml: `${CTS}.key-file` },
  'client-cert-auth': { kind: 'bool', field: 'clientTls.clientCertAuth', section: S, def: "'false'", help: 'Enable client cert authentication.', yaml: `${CTS}.client-cert-auth` },
  'client-cert-file': { kind: 'string', field: 'clientTls.clientCertFile', section: S, def: "''", help: 'Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.', yaml: `${CTS}.client-cert-file` },
  'client-key-file': { kind: 'string', field: 'clientTls.clientKeyFile', section: S, def: "''", help: 'Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.', yaml: `${CTS}.client-key-file` },
  'client-crl-file': { kind: 'string', field: 'clientTls.crlFile', section: S, def: "''", help: 'Path to the client certificate revocation list file.', yaml: null },
  'client-cert-allowed-hostname': { kind: 'strings', field: 'clientTls.allowedHostname', section: S, def: "''", help: 'Comma-separated list of SAN hostnames for client cert authentication.', yaml: `${CTS}.allowed-hostname` },
  'trusted-ca-file': { kind: 'string', field: 'clientTls.trustedCaFile', section: S, def: "''", help: 'Path to the client server TLS trusted CA cert file.', yaml: `${CTS}.trusted-ca-file` },
  'auto-tls': { kind: 'bool', field: 'clientTls.autoTls', section: S, def: "'false'", help: 'Client TLS using generated certificates.', yaml: `${CTS}.auto-tls` },
  'peer-cert-file': { kind: 'string', field: 'peerTls.certFile', section: S, def: "''", help: 'Path to the peer server TLS cert file.', yaml: `${PTS}.cert-file` },
  'peer-key-file': { kind: 'string', field: 'peerTls.keyFile', section: S, def: "''", help: 'Path to the peer server TLS key file.', yaml: `${PTS}.key-file` },
  'peer-client-cert-auth': { kind: 'bool', field: 'peerTls.clientCertAuth', section: S, def: "'false'", help: 'Enable peer client cert authentication.', yaml: `${PTS}.client-cert-auth` },
  'peer-trusted-ca-file': { kind: 'string', field: 'peerTls.trustedCaFile', section: S, def: "''", help: 'Path to the peer server TLS trusted CA file.', yaml: `${PTS}.trusted-ca-file` },
  'peer-cert-allowed-cn': { kind: 'strings', field: 'peerTls.allowedCn', section: S, def: "''", help: 'Comma-separated list of allowed CNs for inter-peer TLS authentication.', yaml: `${PTS}.allowed-cn` },
  'peer-cert-allowed-hostname': { kind: 'strings', field: 'peerTls.allowedHostname', section: S, def: "''", help: 'Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.', yaml: `${PTS}.allowed-hostname` },
  'peer-auto-tls': { kind: 'bool', field: 'peerTls.autoTls', section: S, def: "'false'", help: 'Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.', yaml: `${PTS}.auto-tls` },
  'peer-client-cert-file': { kind: 'string', field: 'peerTls.clientCertFile', section: S, def: "''", help: 'Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.', yaml: `${PTS}.client-cert-file` },
  'peer-client-key-file': { kind: 'string', field: 'peerTls.clientKeyFile', section: S, def: "''", help: 'Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.', yaml: `${PTS}.client-key-file` },
  'self-signed-cert-validity': { kind: 'uint', field: 'selfSignedCertValidity', section: S, def: "'1'", help: 'The validity period of the client and peer certificates that are automatically generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1.' },
  'peer-crl-file': { kind: 'string', field: 'peerTls.crlFile', section: S, def: "''", help: 'Path to the peer certificate revocation list file.', yaml: null },
  'cipher-suites': { kind: 'strings', field: 'cipherSuites', section: S, def: "''", help: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).' },
  cors: { kind: 'cors', field: 'cors', section: S, def: "'*'", help: 'Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).', status: 'accepted' },
  'host-whitelist': { kind: 'unique-strings', field: 'hostWhitelist', section: S, def: "'*'", help: 'Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).', status: 'accepted' },
  'tls-min-version': { kind: 'string', field: 'tlsMinVersion', section: S, def: "'TLS1.2'", help: 'Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.' },
  'tls-max-version': { kind: 'string', field: 'tlsMaxVersion', section: S, def: "''", help: 'Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty will be auto-populated by Go).' },

  // Auth
  'auth-token': { kind: 'string', field: 'authToken', section: A, def: "'simple'", help: "Specify a v3 authentication token type and its options ('simple' or 'jwt')." },
  'bcrypt-cost': { kind: 'uint', field: 'bcryptCost', section: A, def: '10', help: 'Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.' },
  'auth-token-ttl': { kind: 'uint', field: 'authTokenTtlSeconds', section: A, def: '300', help: 'Time (in seconds) of the auth-token-ttl.' },

  // Profiling and Monitoring
  'enable-pprof': { kind: 'bool', field: 'enablePprof', section: P, def: "'false'", help: 'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"', status: 'accepted' },
  metrics: { kind: 'string', field: 'metrics', section: P, def: "'basic'", help: "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics." },
  'listen-metrics-urls': { kind: 'urls', field: 'listenMetricsUrls', section: P, def: "''", help: 'List of URLs to listen on for the /metrics and /health endpoints. For https, the client URL TLS info is used.' },

  // Logging
  logger: { kind: 'string', field: 'logger', section: L, def: "'zap'", help: "Currently only supports 'zap' for structured logging." },
  'log-outputs': { kind: 'unique-strings', field: 'logOutputs', section: L, def: "'default'", help: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets." },
  'log-level': { kind: 'string', field: 'logLevel', section: L, def: "'info'", help: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.' },
  'enable-log-rotation': { kind: 'bool', field: 'enableLogRotation', section: L, def: "'false'", help: 'Enable log rotation of a single log-outputs file target.', status: 'accepted' },
  'log-rotation-config-json': { kind: 'string', field: 'logRotationConfigJson', section: L, def: `'{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}'`, help: 'Configures log rotation if enabled with a JSON logger config. MaxSize(MB), MaxAge(days,0=no limit), MaxBackups(0=no limit), LocalTime(use computers local time), Compress(gzip)".', status: 'accepted' },

  // Experimental distributed tracing
  'experimental-enable-distributed-tracing': { kind: 'bool', field: '', section: T, def: "'false'", help: 'Enable experimental distributed tracing.', status: 'accepted' },
  'experimental-distributed-tracing-address': { kind: 'string', field: '', section: T, def: "'localhost:4317'", help: 'Distributed tracing collector address.', status: 'accepted' },
  'experimental-distributed-tracing-service-name': { kind: 'string', field: '', section: T, def: "'etcd'", help: 'Distributed tracing service name, must be same across all etcd instances.', status: 'accepted' },
  'experimental-distributed-tracing-instance-id': { kind: 'string', field: '', section: T, def: "''", help: 'Distributed tracing instance ID, must be unique per each etcd instance.', status: 'accepted' },
  'experimental-distributed-tracing-sampling-rate': { kind: 'int', field: '', section: T, def: "'0'", help: 'Number of samples to collect per million spans for distributed tracing. Disabled by default.', status: 'accepted' },

  // v2 Proxy
  proxy: { kind: 'enum', field: 'proxy', section: X, def: "'off'", valids: ['off', 'readonly', 'on'], help: "Proxy mode setting ('off', 'readonly' or 'on').", status: 'accepted' },
  'proxy-failure-wait': { kind: 'uint', field: '', section: X, def: '5000', help: 'Time (in milliseconds) an endpoint will be held in a failed state.', status: 'accepted' },
  'proxy-refresh-interval': { kind: 'uint', field: '', section: X, def: '30000', help: 'Time (in milliseconds) of the endpoints refresh interval.', status: 'accepted' },
  'proxy-dial-timeout': { kind: 'uint', field: '', section: X, def: '1000', help: 'Time (in milliseconds) for a dial to timeout.', status: 'accepted' },
  'proxy-write-timeout': { kind: 'uint', field: '', section: X, def: '5000', help: 'Time (in milliseconds) for a write to timeout.', status: 'accepted' },
  'proxy-read-timeout': { kind: 'uint', field: '', section: X, def: '0', help: 'Time (in milliseconds) for a read to timeout.', status: 'accepted' },

  // Experimental feature
  // Differs from etcd: the corruption checks are on by default (etcd: false and 0s).
  'experimental-initial-corrupt-check': { kind: 'bool', field: 'experimentalInitialCorruptCheck', section: E, def: "'true'", help: 'Enable to check data corruption before serving any client/peer traffic.' },
  'experimental-corrupt-check-time': { kind: 'duration', field: 'experimentalCorruptCheckTimeMs', section: E, def: "'1m'", help: 'Duration of time between cluster corruption check passes (0s turns the periodic check off).' },
  // Ours, not etcd's (maintenance/quota-recovery.ts).
  'experimental-auto-quota-recovery': { kind: 'bool', field: 'experimentalAutoQuotaRecovery', section: E, def: "'true'", help: 'Recover from NOSPACE by itself: compact and defragment as the backend nears its quota, and disarm the NOSPACE alarm once usage is back below 70% of the quota.' },
  'experimental-auto-quota-recovery-retain-revisions': { kind: 'uint', field: 'experimentalAutoQuotaRecoveryRetainRevisions', section: E, def: "'1000'", help: 'Revisions of history the automatic quota recovery keeps when it compacts.' },
  'experimental-compact-hash-check-enabled': { kind: 'bool', field: 'experimentalCompactHashCheckEnabled', section: E, def: "'false'", help: 'Enable leader to periodically check followers compaction hashes.' },
  'experimental-compact-hash-check-time': { kind: 'duration', field: 'experimentalCompactHashCheckTimeMs', section: E, def: "'1m'", help: 'Duration of time between leader checks followers compaction hashes.' },
  'experimental-enable-v2v3': { kind: 'string', field: 'experimentalEnableV2v3', section: E, def: "''", help: 'Serve v2 requests through the v3 backend under a given prefix. Deprecated and to be decommissioned in v3.6.', status: 'accepted' },
  'experimental-enable-lease-checkpoint': { kind: 'bool', field: 'experimentalEnableLeaseCheckpoint', section: E, def: "'true'", help: 'ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases.' },
  'experimental-enable-lease-checkpoint-persist': { kind: 'bool', field: 'experimentalEnableLeaseCheckpointPersist', section: E, def: "'false'", help: 'Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases. Always enabled in v3.6. Should be used to ensure smooth upgrade from v3.5 clusters with this feature enabled. Requires experimental-enable-lease-checkpoint to be enabled.' },
  'experimental-compaction-batch-limit': { kind: 'int', field: 'experimentalCompactionBatchLimit', section: E, def: '1000', help: 'ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.' },
  'experimental-compaction-sleep-interval': { kind: 'duration', field: 'experimentalCompactionSleepIntervalMs', section: E, def: "'10ms'", help: 'ExperimentalCompactionSleepInterval sets the sleep interval between each compaction batch.' },
  'experimental-peer-skip-client-san-verification': { kind: 'bool', field: 'peerTls.skipClientSanVerify', section: E, def: "'false'", help: 'Skip verification of SAN field in client certificate for peer connections.', yaml: null },
  'experimental-watch-progress-notify-interval': { kind: 'duration', field: 'watchProgressNotifyIntervalMs', section: E, def: "'10m'", help: 'Duration of periodical watch progress notification.' },
  'experimental-lease-checkpoint-interval': { kind: 'duration', field: 'experimentalLeaseCheckpointIntervalMs', section: E, def: "'5m'", help: 'Duration of periodical lease checkpoints: the leader records the remaining TTL of longer leases so that a new leader does not restart them.' },
  'experimental-downgrade-check-time': { kind: 'duration', field: 'experimentalDowngradeCheckTimeMs', section: E, def: '', help: 'Duration of time between two downgrade status checks.', status: 'accepted' },
  'experimental-memory-mlock': { kind: 'bool', field: 'experimentalMemoryMlock', section: E, def: '', help: 'Enable to enforce etcd pages (in particular bbolt) to stay in RAM.', status: 'accepted' },
  'experimental-warning-apply-duration': { kind: 'duration', field: 'experimentalWarningApplyDurationMs', section: E, def: "'100ms'", help: 'Warning is generated if requests take more than this duration.' },
  'experimental-txn-mode-write-with-shared-buffer': { kind: 'bool', field: 'experimentalTxnModeWriteWithSharedBuffer', section: E, def: "'true'", help: 'Enable the write transaction to use a shared buffer in its readonly check operations.', status: 'accepted' },
  'experimental-bootstrap-defrag-threshold-megabytes': { kind: 'uint', field: 'experimentalBootstrapDefragThresholdMegabytes', section: E, def: '', help: 'Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect.', status: 'accepted' },
  'experimental-stop-grpc-service-on-defrag': { kind: 'bool', field: 'experimentalStopGrpcServiceOnDefrag', section: E, def: '', help: 'Enable etcd gRPC service to stop serving client requests on defragmentation.', status: 'accepted' },
  'experimental-snapshot-catchup-entries': { kind: 'uint', field: 'snapshotCatchupEntries', section: E, def: "'5000'", help: 'Number of entries for a slow follower to catch up after compacting the raft storage entries.', yaml: 'experimental-snapshot-catch-up-entries' },

  // Unsafe feature
  'force-new-cluster': { kind: 'bool', field: 'forceNewCluster', section: U, def: "'false'", help: 'Force to create a new one-member cluster.' },
  'unsafe-no-fsync': { kind: 'bool', field: 'unsafeNoFsync', section: U, def: "'false'", help: 'Disables fsync, unsafe, will cause data loss.' },

  // Not in --help
  'config-file': { kind: 'string', field: 'configFile', section: null, def: "''", help: 'Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.', yaml: null },
  version: { kind: 'bool', field: '', section: null, def: "'false'", help: 'Print the version and exit.', yaml: null },
  // etcd v3.4 flags removed in v3.5: still accepted, with their v3.4 effect where it is cheap.
  debug: { kind: 'bool', field: '', section: null, def: "'false'", help: "Enable debug-level logging for etcd. Use '--log-level=debug' instead." },
  'log-output': { kind: 'unique-strings', field: '', section: null, def: "'default'", help: "[TO BE DEPRECATED IN v3.5] use '--log-outputs'." },
  'log-package-levels': { kind: 'string', field: '', section: null, def: "''", help: "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').", status: 'accepted' },
  'experimental-backend-bbolt-freelist-type': { kind: 'string', field: 'backendBboltFreelistType', section: null, def: "'array'", help: 'ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).', status: 'accepted' },
};

// etcdmain/config.go `ignored`: flags removed before v3.0, and Go's coverage-test flags.
const IGNORED = [
  'cluster-active-size',
  'cluster-remove-delay',
  'cluster-sync-interval',
  'config',
  'force',
  'max-result-buffer',
  'max-retry-attempts',
  'peer-heartbeat-interval',
  'peer-election-timeout',
  'retry-interval',
  'snapshot',
  'v',
  'vv',
  'test.coverprofile',
  'test.outputdir',
];

/** Every flag bin/etcd accepts. */
export const FLAGS: readonly FlagSpec[] = [
  ...Object.entries(ROWS).map(([name, r]): FlagSpec => ({
    name,
    kind: r.kind,
    field: r.field,
    yaml: r.yaml === undefined ? name : r.yaml,
    env: flagToEnv(name),
    section: r.section,
    usageDefault: r.def,
    help: r.help,
    ...(r.valids === undefined ? {} : { valids: r.valids }),
    status: r.status ?? 'supported',
  })),
  ...IGNORED.map((name): FlagSpec => ({
    name,
    kind: 'ignored',
    field: '',
    yaml: null,
    env: flagToEnv(name),
    section: null,
    usageDefault: '',
    help: '',
    status: 'ignored',
  })),
];

const BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));

/** Real etcd flags accepted but not acted upon by this server. */
export const UNIMPLEMENTED_FLAGS: readonly string[] = FLAGS.filter((f) => f.status === 'accepted').map((f) => f.name);

// etcd v3.5 etcdmain/config.go deprecatedFlags: warned about when set on the command line.
const DEPRECATED_FLAGS = new Set([
  'enable-v2',
  'experimental-enable-v2v3',
  'proxy',
  'proxy-failure-wait',
  'proxy-refresh-interval',
  'proxy-dial-timeout',
  'proxy-write-timeout',
  'proxy-read-timeout',
]);

// ---------------------------------------------------------------------------------------------------------------
// Values

/** Go's %q for the strings we quote (close enough to strconv.Quote for flag values). */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Parses one flag value as the flag's Go flag.Value.Set would. Throws an Error whose message is what Go appends
 * to `invalid value "x" for flag -name: `.
 */
export function parseFlagValue(spec: FlagSpec, raw: string): FlagValue {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'bool':
    case 'ignored':
      return spec.kind === 'ignored' ? true : parseGoBool(raw);
    case 'uint':
      return parseGoInt(raw, { signed: false, bits: 64 });
    case 'int':
      return parseGoInt(raw, { signed: true, bits: 64 });
    case 'uint32': {
      // etcd flags.Uint32Value.Set: strconv.ParseUint(s, 10, 32), error text as is.
      if (!/^[0-9]+$/.test(raw)) throw new Error(`strconv.ParseUint: parsing ${goQuote(raw)}: invalid syntax`);
      const v = Number(raw);
      if (v > MAX_UINT32) throw new Error(`strconv.ParseUint: parsing ${goQuote(raw)}: value out of range`);
      return v;
    }
    case 'duration':
      try {
        return parseGoDurationMs(raw);
      } catch {
        throw new Error('parse error');
      }
    case 'urls':
      return parseUrlList(raw);
    case 'cors':
      return raw === '*' ? ['*'] : parseUrlList(raw);
    case 'strings':
      return raw.split(',').filter((s) => s !== '');
    case 'unique-strings':
      return [...new Set(raw.split(','))].sort();
    case 'enum':
      if (spec.valids?.includes(raw) !== true) throw new Error('invalid value');
      return raw;
  }
}

/** Sets `value` at the spec's field (or in otherFlags). */
function applyValue(cfg: ServerConfig, spec: FlagSpec, value: FlagValue): void {
  if (spec.kind === 'ignored') return;
  if (spec.field === '') {
    cfg.otherFlags[spec.name] = value;
    return;
  }
  const parts = spec.field.split('.');
  let target = cfg as unknown as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) target = target[p] as Record<string, unknown>;
  target[parts[parts.length - 1] as string] = value;
}

// ---------------------------------------------------------------------------------------------------------------
// Usage texts (etcd help.go)

export const USAGE_LINE = `Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.

  etcd gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  etcd grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.
`;

/** The flag list of `etcd --help`, generated from the table in etcd's layout. */
export function flagsHelpText(): string {
  let out = '';
  let section: HelpSection | null = null;
  const order: HelpSection[] = [M, C, S, A, P, L, T, X, E, U];
  for (const sec of order) {
    for (const f of FLAGS) {
      if (f.section !== sec) continue;
      if (section !== sec) {
        out += `\n${sec}:\n`;
        section = sec;
      }
      out += `  --${f.name}${f.usageDefault === '' ? '' : ` ${f.usageDefault}`}\n    ${f.help}\n`;
    }
  }
  return `${out}\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing

/** A log entry produced while parsing, for the caller to log once the configured logger exists. */
export interface ParseLog {
  level: LogLevel;
  msg: string;
  fields?: Record<string, unknown>;
}

export interface ParseExit {
  code: number;
  stdout?: string;
  stderr?: string;
}

export type ParseResult =
  | {
      config: ServerConfig;
      /** Messages etcd logs while reading its configuration (env variables used, deprecations, warnings). */
      logs: ParseLog[];
      /** Flags set on the command line or by ETCD_* variables (empty when a config file was used). */
      explicitFlags: string[];
    }
  | { exit: ParseExit };

class ExitError extends Error {
  constructor(readonly exit: ParseExit) {
    super('exit');
  }
}

/** Go flag.FlagSet.failf with etcd's Usage: the message, then the usage line, on stderr; exit 2. */
function usageFailure(msg: string): ExitError {
  return new ExitError({ code: 2, stderr: `${msg}\n${USAGE_LINE}\n` });
}

interface Token {
  spec: FlagSpec;
  raw: string;
  value: FlagValue;
}

/** Go's flag.FlagSet.Parse over the table: returns the flags in order and the arguments after them. */
function tokenize(argv: readonly string[]): { tokens: Token[]; rest: string[] } {
  const tokens: Token[] = [];
  let i = 0;
  while (i < argv.length) {
    const s = argv[i] ?? '';
    if (s.length < 2 || s[0] !== '-') break;
    let minuses = 1;
    if (s[1] === '-') {
      minuses = 2;
      if (s.length === 2) {
        i++; // "--" ends the flags
        break;
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') throw usageFailure(`bad flag syntax: ${s}`);
    i++;
    let hasValue = false;
    let value = '';
    const eq = name.indexOf('=', 1);
    if (eq > 0) {
      value = name.slice(eq + 1);
      hasValue = true;
      name = name.slice(0, eq);
    }
    const spec = BY_NAME.get(name);
    if (spec === undefined) {
      if (name === 'help' || name === 'h') {
        throw new ExitError({ code: 0, stderr: `${USAGE_LINE}\n`, stdout: `${flagsHelpText()}\n` });
      }
      throw usageFailure(`flag provided but not defined: -${name}`);
    }
    if (spec.kind === 'bool' || spec.kind === 'ignored') {
      if (!hasValue) value = 'true';
      else if (spec.kind === 'bool') {
        try {
          parseGoBool(value);
        } catch (err) {
          throw usageFailure(`invalid boolean value ${goQuote(value)} for -${name}: ${(err as Error).message}`);
        }
      }
    } else {
      if (!hasValue && i < argv.length) {
        value = argv[i] ?? '';
        hasValue = true;
        i++;
      }
      if (!hasValue) throw usageFailure(`flag needs an argument: -${name}`);
    }
    let parsed: FlagValue;
    try {
      parsed = parseValueAsSet(spec, value, tokens);
    } catch (err) {
      throw usageFailure(`invalid value ${goQuote(value)} for flag -${name}: ${(err as Error).message}`);
    }
    tokens.push({ spec, raw: value, value: parsed });
  }
  return { tokens, rest: argv.slice(i) };
}

/**
 * flag.Value.Set, including its quirks: etcd's URL flags keep their previous value when set to "" (the empty
 * string is their allowed exception).
 */
function parseValueAsSet(spec: FlagSpec, raw: string, previous: readonly { spec: FlagSpec; value: FlagValue }[]): FlagValue {
  if (spec.kind === 'urls' && raw === '') {
    const prior = [...previous].reverse().find((t) => t.spec === spec);
    return prior !== undefined ? prior.value : defaultUrls(spec);
  }
  return parseFlagValue(spec, raw);
}

function defaultUrls(spec: FlagSpec): string[] {
  const def = getField(defaultConfig(), spec.field);
  return Array.isArray(def) ? (def as string[]) : [];
}

function getField(cfg: ServerConfig, field: string): unknown {
  let v: unknown = cfg;
  for (const p of field.split('.')) v = (v as Record<string, unknown>)[p];
  return v;
}

/** Commander, configured from the table, as the store of parsed values and their source ('cli' or 'env'). */
function buildCommand(): Command {
  const cmd = new Command('etcd')
    .exitOverride()
    .helpOption(false)
    .allowExcessArguments(false)
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  for (const spec of FLAGS) {
    cmd.addOption(
      new Option(`--${spec.name} <value>`, spec.help).argParser((raw: string, previous: FlagValue | undefined) =>
        spec.kind === 'urls' && raw === '' ? (previous ?? defaultUrls(spec)) : parseFlagValue(spec, raw),
      ),
    );
  }
  return cmd;
}

function attributeName(cmd: Command, spec: FlagSpec): string {
  const opt = cmd.options.find((o) => o.long === `--${spec.name}`);
  if (opt === undefined) throw new Error(`flag ${spec.name} missing from commander`);
  return opt.attributeName();
}

/**
 * Parses bin/etcd's arguments as etcd does: the command line, then (unless a config file is given) the ETCD_*
 * variables, or else the config file alone. Returns the validated configuration, or what to print and the exit
 * code: 0 for --version and --help, 2 for a malformed command line (with the usage on stderr), 1 for an invalid
 * configuration (with etcd's "failed to verify flags" log line on stderr).
 */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): ParseResult {
  const logs: ParseLog[] = [];
  try {
    const { tokens, rest } = tokenize(argv);

    // The command line through commander; tokens are canonical --name=value pairs by now.
    const cmd = buildCommand();
    cmd.parse(
      tokens.map((t) => `--${t.spec.name}=${t.raw}`),
      { from: 'user' },
    );
    const cliSet = new Set(tokens.map((t) => t.spec.name));

    if (rest.length > 0) throw verifyFailure(logs, argv, configError(`'${rest[0]}' is not a valid flag`));
    if (cliSet.has('version') && cmd.getOptionValue('version') === true) {
      throw new ExitError({ code: 0, stdout: versionText() });
    }

    for (const t of tokens) if (DEPRECATED_FLAGS.has(t.spec.name)) logs.push({ level: 'warn', msg: `--${t.spec.name} is deprecated in 3.5 and will be decommissioned in 3.6.` });

    let configFile = cliSet.has('config-file') ? String(cmd.getOptionValue('configFile')) : '';
    if (configFile === '') configFile = env.ETCD_CONFIG_FILE ?? '';

    let config: ServerConfig;
    let explicitFlags: string[] = [];
    if (configFile !== '') {
      config = loadConfigFile(configFile, logs, argv);
      logs.push({
        level: 'info',
        msg: 'loaded server configuration, other configuration command line flags and environment variables will be ignored if provided',
        fields: { path: configFile },
      });
    } else {
      applyEnv(cmd, cliSet, env, logs, argv);
      config = defaultConfig();
      const set = new Set<string>();
      for (const spec of FLAGS) {
        const attr = attributeName(cmd, spec);
        const source = cmd.getOptionValueSource(attr);
        if (source !== 'cli' && source !== 'env') continue;
        set.add(spec.name);
        applyValue(config, spec, cmd.getOptionValue(attr) as FlagValue);
      }
      explicitFlags = [...set];
      // etcdmain configFromCmdLine: --listen-client-urls without --advertise-client-urls leaves none advertised
      // (rejected by validation), and discovery drops the default --initial-cluster.
      if (set.has('listen-client-urls') && !set.has('advertise-client-urls') && config.proxy === 'off') config.advertiseClientUrls = [];
      finishConfig(config, set.has('initial-cluster'), logs);
    }

    let warnings;
    try {
      ({ warnings } = validateConfig(config));
    } catch (err) {
      throw verifyFailure(logs, argv, err);
    }
    for (const w of warnings) logs.push({ level: 'warn', msg: w.msg, ...(w.fields === undefined ? {} : { fields: w.fields }) });
    return { config, logs, explicitFlags };
  } catch (err) {
    if (err instanceof ExitError) return { exit: err.exit };
    throw err;
  }
}

/** etcd v3.5 startEtcdOrProxyV2 on a parse/validation error: "Running: ", "failed to verify flags", exit 1. */
function verifyFailure(logs: ParseLog[], argv: string[], err: unknown): ExitError {
  if (!(err instanceof Error)) throw err;
  const message = err.message;
  let out = logsToText(logs);
  out += formatLogLine('info', 'Running: ', { args: ['etcd', ...argv] });
  out += formatLogLine('warn', 'failed to verify flags', { error: message });
  if (message === MSG_UNSET_ADVERTISE_CLIENT_URLS) out += formatLogLine('warn', 'advertise client URLs are not set', { error: message });
  return new ExitError({ code: 1, stderr: out });
}

function logsToText(logs: readonly ParseLog[]): string {
  return logs.map((l) => formatLogLine(l.level, l.msg, l.fields, 'etcdmain/config.go')).join('');
}

/**
 * etcd pkg/flags SetFlagsFromEnv + verifyEnv: each flag not set on the command line takes a non-empty ETCD_<FLAG>
 * (flags in name order, as Go's VisitAll); a variable for a flag that *was* set on the command line is a fatal
 * conflict (etcd refuses to guess which one wins); other ETCD_* variables are warned about.
 */
function applyEnv(cmd: Command, cliSet: ReadonlySet<string>, env: NodeJS.ProcessEnv, logs: ParseLog[], argv: string[]): void {
  const environment = { ...env };
  const verVal = environment.ETCD_VERSION;
  if (verVal !== undefined && verVal !== '') {
    delete environment.ETCD_VERSION;
    logs.push({ level: 'warn', msg: 'cannot set special environment variable', fields: { key: 'ETCD_VERSION', value: verVal } });
  }
  const used = new Set<string>();
  let envError: string | undefined;
  for (const spec of [...FLAGS].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (cliSet.has(spec.name)) continue;
    const val = environment[spec.env];
    if (val === undefined || val === '') continue;
    used.add(spec.env);
    try {
      cmd.setOptionValueWithSource(attributeName(cmd, spec), parseValueAsSet(spec, val, []), 'env');
      logs.push({ level: 'info', msg: 'recognized and used environment variable', fields: { 'variable-name': spec.env, 'variable-value': val } });
    } catch (err) {
      envError = `invalid value ${goQuote(val)} for ${spec.env}: ${(err as Error).message}`;
    }
  }
  const cliEnv = new Set([...cliSet].map(flagToEnv));
  for (const [key, value] of Object.entries(environment)) {
    if (used.has(key)) continue;
    if (cliEnv.has(key)) {
      const fatal = formatLogLine(
        'fatal',
        'conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))',
        { 'environment-variable': key },
        'flags/flag.go',
      );
      throw new ExitError({ code: 1, stderr: logsToText(logs) + fatal });
    }
    if (key.startsWith('ETCD_')) logs.push({ level: 'warn', msg: 'unrecognized environment variable', fields: { 'environment-variable': `${key}=${value ?? ''}` } });
  }
  if (envError !== undefined) throw verifyFailure(logs, argv, configError(envError));
}

/** Settles the defaults that depend on other fields, for both the command line and a config file. */
function finishConfig(cfg: ServerConfig, initialClusterSet: boolean, logs: ParseLog[]): void {
  const other = cfg.otherFlags;
  // etcd v3.4's --debug and --log-output, removed in v3.5.
  if (other.debug === true) {
    logs.push({ level: 'warn', msg: "[WARNING] Deprecated '--debug' flag is set (use '--log-level=debug' instead)" });
    cfg.logLevel = 'debug';
  }
  if (Array.isArray(other['log-output'])) {
    logs.push({ level: 'warn', msg: "'--log-output' flag has been deprecated! Please use '--log-outputs'!" });
    cfg.logOutputs = other['log-output'];
  }
  if (cfg.logger === 'capnslog') {
    // Removed in etcd v3.5; we log in the zap format whatever was asked.
    logs.push({ level: 'warn', msg: "[WARNING] Deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead" });
    cfg.logger = 'zap';
  }
  const discovery = cfg.discovery !== '' || cfg.discoverySrv !== '' || cfg.discoverySrvName !== '';
  if (!initialClusterSet) {
    // etcd computes the default from the default name, then UpdateDefaultClusterFromName re-derives it for a
    // non-default --name. Differs from etcd: we always derive it from the final name and peer URLs.
    cfg.initialCluster = discovery ? '' : cfg.initialAdvertisePeerUrls.map((u) => `${cfg.name === '' ? 'default' : cfg.name}=${u}`).join(',');
  }
  if (cfg.dataDir === '') {
    cfg.dataDir = `${cfg.name}.etcd`;
    logs.push({ level: 'warn', msg: "'data-dir' was empty; using default", fields: { 'data-dir': cfg.dataDir } });
  }
  if (cfg.quotaBackendBytes === 0) cfg.quotaBackendBytes = DEFAULT_QUOTA_BACKEND_BYTES;
  // mvcc's defaults for 0 (etcd mvcc NewStore).
  if (cfg.experimentalCompactionBatchLimit <= 0) cfg.experimentalCompactionBatchLimit = 1000;
  if (cfg.experimentalCompactionSleepIntervalMs === 0) cfg.experimentalCompactionSleepIntervalMs = 10;
  if (cfg.selfSignedCertValidity === 0) cfg.selfSignedCertValidity = 1;
}

// ---------------------------------------------------------------------------------------------------------------
// The config file (etcd embed.ConfigFromFile: YAML, keys as the flags, TLS under client-/peer-transport-security)

function goTypeOf(kind: FlagKind): string {
  switch (kind) {
    case 'bool':
      return 'bool';
    case 'uint':
    case 'uint32':
      return 'uint';
    case 'int':
      return 'int';
    case 'duration':
      return 'time.Duration';
    case 'strings':
    case 'unique-strings':
      return '[]string';
    default:
      return 'string';
  }
}

function jsonTypeOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

/**
 * A YAML value → the flag's value. Go decodes the file as JSON into typed fields (sigs.k8s.io/yaml); we accept the
 * same, plus the obvious spellings Go would reject (a number for a string, "1h" for a duration, a comma-separated
 * string for a list).
 */
function yamlValue(spec: FlagSpec, key: string, v: unknown): FlagValue | undefined {
  const mismatch = (): never => {
    throw configError(`error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${jsonTypeOf(v)} into Go struct field configYAML.${key} of type ${goTypeOf(spec.kind)}`);
  };
  const asString = (): string => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : mismatch());
  switch (spec.kind) {
    case 'string':
      return asString();
    case 'enum': {
      const s = asString();
      if (spec.name === 'initial-cluster-state' && s === '') return 'new';
      if (spec.valids?.includes(s) !== true) {
        if (spec.name === 'initial-cluster-state') return s; // Validate reports it, as etcd
        throw configError(`unexpected error setting up ${spec.name} flag: invalid value`);
      }
      return s;
    }
    case 'bool':
      if (typeof v === 'boolean') return v;
      try {
        return parseGoBool(asString());
      } catch {
        return mismatch();
      }
    case 'uint':
    case 'int':
    case 'uint32':
      if (typeof v === 'number' && Number.isInteger(v) && (spec.kind === 'int' || v >= 0)) return v;
      try {
        return parseFlagValue(spec, asString());
      } catch {
        return mismatch();
      }
    case 'duration':
      if (typeof v === 'number') return v / 1e6; // time.Duration in JSON: nanoseconds
      try {
        return parseGoDurationMs(asString());
      } catch {
        return mismatch();
      }
    case 'urls':
    case 'cors': {
      const s = Array.isArray(v) ? v.map(String).join(',') : asString();
      if (s === '') return undefined; // etcd: only a non-empty value replaces the default
      try {
        return parseFlagValue(spec, s);
      } catch (err) {
        throw configError(`unexpected error setting up ${spec.name}: ${(err as Error).message}`);
      }
    }
    case 'strings':
    case 'unique-strings': {
      if (Array.isArray(v)) {
        const list = v.map((x) => String(x)).filter((s) => s !== '');
        return spec.kind === 'unique-strings' ? [...new Set(list)].sort() : list;
      }
      const s = asString();
      return s === '' ? [] : parseFlagValue(spec, s);
    }
    case 'ignored':
      return undefined;
  }
}

function yamlLookup(doc: Record<string, unknown>, dotted: string): unknown {
  let v: unknown = doc;
  for (const p of dotted.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/** Go's os.ReadFile error text. */
function readError(file: string, err: NodeJS.ErrnoException): string {
  const why: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
  };
  return `open ${file}: ${why[err.code ?? ''] ?? err.message}`;
}

function loadConfigFile(file: string, logs: ParseLog[], argv: string[]): ServerConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw verifyFailure(logs, argv, configError(readError(file, err as NodeJS.ErrnoException)));
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw verifyFailure(logs, argv, configError(`error converting YAML to JSON: ${(err as Error).message}`));
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw verifyFailure(logs, argv, configError('error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type embed.configYAML'));
  }
  const cfg = defaultConfig();
  cfg.configFile = file;
  let initialClusterSet = false;
  for (const spec of FLAGS) {
    if (spec.yaml === null) continue;
    const raw = yamlLookup(doc as Record<string, unknown>, spec.yaml);
    if (raw === undefined || raw === null) continue; // JSON null leaves Go's field as it was
    let value: FlagValue | undefined;
    try {
      value = yamlValue(spec, spec.yaml, raw);
    } catch (err) {
      if (isConfigError(err) && err.message.startsWith('unexpected error setting up')) {
        // etcd prints this one to stderr and exits 1 without a log line.
        throw new ExitError({ code: 1, stderr: `${err.message}\n` });
      }
      throw verifyFailure(logs, argv, err);
    }
    if (value === undefined) continue;
    if (spec.name === 'initial-cluster') initialClusterSet = true;
    applyValue(cfg, spec, value);
  }
  finishConfig(cfg, initialClusterSet, logs);
  return cfg;
}
