// bin/etcd's configuration: flag forms (Go flag semantics), ETCD_* variables, the YAML config file, defaults, URL
// and combination validation, and the exact texts and exit codes etcd gives for bad command lines.

import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  defaultConfig,
  formatGoDurationMs,
  isConfigError,
  parseCompactionRetention,
  parseEtcdUrl,
  parseGoDurationMs,
  parseGoInt,
  parseUrlList,
  splitHostPort,
  validateConfig,
  type ServerConfig,
} from '../../src/server/config';
import { FLAGS, flagsHelpText, parseArgs, UNIMPLEMENTED_FLAGS, USAGE_LINE, type ParseResult } from '../../src/server/flags';
import { SERVER_VERSION, CLUSTER_VERSION, API_VERSION } from '../../src/server/version';

const root = path.join(__dirname, '..', '..', '..');

function ok(r: ParseResult): Extract<ParseResult, { config: ServerConfig }> {
  if ('exit' in r) throw new Error(`expected a config, got exit ${r.exit.code}: ${r.exit.stderr ?? ''}${r.exit.stdout ?? ''}`);
  return r;
}

function cfgOf(argv: string[], env: NodeJS.ProcessEnv = {}): ServerConfig {
  return ok(parseArgs(argv, env)).config;
}

function exitOf(argv: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout?: string; stderr?: string } {
  const r = parseArgs(argv, env);
  if (!('exit' in r)) throw new Error(`expected an exit for ${argv.join(' ')}`);
  return r.exit;
}

