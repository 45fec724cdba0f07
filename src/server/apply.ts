// Applies committed log entries to the state machine (etcd's applierV3backend), and serves reads with the
// same code. Every entry is applied inside one MVCC write transaction that also records the entry's index
// (the consistent index), so a crash between apply and the backend flush replays the entry, and replaying
// an already-applied entry is skipped: apply is idempotent.
//
// Apply never reads a clock: lease expiry arrives as a LeaseRevoke entry proposed by the leader.

import type { MvccStore, TxnWrite } from '../mvcc';
import type { KeyValue, RangeOptions, RangeResult } from '../mvcc/types';
import { DomainError } from '../util/errors';
import { Lessor, ErrLeaseNotFound } from '../lease/lessor';
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PbKeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
  type ResponseHeader,
  AlarmAction,
  type AlarmRequest,
  type AlarmMember,
  AlarmType,
} from '../api/types';
import type { InternalRequest } from './request';
import { ErrCorrupt, ErrNoSpace } from './errors';
import { corruptValue } from './failpoints';
import { costTxn } from './maintenance/quota';

export const ErrKeyNotFound = 'ErrKeyNotFound';

/** Anything that can serve a Range: the store (a read at the current revision) or an open write txn. */
interface ReadView {
  range(key: Buffer, end: Buffer | null, opts?: RangeOptions): Promise<RangeResult>;
}

export function toPbKv(kv: KeyValue, keysOnly = false): PbKeyValue {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: keysOnly ? EMPTY : kv.value,
    lease: kv.lease === 0n ? 0 : kv.lease.toString(),
  };
}

const EMPTY = Buffer.alloc(0);

/** etcd mkGteRange + the nil/empty distinction: '' => single key (null); '\0' => every key >= key (empty). */
export function rangeEnd(end: Buffer | null | undefined): Buffer | null {
  if (!end || end.length === 0) return null;
  if (end.length === 1 && end[0] === 0) return EMPTY;
  return end;
}

/** int64 field (decimal string or number) to a JS number. Values beyond 2^53 lose precision, which only
 * matters for revisions that are far beyond any reachable store revision and are rejected as such. */
export function num(v: string | number | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(v);
}

export function big(v: string | number | null | undefined): bigint {
  if (v === null || v === undefined || v === '') return 0n;
  return BigInt(v);
}

export type ApplyResult =
  | { kind: 'put'; resp: PutResponse }
  | { kind: 'delete'; resp: DeleteRangeResponse }
  | { kind: 'txn'; resp: TxnResponse }
  | { kind: 'compact'; rev: number; done: Promise<void> }
  // rev: the store revision right after the apply, for the response header (etcd fills LeaseGrant's and
  // LeaseRevoke's headers in the applier, not when the waiting request resumes, by which time later entries may
  // have been applied).
  | { kind: 'lease_grant'; id: bigint; ttl: number; rev: number }
  | { kind: 'lease_revoke'; rev: number }
  | { kind: 'alarm'; alarms: AlarmMember[] }
  | { kind: 'none' };

export interface ApplierHooks {
  /** Called after a cluster version entry is applied. */
  onClusterVersion(ver: string): void;
  /** Called to apply a member attributes entry (within the entry's write transaction). */
  onMemberAttributes(tw: TxnWrite, memberId: bigint, name: string, clientUrls: string[]): void;
  /** The header for a response at revision `rev` (cluster/member IDs and raft term filled by the server). */
  header(rev: number): ResponseHeader;
  /** Called when an alarm type becomes active (first member) or inactive (last member), for the log. */
  onAlarmChange?(change: 'raised' | 'disarmed', m: AlarmMember): void;
}

export class Applier {
  /** Active alarms: memberID (decimal) + ':' + type -> alarm. */
  readonly alarms = new Map<string, AlarmMember>();
  /** Failpoint corruptKV (failpoints.ts): store every Put with a corrupted value. Test-only. */
  corruptValues = false;

  constructor(
    private readonly store: MvccStore,
    private readonly lessor: Lessor,
    private readonly hooks: ApplierHooks,
  ) {}

