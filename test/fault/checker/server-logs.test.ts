// The member-log scanner (C8) on sample lines.

import t from 'tap';
import { scanServerLog } from './server-logs';

const info = '{"level":"info","ts":"2026-11-24T10:49:48.883Z","msg":"ready to serve client requests"}';
const warn = '{"level":"warn","ts":"2026-11-24T10:49:49.000Z","msg":"peer became inactive (message send to peer failed)"}';

t.test('a clean log, kills and injected panics pass', async (t) => {
  const log = [
    '--- start 1 pid 100 2026-11-24T10:49:47.723Z', info, warn, '--- exit null signal SIGKILL',
    '--- start 2 pid 101 2026-11-24T10:49:50.000Z', info, 'clock-shim: wall clock offset now -37000 ms (/tmp/x/n1)',
    'panic: failpoint compactBeforeCommitBatch', '--- exit 2 signal null',
    '--- start 3 pid 102 2026-11-24T10:49:55.000Z', info, '',
  ].join('\n');
  t.same(scanServerLog('n1', log), []);
});

t.test('an uncaught exception is one problem per block of lines', async (t) => {
  const log = [
    '--- start 1 pid 100 x', info,
    '/work/dist/src/server/etcd-server.js:812',
    '        throw new AssertionError(\'applied <= committed\');',
    'AssertionError [ERR_ASSERTION]: applied <= committed',
    '    at EtcdServer.apply (/work/dist/src/server/etcd-server.js:812:15)',
    'Node.js v20.20.0',
    '--- exit 1 signal null',
  ].join('\n');
  const p = scanServerLog('n2', log);
  t.equal(p.length, 2);
  t.match(p[0]?.message, /^n2 line 3: unexpected output: \/work\/dist\/src\/server\/etcd-server\.js:812 \(\+4 more lines\)/);
  t.match(p[1]?.message, /n2 line 8: the process exited with status 1 without an injected panic/);
});

t.test('error and fatal log lines are reported, warnings are not', async (t) => {
  const log = [info, warn, '{"level":"fatal","msg":"raft node loop failed","error":"x"}', '{"level":"error","msg":"apply failed"}'].join('\n');
  const p = scanServerLog('n3', log);
  t.equal(p.length, 2);
  t.match(p[0]?.message, /n3 line 3: fatal: .*raft node loop failed/);
  t.match(p[1]?.message, /n3 line 4: error: /);
});

t.test('status 2 without a failpoint panic is not excused; a panic only excuses its own exit', async (t) => {
  t.equal(scanServerLog('n1', ['--- start 1 pid 1 x', '--- exit 2 signal null'].join('\n')).length, 1);
  const p = scanServerLog('n1', ['panic: failpoint beforeApply', '--- exit 2 signal null', '--- start 2 pid 2 x', '--- exit 2 signal null'].join('\n'));
  t.equal(p.length, 1);
  t.match(p[0]?.message, /line 4: the process exited with status 2/);
});

t.test('a V8 fatal error outside JSON is reported', async (t) => {
  const p = scanServerLog('n1', [info, 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory'].join('\n'));
  t.match(p[0]?.message, /unexpected output: FATAL ERROR: Reached heap limit/);
});

t.test('lines a nemesis expects are allowed and excuse the exit after them', async (t) => {
  const log = ['--- start 1 pid 1 x', '{"level":"fatal","msg":"failed to read WAL, cannot be repaired"}', '--- exit 1 signal null'].join('\n');
  t.equal(scanServerLog('n1', log).length, 2);
  t.same(scanServerLog('n1', log, [/failed to read WAL/]), []);
});

t.test('an allowed line excuses its whole block of unformatted output', async (t) => {
  const log = [
    '--- start 1 pid 1 x',
    '/work/dist/src/server/transport/connection.js:195',
    '                        throw err;',
    'AssertionError: tocommit(148) is out of range [lastIndex(147)]. Was the raft log corrupted, truncated, or lost?',
    '    at assert (/work/dist/src/util/assert.js:13:15)',
    '--- exit 1 signal null',
  ].join('\n');
  t.equal(scanServerLog('n1', log).length, 2);
  t.same(scanServerLog('n1', log, [/tocommit\(\d+\) is out of range/]), []);
});