/** The JSON log lines of an exit's stderr. */
function logLines(text: string | undefined): Array<Record<string, unknown>> {
  return (text ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-config-'));
}

t.test('versions', async (t) => {
  t.equal(SERVER_VERSION, '3.5.21');
  t.equal(CLUSTER_VERSION, '3.5.0');
  t.equal(API_VERSION, '3.5');
  const e = exitOf(['--version']);
  t.equal(e.code, 0);
  t.match(e.stdout, /^etcd Version: 3\.5\.21\nGit SHA: .*\nGo Version: .*\nGo OS\/Arch: \w+\/\w+\n$/);
});

t.test('defaults', async (t) => {
  const d = defaultConfig();
  t.equal(d.name, 'default');
  t.equal(d.dataDir, 'default.etcd');
  t.same(d.listenClientUrls, ['http://localhost:2379']);
  t.same(d.listenPeerUrls, ['http://localhost:2380']);
  t.equal(d.initialCluster, 'default=http://localhost:2380');
  t.equal(d.snapshotCount, 10000);
  t.equal(d.quotaBackendBytes, 2 * 1024 ** 3);
  t.equal(d.maxTxnOps, 128);
  t.equal(d.maxRequestBytes, 1572864);
  t.equal(d.heartbeatIntervalMs, 100);
  t.equal(d.electionTimeoutMs, 1000);
  t.equal(d.watchProgressNotifyIntervalMs, 600000);
  t.equal(d.grpcKeepaliveMinTimeMs, 5000);
  t.equal(d.grpcKeepaliveIntervalMs, 7200000);
  t.equal(d.grpcKeepaliveTimeoutMs, 20000);
  t.equal(d.maxConcurrentStreams, 4294967295);
  t.equal(d.strictReconfigCheck, true);
  t.equal(d.logger, 'zap');
  t.equal(d.logLevel, 'info');
  t.same(d.logOutputs, ['default']);
  t.equal(d.autoCompactionMode, 'periodic');
  t.equal(d.autoCompactionRetention, '0');
  t.equal(d.initialClusterState, 'new');
  t.equal(d.initialClusterToken, 'etcd-cluster');

  // No flags at all: etcd's defaults, valid as they are.
  const r = ok(parseArgs([], {}));
  t.same(r.config, d);
  t.same(r.explicitFlags, []);
  t.same(validateConfig(d).warnings.map((w) => w.msg), ['Running http and grpc server on single port. This is not recommended for production.']);
});

t.test('flag forms: Go flag semantics', async (t) => {
  for (const argv of [['--name', 'x'], ['--name=x'], ['-name', 'x'], ['-name=x']]) {
    t.equal(cfgOf(argv).name, 'x', argv.join(' '));
  }
  t.equal(cfgOf(['--enable-v2']).enableV2, true);
  t.equal(cfgOf(['--enable-v2=true']).enableV2, true);
  t.equal(cfgOf(['--enable-v2=false']).enableV2, false);
  t.equal(cfgOf(['-strict-reconfig-check=false']).strictReconfigCheck, false);
  t.equal(cfgOf(['--strict-reconfig-check=0']).strictReconfigCheck, false);
  t.equal(cfgOf(['--strict-reconfig-check=F']).strictReconfigCheck, false);
  t.equal(cfgOf(['--client-cert-auth']).clientTls.clientCertAuth, true);
  // The last occurrence wins.
  t.equal(cfgOf(['--name', 'a', '--name', 'b']).name, 'b');
  // A value may start with a dash.
  t.equal(cfgOf(['--name', '-x']).name, '-x');
  // An empty value is a value.
  t.equal(cfgOf(['--initial-cluster-token=']).initialClusterToken, '');
  // "--" ends the flags; nothing may follow.
  t.equal(cfgOf(['--name', 'a', '--']).name, 'a');

  // A bool never takes the next argument: "false" is then a stray argument, as with etcd.
  const stray = exitOf(['--enable-v2', 'false']);
  t.equal(stray.code, 1);
  const lines = logLines(stray.stderr);
  t.match(lines.at(-1), { level: 'warn', msg: 'failed to verify flags', error: "'false' is not a valid flag" });
  t.match(lines.at(-2), { level: 'info', msg: 'Running: ', args: ['etcd', '--enable-v2', 'false'] });
  t.match(logLines(exitOf(['--', '--name', 'x']).stderr).at(-1), { error: "'--name' is not a valid flag" });
});

t.test('numbers, durations and lists', async (t) => {
  const c = cfgOf([
    '--heartbeat-interval=50',
    '--election-timeout',
    '500',
    '--quota-backend-bytes=8589934592',
    '--max-txn-ops=0x100',
    '--max-request-bytes=1_000_000',
    '--snapshot-count=010',
    '--grpc-keepalive-min-time=1m30s',
    '--grpc-keepalive-interval=0',
    '--experimental-watch-progress-notify-interval=500ms',
    '--max-concurrent-streams=100',
    '--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    '--log-outputs=stdout,stderr,stdout',
    '--auto-compaction-retention=1h',
    '--auto-compaction-mode=periodic',
  ]);
  t.equal(c.heartbeatIntervalMs, 50);
  t.equal(c.electionTimeoutMs, 500);
  t.equal(c.quotaBackendBytes, 8589934592);
  t.equal(c.maxTxnOps, 256);
  t.equal(c.maxRequestBytes, 1000000);
  t.equal(c.snapshotCount, 8, 'a leading 0 is octal, as Go reads it');
  t.equal(c.grpcKeepaliveMinTimeMs, 90000);
  t.equal(c.grpcKeepaliveIntervalMs, 0);
  t.equal(c.watchProgressNotifyIntervalMs, 500);
  t.equal(c.maxConcurrentStreams, 100);
  t.same(c.cipherSuites, ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384']);
  t.same(c.logOutputs, ['stderr', 'stdout']);
  t.equal(c.autoCompactionRetention, '1h');
  // 0 means the default quota.
  t.equal(cfgOf(['--quota-backend-bytes=0']).quotaBackendBytes, 2 * 1024 ** 3);
});

t.test('command-line errors: usage on stderr, exit 2', async (t) => {
  const cases: Array<[string[], string]> = [
    [['--foo'], 'flag provided but not defined: -foo'],
    [['-foo=1'], 'flag provided but not defined: -foo'],
    [['--name', 'x', '--bogus-flag', 'y'], 'flag provided but not defined: -bogus-flag'],
    [['--name'], 'flag needs an argument: -name'],
    [['--heartbeat-interval=abc'], 'invalid value "abc" for flag -heartbeat-interval: parse error'],
    [['--snapshot-count=99999999999999999999999'], 'invalid value "99999999999999999999999" for flag -snapshot-count: value out of range'],
    [['--quota-backend-bytes=1.5'], 'invalid value "1.5" for flag -quota-backend-bytes: parse error'],
    [['--grpc-keepalive-min-time=5'], 'invalid value "5" for flag -grpc-keepalive-min-time: parse error'],
    [['--enable-v2=xyz'], 'invalid boolean value "xyz" for -enable-v2: parse error'],
    [['--max-concurrent-streams=-1'], 'invalid value "-1" for flag -max-concurrent-streams: strconv.ParseUint: parsing "-1": invalid syntax'],
    [['--listen-client-urls=foo'], 'invalid value "foo" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo'],
    [['--initial-cluster-state=bogus'], 'invalid value "bogus" for flag -initial-cluster-state: invalid value'],
    [['---name'], 'bad flag syntax: ---name'],
    [['-=x'], 'bad flag syntax: -=x'],
  ];
  for (const [argv, msg] of cases) {
    const e = exitOf(argv);
    t.equal(e.code, 2, argv.join(' '));
    t.equal(e.stderr, `${msg}\n${USAGE_LINE}\n`, argv.join(' '));
    t.equal(e.stdout, undefined);
  }
  // The first error in argument order wins, as Go stops at it.
  t.match(exitOf(['--heartbeat-interval=x', '--foo']).stderr, /^invalid value "x" for flag -heartbeat-interval/);
  t.match(exitOf(['--foo', '--heartbeat-interval=x']).stderr, /^flag provided but not defined: -foo/);
});

t.test('help', async (t) => {
  for (const argv of [['-h'], ['--help'], ['-help'], ['--name', 'x', '--help', '--foo']]) {
    const e = exitOf(argv);
    t.equal(e.code, 0, argv.join(' '));
    t.equal(e.stderr, `${USAGE_LINE}\n`);
    t.equal(e.stdout, `${flagsHelpText()}\n`);
  }
  const help = flagsHelpText();
  t.match(help, /^\nMember:\n  --name 'default'\n    Human-readable name for this member.\n/);
  t.match(help, /\n  --enable-grpc-gateway\n    Enable GRPC gateway.\n/);
  t.match(help, /\nUnsafe feature:\n  --force-new-cluster 'false'\n/);
  t.match(help, /CAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n$/);
  for (const f of FLAGS) if (f.section !== null) t.ok(help.includes(`\n  --${f.name}`), `--help lists --${f.name}`);
});

t.test('ignored and deprecated flags', async (t) => {
  // Flags etcd removed long ago: accepted like bools, ignored.
  const r = ok(parseArgs(['-v', '--vv=1', '--peer-heartbeat-interval', '--test.coverprofile=x', '--name', 'n'], {}));
  t.equal(r.config.name, 'n');
  // v3.4 flags gone in v3.5 keep their v3.4 effect.
  t.equal(cfgOf(['--debug']).logLevel, 'debug');
  t.same(cfgOf(['--log-output=stdout']).logOutputs, ['stdout']);
  t.equal(cfgOf(['--logger=capnslog']).logger, 'zap');
  t.equal(cfgOf(['--experimental-backend-bbolt-freelist-type=array']).backendBboltFreelistType, 'array');
  // v3.5's deprecation warnings for flags set on the command line.
  t.match(ok(parseArgs(['--enable-v2'], {})).logs, [{ level: 'warn', msg: '--enable-v2 is deprecated in 3.5 and will be decommissioned in 3.6.' }]);
  // Unimplemented flags are accepted and kept.
  const o = cfgOf(['--experimental-enable-distributed-tracing', '--proxy-dial-timeout=5', '--log-package-levels=etcdmain=DEBUG']);
  t.same(o.otherFlags, { 'experimental-enable-distributed-tracing': true, 'proxy-dial-timeout': 5, 'log-package-levels': 'etcdmain=DEBUG' });
  t.ok(UNIMPLEMENTED_FLAGS.includes('experimental-enable-distributed-tracing'));
  t.notOk(UNIMPLEMENTED_FLAGS.includes('name'));
});

t.test('every etcd v3.4.23 and v3.5.21 flag is accepted', async (t) => {
  // The flag names of etcd v3.4.23 etcdmain/config.go and v3.5.21 server/etcdmain/config.go (plus the ignored ones).
  const etcd34 = 'advertise-client-urls auth-token auth-token-ttl auto-compaction-mode auto-compaction-retention auto-tls backend-batch-interval backend-batch-limit bcrypt-cost cert-file cipher-suites client-cert-allowed-hostname client-cert-auth client-crl-file config-file cors data-dir debug discovery discovery-fallback discovery-proxy discovery-srv discovery-srv-name election-timeout enable-grpc-gateway enable-pprof enable-v2 experimental-backend-bbolt-freelist-type experimental-compaction-batch-limit experimental-corrupt-check-time experimental-enable-lease-checkpoint experimental-enable-lease-checkpoint-persist experimental-enable-v2v3 experimental-initial-corrupt-check experimental-peer-skip-client-san-verification experimental-warning-apply-duration experimental-watch-progress-notify-interval force-new-cluster grpc-keepalive-interval grpc-keepalive-min-time grpc-keepalive-timeout heartbeat-interval host-whitelist initial-advertise-peer-urls initial-cluster initial-cluster-state initial-cluster-token initial-election-tick-advance key-file listen-client-urls listen-metrics-urls listen-peer-urls log-level log-output log-outputs log-package-levels logger max-concurrent-streams max-request-bytes max-snapshots max-txn-ops max-wals metrics name peer-auto-tls peer-cert-allowed-cn peer-cert-allowed-hostname peer-cert-file peer-client-cert-auth peer-crl-file peer-key-file peer-trusted-ca-file pre-vote proxy proxy-dial-timeout proxy-failure-wait proxy-read-timeout proxy-refresh-interval proxy-write-timeout quota-backend-bytes snapshot-count strict-reconfig-check trusted-ca-file unsafe-no-fsync version wal-dir';
  const etcd35 = 'backend-bbolt-freelist-type client-cert-file client-key-file enable-log-rotation experimental-bootstrap-defrag-threshold-megabytes experimental-compact-hash-check-enabled experimental-compact-hash-check-time experimental-compaction-sleep-interval experimental-distributed-tracing-address experimental-distributed-tracing-instance-id experimental-distributed-tracing-sampling-rate experimental-distributed-tracing-service-name experimental-downgrade-check-time experimental-enable-distributed-tracing experimental-memory-mlock experimental-snapshot-catchup-entries experimental-stop-grpc-service-on-defrag experimental-txn-mode-write-with-shared-buffer listen-client-http-urls log-rotation-config-json peer-client-cert-file peer-client-key-file raft-read-timeout raft-write-timeout self-signed-cert-validity socket-reuse-address socket-reuse-port tls-max-version tls-min-version v2-deprecation';
  const names = new Set(FLAGS.map((f) => f.name));
  for (const n of `${etcd34} ${etcd35}`.split(' ')) t.ok(names.has(n), `--${n}`);
});

t.test('the flag table', async (t) => {
  const d = defaultConfig() as unknown as Record<string, unknown>;
  const names = new Set<string>();
  for (const f of FLAGS) {
    t.notOk(names.has(f.name), `${f.name} listed once`);
    names.add(f.name);
    t.equal(f.env, `ETCD_${f.name.toUpperCase().replace(/-/g, '_')}`);
    if (f.field === '') continue;
    let v: unknown = d;
    for (const p of f.field.split('.')) v = (v as Record<string, unknown>)[p];
    const expected = { string: 'string', enum: 'string', bool: 'boolean', uint: 'number', int: 'number', uint32: 'number', duration: 'number' }[
      f.kind as 'string'
    ];
    if (expected !== undefined) t.equal(typeof v, expected, `${f.name} → ${f.field} is a ${expected}`);
    else t.ok(Array.isArray(v), `${f.name} → ${f.field} is a list`);
  }
});

t.test('environment variables', async (t) => {
  const r = ok(
    parseArgs(['--data-dir', '/tmp/x'], {
      ETCD_NAME: 'envname',
      ETCD_CLIENT_CERT_AUTH: 'true',
      ETCD_LISTEN_CLIENT_URLS: 'http://127.0.0.1:4001',
      ETCD_ADVERTISE_CLIENT_URLS: 'http://127.0.0.1:4001',
      ETCD_HEARTBEAT_INTERVAL: '200',
      ETCD_ELECTION_TIMEOUT: '2000',
      ETCD_EMPTY_IS_IGNORED: '',
      ETCD_INITIAL_CLUSTER_TOKEN: '',
      ETCD_FOO: 'bar',
      ETCDCTL_API: '3',
      PATH: '/bin',
    }),
  );
  t.equal(r.config.name, 'envname');
  t.equal(r.config.dataDir, '/tmp/x');
  t.equal(r.config.clientTls.clientCertAuth, true);
  t.same(r.config.listenClientUrls, ['http://127.0.0.1:4001']);
  t.equal(r.config.heartbeatIntervalMs, 200);
  t.equal(r.config.electionTimeoutMs, 2000);
  t.equal(r.config.initialClusterToken, 'etcd-cluster', 'an empty variable is ignored');
  t.equal(r.config.initialCluster, 'envname=http://localhost:2380', 'the default initial cluster follows the name');
  t.same(r.explicitFlags.sort(), ['advertise-client-urls', 'client-cert-auth', 'data-dir', 'election-timeout', 'heartbeat-interval', 'listen-client-urls', 'name']);
  t.match(r.logs, [
    { level: 'info', msg: 'recognized and used environment variable', fields: { 'variable-name': 'ETCD_ADVERTISE_CLIENT_URLS' } },
    { level: 'info', msg: 'recognized and used environment variable', fields: { 'variable-name': 'ETCD_CLIENT_CERT_AUTH', 'variable-value': 'true' } },
  ]);
  const warned = r.logs.filter((l) => l.msg === 'unrecognized environment variable').map((l) => l.fields?.['environment-variable']);
  t.same(warned, ['ETCD_EMPTY_IS_IGNORED=', 'ETCD_INITIAL_CLUSTER_TOKEN=', 'ETCD_FOO=bar']);

  // Set both on the command line and in the environment: etcd refuses, fatally.
  const conflict = exitOf(['--name', 'cli'], { ETCD_NAME: 'env' });
  t.equal(conflict.code, 1);
  t.match(logLines(conflict.stderr), [
    {
      level: 'fatal',
      msg: 'conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))',
      'environment-variable': 'ETCD_NAME',
    },
  ]);
  // ... even when the variable is empty.
  t.equal(exitOf(['--name', 'cli'], { ETCD_NAME: '' }).code, 1);

  // A bad value in a variable.
  const bad = exitOf([], { ETCD_HEARTBEAT_INTERVAL: 'abc' });
  t.equal(bad.code, 1);
  t.match(logLines(bad.stderr).at(-1), { msg: 'failed to verify flags', error: 'invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: parse error' });

  // ETCD_VERSION is special: etcd drops it with a warning.
  const v = ok(parseArgs([], { ETCD_VERSION: '3.5.0' }));
  t.match(v.logs, [{ level: 'warn', msg: 'cannot set special environment variable', fields: { key: 'ETCD_VERSION', value: '3.5.0' } }]);
});

t.test('URLs', async (t) => {
  t.same(parseUrlList('http://localhost:2379'), ['http://localhost:2379']);
  t.same(parseUrlList('https://127.0.0.1:2,http://127.0.0.1:1, http://127.0.0.1:1'), ['http://127.0.0.1:1', 'https://127.0.0.1:2'], 'sorted, trimmed, unique');
  t.equal(parseEtcdUrl('HTTP://[::1]:2379'), 'http://[::1]:2379');
  t.equal(parseEtcdUrl('unix://etcd.unix:1'), 'unix://etcd.unix:1');
  t.equal(parseEtcdUrl('unixs://localhost:12345'), 'unixs://localhost:12345');
  t.throws(() => parseEtcdUrl('localhost:2379'), { message: 'URL scheme must be http, https, unix, or unixs: localhost:2379' });
  t.throws(() => parseEtcdUrl('ftp://a:1'), { message: 'URL scheme must be http, https, unix, or unixs: ftp://a:1' });
  t.throws(() => parseEtcdUrl('http://localhost'), { message: 'URL address does not have the form "host:port": http://localhost' });
  t.throws(() => parseEtcdUrl('http://localhost:2379/v2'), { message: 'URL must not contain a path: http://localhost:2379/v2' });
  t.throws(() => parseEtcdUrl('unix:///tmp/sock'), { message: 'URL address does not have the form "host:port": unix:///tmp/sock' });
  t.throws(() => parseEtcdUrl('http://a b:1'), { message: 'parse "http://a b:1": invalid character " " in host name' });
  t.same(splitHostPort('[::1]:80'), { host: '::1', port: '80' });
  t.same(splitHostPort('localhost:'), { host: 'localhost', port: '' });
  t.throws(() => splitHostPort('a:b:c'), { message: 'address a:b:c: too many colons in address' });

  const multi = cfgOf([
    '--listen-client-urls',
    'http://127.0.0.1:2379,https://127.0.0.1:2379',
    '--advertise-client-urls',
    'https://127.0.0.1:2379',
    '--auto-tls',
    '--listen-peer-urls',
    'unix://etcd.unix:1',
    '--initial-advertise-peer-urls',
    'unix://etcd.unix:1',
    '--name',
    'e1',
  ]);
  t.same(multi.listenClientUrls, ['http://127.0.0.1:2379', 'https://127.0.0.1:2379']);
  t.equal(multi.initialCluster, 'e1=unix://etcd.unix:1');

  // An empty value leaves a URL flag as it was (etcd's "" exception).
  t.same(cfgOf(['--listen-metrics-urls', 'http://127.0.0.1:1', '--listen-metrics-urls=']).listenMetricsUrls, ['http://127.0.0.1:1']);

  // Listeners need IPs (or localhost); advertised URLs need a host.
  const bind = exitOf(['--listen-peer-urls', 'http://example.com:2380']);
  t.equal(bind.code, 1);
  t.match(logLines(bind.stderr).at(-1), { error: 'expected IP in URL for binding (http://example.com:2380)' });
  t.match(logLines(exitOf(['--initial-advertise-peer-urls', 'http://:2380']).stderr).at(-1), {
    error: '--initial-advertise-peer-urls "http://:2380" must be "host:port" (unexpected empty host (http://:2380))',
  });
  t.equal(cfgOf(['--listen-client-urls', 'http://0.0.0.0:0', '--advertise-client-urls', 'http://0.0.0.0:0']).advertiseClientUrls[0], 'http://0.0.0.0:0');

  // --listen-client-urls without --advertise-client-urls.
  const noAdvertise = exitOf(['--listen-client-urls', 'http://127.0.0.1:3379']);
  t.equal(noAdvertise.code, 1);
  t.match(logLines(noAdvertise.stderr).slice(-2), [
    { level: 'warn', msg: 'failed to verify flags', error: '--advertise-client-urls is required when --listen-client-urls is set explicitly' },
    { level: 'warn', msg: 'advertise client URLs are not set' },
  ]);
});

t.test('validation', async (t) => {
  const bad: Array<[string[], string]> = [
    [['--heartbeat-interval=0'], '--heartbeat-interval must be >0 (set to 0ms)'],
    [['--election-timeout=0'], '--election-timeout must be >0 (set to 0ms)'],
    [['--heartbeat-interval=300'], '--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]'],
    [['--election-timeout=60000'], '--election-timeout[60000ms] is too long, and should be set less than 50000ms'],
    [['--discovery=https://discovery.etcd.io/x', '--initial-cluster=a=http://localhost:2380'], 'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"'],
    [['--discovery=https://discovery.etcd.io/x'], '--discovery is not supported by this server: bootstrap the cluster with --initial-cluster'],
    [['--discovery-srv=example.com'], '--discovery-srv is not supported by this server: bootstrap the cluster with --initial-cluster'],
    [['--proxy=on'], '--proxy=on is not supported by this server: the v2 proxy is deprecated in etcd v3.5'],
    [['--auto-compaction-mode=hourly'], 'unknown auto-compaction-mode "hourly"'],
    [['--auto-compaction-retention=1x'], 'error parsing CompactionRetention: time: unknown unit "x" in duration "1x"'],
    [['--experimental-enable-lease-checkpoint=false', '--experimental-enable-lease-checkpoint-persist'], 'setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint'],
    [['--tls-min-version=TLS1.1'], 'unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)'],
    [['--tls-min-version=TLS1.3', '--tls-max-version=TLS1.2'], 'min version (TLS1.3) is greater than max version (TLS1.2)'],
    [['--tls-min-version=TLS1.3', '--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'], 'cipher suites cannot be configured when only TLS1.3 is enabled'],
    [['--cipher-suites=TLS_BOGUS'], 'unexpected TLS cipher suite "TLS_BOGUS"'],
    [['--log-level=bogus'], 'unrecognized level: "bogus"'],
    [['--logger=glog'], 'unknown logger option "glog"'],
    [['--log-outputs=default,stdout'], 'multi logoutput for "default" is not supported yet'],
    [
      ['--listen-client-urls=https://127.0.0.1:2379', '--advertise-client-urls=https://127.0.0.1:2379'],
      'TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme',
    ],
    [['--listen-peer-urls=https://127.0.0.1:2380'], 'cannot listen on TLS for https://127.0.0.1:2380: KeyFile and CertFile are not presented'],
    [['--listen-peer-urls=https://127.0.0.1:2380', '--peer-cert-file=/x.crt'], 'KeyFile and CertFile must both be present[key: , cert: /x.crt]'],
    [
      ['--listen-peer-urls=https://127.0.0.1:2380', '--peer-cert-file=/x', '--peer-key-file=/y', '--peer-cert-allowed-cn=a', '--peer-cert-allowed-hostname=b'],
      'AllowedCNs and AllowedHostnames are mutually exclusive (cns=["a"], hostnames=["b"])',
    ],
  ];
  for (const [argv, msg] of bad) {
    const e = exitOf(argv);
    t.equal(e.code, 1, argv.join(' '));
    t.match(logLines(e.stderr).at(-1), { level: 'warn', msg: 'failed to verify flags', error: msg }, argv.join(' '));
  }
  // validateConfig is usable on its own and throws a typed error.
  const cfg = defaultConfig();
  cfg.electionTimeoutMs = 10;
  let thrown: unknown;
  try {
    validateConfig(cfg);
  } catch (err) {
    thrown = err;
  }
  t.ok(isConfigError(thrown));
  t.match((thrown as Error).message, /^--election-timeout\[10ms\] should be at least as 5 times/);
  // Good TLS settings pass; HTTP URLs with certificates only warn.
  const w = ok(parseArgs(['--cert-file=/a', '--key-file=/b', '--client-cert-auth'], {}));
  t.match(
    w.logs.map((l) => l.msg),
    [
      'Running http and grpc server on single port. This is not recommended for production.',
      'scheme is HTTP while key and cert files are present; ignoring key and cert files',
      'scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL',
    ],
  );
  t.equal(cfgOf(['--auto-compaction-mode=revision', '--auto-compaction-retention=1000']).autoCompactionMode, 'revision');
  t.equal(cfgOf(['--peer-cert-allowed-cn=example.com,example2.com']).peerTls.allowedCn.length, 2);
});

t.test('config file', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'etcd.conf.yml');
  fs.writeFileSync(
    file,
    `# etcd.conf.yml
name: 'infra1'
data-dir: ${dir}/infra1.etcd
wal-dir:
snapshot-count: 5000
heartbeat-interval: 50
election-timeout: 500
quota-backend-bytes: 0
listen-peer-urls: http://127.0.0.1:12380
listen-client-urls: http://127.0.0.1:12379,https://127.0.0.1:12389
initial-advertise-peer-urls: http://127.0.0.1:12380
advertise-client-urls: http://127.0.0.1:12379
discovery:
discovery-fallback: 'proxy'
initial-cluster:
initial-cluster-token: 'tok'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
grpc-keepalive-min-time: 2000000000
experimental-watch-progress-notify-interval: 1s
client-transport-security:
  cert-file: /certs/server.crt
  key-file: /certs/server.key
  client-cert-auth: true
  trusted-ca-file: /certs/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: true
  allowed-cn:
  allowed-hostname: [localhost]
self-signed-cert-validity: 2
log-level: debug
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
unknown-keys-are-ignored: 1
`,
  );
  const r = ok(parseArgs(['--config-file', file, '--name', 'ignored', '--snapshot-count=1'], { ETCD_NAME: 'ignored-too', ETCD_MAX_TXN_OPS: '7' }));
  const c = r.config;
  t.equal(c.configFile, file);
  t.equal(c.name, 'infra1');
  t.equal(c.dataDir, `${dir}/infra1.etcd`);
  t.equal(c.walDir, '');
  t.equal(c.snapshotCount, 5000);
  t.equal(c.heartbeatIntervalMs, 50);
  t.equal(c.electionTimeoutMs, 500);
  t.equal(c.maxTxnOps, 128, 'the environment is ignored');
  t.same(c.listenClientUrls, ['http://127.0.0.1:12379', 'https://127.0.0.1:12389']);
  t.same(c.advertiseClientUrls, ['http://127.0.0.1:12379']);
  t.equal(c.initialCluster, 'infra1=http://127.0.0.1:12380');
  t.equal(c.initialClusterToken, 'tok');
  t.equal(c.strictReconfigCheck, false);
  t.equal(c.enableV2, true);
  t.equal(c.grpcKeepaliveMinTimeMs, 2000, 'durations are nanoseconds in the file');
  t.equal(c.watchProgressNotifyIntervalMs, 1000);
  t.same(c.clientTls, {
    certFile: '/certs/server.crt',
    keyFile: '/certs/server.key',
    clientCertFile: '',
    clientKeyFile: '',
    trustedCaFile: '/certs/ca.crt',
    clientCertAuth: true,
    autoTls: false,
    crlFile: '',
    allowedCn: [],
    allowedHostname: [],
    skipClientSanVerify: false,
  });
  t.equal(c.peerTls.autoTls, true);
  t.same(c.peerTls.allowedHostname, ['localhost']);
  t.equal(c.selfSignedCertValidity, 2);
  t.equal(c.logLevel, 'debug');
  t.same(c.logOutputs, ['stderr']);
  t.equal(c.autoCompactionRetention, '1');
  t.equal(c.otherFlags['proxy-failure-wait'], 5000);
  t.same(r.explicitFlags, []);
  t.ok(r.logs.some((l) => l.msg.startsWith('loaded server configuration, other configuration command line flags and environment variables will be ignored')));

  // ETCD_CONFIG_FILE works too; a flag --config-file wins over it.
  t.equal(cfgOf([], { ETCD_CONFIG_FILE: file }).name, 'infra1');
  const other = path.join(dir, 'other.yml');
  fs.writeFileSync(other, 'name: other\n');
  t.equal(cfgOf(['--config-file', other], { ETCD_CONFIG_FILE: file }).name, 'other');
  // An empty file is etcd's defaults.
  const empty = path.join(dir, 'empty.yml');
  fs.writeFileSync(empty, '');
  t.equal(cfgOf(['--config-file', empty]).name, 'default');

  // Errors.
  const missing = exitOf(['--config-file', path.join(dir, 'nope.yml')]);
  t.equal(missing.code, 1);
  t.match(logLines(missing.stderr).at(-1), { msg: 'failed to verify flags', error: `open ${path.join(dir, 'nope.yml')}: no such file or directory` });
  const badUrl = path.join(dir, 'bad-url.yml');
  fs.writeFileSync(badUrl, 'listen-client-urls: localhost:2379\n');
  t.same(exitOf(['--config-file', badUrl]), { code: 1, stderr: 'unexpected error setting up listen-client-urls: URL scheme must be http, https, unix, or unixs: localhost:2379\n' });
  const badType = path.join(dir, 'bad-type.yml');
  fs.writeFileSync(badType, 'heartbeat-interval: [1]\n');
  t.match(logLines(exitOf(['--config-file', badType]).stderr).at(-1), {
    error: 'error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go struct field configYAML.heartbeat-interval of type uint',
  });
  const invalid = path.join(dir, 'invalid.yml');
  fs.writeFileSync(invalid, 'heartbeat-interval: 500\n');
  t.match(logLines(exitOf(['--config-file', invalid]).stderr).at(-1), {
    error: '--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]',
  });
  // A config file still needs a well-formed command line.
  t.equal(exitOf(['--config-file', file, '--foo']).code, 2);
});

