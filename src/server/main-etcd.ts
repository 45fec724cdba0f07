// bin/etcd: etcd's command line (etcdmain.Main). Parses the flags, sets up the log, starts the member and stops it on
// SIGTERM/SIGINT. `etcd gateway start` (the TCP pass-through proxy) is here too; `etcd grpc-proxy` is not supported.

import fs from 'node:fs';
import net from 'node:net';
import { parseArgs, UNIMPLEMENTED_FLAGS } from './flags';
import { createDefaultLogger, createLogger, type Logger } from './logger';
import { parseGoDurationMs, splitHostPort } from './config';
import { startMember } from './member';
import { startFailpointHttp } from './failpoints-http';
import { listFailpoints } from '../util/failpoints';

/** Writes synchronously, so nothing is lost to process.exit(). */
function writeOut(fd: 1 | 2, text: string | undefined): void {
  if (text !== undefined && text !== '') fs.writeSync(fd, text);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Go's os.Signal String() for the signals we handle. */
const SIGNAL_NAMES: Record<string, string> = { SIGTERM: 'terminated', SIGINT: 'interrupt' };

export async function runEtcd(argv: string[]): Promise<void> {
  const sub = argv[0];
  if (sub === 'gateway') return runGateway(argv.slice(1));
  if (sub === 'grpc-proxy') {
    writeOut(2, 'etcd grpc-proxy is not supported by this server\n');
    process.exit(1);
  }

  const parsed = parseArgs(argv, process.env);
  if ('exit' in parsed) {
    writeOut(1, parsed.exit.stdout);
    writeOut(2, parsed.exit.stderr);
    process.exit(parsed.exit.code);
  }
  const { config, logs, explicitFlags } = parsed;

  let logger: Logger;
  try {
    logger = createLogger(config);
  } catch (err) {
    createDefaultLogger().fatal({ error: errorText(err) }, 'failed to create logger');
    process.exit(1);
  }
  logger.info({ args: [process.argv[1] ?? 'etcd', ...argv] }, 'Running: ');
  for (const l of logs) logger[l.level](l.fields ?? {}, l.msg);
  for (const name of explicitFlags) {
    if (UNIMPLEMENTED_FLAGS.includes(name)) logger.debug({ flag: name }, 'flag accepted but not implemented by this server; ignoring');
  }

  if (process.env.GOFAIL_HTTP) startFailpointHttp(process.env.GOFAIL_HTTP, logger);
  const enabled = listFailpoints();
  if (enabled.size > 0) logger.warn({ failpoints: Object.fromEntries(enabled) }, 'failpoints enabled (GOFAIL_FAILPOINTS)');

  let member: Awaited<ReturnType<typeof startMember>>;
  try {
    member = await startMember(config, { logger });
  } catch (err) {
    const message = errorText(err);
    // etcd startEtcdOrProxyV2: "failed to start etcd", then the hints for a bad --initial-cluster, else fatal.
    logger.warn({ error: message }, 'failed to start etcd');
    if (message.includes('include') && message.includes('--initial-cluster')) {
      logger.warn({ error: message }, 'failed to start');
      process.exit(1);
    }
    logger.fatal({ error: message }, 'discovery failed');
    process.exit(1);
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal: SIGNAL_NAMES[signal] ?? signal }, 'received signal again; exiting immediately');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal: SIGNAL_NAMES[signal] ?? signal }, 'received signal; shutting down');
    member.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ error: errorText(err) }, 'failed to close etcd server');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Removed from the cluster: the member has closed itself; exit as etcd does (osutil.Exit(0) on StopNotify).
  void member.done.then(() => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------------------
// etcd gateway start: a TCP pass-through proxy to the members' client URLs (etcdmain/gateway.go, proxy/tcpproxy).

interface GatewayOptions {
  listenAddr: string;
  endpoints: string[];
  retryDelayMs: number;
}

const GATEWAY_USAGE = `Usage:
  etcd gateway start [flags]

Flags:
      --discovery-srv string        DNS domain used to bootstrap initial cluster
      --discovery-srv-name string   service name to query when using DNS discovery
      --endpoints strings           comma separated etcd cluster endpoints (default [127.0.0.1:2379])
  -h, --help                        help for start
      --insecure-discovery          accept insecure SRV records
      --listen-addr string          listen address (default "127.0.0.1:23790")
      --retry-delay duration        duration of delay before retrying failed endpoints (default 1m0s)
      --trusted-ca-file string      path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided.
`;

/** cobra/pflag-style parsing of `gateway [flags] start [flags]`. */
function parseGatewayArgs(argv: string[]): GatewayOptions | { exit: number; stderr: string } {
  const opts: GatewayOptions = { listenAddr: '127.0.0.1:23790', endpoints: ['127.0.0.1:2379'], retryDelayMs: 60_000 };
  const valueFlags = new Set(['listen-addr', 'endpoints', 'retry-delay', 'discovery-srv', 'discovery-srv-name', 'trusted-ca-file']);
  let sawStart = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === 'start') {
      sawStart = true;
      continue;
    }
    if (a === '-h' || a === '--help') return { exit: 0, stderr: GATEWAY_USAGE };
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m === null || m[1] === undefined) return { exit: 1, stderr: `Error: unknown command "${a}" for "etcd gateway"\n` };
    const name = m[1];
    let value = m[2];
    if (name === 'insecure-discovery') continue;
    if (!valueFlags.has(name)) return { exit: 1, stderr: `Error: unknown flag: --${name}\n${GATEWAY_USAGE}` };
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) return { exit: 1, stderr: `Error: flag needs an argument: --${name}\n${GATEWAY_USAGE}` };
    }
    if (name === 'listen-addr') opts.listenAddr = value;
    else if (name === 'endpoints') opts.endpoints = value.split(',').filter((e) => e !== '');
    else if (name === 'retry-delay') {
      try {
        opts.retryDelayMs = parseGoDurationMs(value);
      } catch (err) {
        return { exit: 1, stderr: `Error: invalid argument "${value}" for "--retry-delay" flag: ${errorText(err)}\n` };
      }
    } else if (name === 'discovery-srv' || name === 'discovery-srv-name') {
      if (value !== '') return { exit: 1, stderr: `etcd gateway: --${name} is not supported by this server\n` };
    }
  }
  if (!sawStart) return { exit: 0, stderr: 'gateway related command\n\nUsage:\n  etcd gateway [command]\n\nAvailable Commands:\n  start       start the gateway\n' };
  // etcdmain stripSchema: "http://host:port" → "host:port".
  opts.endpoints = opts.endpoints.map((e) => {
    const m = /^[a-z]+:\/\/([^/]+)/.exec(e);
    return m?.[1] ?? e;
  });
  return opts;
}

