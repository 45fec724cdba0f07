// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact. Validation follows etcd v3rpc/key.go in its check
// order (which error wins matters to clients); the quota check follows v3rpc/quota.go (maintenance/quota.ts), and
// while NOSPACE is active the applier refuses what adds data (Applier.alarmGate), as etcd's capped applier does.

import type { Logger } from 'pino';
import * as rpc from '../../api/rpctypes';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from '../../api/types';
import type { EtcdServer } from '../etcd-server';
import { unary } from './util';
import type { QuotaRequest } from '../maintenance/quota';

export function kvService(srv: EtcdServer, logger: Logger, maxTxnOps: number) {
  return {
    Range: unary(logger, async (r: RangeRequest) => {
      checkRangeRequest(r);
      if (!r.serializable) await srv.linearizableReadNotify();
      return srv.applier.range(srv.store, r);
    }),
    Put: unary(logger, async (r: PutRequest) => {
      // etcd's quotaKVServer wraps the KV server: the quota is checked before the request is validated.
      if (!(await srv.maintenance.checkQuota({ put: r }))) throw rpc.ErrGRPCNoSpace;
      checkPutRequest(r);
      const res = await srv.propose({ put: r });
      if (res.kind !== 'put') throw new Error('unexpected apply result for put');
      return res.resp;
    }),
    DeleteRange: unary(logger, async (r: DeleteRangeRequest) => {
      checkDeleteRequest(r);
      const res = await srv.propose({ delete_range: r });
      if (res.kind !== 'delete') throw new Error('unexpected apply result for delete');
      return res.resp;
    }),
    Txn: unary(logger, async (r: TxnRequest) => {
      if (!(await srv.maintenance.checkQuota({ txn: r }))) throw rpc.ErrGRPCNoSpace;
      checkTxnRequest(r, maxTxnOps);
      // Check forbidden put/delete overlaps after checking the request, to avoid quadratic blowup (etcd).
      checkIntervals(r.success);
      checkIntervals(r.failure);
      if (isTxnReadonly(r)) {
        if (!isTxnSerializable(r)) await srv.linearizableReadNotify();
        return srv.applier.readOnlyTxn(r);
      }
      const res = await srv.propose({ txn: r });
      if (res.kind !== 'txn') throw new Error('unexpected apply result for txn');
      return res.resp;
    }),
    Compact: unary(logger, async (r: CompactionRequest) => {
      const res = await srv.propose({ compaction: r });
      if (res.kind !== 'compact') throw new Error('unexpected apply result for compaction');
      if (r.physical) await res.done;
      return { header: srv.header(0) };
    }),
  };
}

/** etcd quotaAlarmer.check for requests made on a client's behalf (election, lock): ErrGRPCNoSpace when over quota. */
export async function checkQuota(srv: EtcdServer, r: QuotaRequest): Promise<void> {
  if (!(await srv.maintenance.checkQuota(r))) throw rpc.ErrGRPCNoSpace;
}

function checkRangeRequest(r: RangeRequest): void {
  if (r.key.length === 0) throw rpc.ErrGRPCEmptyKey;
}

function checkPutRequest(r: PutRequest): void {
  if (r.key.length === 0) throw rpc.ErrGRPCEmptyKey;
  if (r.ignore_value && r.value.length !== 0) throw rpc.ErrGRPCValueProvided;
  if (r.ignore_lease && String(r.lease) !== '0') throw rpc.ErrGRPCLeaseProvided;
}

function checkDeleteRequest(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw rpc.ErrGRPCEmptyKey;
}

function checkRequestOp(u: RequestOp, maxTxnOps: number): void {
  if (u.request_range) return checkRangeRequest(u.request_range);
  if (u.request_put) return checkPutRequest(u.request_put);
  if (u.request_delete_range) return checkDeleteRequest(u.request_delete_range);
  if (u.request_txn) return checkTxnRequest(u.request_txn, maxTxnOps);
  // An empty op (no request set) is etcd's ErrGRPCKeyNotFound.
  throw rpc.ErrGRPCKeyNotFound;
}

/** etcd checkTxnRequest: op count first, then empty compare keys, then each op of success, then failure. */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw rpc.ErrGRPCTooManyOps;
  for (const c of r.compare) if (c.key.length === 0) throw rpc.ErrGRPCEmptyKey;
  for (const u of r.success) checkRequestOp(u, maxTxnOps);
  for (const u of r.failure) checkRequestOp(u, maxTxnOps);
}

// --- duplicate-key rules (etcd checkIntervals) ---

/**
 * Keys compare as etcd's adt.StringAffineComparable: bytewise, except that the empty string is +infinity.
 * A delete is the interval [key, range_end) (or the point [key, key+"\0") without range_end).
 */
interface Interval {
  begin: Buffer;
  end: Buffer;
}

function affineCompare(a: Buffer, b: Buffer): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

function pointInterval(k: Buffer): Interval {
  return { begin: k, end: Buffer.concat([k, Buffer.from([0])]) };
}

function intersects(dels: Interval[], k: Buffer): boolean {
  const p = pointInterval(k);
  for (const d of dels) {
    // [a, b) and [c, e) intersect iff a < e and c < b.
    if (affineCompare(d.begin, p.end) < 0 && affineCompare(p.begin, d.end) < 0) return true;
  }
  return false;
}

function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const req of reqs) {
    const d = req.request_delete_range;
    if (!d) continue;
    dels.push(d.range_end.length !== 0 ? { begin: d.key, end: d.range_end } : pointInterval(d.key));
  }
  const puts = new Set<string>();
  for (const req of reqs) {
    const t = req.request_txn;
    if (!t) continue;
    const then = checkIntervals(t.success);
    const els = checkIntervals(t.failure);
    for (const k of then.puts) {
      if (puts.has(k)) throw rpc.ErrGRPCDuplicateKey;
      if (intersects(dels, Buffer.from(k, 'latin1'))) throw rpc.ErrGRPCDuplicateKey;
      puts.add(k);
    }
    for (const k of els.puts) {
      // A key put by both branches of one txn is fine: then/else are mutually exclusive.
      if (puts.has(k) && !then.puts.has(k)) throw rpc.ErrGRPCDuplicateKey;
      if (intersects(dels, Buffer.from(k, 'latin1'))) throw rpc.ErrGRPCDuplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const req of reqs) {
    const p = req.request_put;
    if (!p) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k)) throw rpc.ErrGRPCDuplicateKey;
    if (intersects(dels, p.key)) throw rpc.ErrGRPCDuplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}

function isTxnReadonly(r: TxnRequest): boolean {
  const ro = (ops: RequestOp[]): boolean =>
    ops.every((u) => (u.request_txn ? isTxnReadonly(u.request_txn) : !u.request_put && !u.request_delete_range));
  return ro(r.success) && ro(r.failure);
}

function isTxnSerializable(r: TxnRequest): boolean {
  const ser = (ops: RequestOp[]): boolean =>
    ops.every((u) => (u.request_range ? u.request_range.serializable : u.request_txn ? isTxnSerializable(u.request_txn) : true));
  return ser(r.success) && ser(r.failure);
}
