// The global linearizability check of a KV history against the etcd revision model (faults.md §5.3 (b)): one
// state over all keys, so header revisions and mod_revisions are checked too. Budget it to short runs
// (a few thousand operations over ~10 keys); for big histories use the per-key register check and the revision
// oracle.

import {
  describeOperation,
  describeOutput,
  type History,
  type Operation,
  prepareHistory,
} from './history';
import { apply, EtcdState, step } from './model';
import { type Budget, checkWgl, type Model } from './wgl';

export const etcdModel: Model<EtcdState, Operation> = {
  init: () => EtcdState.empty(),
  step: (s, op) => step(s, op.input, op.output),
  hash: (s) => s.hash(),
  equal: (a, b) => a.equals(b),
};

export interface LinearizabilityReport {
  result: 'ok' | 'illegal' | 'unknown';
  /** The operations checked (after prepareHistory); indexes below refer to this list. */
  operations: Operation[];
  steps: number;
  /** ok: one linearization. */
  order?: number[];
  /** illegal: the longest linearizable prefix found. */
  longestPrefix?: number[];
  /** illegal: the operation that could not be linearized after that prefix. */
  blocked?: number;
  /** illegal or unknown: a human-readable account. */
  explanation?: string;
}

/** Checks a KV history (see history.ts) for linearizability under the etcd model. */
export function checkLinearizable(history: History, budget: Budget = {}): LinearizabilityReport {
  const ops = prepareHistory(history);
  const r = checkWgl(etcdModel, ops.map((op) => ({ call: op.call, ret: op.ret, op })), budget);
  if (r.result === 'ok') return { result: 'ok', operations: ops, steps: r.steps, order: r.order };
  if (r.result === 'unknown') return { result: 'unknown', operations: ops, steps: r.steps, explanation: r.reason };
  const lines: string[] = [];
  lines.push(`not linearizable: the longest linearizable prefix has ${r.longestPrefix.length} of ${ops.length} operations.`);
  const tail = r.longestPrefix.slice(-5);
  if (tail.length) {
    lines.push(`its last operations:`);
    for (const i of tail) lines.push(`  ${describeOperation(ops[i]!, i)}`);
  }
  lines.push(`state after it: ${r.state.describe()}`);
  const b = ops[r.blocked]!;
  lines.push(`operation that could not be linearized (it returned before any legal place for it):`);
  lines.push(`  ${describeOperation(b, r.blocked)}`);
  lines.push(`  the model would answer here: ${describeOutput(apply(r.state, b.input).output)}`);
  const others = r.pending.filter((i) => i !== r.blocked);
  if (others.length) {
    lines.push(`other pending operations (none fits next either):`);
    for (const i of others.slice(0, 10)) {
      lines.push(`  ${describeOperation(ops[i]!, i)}; model: ${describeOutput(apply(r.state, ops[i]!.input).output)}`);
    }
  }
  return { result: 'illegal', operations: ops, steps: r.steps, longestPrefix: r.longestPrefix, blocked: r.blocked, explanation: lines.join('\n') };
}
