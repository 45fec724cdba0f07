// The member's configuration: one field per etcd flag we know (the flag table in flags.ts maps flags, ETCD_*
// environment variables and config-file keys onto these fields), etcd's defaults, and validation with etcd's messages.
//
// Mirrors etcd v3.5 server/embed/config.go (NewConfig, Validate) and etcdmain/config.go. Field names are the camelCase
// of the flag with units last (`--heartbeat-interval` → heartbeatIntervalMs); durations are held in milliseconds.
// Deliberate differences from etcd are marked "Differs from etcd".

import net from 'node:net';
import { DomainError, isDomainError } from '../util/errors';
import type { MaintenanceTuning } from './maintenance';

/** Transport security for one listener (etcd transport.TLSInfo plus the auto-TLS switch). Empty string = unset. */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** Certificate presented when this member dials out (peer); defaults to certFile. */
  clientCertFile: string;
  clientKeyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  /** Generate a self-signed certificate under <data-dir>/fixtures/{client,peer} when no cert/key is given. */
  autoTls: boolean;
  crlFile: string;
  /** Accepted client-certificate common names (peer only in etcd: --peer-cert-allowed-cn). Empty = any. */
  allowedCn: string[];
  /** Accepted client-certificate SAN hostnames/IPs (--client-cert-allowed-hostname, --peer-cert-allowed-hostname). */
  allowedHostname: string[];
  /** --experimental-peer-skip-client-san-verification (peer only). */
  skipClientSanVerify: boolean;
}

export type ClusterState = 'new' | 'existing';
export type CompactionMode = 'periodic' | 'revision';

export interface ServerConfig {
  /** --config-file that the configuration was loaded from, '' when it came from flags and environment. */
  configFile: string;

  // Member
  name: string;
  /** Defaults to `${name}.etcd`. */
  dataDir: string;
  /** '' = `${dataDir}/member/wal`. */
  walDir: string;
  snapshotCount: number;
  /** --experimental-snapshot-catchup-entries. */
  snapshotCatchupEntries: number;
  maxSnapshots: number;
  maxWals: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  initialElectionTickAdvance: boolean;
  /** URL lists are normalized (Go url.String()), de-duplicated and sorted, as etcd's types.NewURLs. */
  listenPeerUrls: string[];
  listenClientUrls: string[];
  listenClientHttpUrls: string[];
  listenMetricsUrls: string[];
  /** 0 on the command line means the default, 2 GiB; negative disables the quota (as etcd). */
  quotaBackendBytes: number;
  backendBatchIntervalMs: number;
  backendBatchLimit: number;
  backendBboltFreelistType: string;
  maxTxnOps: number;
  maxRequestBytes: number;
  maxConcurrentStreams: number;
  grpcKeepaliveMinTimeMs: number;
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;
  enableGrpcGateway: boolean;
  socketReusePort: boolean;
  socketReuseAddress: boolean;
  raftReadTimeoutMs: number;
  raftWriteTimeoutMs: number;

  // Clustering
  initialAdvertisePeerUrls: string[];
  /** Empty when --listen-client-urls was given without --advertise-client-urls (which validateConfig rejects). */
  advertiseClientUrls: string[];
  /** Defaults to `${name}=${url}` for each initial advertise peer URL. */
  initialCluster: string;
  initialClusterState: ClusterState;
  initialClusterToken: string;
  strictReconfigCheck: boolean;
  preVote: boolean;
  enableV2: boolean;
  v2Deprecation: string;
  experimentalEnableV2v3: string;
  /** Discovery is accepted on the command line and rejected by validateConfig (not supported). */
  discovery: string;
  discoveryFallback: 'exit' | 'proxy';
  discoveryProxy: string;
  discoverySrv: string;
  discoverySrvName: string;
  /** The v2 proxy: accepted, and rejected by validateConfig unless 'off'. */
  proxy: 'off' | 'readonly' | 'on';
  autoCompactionMode: CompactionMode;
  /** As given: "0" (off), "1h", "5m", or a bare number (hours when periodic, revisions when revision). */
  autoCompactionRetention: string;

  // Security
  clientTls: TlsConfig;
  peerTls: TlsConfig;
  /** Validity of auto-TLS certificates, in years. */
  selfSignedCertValidity: number;
  /** Go cipher-suite names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256...); empty = runtime default. */
  cipherSuites: string[];
  /** 'TLS1.2' | 'TLS1.3'. */
  tlsMinVersion: string;
  /** '' (runtime default) | 'TLS1.2' | 'TLS1.3'. */
  tlsMaxVersion: string;
  cors: string[];
  hostWhitelist: string[];