  /** Apply one committed request at log index `index`. Throws a DomainError for a request that fails
   * (nothing is written then, except the consistent index). */
  async apply(index: number, r: InternalRequest): Promise<ApplyResult> {
    const tw = this.store.write(index);
    try {
      this.alarmGate(r);
      if (r.put) return { kind: 'put', resp: await this.put(tw, r.put) };
      if (r.delete_range) return { kind: 'delete', resp: await this.deleteRange(tw, r.delete_range) };
      if (r.txn) return { kind: 'txn', resp: await this.txn(tw, r.txn) };
      if (r.lease_grant) {
        const ttl = num(r.lease_grant.TTL);
        const id = big(r.lease_grant.ID);
        const l = this.lessor.grant(id, ttl);
        tw.auxPut('lease', leaseKey(id), leaseValue(l.ttl, 0));
        return { kind: 'lease_grant', id, ttl: l.ttl, rev: tw.rev - 1 };
      }
      if (r.lease_checkpoint) {
        for (const c of r.lease_checkpoint.checkpoints) {
          const id = big(c.ID);
          const l = this.lessor.lookup(id);
          if (!l) continue;
          this.lessor.checkpoint(id, c.remaining_TTL);
          tw.auxPut('lease', leaseKey(id), leaseValue(l.ttl, c.remaining_TTL));
        }
        return { kind: 'none' };
      }
      if (r.lease_revoke) {
        const id = big(r.lease_revoke.ID);
        const keys = this.lessor.revoke(id);
        // All attached keys go in one revision, sorted, as etcd's lessor.Revoke does.
        for (const k of keys) tw.deleteRange(k, null);
        this.lessor.remove(id);
        tw.auxDelete('lease', leaseKey(id));
        return { kind: 'lease_revoke', rev: keys.length > 0 ? tw.rev : tw.rev - 1 };
      }
      if (r.alarm) return { kind: 'alarm', alarms: this.alarm(tw, r.alarm) };
      if (r.cluster_version_set) {
        tw.auxPut('meta', Buffer.from('clusterVersion'), Buffer.from(r.cluster_version_set.ver));
        this.hooks.onClusterVersion(r.cluster_version_set.ver);
        return { kind: 'none' };
      }
      if (r.cluster_member_attr_set) {
        const a = r.cluster_member_attr_set;
        this.hooks.onMemberAttributes(tw, BigInt(a.member_ID), a.member_attributes.name, a.member_attributes.client_urls);
        return { kind: 'none' };
      }
      if (r.compaction) {
        const rev = num(r.compaction.revision);
        // Compaction validates and installs the cut itself; the consistent index is persisted by the txn.
        tw.end();
        const { done } = await this.store.compact(rev, index);
        return { kind: 'compact', rev, done };
      }
      return { kind: 'none' };
    } finally {
      if (!r.compaction) tw.end();
    }
  }

  /**
   * The appliers etcd installs while an alarm is active, as one check. NOSPACE (etcd applierV3Capped): Put,
   * a Txn whose quota cost is not zero, and LeaseGrant fail with ErrNoSpace. CORRUPT (etcd applierV3Corrupt):
   * Put and DeleteRange fail with ErrCorrupt (a Txn still applies, exactly as in etcd 3.4.23). Throws before
   * anything is written, so only the consistent index moves.
   */
  private alarmGate(r: InternalRequest): void {
    if (this.alarms.size === 0) return;
    if ((r.put || r.delete_range) && this.hasAlarm(AlarmType.CORRUPT)) throw new DomainError(ErrCorrupt, 'etcdserver: corrupt cluster');
    if ((r.put || r.lease_grant || (r.txn && costTxn(r.txn) > 0)) && this.hasAlarm(AlarmType.NOSPACE)) {
      throw new DomainError(ErrNoSpace, 'etcdserver: mvcc: database space exceeded');
    }
  }

  // --- reads (also used inside txns) ---

