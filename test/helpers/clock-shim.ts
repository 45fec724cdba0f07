// A test-only wall-clock offset for a member process (faults.md F17), loaded with
//
//   NODE_OPTIONS="--require <dist>/test/helpers/clock-shim.js"  TSETCD_CLOCK_OFFSET_DIR=<dir>
//
// It shifts Date.now() and `new Date()` (no arguments) by an offset in milliseconds that the harness can change while
// the member runs: the file <dir>/<member name> (the process's --name) holds the offset as a decimal number, and is
// read every 100 ms; a missing or unparsable file means 0. Nothing in src/ knows about it, so production behaviour is
// unchanged; without TSETCD_CLOCK_OFFSET_DIR the shim does nothing at all.
//
// Only the wall clock moves. performance.now(), process.hrtime and the timers keep running on the monotonic clock,
// which is what etcd's lessor and our own (performance.now) use; faketime/TIME_NS cannot shift CLOCK_REALTIME per
// process here (faults.md §6.1), hence a shim. Each change is printed to stderr as one line starting with
// "clock-shim:" so the member's log shows when its clock jumped.
//
// With TSETCD_CLOCK_SHIFT_MONOTONIC=1 performance.now() jumps too: a deliberately broken member whose leases run on
// a clock that jumps, as if the lessor used the wall clock. The lease-expiry check must report that as an anomaly.

import fs from 'node:fs';
import path from 'node:path';

export const CLOCK_OFFSET_DIR_ENV = 'TSETCD_CLOCK_OFFSET_DIR';
export const SHIFT_MONOTONIC_ENV = 'TSETCD_CLOCK_SHIFT_MONOTONIC';

/** The offset file of the member `name`. */
export function clockOffsetFile(dir: string, name: string): string {
  return path.join(dir, name);
}

/** The value of `--name X` or `--name=X` in argv, or undefined. */
export function nameFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--name') return argv[i + 1];
    if (a.startsWith('--name=')) return a.slice('--name='.length);
  }
  return undefined;
}

function install(file: string): void {
  const RealDate = Date;
  let offsetMs = 0;

  // A function rather than a subclass so that calling Date() without `new` still works (it returns a string).
  function SkewedDate(this: unknown, ...args: unknown[]): unknown {
    if (!new.target) return new RealDate(RealDate.now() + offsetMs).toString();
    return Reflect.construct(RealDate, args.length === 0 ? [RealDate.now() + offsetMs] : args, new.target);
  }
  SkewedDate.prototype = RealDate.prototype;
  Object.setPrototypeOf(SkewedDate, RealDate); // Date.parse, Date.UTC
  SkewedDate.now = () => RealDate.now() + offsetMs;
  (globalThis as { Date: unknown }).Date = SkewedDate;
  if (process.env[SHIFT_MONOTONIC_ENV] === '1') {
    const realNow = performance.now.bind(performance);
    performance.now = () => realNow() + offsetMs;
  }

  const poll = () => {
    fs.readFile(file, 'utf8', (err, text) => {
      const next = err ? 0 : Number(text.trim()) || 0;
      if (next === offsetMs) return;
      offsetMs = next;
      process.stderr.write(`clock-shim: wall clock offset now ${next >= 0 ? '+' : ''}${next} ms (${file})\n`);
    });
  };
  poll();
  setInterval(poll, 100).unref();
}

const dir = process.env[CLOCK_OFFSET_DIR_ENV];
const name = nameFromArgv(process.argv);
if (dir && name) install(clockOffsetFile(dir, name));