  // Auth
  authToken: string;
  bcryptCost: number;
  authTokenTtlSeconds: number;

  // Profiling and monitoring
  enablePprof: boolean;
  metrics: string;

  // Logging
  /** 'zap'. 'capnslog' is accepted, with a warning, and logs in the zap format. */
  logger: string;
  logLevel: string;
  /** 'default' (= stderr), 'stderr', 'stdout', '/dev/null' or file paths. */
  logOutputs: string[];
  enableLogRotation: boolean;
  logRotationConfigJson: string;

  // Experimental
  /** Differs from etcd: on by default (maintenance/corrupt.ts). */
  experimentalInitialCorruptCheck: boolean;
  /** Differs from etcd: 1 min by default (etcd: 0, off); 0 turns the periodic check off. */
  experimentalCorruptCheckTimeMs: number;
  /** Ours, not etcd's: automatic NOSPACE recovery (maintenance/quota-recovery.ts); on by default. */
  experimentalAutoQuotaRecovery: boolean;
  /** Ours: revisions of history the automatic recovery's compaction keeps. */
  experimentalAutoQuotaRecoveryRetainRevisions: number;
  experimentalCompactHashCheckEnabled: boolean;
  experimentalCompactHashCheckTimeMs: number;
  /** Differs from etcd: on by default (with persistence), so lease TTLs survive a leader change. */
  experimentalEnableLeaseCheckpoint: boolean;
  experimentalLeaseCheckpointIntervalMs: number;
  experimentalEnableLeaseCheckpointPersist: boolean;
  experimentalCompactionBatchLimit: number;
  experimentalCompactionSleepIntervalMs: number;
  /** --experimental-watch-progress-notify-interval. */
  watchProgressNotifyIntervalMs: number;
  experimentalWarningApplyDurationMs: number;
  experimentalDowngradeCheckTimeMs: number;
  experimentalMemoryMlock: boolean;
  experimentalTxnModeWriteWithSharedBuffer: boolean;
  experimentalStopGrpcServiceOnDefrag: boolean;
  experimentalBootstrapDefragThresholdMegabytes: number;

  /** Not a flag: maintenance knobs for tests and embedders (an injected clock, recovery timings). */
  maintenance?: Partial<MaintenanceTuning>;

  // Unsafe
  unsafeNoFsync: boolean;
  forceNewCluster: boolean;

  /**
   * Real etcd flags that have no field here and no effect (v2 proxy timings, distributed tracing, 3.4's
   * --log-package-levels...): the value as given, by flag name, only when set. See UNIMPLEMENTED in flags.ts.
   */
  otherFlags: Record<string, string | number | boolean | string[]>;
}

export const DEFAULT_NAME = 'default';
export const DEFAULT_LISTEN_PEER_URL = 'http://localhost:2380';
export const DEFAULT_LISTEN_CLIENT_URL = 'http://localhost:2379';
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd: maxElectionMs. */
export const MAX_ELECTION_MS = 50000;
/** etcd's DefaultMaxConcurrentStreams is math.MaxUint32. */
export const MAX_UINT32 = 4294967295;

export function emptyTlsConfig(): TlsConfig {
  return {
    certFile: '',
    keyFile: '',
    clientCertFile: '',
    clientKeyFile: '',
    trustedCaFile: '',
    clientCertAuth: false,
    autoTls: false,
    crlFile: '',
    allowedCn: [],
    allowedHostname: [],
    skipClientSanVerify: false,
  };
}

