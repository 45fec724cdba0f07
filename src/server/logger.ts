// The server log, in etcd's zap JSON format (etcd client/pkg/logutil DefaultZapLoggerConfig): one JSON object per
// line, keys in zap's order —
//
//   {"level":"info","ts":"2026-11-24T06:30:00.123Z","caller":"server/member.js:42","msg":"...","field":"value"}
//
// "level" is a lowercase string, "ts" is ISO-8601 UTC with milliseconds (zap's ISO8601TimeEncoder, as etcd 3.4
// prints it), "caller" is the short file:line of the call site. The logger is pino; log as
//   logger.info({ 'cluster-id': 'abc' }, 'msg')
// An Error value in the fields is written as its message, and the `err` key is renamed `error` (zap.Error()).

import fs from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import pino from 'pino';

export type Logger = pino.Logger;

export interface LoggerConfig {
  logLevel: string;
  logger: string;
  logOutputs: string[];
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** zap's ISO8601 time: "2006-01-02T15:04:05.000Z" (UTC). */
export function zapTimestamp(d: Date = new Date()): string {
  return d.toISOString();
}

/** etcd's --log-level → pino level. zap's dpanic and panic sit between error and fatal; pino has no such level. */
function pinoLevel(level: string): pino.LevelWithSilent {
  switch (level) {
    case 'debug':
    case 'info':
    case 'warn':
    case 'error':
    case 'fatal':
      return level;
    case 'dpanic':
    case 'panic':
      return 'fatal';
    default:
      return 'info';
  }
}

const thisFile = __filename;
const pinoDir = path.dirname(require.resolve('pino'));

/** zap's ShortCallerEncoder: the last directory and the file name, with the line: "server/member.js:42". */
function callerOf(): string {
  const savedPrepare = Error.prepareStackTrace;
  const savedLimit = Error.stackTraceLimit;
  let sites: NodeJS.CallSite[] = [];
  try {
    Error.stackTraceLimit = 20;
    Error.prepareStackTrace = (_err, callSites) => callSites;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, callerOf);
    sites = (holder.stack as NodeJS.CallSite[] | undefined) ?? [];
  } finally {
    Error.prepareStackTrace = savedPrepare;
    Error.stackTraceLimit = savedLimit;
  }
  for (const site of sites) {
    const file = site.getFileName();
    if (file === undefined || file === null || file === thisFile || file.startsWith('node:') || file.startsWith(pinoDir)) continue;
    const clean = file.startsWith('file://') ? file.slice('file://'.length) : file;
    return `${path.basename(path.dirname(clean))}/${path.basename(clean)}:${site.getLineNumber() ?? 0}`;
  }
  return 'unknown';
}

/** zap field values: Errors as their message (zap.Error), the `err` key as `error`. */
function zapFields(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = k === 'err' ? 'error' : k;
    out[key] = v instanceof Error ? v.message : v;
  }
  return out;
}

/**
 * Builds one log line in the zap layout without a logger (for messages printed before the logger exists, such as
 * flag errors). Ends with a newline.
 */
export function formatLogLine(level: LogLevel, msg: string, fields: Record<string, unknown> = {}, caller = 'etcdmain/etcd.go'): string {
  const line = { level, ts: zapTimestamp(), caller, msg, ...zapFields(fields) };
  return `${JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`;
}

function destination(output: string): pino.DestinationStream {
  switch (output) {
    case 'default':
    case 'stderr':
    case 'systemd/journal': // no journald writer: stderr, which systemd captures
      return pino.destination({ dest: 2, sync: true });
    case 'stdout':
      return pino.destination({ dest: 1, sync: true });
    default:
      fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
      return pino.destination({ dest: output, sync: true, append: true });
  }
}

/** Discards everything (log-outputs "/dev/null", as etcd's MergeOutputPaths). */
const discard: pino.DestinationStream = { write: () => undefined };

/**
 * Creates the server logger from --logger, --log-level and --log-outputs ("default"/"stderr", "stdout", "/dev/null",
 * or file paths, appended to). Writes are synchronous, so a fatal log is on disk before process.exit().
 * `opts.stream` replaces the outputs (tests).
 */
export function createLogger(cfg: LoggerConfig, opts: { stream?: pino.DestinationStream } = {}): Logger {
  let stream: pino.DestinationStream;
  const outputs = [...new Set(cfg.logOutputs.length === 0 ? ['default'] : cfg.logOutputs)];
  if (opts.stream !== undefined) {
    stream = opts.stream;
  } else if (outputs.includes('/dev/null')) {
    stream = discard;
  } else {
    // "default" and "stderr" are the same file.
    const streams = [...new Map(outputs.map((o) => [o === 'default' ? 'stderr' : o, o])).values()].map(destination);
    stream = streams.length === 1 && streams[0] !== undefined ? streams[0] : pino.multistream(streams.map((s) => ({ stream: s, level: 'trace' as const })));
  }
  return pino(
    {
      level: pinoLevel(cfg.logLevel),
      base: undefined,
      messageKey: 'msg',
      timestamp: () => `,"ts":"${zapTimestamp()}"`,
      formatters: {
        level: (label) => ({ level: label }),
      },
      hooks: {
        // Reorders every call into one object {caller, msg, ...fields} so that pino writes zap's key order.
        logMethod(args: unknown[], method) {
          const caller = callerOf();
          const [first, ...rest] = args;
          let fields: Record<string, unknown> = {};
          let msg: string;
          if (typeof first === 'string') {
            msg = rest.length > 0 ? format(first, ...rest) : first;
          } else if (first instanceof Error) {
            msg = rest.length > 0 ? format(...rest) : first.message;
            fields = { error: first.message, stacktrace: first.stack };
          } else {
            fields = first !== null && typeof first === 'object' ? zapFields(first as Record<string, unknown>) : {};
            const [m, ...fmtArgs] = rest;
            msg = m === undefined ? '' : fmtArgs.length > 0 ? format(m, ...fmtArgs) : String(m);
          }
          method.call(this, { caller, msg, ...fields } as unknown as string);
        },
      },
    },
    stream,
  );
}

/** A logger for before the configuration is known: info level, stderr (etcd's CreateDefaultZapLogger). */
export function createDefaultLogger(): Logger {
  return createLogger({ logLevel: 'info', logger: 'zap', logOutputs: ['stderr'] });
}