async function runGateway(argv: string[]): Promise<void> {
  const parsed = parseGatewayArgs(argv);
  if ('exit' in parsed) {
    writeOut(2, parsed.stderr);
    process.exit(parsed.exit);
  }
  const logger = createDefaultLogger();
  let listenHost: string;
  let listenPort: number;
  try {
    const hp = splitHostPort(parsed.listenAddr);
    listenHost = hp.host;
    listenPort = Number(hp.port);
  } catch {
    writeOut(1, `failed to validate listen address: ${parsed.listenAddr}\n`);
    process.exit(1);
  }
  for (const ep of parsed.endpoints) {
    try {
      splitHostPort(ep);
    } catch {
      writeOut(1, `error parsing endpoint "${ep}"`);
      process.exit(1);
    }
  }
  if (parsed.endpoints.length === 0) {
    writeOut(1, 'no endpoints found\n');
    process.exit(1);
  }

  // Endpoints that failed stay inactive for --retry-delay (tcpproxy's MonitorInterval).
  const inactiveUntil = new Map<string, number>();
  let next = 0;
  const pick = (tried: Set<string>): string | undefined => {
    const now = Date.now();
    for (let k = 0; k < parsed.endpoints.length; k++) {
      const ep = parsed.endpoints[(next + k) % parsed.endpoints.length] as string;
      if (tried.has(ep) || (inactiveUntil.get(ep) ?? 0) > now) continue;
      next = (next + k + 1) % parsed.endpoints.length;
      return ep;
    }
    return undefined;
  };
  const server = net.createServer((inbound) => {
    inbound.pause();
    const tried = new Set<string>();
    const dial = (): void => {
      const ep = pick(tried);
      if (ep === undefined) {
        inbound.destroy();
        return;
      }
      tried.add(ep);
      const { host, port } = splitHostPort(ep);
      const outbound = net.connect({ host, port: Number(port) });
      outbound.once('connect', () => {
        outbound.removeAllListeners('error');
        inbound.pipe(outbound);
        outbound.pipe(inbound);
        inbound.resume();
        const done = (): void => {
          inbound.destroy();
          outbound.destroy();
        };
        inbound.on('error', done).on('close', done);
        outbound.on('error', done).on('close', done);
      });
      outbound.once('error', (err) => {
        logger.warn({ address: ep, error: err.message, 'retry-delay': `${parsed.retryDelayMs}ms` }, 'deactivated endpoint');
        inactiveUntil.set(ep, Date.now() + parsed.retryDelayMs);
        dial();
      });
    };
    dial();
  });
  server.on('error', (err) => {
    writeOut(2, `${err.message}\n`);
    process.exit(1);
  });
  server.listen(listenPort, listenHost, () => {
    logger.info({ endpoints: parsed.endpoints }, 'ready to proxy client requests');
  });
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