/** etcd's defaults (embed.NewConfig, v3.5), except snapshotCount = 10000, etcd v3.6's default. */
export function defaultConfig(): ServerConfig {
  return {
    configFile: '',
    name: DEFAULT_NAME,
    dataDir: `${DEFAULT_NAME}.etcd`,
    walDir: '',
    snapshotCount: 10000,
    snapshotCatchupEntries: 5000,
    maxSnapshots: 5,
    maxWals: 5,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    initialElectionTickAdvance: true,
    listenPeerUrls: [DEFAULT_LISTEN_PEER_URL],
    listenClientUrls: [DEFAULT_LISTEN_CLIENT_URL],
    listenClientHttpUrls: [],
    listenMetricsUrls: [],
    quotaBackendBytes: DEFAULT_QUOTA_BACKEND_BYTES,
    backendBatchIntervalMs: 0,
    backendBatchLimit: 0,
    backendBboltFreelistType: 'map',
    maxTxnOps: 128,
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxConcurrentStreams: MAX_UINT32,
    grpcKeepaliveMinTimeMs: 5 * 1000,
    grpcKeepaliveIntervalMs: 2 * 60 * 60 * 1000,
    grpcKeepaliveTimeoutMs: 20 * 1000,
    enableGrpcGateway: true,
    socketReusePort: false,
    socketReuseAddress: false,
    raftReadTimeoutMs: 5000,
    raftWriteTimeoutMs: 5000,

    initialAdvertisePeerUrls: [DEFAULT_LISTEN_PEER_URL],
    advertiseClientUrls: [DEFAULT_LISTEN_CLIENT_URL],
    initialCluster: `${DEFAULT_NAME}=${DEFAULT_LISTEN_PEER_URL}`,
    initialClusterState: 'new',
    initialClusterToken: 'etcd-cluster',
    strictReconfigCheck: true,
    preVote: true,
    enableV2: false,
    v2Deprecation: 'not-yet',
    experimentalEnableV2v3: '',
    discovery: '',
    discoveryFallback: 'proxy',
    discoveryProxy: '',
    discoverySrv: '',
    discoverySrvName: '',
    proxy: 'off',
    autoCompactionMode: 'periodic',
    autoCompactionRetention: '0',

    clientTls: emptyTlsConfig(),
    peerTls: emptyTlsConfig(),
    selfSignedCertValidity: 1,
    cipherSuites: [],
    tlsMinVersion: 'TLS1.2',
    tlsMaxVersion: '',
    cors: ['*'],
    hostWhitelist: ['*'],

    authToken: 'simple',
    bcryptCost: 10,
    authTokenTtlSeconds: 300,

    enablePprof: false,
    metrics: 'basic',

    logger: 'zap',
    logLevel: 'info',
    logOutputs: ['default'],
    enableLogRotation: false,
    logRotationConfigJson: '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}',

    experimentalInitialCorruptCheck: true,
    experimentalCorruptCheckTimeMs: 60 * 1000,
    experimentalAutoQuotaRecovery: true,
    experimentalAutoQuotaRecoveryRetainRevisions: 1000,
    experimentalCompactHashCheckEnabled: false,
    experimentalCompactHashCheckTimeMs: 60 * 1000,
    experimentalEnableLeaseCheckpoint: true,
    experimentalEnableLeaseCheckpointPersist: true,
    experimentalLeaseCheckpointIntervalMs: 5 * 60 * 1000,
    experimentalCompactionBatchLimit: 1000,
    experimentalCompactionSleepIntervalMs: 10,
    watchProgressNotifyIntervalMs: 10 * 60 * 1000,
    experimentalWarningApplyDurationMs: 100,
    experimentalDowngradeCheckTimeMs: 5 * 1000,
    experimentalMemoryMlock: false,
    experimentalTxnModeWriteWithSharedBuffer: true,
    experimentalStopGrpcServiceOnDefrag: false,
    experimentalBootstrapDefragThresholdMegabytes: 0,

    unsafeNoFsync: false,
    forceNewCluster: false,

    otherFlags: {},
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

export const ErrInvalidConfig = 'ErrInvalidConfig';

/** A configuration error; the message is etcd's text where etcd has one. */
export function configError(message: string): DomainError {
  return new DomainError(ErrInvalidConfig, message);
}

export function isConfigError(err: unknown): err is DomainError {
  return isDomainError(err, ErrInvalidConfig);
}

// etcd embed.ErrConflictBootstrapFlags and ErrUnsetAdvertiseClientURLsFlag.
export const MSG_CONFLICT_BOOTSTRAP_FLAGS =
  'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"';
export const MSG_UNSET_ADVERTISE_CLIENT_URLS =
  '--advertise-client-urls is required when --listen-client-urls is set explicitly';

// ---------------------------------------------------------------------------------------------------------------
// Go-compatible value parsers. Their error texts are Go's, because etcd's flag errors embed them.

/** A Go `net.SplitHostPort`. Throws Go's AddrError text. */
export function splitHostPort(hostport: string): { host: string; port: string } {
  const fail = (why: string): never => {
    throw new Error(`address ${hostport}: ${why}`);
  };
  let host: string;
  let rest: string;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) fail('missing \']\' in address');
    host = hostport.slice(1, end);
    rest = hostport.slice(end + 1);
    if (rest === '') fail('missing port in address');
    if (!rest.startsWith(':')) fail(rest.includes(':') ? 'too many colons in address' : 'missing port in address');
    if (host.includes('[') || host.includes(']')) fail('unexpected \'[\' in address');
    rest = rest.slice(1);
  } else {
    const i = hostport.lastIndexOf(':');
    if (i < 0) fail('missing port in address');
    host = hostport.slice(0, i);
    rest = hostport.slice(i + 1);
    if (host.includes(':')) fail('too many colons in address');
    if (host.includes('[')) fail('unexpected \'[\' in address');
    if (host.includes(']')) fail('unexpected \']\' in address');
  }
  if (rest.includes('[')) fail('unexpected \'[\' in address');
  if (rest.includes(']')) fail('unexpected \']\' in address');
  return { host, port: rest };
}

