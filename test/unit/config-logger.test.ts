// The server log: etcd's zap JSON lines (key order level, ts, caller, msg, fields), levels and outputs.

import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger, formatLogLine } from '../../src/server/logger';

function capture(logLevel = 'info'): { lines: () => Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const out: string[] = [];
  const logger = createLogger({ logLevel, logger: 'zap', logOutputs: ['stderr'] }, { stream: { write: (s: string) => void out.push(s) } });
  return { logger, lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test('zap line layout', async (t) => {
  const { logger, lines } = capture();
  logger.info({ 'cluster-id': 'abc', n: 1, big: 12345678901234567890n }, 'added member');
  const [line] = lines();
  t.ok(line);
  t.same(Object.keys(line ?? {}), ['level', 'ts', 'caller', 'msg', 'cluster-id', 'n', 'big']);
  t.match(line, { level: 'info', msg: 'added member', 'cluster-id': 'abc', n: 1 });
  t.match(line?.ts, TS);
  t.match(line?.caller, /^unit\/config-logger\.test\.js:\d+$/);
});

t.test('messages, errors and formats', async (t) => {
  const { logger, lines } = capture();
  logger.info('plain');
  logger.info('formatted %s=%d', 'x', 3);
  logger.warn({ err: new Error('boom'), path: '/x' }, 'failed to open');
  logger.error(new Error('bad thing'));
  logger.info({ error: new Error('as field') }, 'with error');
  const got = lines();
  t.match(got[0], { level: 'info', msg: 'plain' });
  t.match(got[1], { msg: 'formatted x=3' });
  t.match(got[2], { level: 'warn', msg: 'failed to open', error: 'boom', path: '/x' });
  t.same(Object.keys(got[2] ?? {}), ['level', 'ts', 'caller', 'msg', 'error', 'path']);
  t.match(got[3], { level: 'error', msg: 'bad thing', error: 'bad thing' });
  t.match(got[4], { error: 'as field' });
});

t.test('levels and children', async (t) => {
  const info = capture('info');
  info.logger.debug('hidden');
  info.logger.info('shown');
  t.same(info.lines().map((l) => l.msg), ['shown']);

  const debug = capture('debug');
  debug.logger.debug('now shown');
  const child = debug.logger.child({ component: 'wal' });
  child.info({ segment: 1 }, 'created');
  t.match(debug.lines(), [{ level: 'debug', msg: 'now shown' }, { level: 'info', component: 'wal', msg: 'created', segment: 1 }]);

  const err = capture('error');
  err.logger.warn('hidden');
  err.logger.error('shown');
  err.logger.fatal('shown too');
  t.same(err.lines().map((l) => l.level), ['error', 'fatal']);

  const panic = capture('panic');
  panic.logger.error('hidden');
  panic.logger.fatal('shown');
  t.same(panic.lines().map((l) => l.level), ['fatal']);
});

t.test('outputs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'etcd.log');
  const logger = createLogger({ logLevel: 'info', logger: 'zap', logOutputs: [file] });
  logger.info({ k: 'v' }, 'to a file');
  const again = createLogger({ logLevel: 'info', logger: 'zap', logOutputs: [file] });
  again.info('appended');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(lines, [{ msg: 'to a file', k: 'v' }, { msg: 'appended' }]);
  // /dev/null discards everything.
  createLogger({ logLevel: 'info', logger: 'zap', logOutputs: ['/dev/null', 'stderr'] }).info('nowhere');
  t.pass('/dev/null accepted');
});

t.test('formatLogLine', async (t) => {
  const text = formatLogLine('warn', 'failed to verify flags', { error: new Error('x'), n: 2n });
  t.ok(text.endsWith('\n'));
  const line = JSON.parse(text) as Record<string, unknown>;
  t.same(Object.keys(line), ['level', 'ts', 'caller', 'msg', 'error', 'n']);
  t.match(line, { level: 'warn', msg: 'failed to verify flags', error: 'x', n: '2' });
  t.match(line.ts, TS);
});