  async range(rv: ReadView, r: RangeRequest): Promise<RangeResponse> {
    const limitReq = num(r.limit);
    const needAll =
      r.sort_order !== SortOrder.NONE ||
      num(r.min_mod_revision) !== 0 ||
      num(r.max_mod_revision) !== 0 ||
      num(r.min_create_revision) !== 0 ||
      num(r.max_create_revision) !== 0;
    let limit = needAll ? 0 : limitReq;
    if (limit > 0) limit = limit + 1; // one extra to compute `more`
    const rr = await rv.range(r.key, rangeEnd(r.range_end), { limit, rev: num(r.revision), count: r.count_only });
    let kvs = rr.kvs;
    const maxMod = num(r.max_mod_revision);
    const minMod = num(r.min_mod_revision);
    const maxCreate = num(r.max_create_revision);
    const minCreate = num(r.min_create_revision);
    if (maxMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision > maxMod));
    if (minMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision < minMod));
    if (maxCreate !== 0) kvs = kvs.filter((kv) => !(kv.createRevision > maxCreate));
    if (minCreate !== 0) kvs = kvs.filter((kv) => !(kv.createRevision < minCreate));

    // Mirrors etcd applierV3backend.Range: a non-key target with no order sorts ascending.
    let order = r.sort_order;
    if (r.sort_target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
    if (order !== SortOrder.NONE) {
      const cmp = sorter(r.sort_target);
      kvs = kvs === rr.kvs ? kvs.slice() : kvs;
      kvs.sort(order === SortOrder.DESCEND ? (a, b) => cmp(b, a) : cmp);
    }
    let more = false;
    if (limitReq > 0 && kvs.length > limitReq) {
      kvs = kvs.slice(0, limitReq);
      more = true;
    }
    return {
      header: this.hooks.header(rr.rev),
      kvs: kvs.map((kv) => toPbKv(kv, r.keys_only)),
      more,
      count: rr.count,
    };
  }

  /** A read-only Txn (etcd serves those without the log, after a linearizable read barrier). */
  async readOnlyTxn(rt: TxnRequest): Promise<TxnResponse> {
    const ok = await this.compares(this.store, rt.compare);
    const ops = ok ? rt.success : rt.failure;
    await this.checkRequests(this.store, ops, false);
    const responses: ResponseOp[] = [];
    for (const op of ops) responses.push(await this.readOp(op));
    return { header: this.hooks.header(this.store.currentRev), succeeded: ok, responses };
  }

  private async readOp(op: RequestOp): Promise<ResponseOp> {
    if (op.request_range) return { response_range: await this.range(this.store, op.request_range) };
    if (op.request_txn) return { response_txn: await this.readOnlyTxn(op.request_txn) };
    throw new Error('readOp: a write in a read-only txn');
  }

  // --- writes ---

  private async put(tw: TxnWrite, p: PutRequest, inTxn = false): Promise<PutResponse> {
    let lease = big(p.lease);
    let value = p.value;
    const resp: PutResponse = { header: this.hooks.header(0) };
    let prev: KeyValue | undefined;
    if (p.prev_kv || p.ignore_value || p.ignore_lease) {
      const rr = await tw.range(p.key, null, {});
      prev = rr.kvs[0];
    }
    if (!inTxn) {
      // Inside a txn these were checked for the whole branch before anything was written.
      if ((p.ignore_value || p.ignore_lease) && !prev) throw new DomainError(ErrKeyNotFound, 'etcdserver: key not found');
      if (!p.ignore_lease && lease !== 0n && !this.lessor.lookup(lease)) throw new DomainError(ErrLeaseNotFound, 'lease not found');
    }
    if (p.ignore_value && prev) value = prev.value;
    if (p.ignore_lease && prev) lease = prev.lease;
    if (p.prev_kv && prev) resp.prev_kv = toPbKv(prev);
    if (this.corruptValues) value = corruptValue(value);
    tw.put(p.key, value, lease);
    if (!inTxn) resp.header = this.hooks.header(tw.rev);
    return resp;
  }

  private async deleteRange(tw: TxnWrite, d: DeleteRangeRequest, inTxn = false): Promise<DeleteRangeResponse> {
    const end = rangeEnd(d.range_end);
    const resp: DeleteRangeResponse = { header: this.hooks.header(0), deleted: 0, prev_kvs: [] };
    if (d.prev_kv) {
      const rr = await tw.range(d.key, end, {});
      resp.prev_kvs = rr.kvs.map((kv) => toPbKv(kv));
    }
    const n = tw.deleteRange(d.key, end);
    resp.deleted = n;
    // etcd: the header revision is the store revision after the txn (unchanged when nothing was deleted).
    if (!inTxn) resp.header = this.hooks.header(n > 0 ? tw.rev : tw.rev - 1);
    return resp;
  }

  private async txn(tw: TxnWrite, rt: TxnRequest): Promise<TxnResponse> {
    // Mirrors etcd applierV3backend.Txn: decide every branch (nested ones too) first, validate the chosen
    // requests against the current state, and only then execute, so a failing check writes nothing.
    const path: boolean[] = [];
    await this.decidePath(tw, rt, path);
    await this.checkTxnPath(tw, rt, path.slice());
    const resp = await this.execTxn(tw, rt, path);
    const rev = tw.changes().length > 0 ? tw.rev : tw.rev - 1;
    setTxnHeaders(resp, this.hooks.header(rev));
    return resp;
  }

  private async decidePath(rv: ReadView, rt: TxnRequest, path: boolean[]): Promise<void> {
    const ok = await this.compares(rv, rt.compare);
    path.push(ok);
    for (const op of ok ? rt.success : rt.failure) if (op.request_txn) await this.decidePath(rv, op.request_txn, path);
  }

  private async checkTxnPath(rv: ReadView, rt: TxnRequest, path: boolean[]): Promise<void> {
    const ok = path.shift()!;
    const ops = ok ? rt.success : rt.failure;
    await this.checkRequests(rv, ops, true, path);
  }

  /** etcd checkRequests: put with ignore_* needs an existing key, a lease must exist, range revisions must be valid. */
  private async checkRequests(rv: ReadView, ops: RequestOp[], writes: boolean, path: boolean[] = []): Promise<void> {
    for (const op of ops) {
      if (op.request_put && writes) {
        const p = op.request_put;
        if (p.ignore_value || p.ignore_lease) {
          const rr = await rv.range(p.key, null, {});
          if (rr.kvs.length === 0) throw new DomainError(ErrKeyNotFound, 'etcdserver: key not found');
        }
        const lease = big(p.lease);
        if (!p.ignore_lease && lease !== 0n && !this.lessor.lookup(lease)) throw new DomainError(ErrLeaseNotFound, 'lease not found');
      } else if (op.request_range) {
        const rev = num(op.request_range.revision);
        if (rev > 0) await rv.range(op.request_range.key, null, { rev, limit: 1, count: true });
      } else if (op.request_txn) {
        if (writes) await this.checkTxnPath(rv, op.request_txn, path);
        else {
          const ok = await this.compares(rv, op.request_txn.compare);
          await this.checkRequests(rv, ok ? op.request_txn.success : op.request_txn.failure, false);
        }
      }
    }
  }

  private async execTxn(tw: TxnWrite, rt: TxnRequest, path: boolean[]): Promise<TxnResponse> {
    const ok = path.shift()!;
    const ops = ok ? rt.success : rt.failure;
    const responses: ResponseOp[] = [];
    for (const op of ops) {
      if (op.request_range) responses.push({ response_range: await this.range(tw, op.request_range) });
      else if (op.request_put) responses.push({ response_put: await this.put(tw, op.request_put, true) });
      else if (op.request_delete_range) responses.push({ response_delete_range: await this.deleteRange(tw, op.request_delete_range, true) });
      else if (op.request_txn) responses.push({ response_txn: await this.execTxn(tw, op.request_txn, path) });
    }
    return { header: this.hooks.header(0), succeeded: ok, responses };
  }

  /** All compares must hold (etcd applyCompares). */
  async compares(rv: ReadView, cs: Compare[]): Promise<boolean> {
    for (const c of cs) if (!(await this.compare(rv, c))) return false;
    return true;
  }

  private async compare(rv: ReadView, c: Compare): Promise<boolean> {
    let rr: RangeResult;
    try {
      rr = await rv.range(c.key, rangeEnd(c.range_end), {});
    } catch {
      return false;
    }
    if (rr.kvs.length === 0) {
      // A VALUE compare on a missing key always fails; other targets compare against a zero KeyValue.
      if (c.target === CompareTarget.VALUE) return false;
      return compareKv(c, ZERO_KV);
    }
    for (const kv of rr.kvs) if (!compareKv(c, kv)) return false;
    return true;
  }

  // --- alarms ---

  private alarm(tw: TxnWrite, a: AlarmRequest): AlarmMember[] {
    const member = String(a.memberID);
    switch (a.action) {
      case AlarmAction.GET:
        return this.listAlarms(a.alarm);
      case AlarmAction.ACTIVATE: {
        if (a.alarm === AlarmType.NONE) return [];
        const k = `${member}:${a.alarm}`;
        const m: AlarmMember = { memberID: member, alarm: a.alarm };
        if (!this.alarms.has(k)) {
          const first = !this.hasAlarm(a.alarm);
          this.alarms.set(k, m);
          tw.auxPut('alarm', Buffer.from(k), Buffer.alloc(0));
          if (first) this.hooks.onAlarmChange?.('raised', m);
        }
        return [m];
      }
      case AlarmAction.DEACTIVATE: {
        const k = `${member}:${a.alarm}`;
        const m = this.alarms.get(k);
        if (!m) return [];
        this.alarms.delete(k);
        tw.auxDelete('alarm', Buffer.from(k));
        if (!this.hasAlarm(a.alarm)) this.hooks.onAlarmChange?.('disarmed', m);
        return [m];
      }
    }
    return [];
  }

  listAlarms(type: AlarmType = AlarmType.NONE): AlarmMember[] {
    const out: AlarmMember[] = [];
    for (const m of this.alarms.values()) if (type === AlarmType.NONE || m.alarm === type) out.push(m);
    return out;
  }

  hasAlarm(type: AlarmType): boolean {
    for (const m of this.alarms.values()) if (m.alarm === type) return true;
    return false;
  }

  restoreAlarm(k: string): void {
    const [member, type] = k.split(':');
    if (member === undefined || type === undefined) return;
    this.alarms.set(k, { memberID: member, alarm: Number(type) as AlarmType });
  }
}