interface GoUrl {
  scheme: string;
  userinfo: string;
  host: string;
  path: string;
  rawQuery: string;
  fragment: string;
  opaque: string;
}

/** The subset of Go's url.Parse that etcd's URL flags exercise. Throws `parse "<s>": ...` like Go. */
function parseGoUrl(raw: string): GoUrl {
  const fail = (why: string): never => {
    throw new Error(`parse ${JSON.stringify(raw)}: ${why}`);
  };
  if (/[\x00-\x1f\x7f]/.test(raw)) fail('net/url: invalid control character in URL');
  let rest = raw;
  let fragment = '';
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let scheme = '';
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(rest);
  if (m !== null && m[1] !== undefined) {
    scheme = m[1].toLowerCase();
    rest = rest.slice(m[0].length);
  } else if (/^[0-9+.-]/.test(rest) && rest.includes(':') && rest.indexOf(':') < (rest.indexOf('/') < 0 ? Infinity : rest.indexOf('/'))) {
    fail('first path segment in URL cannot contain colon');
  }
  let rawQuery = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    rawQuery = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let userinfo = '';
  let host = '';
  let opaque = '';
  if (scheme !== '' && !rest.startsWith('/')) {
    opaque = rest;
    rest = '';
  } else if (rest.startsWith('//')) {
    let authority = rest.slice(2);
    const slash = authority.indexOf('/');
    rest = slash >= 0 ? authority.slice(slash) : '';
    if (slash >= 0) authority = authority.slice(0, slash);
    const at = authority.lastIndexOf('@');
    if (at >= 0) {
      userinfo = authority.slice(0, at);
      authority = authority.slice(at + 1);
    }
    host = authority;
    // Go parseHost: a bracketed IPv6 literal, else no characters outside the host-name set; a port must be digits.
    let portPart = '';
    if (host.startsWith('[')) {
      const end = host.indexOf(']');
      if (end < 0) fail('missing \']\' in host');
      portPart = host.slice(end + 1);
    } else {
      const colon = host.lastIndexOf(':');
      if (colon >= 0) portPart = host.slice(colon);
      const name = colon >= 0 ? host.slice(0, colon) : host;
      const bad = /[^A-Za-z0-9\-._~!$&'()*+,;=%:\[\]]/.exec(name);
      if (bad !== null) fail(`invalid character ${JSON.stringify(bad[0])} in host name`);
    }
    if (portPart !== '' && !/^:[0-9]*$/.test(portPart)) fail(`invalid port ${JSON.stringify(portPart)} after host`);
  }
  return { scheme, userinfo, host, path: rest, rawQuery, fragment, opaque };
}

function goUrlString(u: GoUrl): string {
  let s = u.scheme === '' ? '' : `${u.scheme}:`;
  if (u.opaque !== '') {
    s += u.opaque;
  } else {
    if (u.scheme !== '' || u.host !== '' || u.userinfo !== '') s += '//';
    if (u.userinfo !== '') s += `${u.userinfo}@`;
    s += u.host + u.path;
  }
  if (u.rawQuery !== '') s += `?${u.rawQuery}`;
  if (u.fragment !== '') s += `#${u.fragment}`;
  return s;
}

/**
 * One etcd URL (types.NewURLs element): http, https, unix or unixs, "host:port", no path. Returns Go's url.String()
 * of it. Throws etcd's messages.
 */
export function parseEtcdUrl(input: string): string {
  const s = input.trim();
  const u = parseGoUrl(s);
  if (u.scheme !== 'http' && u.scheme !== 'https' && u.scheme !== 'unix' && u.scheme !== 'unixs') {
    throw new Error(`URL scheme must be http, https, unix, or unixs: ${s}`);
  }
  try {
    splitHostPort(u.host);
  } catch {
    throw new Error(`URL address does not have the form "host:port": ${s}`);
  }
  if (u.path !== '') throw new Error(`URL must not contain a path: ${s}`);
  return goUrlString(u);
}

/**
 * A comma-separated URL list as etcd's URL flags take it (types.NewURLs(strings.Split(s, ","))): every element
 * validated, then sorted. Duplicates are dropped (differs from etcd, which would then fail to bind twice).
 */
export function parseUrlList(s: string): string[] {
  const out = s.split(',').map(parseEtcdUrl);
  return [...new Set(out)].sort();
}

/** The host (without port or brackets) of an etcd URL, e.g. 'localhost', '127.0.0.1', '::1', 'etcd.unix'. */
export function urlHost(url: string): string {
  return splitHostPort(parseGoUrl(url).host).host;
}

/** The "host:port" authority of an etcd URL (Go's URL.Host). */
export function urlHostPort(url: string): string {
  return parseGoUrl(url).host;
}

/** The scheme of an etcd URL. */
export function urlScheme(url: string): string {
  return parseGoUrl(url).scheme;
}

/** Go strconv.ParseBool. */
export function parseGoBool(s: string): boolean {
  switch (s) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      throw new Error('parse error');
  }
}

