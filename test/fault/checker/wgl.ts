// A linearizability checker: the Wing & Gong tree search with Lowe's memoisation (faults.md §5.2; porcupine's
// checkSingle), generic over a pure sequential model.
//
// The history becomes a doubly linked list of call and return entries sorted by time (calls before returns on
// ties: intervals are closed). The search walks the list from its head: at a call it tries to linearize that
// operation now (the model accepts its output in the current state); if the pair (set of linearized operations,
// resulting state) was seen before, that subtree is already known to fail and is skipped. Reaching a return
// whose call is not yet linearized means the current order cannot be extended: backtrack. An empty list means
// every operation found a place: linearizable.
//
// An indeterminate operation has its return at +∞, so the search may linearize it anywhere after its call, and
// placing it after every completed operation is "it never took effect".
//
// Cost is driven by the concurrency width (operations pending at once, including every indeterminate one), not
// by length. A step budget and an injected clock bound the search; running out returns 'unknown'.

import type { Time } from './history';
import { mix } from './model';

export interface Model<S, Op> {
  init(): S;
  /** The next state if `op` (with its recorded output) is legal in `state`, else undefined. Must not mutate. */
  step(state: S, op: Op): S | undefined;
  hash(state: S): number;
  equal(a: S, b: S): boolean;
}

export interface TimedOperation<Op> {
  call: Time;
  ret: Time;
  op: Op;
}

export interface Budget {
  /** Give up ('unknown') after this many search steps. Default: unlimited. */
  maxSteps?: number;
  /** With `deadline`: an injected clock (e.g. performance.now); the checker reads no clock of its own. */
  now?: () => number;
  /** Give up ('unknown') once now() passes this value. */
  deadline?: number;
}

export type WglResult<S> =
  | { result: 'ok'; steps: number; /** Operation indexes in linearization order. */ order: number[] }
  | {
    result: 'illegal';
    steps: number;
    /** The longest linearizable prefix the search found (operation indexes in order). */
    longestPrefix: number[];
    /** The model state after that prefix. */
    state: S;
    /** The operation whose return was reached before it could be linearized after that prefix. */
    blocked: number;
    /** The operations that were pending (called, not linearized) at that point; none could go next. */
    pending: number[];
  }
  | { result: 'unknown'; steps: number; reason: string };

/** A fixed-size bitset with an incremental (Zobrist-style) hash. */
class Bitset {
  readonly words: Uint32Array;
  hash = 0;
  constructor(n: number, words?: Uint32Array, hash?: number) {
    this.words = words ?? new Uint32Array((n + 31) >>> 5);
    if (hash !== undefined) this.hash = hash;
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
    this.hash ^= idHash(i);
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
    this.hash ^= idHash(i);
  }
  clone(): Bitset {
    return new Bitset(0, this.words.slice(), this.hash);
  }
  equals(o: Bitset): boolean {
    const a = this.words;
    const b = o.words;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
}

function idHash(i: number): number {
  return mix(mix(0x6a09e667, i), i >>> 16);
}

/** Checks one (sub-)history against a model. Operation indexes in the result refer to `ops`. */
export function checkWgl<S, Op>(model: Model<S, Op>, ops: readonly TimedOperation<Op>[], budget: Budget = {}): WglResult<S> {
  const n = ops.length;
  // Entries: 2i is the call of operation i, 2i+1 its return; HEAD is the sentinel.
  const HEAD = 2 * n;
  const order: number[] = [];
  for (let e = 0; e < 2 * n; e++) order.push(e);
  const time = (e: number): Time => (e & 1 ? ops[e >>> 1]!.ret : ops[e >>> 1]!.call);
  order.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta < tb) return -1;
    if (ta > tb) return 1;
    const ka = a & 1;
    const kb = b & 1;
    if (ka !== kb) return ka - kb; // calls first on ties
    return a - b;
  });
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }

  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call]!] = next[call]!;
    if (next[call]! >= 0) prev[next[call]!] = prev[call]!;
    next[prev[ret]!] = next[ret]!;
    if (next[ret]! >= 0) prev[next[ret]!] = prev[ret]!;
  };
  const unlift = (call: number): void => {
    const ret = call + 1;
    next[prev[ret]!] = ret;
    if (next[ret]! >= 0) prev[next[ret]!] = ret;
    next[prev[call]!] = call;
    if (next[call]! >= 0) prev[next[call]!] = call;
  };

  const linearized = new Bitset(n);
  const cache = new Map<number, { bits: Bitset; state: S }[]>();
  const stack: { op: number; state: S }[] = [];
  let state = model.init();
  let best: { prefix: number[]; state: S; blocked: number; pending: number[] } | undefined;
  let steps = 0;
  const maxSteps = budget.maxSteps ?? Infinity;

  let e = next[HEAD]!;
  while (next[HEAD]! >= 0) {
    steps++;
    if ((steps & 1023) === 0) {
      if (steps > maxSteps) return { result: 'unknown', steps, reason: `step budget of ${maxSteps} exhausted` };
      if (budget.now && budget.deadline !== undefined && budget.now() > budget.deadline) {
        return { result: 'unknown', steps, reason: 'deadline passed' };
      }
    }
    if ((e & 1) === 0) {
      const i = e >>> 1;
      const nextState = model.step(state, ops[i]!.op);
      if (nextState !== undefined) {
        linearized.set(i);
        const key = (linearized.hash ^ Math.imul(model.hash(nextState), 0x9e3779b1)) | 0;
        let bucket = cache.get(key);
        let seen = false;
        if (bucket) {
          for (const c of bucket) {
            if (c.bits.equals(linearized) && model.equal(c.state, nextState)) {
              seen = true;
              break;
            }
          }
        }
        if (!seen) {
          if (!bucket) cache.set(key, (bucket = []));
          bucket.push({ bits: linearized.clone(), state: nextState });
          stack.push({ op: i, state });
          state = nextState;
          lift(e);
          e = next[HEAD]!;
          continue;
        }
        linearized.clear(i);
      }
      e = next[e]!;
    } else {
      // A return whose call is still in the list: the operation must have taken effect by now, and could not.
      if (!best || stack.length >= best.prefix.length) {
        if (!best || stack.length > best.prefix.length) {
          const pending: number[] = [];
          for (let x = next[HEAD]!; x >= 0 && x !== e; x = next[x]!) if ((x & 1) === 0) pending.push(x >>> 1);
          best = { prefix: stack.map((s) => s.op), state, blocked: e >>> 1, pending };
        }
      }
      const top = stack.pop();
      if (!top) break;
      state = top.state;
      linearized.clear(top.op);
      unlift(2 * top.op);
      e = next[2 * top.op]!;
    }
  }
  if (next[HEAD]! < 0) return { result: 'ok', steps, order: stack.map((s) => s.op) };
  const b = best!;
  return { result: 'illegal', steps, longestPrefix: b.prefix, state: b.state, blocked: b.blocked, pending: b.pending };
}