t.test('Go value parsers', async (t) => {
  t.equal(parseGoDurationMs('1h2m3.5s'), 3723500);
  t.equal(parseGoDurationMs('-1.5ms'), -1.5);
  t.equal(parseGoDurationMs('500us'), 0.5);
  t.equal(parseGoDurationMs('0'), 0);
  t.throws(() => parseGoDurationMs(''), { message: 'time: invalid duration ""' });
  t.throws(() => parseGoDurationMs('5'), { message: 'time: missing unit in duration "5"' });
  t.throws(() => parseGoDurationMs('.s'), { message: 'time: invalid duration ".s"' });
  t.equal(parseGoInt('0x1F', { signed: false, bits: 64 }), 31);
  t.equal(parseGoInt('0b101', { signed: false, bits: 64 }), 5);
  t.equal(parseGoInt('0o17', { signed: false, bits: 64 }), 15);
  t.equal(parseGoInt('-12', { signed: true, bits: 64 }), -12);
  t.throws(() => parseGoInt('-1', { signed: false, bits: 64 }), { message: 'parse error' });
  t.throws(() => parseGoInt('1__0', { signed: false, bits: 64 }), { message: 'parse error' });
  t.throws(() => parseGoInt('09', { signed: false, bits: 64 }), { message: 'parse error' });
  t.throws(() => parseGoInt('4294967296', { signed: false, bits: 32 }), { message: 'value out of range' });
  t.equal(formatGoDurationMs(0), '0s');
  t.equal(formatGoDurationMs(100), '100ms');
  t.equal(formatGoDurationMs(60000), '1m0s');
  t.equal(formatGoDurationMs(7200000), '2h0m0s');
  t.equal(formatGoDurationMs(1500), '1.5s');
  t.equal(parseCompactionRetention('periodic', '1'), 3600000);
  t.equal(parseCompactionRetention('periodic', '5m'), 300000);
  t.equal(parseCompactionRetention('revision', '1000'), 1000);
  t.equal(parseCompactionRetention('periodic', '0'), 0);
});

t.test('bin/etcd', async (t) => {
  const bin = path.join(root, 'bin', 'etcd');
  const unknown = spawnSync(process.execPath, [bin, '--foo'], { encoding: 'utf8' });
  t.equal(unknown.status, 2);
  t.equal(unknown.stdout, '');
  t.equal(unknown.stderr, `flag provided but not defined: -foo\n${USAGE_LINE}\n`);
  const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
  t.equal(version.status, 0);
  t.match(version.stdout, /^etcd Version: 3\.5\.21\n/);
  const invalid = spawnSync(process.execPath, [bin, '--listen-client-urls', 'http://127.0.0.1:3379'], { encoding: 'utf8', env: {} });
  t.equal(invalid.status, 1);
  t.match(logLines(invalid.stderr).at(-2), { level: 'warn', msg: 'failed to verify flags' });
  const grpcProxy = spawnSync(process.execPath, [bin, 'grpc-proxy', 'start'], { encoding: 'utf8' });
  t.equal(grpcProxy.status, 1);
});