// Go strconv's underscoreOK: underscores only between digits or between a base prefix and a digit.
function underscoreOk(s: string): boolean {
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'bBoOxX'.includes(s[1] ?? '')) {
    i = 2;
    saw = '0';
    hex = s[1] === 'x' || s[1] === 'X';
  }
  for (; i < s.length; i++) {
    const c = s[i] ?? '';
    if ((c >= '0' && c <= '9') || (hex && /[a-fA-F]/.test(c))) {
      saw = '0';
      continue;
    }
    if (c !== '_') return false;
    if (saw !== '0') return false;
    saw = '_';
  }
  return saw !== '_';
}

/**
 * Go strconv.ParseUint/ParseInt with base 0 (what flag.Uint/Int/Int64/Uint64 use): decimal, 0x, 0o, 0b, leading-0
 * octal, underscores. Throws 'parse error' or 'value out of range' (Go's flag errors).
 */
export function parseGoInt(s: string, opts: { signed: boolean; bits: 32 | 64 }): number {
  let body = s;
  let negative = false;
  if (opts.signed && (body.startsWith('-') || body.startsWith('+'))) {
    negative = body.startsWith('-');
    body = body.slice(1);
  }
  if (body === '') throw new Error('parse error');
  let base = 10;
  let digits = body;
  if (body.length >= 2 && body[0] === '0') {
    const p = body[1]?.toLowerCase();
    if (p === 'x') [base, digits] = [16, body.slice(2)];
    else if (p === 'b') [base, digits] = [2, body.slice(2)];
    else if (p === 'o') [base, digits] = [8, body.slice(2)];
    else [base, digits] = [8, body.slice(1)];
  }
  if (digits.includes('_')) {
    if (!underscoreOk(s)) throw new Error('parse error');
    digits = digits.replace(/_/g, '');
  }
  const valid = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[base as 2 | 8 | 10 | 16];
  if (digits === '' || !valid.test(digits)) throw new Error('parse error');
  let v = 0n;
  for (const c of digits) v = v * BigInt(base) + BigInt(parseInt(c, 16));
  if (negative) v = -v;
  const max = opts.signed ? (1n << BigInt(opts.bits - 1)) - 1n : (1n << BigInt(opts.bits)) - 1n;
  const min = opts.signed ? -(1n << BigInt(opts.bits - 1)) : 0n;
  if (v > max || v < min) throw new Error('value out of range');
  return Number(v);
}

