// GET /health on the client URLs: etcd 3.4.23 etcdhttp/metrics.go (NewHealthHandler, checkHealth), exactly:
//
//   1. any active alarm whose name is not in ?exclude=NAME (repeatable)  -> unhealthy
//   2. no leader                                                        -> unhealthy
//   3. a linearizable read (etcd: a QGET) that fails within 1 s         -> unhealthy
//   healthy:   200, body {"health":"true"}
//   unhealthy: 503 written by Go's http.Error: text/plain; charset=utf-8, nosniff, body {"health":"false"}\n
// A method other than GET gets 405 "Method Not Allowed" with Allow: GET. 3.4's body has no "reason" field.

import type http from 'node:http';
import type { Logger } from 'pino';
import type { AlarmMember } from '../../api/types';
import type { MaintenanceCounters } from './counters';

export const ALARM_NAMES: Readonly<Record<number, string>> = { 0: 'NONE', 1: 'NOSPACE', 2: 'CORRUPT' };
const HEALTH_READ_TIMEOUT_MS = 1000;

export interface HealthSource {
  alarms(): AlarmMember[];
  /** The leader's member ID, 0n when there is none. */
  leader(): bigint;
  linearizableReadNotify(): Promise<void>;
}

export interface Health {
  health: 'true' | 'false';
}

/** etcd checkHealth. */
export async function checkHealth(src: HealthSource, excludedAlarms: ReadonlySet<string>, logger: Logger, counters: MaintenanceCounters): Promise<Health> {
  const h = await evaluate(src, excludedAlarms, logger);
  if (h.health === 'true') counters.healthSuccess++;
  else counters.healthFailures++;
  return h;
}

async function evaluate(src: HealthSource, excludedAlarms: ReadonlySet<string>, logger: Logger): Promise<Health> {
  for (const a of src.alarms()) {
    const name = ALARM_NAMES[a.alarm] ?? String(a.alarm);
    if (excludedAlarms.has(name)) {
      logger.debug({ alarm: name, 'member-id': a.memberID }, '/health excluded alarm');
      continue;
    }
    logger.warn({ alarm: name, 'member-id': a.memberID }, '/health error due to an alarm');
    return { health: 'false' };
  }
  if (src.leader() === 0n) {
    logger.warn({ 'status-code': 503 }, '/health error; no leader');
    return { health: 'false' };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      src.linearizableReadNotify(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('context deadline exceeded')), HEALTH_READ_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    logger.warn({ error: err instanceof Error ? err.message : String(err), 'status-code': 503 }, '/health error; QGET failed');
    return { health: 'false' };
  } finally {
    clearTimeout(timer);
  }
  return { health: 'true' };
}

/** etcd getExcludedAlarms: every ?exclude= value. */
export function excludedAlarms(url: string | undefined): Set<string> {
  const q = new URL(url ?? '/', 'http://localhost').searchParams;
  return new Set(q.getAll('exclude'));
}

/** etcd NewHealthHandler. */
export function healthHandler(check: (excluded: Set<string>) => Promise<Health>): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    if (req.method !== 'GET') {
      goHttpError(res, 405, 'Method Not Allowed', { Allow: 'GET' });
      return;
    }
    check(excludedAlarms(req.url)).then(
      (h) => {
        const body = JSON.stringify({ health: h.health });
        if (h.health !== 'true') {
          goHttpError(res, 503, body);
          return;
        }
        // Go sniffs the type of a body written without one: JSON text is "text/plain; charset=utf-8".
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      },
      () => goHttpError(res, 503, JSON.stringify({ health: 'false' })),
    );
  };
}

/** Go's http.Error. */
function goHttpError(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  const body = `${message}\n`;
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
