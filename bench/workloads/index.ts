// The workload registry: every workload the CLI and the workers know, by name.

import type { Workload } from '../lib/workload';
import { kube } from './kube';
import { leaseKeepalive } from './lease-keepalive';
import { put } from './put';
import { putCompaction } from './put-compaction';
import { range } from './range';
import { txnMixed } from './txn-mixed';
import { txnPut } from './txn-put';
import { watchLatency } from './watch-latency';

export const workloads: Workload[] = [put, range, txnPut, txnMixed, watchLatency, leaseKeepalive, kube, putCompaction];

export function workloadByName(name: string): Workload {
  const w = workloads.find((x) => x.name === name);
  if (w === undefined) throw new Error(`unknown workload "${name}" (known: ${workloads.map((x) => x.name).join(', ')})`);
  return w;
}
