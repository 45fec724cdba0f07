// Failpoints (etcd's gofail): named points in the code that a test can make crash or stall the process. Off unless
// enabled, and then only the named ones: the check at a point is one Map lookup on an empty map.
//
// Enable them with the environment variable GOFAIL_FAILPOINTS, as etcd's binaries built with gofail read it, or at
// run time (the server's GOFAIL_HTTP endpoint, see src/server/failpoints-http.ts):
//
//   GOFAIL_FAILPOINTS='raftBeforeSave=panic;walAfterSync=sleep(200)'
//
// A term is [P%][N*]action, with action one of:
//   off                 disabled
//   panic | panic(msg)  print "panic: failpoint <name>: <msg>" to stderr and exit at once with status 2 (like a Go
//                       panic: no shutdown, no flushing of anything not yet synced)
//   sleep(D)            stall this point for D: milliseconds as a number, or a Go duration ("100ms", "2s")
//   print               log that the point was reached
// P% fires with probability P percent; N* fires only the first N times the point is reached (then it is off).
//
// Points in the code (etcd's names where etcd has one):
//   raftBeforeSave, raftAfterSave              around the node loop's WAL save of a Ready
//   raftBeforeLeaderSend, raftBeforeFollowerSend  before a leader / follower sends its messages
//   raftBeforeSaveSnap, raftAfterSaveSnap      around persisting a snapshot received from the leader
//   raftBeforeApplySnap, raftAfterApplySnap    around installing its database
//   beforeApply, afterApply                    around applying each committed entry
//   beforeSnapshot, afterSnapshot              around taking a snapshot (--snapshot-count)
//   walBeforeSync, walAfterSync                around the WAL's fdatasync of a batch
//   compactBeforeCommitBatch, compactAfterCommitBatch  around each batch of a physical compaction
//   defragBeforeCopy                           before a defragmentation rewrites the backend
//   beforeSendWatchResponse                    before a watch stream sends each response

import fs from 'node:fs';
import { assert } from './assert';

export type FailpointAction = { kind: 'panic'; message: string } | { kind: 'sleep'; ms: number } | { kind: 'print' };

interface Failpoint {
  term: string;
  action: FailpointAction;
  probability: number;
  remaining: number;
}

const active = new Map<string, Failpoint>();
let printer: (name: string) => void = (name) => process.stderr.write(`failpoint ${name} reached\n`);

/** Parses a Go duration ("150ms", "2s", "1m") or a bare number of milliseconds. */
function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(t);
  if (!m) throw new Error(`failpoint: bad duration ${JSON.stringify(s)}`);
  const unit = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] as 'ms'];
  return Number(m[1]) * unit;
}

/** Parses one term; throws on a malformed one. */
export function parseTerm(term: string): Failpoint | null {
  let rest = term.trim();
  let probability = 1;
  let remaining = Infinity;
  const pm = /^(\d+(?:\.\d+)?)%/.exec(rest);
  if (pm) {
    probability = Number(pm[1]) / 100;
    rest = rest.slice(pm[0].length);
  }
  const cm = /^(\d+)\*/.exec(rest);
  if (cm) {
    remaining = Number(cm[1]);
    rest = rest.slice(cm[0].length);
  }
  const am = /^(\w+)(?:\((.*)\))?$/.exec(rest);
  if (!am) throw new Error(`failpoint: bad term ${JSON.stringify(term)}`);
  const arg = am[2] === undefined ? '' : am[2].replace(/^"(.*)"$/, '$1');
  let action: FailpointAction;
  switch (am[1]) {
    case 'off':
      return null;
    case 'panic':
      action = { kind: 'panic', message: arg };
      break;
    case 'sleep':
      action = { kind: 'sleep', ms: parseDuration(arg) };
      break;
    case 'print':
      action = { kind: 'print' };
      break;
    default:
      throw new Error(`failpoint: unknown action ${JSON.stringify(am[1])} in ${JSON.stringify(term)}`);
  }
  return { term: term.trim(), action, probability, remaining };
}

/** Enables (or, with "off", disables) the failpoint `name`. */
export function setFailpoint(name: string, term: string): void {
  assert(/^\w+$/.test(name), `failpoint: bad name ${JSON.stringify(name)}`);
  const fp = parseTerm(term);
  if (fp === null) active.delete(name);
  else active.set(name, fp);
}

export function clearFailpoint(name: string): boolean {
  return active.delete(name);
}

/** The enabled failpoints and their terms. */
export function listFailpoints(): Map<string, string> {
  return new Map([...active].map(([n, fp]) => [n, fp.term]));
}

/** Enables every failpoint of a GOFAIL_FAILPOINTS value ("name=term;name=term"). */
export function setFailpointsFromEnv(value: string | undefined): void {
  if (!value) return;
  for (const part of value.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`failpoint: bad GOFAIL_FAILPOINTS entry ${JSON.stringify(part)}`);
    setFailpoint(part.slice(0, eq).trim(), part.slice(eq + 1));
  }
}

export function setFailpointPrinter(p: (name: string) => void): void {
  printer = p;
}

/**
 * The point `name`: returns undefined at once unless it is enabled; a sleep returns a promise to await. Use as
 * `const fp = failpoint('x'); if (fp) await fp;` so that a disabled point costs no microtask.
 */
export function failpoint(name: string): Promise<void> | undefined {
  if (active.size === 0) return undefined;
  const fp = active.get(name);
  if (fp === undefined) return undefined;
  if (fp.probability < 1 && Math.random() >= fp.probability) return undefined;
  if (--fp.remaining <= 0) active.delete(name);
  const action = fp.action;
  switch (action.kind) {
    case 'panic':
      fs.writeSync(2, `panic: failpoint ${name}${action.message ? `: ${action.message}` : ''}\n`);
      process.exit(2);
      return undefined;
    case 'sleep':
      return new Promise((r) => setTimeout(r, action.ms));
    case 'print':
      printer(name);
      return undefined;
  }
}

setFailpointsFromEnv(process.env.GOFAIL_FAILPOINTS);