const DURATION_UNITS_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  '\u00b5s': 1e3, // µ (micro sign)
  '\u03bcs': 1e3, // μ (Greek mu)
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go time.ParseDuration, in nanoseconds. Throws Go's messages (`time: invalid duration "x"`...). */
export function parseGoDurationNs(s: string): number {
  const orig = s;
  const quoted = JSON.stringify(orig);
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (s !== '') {
    const m = /^([0-9]*)(\.([0-9]*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[3] ?? '';
    if (whole === '' && frac === '') throw new Error(`time: invalid duration ${quoted}`);
    s = s.slice(m?.[0].length ?? 0);
    const u = /^[^0-9.]*/.exec(s)?.[0] ?? '';
    if (u === '') throw new Error(`time: missing unit in duration ${quoted}`);
    const unitNs = DURATION_UNITS_NS[u];
    if (unitNs === undefined) throw new Error(`time: unknown unit ${JSON.stringify(u)} in duration ${quoted}`);
    s = s.slice(u.length);
    total += Number(`${whole === '' ? '0' : whole}.${frac === '' ? '0' : frac}`) * unitNs;
  }
  if (total > 9223372036854775807) throw new Error(`time: invalid duration ${quoted}`);
  return neg ? -total : total;
}

/** Go time.ParseDuration, in milliseconds (fractional below 1 ms). */
export function parseGoDurationMs(s: string): number {
  return parseGoDurationNs(s) / 1e6;
}

/**
 * The auto-compaction retention as the compactor uses it (etcd embed/etcd.go parseCompactionRetention): for
 * 'periodic', a duration in milliseconds (a bare number counts hours); for 'revision', a revision count.
 */
export function parseCompactionRetention(mode: string, retention: string): number {
  const r = retention === '' ? '0' : retention;
  if (/^[+-]?[0-9]+$/.test(r) && Number(r) >= 0) {
    const h = Number(r);
    if (mode === 'revision') return h;
    if (mode === 'periodic') return h * 3600 * 1000;
    throw configError('--auto-compaction-mode is undefined');
  }
  let ns: number;
  try {
    ns = parseGoDurationNs(r);
  } catch (err) {
    throw configError(`error parsing CompactionRetention: ${(err as Error).message}`);
  }
  // etcd uses the time.Duration as is: in revision mode "5m" means 300000000000 revisions.
  return mode === 'revision' ? ns : ns / 1e6;
}

// Go's tls.CipherSuites() and InsecureCipherSuites() names (and etcd's two CHACHA20 aliases) → OpenSSL names.
// TLS 1.3 suites are not configurable in Go, so they are not in the list (and stay enabled).
export const CIPHER_SUITES_GO_TO_OPENSSL: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_RC4_128_SHA: 'RC4-SHA',
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: 'ECDHE-ECDSA-RC4-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: 'ECDHE-RSA-RC4-SHA',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal']);

// ---------------------------------------------------------------------------------------------------------------
// Validation

// etcd embed checkBindURLs: a listener needs an IP or "localhost" (unix sockets excepted).
function checkBindUrls(urls: string[]): void {
  for (const u of urls) {
    const scheme = urlScheme(u);
    if (scheme === 'unix' || scheme === 'unixs') continue;
    const host = urlHost(u);
    if (host === 'localhost') continue;
    if (net.isIP(host) === 0) throw configError(`expected IP in URL for binding (${u})`);
  }
}

// etcd embed checkHostURLs.
function checkHostUrls(urls: string[]): void {
  for (const u of urls) {
    if (urlHost(u) === '') throw new Error(`unexpected empty host (${u})`);
  }
}

function checkUrlList(flag: string, urls: string[]): void {
  for (const u of urls) {
    try {
      parseEtcdUrl(u);
    } catch (err) {
      throw configError(`invalid value ${JSON.stringify(u)} for flag -${flag}: ${(err as Error).message}`);
    }
  }
}

/** A warning for the log: etcd's message and structured fields. */
export interface ConfigWarning {
  msg: string;
  fields?: Record<string, unknown>;
}

/**
 * Rejects bad combinations with etcd's messages (embed.Config.Validate, v3.5 order; then the checks etcd makes
 * when it configures listeners), and things this server does not support. Returns warnings to log.
 * Throws a DomainError with code ErrInvalidConfig.
 */
