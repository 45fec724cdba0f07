// A pino logger that keeps every line in memory (parsed), for tests that check what a member logged.

import { Writable } from 'node:stream';
import pino from 'pino';

export interface CapturedLogs {
  logger: pino.Logger;
  lines: Array<Record<string, unknown> & { msg: string }>;
  /** Resolves with the first line whose msg includes `text` (already logged or to come). */
  waitFor(text: string, timeoutMs?: number): Promise<Record<string, unknown> & { msg: string }>;
}

export function captureLogs(level = 'info'): CapturedLogs {
  const lines: CapturedLogs['lines'] = [];
  const listeners: Array<() => void> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) {
        if (l.trim() === '') continue;
        try {
          lines.push(JSON.parse(l));
        } catch {
          // not JSON: ignore
        }
      }
      for (const f of listeners.slice()) f();
      cb();
    },
  });
  const logger = pino({ level }, stream);
  return {
    logger,
    lines,
    waitFor(text, timeoutMs = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => typeof l.msg === 'string' && l.msg.includes(text));
          if (!hit) return;
          clearTimeout(timer);
          listeners.splice(listeners.indexOf(check), 1);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          listeners.splice(listeners.indexOf(check), 1);
          reject(new Error(`no log line with ${JSON.stringify(text)} within ${timeoutMs} ms`));
        }, timeoutMs);
        listeners.push(check);
        check();
      });
    },
  };
}
