// C8 (faults.md §6.4): no uncaught exception, assertion failure or panic in a member's log other than the ones the
// run injected. A member log (run.ts: logs/<member>.log) is every start of that member's process: the harness's
// "--- start N pid P <time>" and "--- exit <code> signal <signal>" lines around the process's own output, which is
// one JSON object per line (the zap-style logger) plus whatever reached stderr unformatted.
//
// What is reported:
// - a JSON line at level error, dpanic, panic or fatal (the server logs a failed Ready loop or apply as fatal);
// - any other unformatted output (an uncaught exception's stack, an assertion, V8's "FATAL ERROR"), one problem per
//   block of consecutive lines, except an injected failpoint panic ("panic: failpoint <name>", src/util/failpoints.ts)
//   and the clock shim's notes ("clock-shim: ...", test/helpers/clock-shim.ts);
// - an exit with a status other than 0, unless the process died by a signal (the harness kills with SIGKILL) or
//   its last unformatted line was an injected failpoint panic (which exits with status 2).
// A nemesis that makes a member fail on purpose (say, refuse to start on a corrupted WAL) passes `allowed`: a JSON
// line matching one of them, or a block of unformatted output with a line matching one, is not reported, and it
// excuses the exit that follows.

import type { Problem } from './convergence';

const BAD_LEVELS = new Set(['error', 'dpanic', 'panic', 'fatal']);
const INJECTED = /^panic: failpoint \w+/;
const HARNESS = /^--- (start|exit) /;
const EXIT = /^--- exit (\S+) signal (\S+)/;
const SHIM = /^clock-shim: /;

function jsonLevel(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const x = JSON.parse(line);
    return typeof x?.level === 'string' ? x.level : '';
  } catch {
    return undefined;
  }
}

/** Scans one member's log text; `member` names it in the messages. */
export function scanServerLog(member: string, text: string, allowed: readonly RegExp[] = []): Problem[] {
  const out: Problem[] = [];
  const lines = text.split('\n');
  let block: { first: string; line: number; count: number; allowed: boolean } | undefined;
  let injectedPanic = false;
  const isAllowed = (line: string) => allowed.some((re) => re.test(line));
  const flush = () => {
    if (block?.allowed) injectedPanic = true;
    else if (block) out.push({ message: `${member} line ${block.line}: unexpected output: ${block.first.slice(0, 300)}${block.count > 1 ? ` (+${block.count - 1} more lines)` : ''}` });
    block = undefined;
  };
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line === '') return;
    const level = jsonLevel(line);
    if (level !== undefined) {
      flush();
      if (isAllowed(line)) injectedPanic = true;
      else if (BAD_LEVELS.has(level)) out.push({ message: `${member} line ${i + 1}: ${level}: ${line.slice(0, 300)}` });
      return;
    }
    if (HARNESS.test(line)) {
      flush();
      const m = EXIT.exec(line);
      if (m && m[1] !== '0' && m[1] !== 'null' && m[2] === 'null' && !injectedPanic) {
        out.push({ message: `${member} line ${i + 1}: the process exited with status ${m[1]} without an injected panic` });
      }
      injectedPanic = false;
      return;
    }
    if (INJECTED.test(line)) {
      flush();
      injectedPanic = true;
      return;
    }
    if (SHIM.test(line)) return;
    if (block) block.count++;
    else block = { first: line, line: i + 1, count: 1, allowed: false };
    if (isAllowed(line)) block.allowed = true;
  });
  flush();
  return out;
}