export function validateConfig(cfg: ServerConfig): { warnings: ConfigWarning[] } {
  const warnings: ConfigWarning[] = [];

  // setupLogging
  if (cfg.logger !== 'zap' && cfg.logger !== 'capnslog') throw configError(`unknown logger option ${JSON.stringify(cfg.logger)}`);
  if (cfg.logOutputs.length > 1 && cfg.logOutputs.includes('default')) {
    throw configError('multi logoutput for "default" is not supported yet');
  }
  if (!LOG_LEVELS.has(cfg.logLevel)) throw configError(`unrecognized level: ${JSON.stringify(cfg.logLevel)}`);

  checkUrlList('listen-peer-urls', cfg.listenPeerUrls);
  checkUrlList('listen-client-urls', cfg.listenClientUrls);
  checkUrlList('listen-client-http-urls', cfg.listenClientHttpUrls);
  checkUrlList('listen-metrics-urls', cfg.listenMetricsUrls);
  checkUrlList('initial-advertise-peer-urls', cfg.initialAdvertisePeerUrls);
  checkUrlList('advertise-client-urls', cfg.advertiseClientUrls);

  checkBindUrls(cfg.listenPeerUrls);
  checkBindUrls(cfg.listenClientUrls);
  checkBindUrls(cfg.listenClientHttpUrls);
  if (cfg.listenClientHttpUrls.length === 0) {
    warnings.push({ msg: 'Running http and grpc server on single port. This is not recommended for production.' });
  }
  checkBindUrls(cfg.listenMetricsUrls);
  try {
    checkHostUrls(cfg.initialAdvertisePeerUrls);
  } catch (err) {
    throw configError(`--initial-advertise-peer-urls ${JSON.stringify(cfg.initialAdvertisePeerUrls.join(','))} must be "host:port" (${(err as Error).message})`);
  }
  try {
    checkHostUrls(cfg.advertiseClientUrls);
  } catch (err) {
    throw configError(`--advertise-client-urls ${JSON.stringify(cfg.advertiseClientUrls.join(','))} must be "host:port" (${(err as Error).message})`);
  }

  const nSet = [cfg.discovery !== '', cfg.initialCluster !== '', cfg.discoverySrv !== ''].filter(Boolean).length;
  if (cfg.initialClusterState !== 'new' && cfg.initialClusterState !== 'existing') {
    throw configError(`unexpected clusterState ${JSON.stringify(cfg.initialClusterState)}`);
  }
  if (nSet > 1) throw configError(MSG_CONFLICT_BOOTSTRAP_FLAGS);

  if (!(cfg.heartbeatIntervalMs > 0)) throw configError(`--heartbeat-interval must be >0 (set to ${cfg.heartbeatIntervalMs}ms)`);
  if (!(cfg.electionTimeoutMs > 0)) throw configError(`--election-timeout must be >0 (set to ${cfg.electionTimeoutMs}ms)`);
  if (5 * cfg.heartbeatIntervalMs > cfg.electionTimeoutMs) {
    throw configError(`--election-timeout[${cfg.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${cfg.heartbeatIntervalMs}ms]`);
  }
  if (cfg.electionTimeoutMs > MAX_ELECTION_MS) {
    throw configError(`--election-timeout[${cfg.electionTimeoutMs}ms] is too long, and should be set less than ${MAX_ELECTION_MS}ms`);
  }

  if (cfg.listenClientUrls.length > 0 && cfg.advertiseClientUrls.length === 0) {
    throw configError(MSG_UNSET_ADVERTISE_CLIENT_URLS);
  }

  if (cfg.autoCompactionMode !== 'periodic' && cfg.autoCompactionMode !== 'revision' && (cfg.autoCompactionMode as string) !== '') {
    throw configError(`unknown auto-compaction-mode ${JSON.stringify(cfg.autoCompactionMode)}`);
  }
  parseCompactionRetention(cfg.autoCompactionMode, cfg.autoCompactionRetention);

  if (!cfg.experimentalEnableLeaseCheckpointPersist && cfg.experimentalEnableLeaseCheckpoint) {
    warnings.push({ msg: 'Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist' });
  }
  if (cfg.experimentalEnableLeaseCheckpointPersist && !cfg.experimentalEnableLeaseCheckpoint) {
    throw configError('setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint');
  }
  if (!(cfg.experimentalCompactHashCheckTimeMs > 0)) {
    throw configError(`--experimental-compact-hash-check-time must be >0 (set to ${formatGoDurationMs(cfg.experimentalCompactHashCheckTimeMs)})`);
  }

  const tlsVersion = (v: string): number => {
    if (v === '') return 0;
    if (v === 'TLS1.2') return 12;
    if (v === 'TLS1.3') return 13;
    throw configError(`unexpected TLS version ${JSON.stringify(v)} (must be one of: TLS1.2, TLS1.3)`);
  };
  const minVersion = tlsVersion(cfg.tlsMinVersion);
  const maxVersion = tlsVersion(cfg.tlsMaxVersion);
  if (maxVersion !== 0 && minVersion > maxVersion) {
    throw configError(`min version (${cfg.tlsMinVersion}) is greater than max version (${cfg.tlsMaxVersion})`);
  }
  if (minVersion === 13 && cfg.cipherSuites.length > 0) {
    throw configError('cipher suites cannot be configured when only TLS1.3 is enabled');
  }
  // etcd checks these when it configures the listeners (updateCipherSuites, configure*Listeners, TLSInfo.baseConfig).
  for (const s of cfg.cipherSuites) {
    if (CIPHER_SUITES_GO_TO_OPENSSL[s] === undefined) throw configError(`unexpected TLS cipher suite ${JSON.stringify(s)}`);
  }
  const listeners = [
    { kind: 'peer', tls: cfg.peerTls, urls: cfg.listenPeerUrls, key: 'peer-url' },
    { kind: 'client', tls: cfg.clientTls, urls: [...cfg.listenClientUrls, ...cfg.listenClientHttpUrls], key: 'client-url' },
  ] as const;
  for (const { kind, tls, urls, key } of listeners) {
    const certsGiven = tls.certFile !== '' || tls.keyFile !== '';
    let tlsUsed = false;
    for (const u of urls) {
      const scheme = urlScheme(u);
      if (scheme === 'https' || scheme === 'unixs') {
        tlsUsed = true;
        if (!certsGiven && !tls.autoTls) {
          throw configError(
            kind === 'peer'
              ? `cannot listen on TLS for ${u}: KeyFile and CertFile are not presented`
              : `TLS key/cert (--cert-file, --key-file) must be provided for client url ${u} with HTTPS scheme`,
          );
        }
      } else {
        if (certsGiven) warnings.push({ msg: 'scheme is HTTP while key and cert files are present; ignoring key and cert files', fields: { [key]: u } });
        if (tls.clientCertAuth) {
          const flag = kind === 'peer' ? '--peer-client-cert-auth' : '--client-cert-auth';
          warnings.push({ msg: `scheme is HTTP while ${flag} is enabled; ignoring client cert auth for this URL`, fields: { [key]: u } });
        }
      }
    }
    if (!tlsUsed || !certsGiven) continue;
    if (tls.certFile === '' || tls.keyFile === '') {
      throw configError(`KeyFile and CertFile must both be present[key: ${tls.keyFile}, cert: ${tls.certFile}]`);
    }
    if ((tls.clientCertFile === '') !== (tls.clientKeyFile === '')) {
      throw configError(`ClientKeyFile and ClientCertFile must both be present or both absent: key: ${tls.clientKeyFile}, cert: ${tls.clientCertFile}]`);
    }
    if (tls.allowedCn.length > 0 && tls.allowedHostname.length > 0) {
      throw configError(`AllowedCNs and AllowedHostnames are mutually exclusive (cns=${goQuoteList(tls.allowedCn)}, hostnames=${goQuoteList(tls.allowedHostname)})`);
    }
  }
  if (cfg.selfSignedCertValidity <= 0 && (cfg.clientTls.autoTls || cfg.peerTls.autoTls)) {
    throw configError('selfSignedCertValidity is invalid,it should be greater than 0');
  }

  // Not supported by this server: reject clearly rather than half-work.
  if (cfg.discovery !== '' || cfg.discoverySrv !== '' || cfg.discoverySrvName !== '') {
    const flag = cfg.discovery !== '' ? '--discovery' : cfg.discoverySrv !== '' ? '--discovery-srv' : '--discovery-srv-name';
    throw configError(`${flag} is not supported by this server: bootstrap the cluster with --initial-cluster`);
  }
  if (cfg.proxy !== 'off') throw configError(`--proxy=${cfg.proxy} is not supported by this server: the v2 proxy is deprecated in etcd v3.5`);
  if (cfg.initialCluster === '') throw configError('--initial-cluster must be set (discovery is not supported by this server)');

  return { warnings };
}

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteList(list: string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Go's time.Duration.String() for a duration in milliseconds ("0s", "100ms", "1m0s", "2h0m0s"). */
export function formatGoDurationMs(ms: number): string {
  if (ms === 0) return '0s';
  const neg = ms < 0;
  let ns = Math.round(Math.abs(ms) * 1e6);
  const sign = neg ? '-' : '';
  if (ns < 1e9) {
    if (ns < 1e3) return `${sign}${ns}ns`;
    if (ns < 1e6) return `${sign}${trimFraction(ns / 1e3)}µs`;
    return `${sign}${trimFraction(ns / 1e6)}ms`;
  }
  const h = Math.floor(ns / 3600e9);
  ns -= h * 3600e9;
  const m = Math.floor(ns / 60e9);
  ns -= m * 60e9;
  const s = trimFraction(ns / 1e9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}

function trimFraction(n: number): string {
  return n.toFixed(9).replace(/\.?0+$/, '');
}