const ZERO_KV: KeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };

/** etcd compareKV: compare the chosen field, then interpret by result. */
function compareKv(c: Compare, kv: KeyValue): boolean {
  let result: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv.value, c.value ?? EMPTY);
      break;
    case CompareTarget.CREATE:
      result = cmpNum(kv.createRevision, num(c.create_revision));
      break;
    case CompareTarget.MOD:
      result = cmpNum(kv.modRevision, num(c.mod_revision));
      break;
    case CompareTarget.VERSION:
      result = cmpNum(kv.version, num(c.version));
      break;
    case CompareTarget.LEASE: {
      const l = big(c.lease);
      result = kv.lease < l ? -1 : kv.lease > l ? 1 : 0;
      break;
    }
    default:
      result = 0;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
  }
  return true;
}

function cmpNum(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sorter(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}

/** etcd sets every nested response header to the txn's revision. */
function setTxnHeaders(resp: TxnResponse, header: ResponseHeader): void {
  resp.header = header;
  for (const r of resp.responses) {
    if (r.response_range) r.response_range.header = { ...header, revision: r.response_range.header.revision };
    if (r.response_put) r.response_put.header = header;
    if (r.response_delete_range) r.response_delete_range.header = header;
    if (r.response_txn) setTxnHeaders(r.response_txn, header);
  }
}

export function leaseKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(id);
  return b;
}

/** A lease record: TTL (i64 seconds), then the checkpointed remaining TTL (i64 seconds, 0 = none). */
function leaseValue(ttl: number, remainingTtl: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64BE(BigInt(ttl));
  b.writeBigInt64BE(BigInt(remainingTtl), 8);
  return b;
}

export function decodeLease(k: Buffer, v: Buffer): { id: bigint; ttl: number; remainingTtl: number } {
  return { id: k.readBigInt64BE(0), ttl: Number(v.readBigInt64BE(0)), remainingTtl: v.length >= 16 ? Number(v.readBigInt64BE(8)) : 0 };
}
