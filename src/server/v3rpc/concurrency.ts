// v3lockpb.Lock and v3electionpb.Election, served as etcd serves them: etcd implements both on its own KV
// with the clientv3 concurrency recipes (Mutex, Election); we run the same recipes against the server core.
// Keys are `<name>/<lease ID in hex>`; the holder/leader is the key with the lowest create revision under
// `<name>/`, and a waiter waits for every key created before its own to be deleted (concurrency waitDeletes).

import type * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdServer } from '../etcd-server';
import type { RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse } from '../../api/types';
import { CompareResult, CompareTarget, SortOrder, SortTarget } from '../../api/types';
import { EventType } from '../../mvcc/types';
import { prefixEnd } from '../../util/bytes';
import { big, num } from '../apply';
import { checkQuota } from './kv';
import { unary } from './util';
import { toGrpcError } from './errors';
import { WireError } from '../../api/rpctypes';

// v3election errors are plain Go errors in etcd, so they reach clients as UNKNOWN with these texts.
const ErrElectionNotLeader = plain('election: not leader');
const ErrElectionNoLeader = plain('election: no leader');
const ErrMissingLeaderKey = plain('"leader" field must be provided');

function plain(message: string): WireError {
  return new WireError(Status.UNKNOWN, message);
}

interface LeaderKey {
  name: Buffer;
  key: Buffer;
  rev: string | number;
  lease: string | number;
}

export function lockService(srv: EtcdServer, logger: Logger) {
  const r = new Recipes(srv);
  return {
    Lock: unary(logger, async (req: { name: Buffer; lease: string }, call: grpc.ServerUnaryCall<unknown, unknown>) => {
      const { key, header } = await r.acquire(req.name, big(req.lease), Buffer.alloc(0), call);
      return { header, key };
    }),
    Unlock: unary(logger, async (req: { key: Buffer }) => {
      const res = await r.txn({ compare: [], success: [{ request_delete_range: { key: req.key, range_end: Buffer.alloc(0), prev_kv: false } }], failure: [] });
      return { header: res.header };
    }),
  };
}

export function electionService(srv: EtcdServer, logger: Logger) {
  const r = new Recipes(srv);
  return {
    Campaign: unary(logger, async (req: { name: Buffer; lease: string; value: Buffer }, call: grpc.ServerUnaryCall<unknown, unknown>) => {
      const lease = big(req.lease);
      const { key, rev, header } = await r.acquire(req.name, lease, req.value, call);
      return { header, leader: { name: req.name, key, rev, lease: lease.toString() } };
    }),
    Proclaim: unary(logger, async (req: { leader: LeaderKey | null; value: Buffer }) => {
      if (!req.leader) throw ErrMissingLeaderKey;
      const l = req.leader;
      const put = { key: l.key, value: req.value, lease: String(l.lease), prev_kv: false, ignore_value: false, ignore_lease: false };
      await checkQuota(srv, { put });
      const res = await r.txn({
        compare: [cmpCreate(l.key, num(l.rev))],
        success: [{ request_put: put }],
        failure: [],
      });
      if (!res.succeeded) throw ErrElectionNotLeader;
      return { header: res.header };
    }),
    Leader: unary(logger, async (req: { name: Buffer }) => {
      await srv.linearizableReadNotify();
      const rr = await r.first(prefixOf(req.name));
      const kv = rr.kvs[0];
      if (!kv) throw ErrElectionNoLeader;
      return { header: rr.header, kv };
    }),
    Resign: unary(logger, async (req: { leader: LeaderKey | null }) => {
      if (!req.leader) throw ErrMissingLeaderKey;
      const l = req.leader;
      const res = await r.txn({
        compare: [cmpCreate(l.key, num(l.rev))],
        success: [{ request_delete_range: { key: l.key, range_end: Buffer.alloc(0), prev_kv: false } }],
        failure: [],
      });
      return { header: res.header };
    }),
    Observe: (call: grpc.ServerWritableStream<{ name: Buffer }, unknown>) => {
      r.observe(prefixOf(call.request.name), call).catch((err) => {
        if (!call.cancelled) call.emit('error', toGrpcError(err, logger));
      });
    },
  };
}

function prefixOf(name: Buffer): Buffer {
  return Buffer.concat([name, Buffer.from('/')]);
}

function cmpCreate(key: Buffer, rev: number) {
  return { result: CompareResult.EQUAL, target: CompareTarget.CREATE, key, create_revision: rev, range_end: Buffer.alloc(0) };
}

function rangeReq(key: Buffer, extra: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    range_end: Buffer.alloc(0),
    limit: 0,
    revision: 0,
    sort_order: SortOrder.NONE,
    sort_target: SortTarget.KEY,
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: 0,
    max_mod_revision: 0,
    min_create_revision: 0,
    max_create_revision: 0,
    ...extra,
  };
}

class Recipes {
  constructor(private readonly srv: EtcdServer) {}

  async txn(t: TxnRequest): Promise<TxnResponse> {
    const res = await this.srv.propose({ txn: t });
    if (res.kind !== 'txn') throw new Error('unexpected apply result for txn');
    return res.resp;
  }

  /** clientv3.WithFirstCreate on a prefix: the key with the lowest create revision. */
  first(pfx: Buffer): Promise<RangeResponse> {
    return this.srv.applier.range(this.srv.store, rangeReq(pfx, { range_end: prefixEnd(pfx), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 }));
  }

  /** Mutex.Lock / Election.Campaign: create our key if missing, then wait for every earlier key to go. */
  async acquire(name: Buffer, lease: bigint, value: Buffer, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<{ key: Buffer; rev: number; header: ResponseHeader }> {
    const pfx = prefixOf(name);
    const key = Buffer.concat([pfx, Buffer.from(lease.toString(16))]);
    const put: RequestOp = { request_put: { key, value, lease: lease.toString(), prev_kv: false, ignore_value: false, ignore_lease: false } };
    await checkQuota(this.srv, { put: put.request_put! });
    const res = await this.txn({ compare: [cmpCreate(key, 0)], success: [put], failure: [{ request_range: rangeReq(key) }] });
    let rev = num(res.header.revision);
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv) throw new Error('lock key vanished');
      rev = num(kv.create_revision);
      if (!kv.value.equals(value)) {
        // Election.Campaign with a new value on an existing key proclaims it.
        const p = await this.txn({ compare: [cmpCreate(key, rev)], success: [put], failure: [] });
        if (!p.succeeded) throw ErrElectionNotLeader;
      }
    }
    const header = await this.waitDeletes(pfx, rev - 1, call);
    return { key, rev, header: header.revision === undefined ? res.header : { ...res.header, revision: header.revision } };
  }

  /** concurrency.waitDeletes: until no key under pfx has create_revision <= maxCreateRev. */
  private async waitDeletes(pfx: Buffer, maxCreateRev: number, call: { cancelled: boolean }): Promise<ResponseHeader> {
    for (;;) {
      if (call.cancelled) throw { code: Status.CANCELLED, details: 'context canceled', message: 'context canceled' };
      await this.srv.linearizableReadNotify();
      const rr = await this.srv.applier.range(
        this.srv.store,
        rangeReq(pfx, { range_end: prefixEnd(pfx), sort_target: SortTarget.CREATE, sort_order: SortOrder.DESCEND, max_create_revision: maxCreateRev, limit: 1 }),
      );
      const last = rr.kvs[0];
      if (!last) return rr.header;
      await this.waitFor(last.key, null, num(rr.header.revision), [EventType.Delete], call);
    }
  }

  /**
   * Resolves at the first watch response on [key, end) from startRev with an event of a wanted type (any type
   * when `types` is empty), or on a compaction cancel, or once the client's call is cancelled.
   */
  private waitFor(key: Buffer, end: Buffer | null, startRev: number, types: EventType[], call: { cancelled: boolean }): Promise<void> {
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearInterval(poll);
        ws.close();
        resolve();
      };
      const ws = this.srv.store.newWatchStream((resp) => {
        if (resp.compactRevision !== 0 || resp.events.some((e) => types.length === 0 || types.includes(e.type))) finish();
        return true;
      });
      // grpc-js reports cancellation as a flag and an event on the call; polling the flag keeps this generic.
      const poll = setInterval(() => call.cancelled && finish(), 200);
      ws.watch({ id: 0, key, end, startRev });
      this.srv.kickWatchSync();
    });
  }

  /** Election.Observe: send the leader, then every change of the leader key, following successions. */
  async observe(pfx: Buffer, call: grpc.ServerWritableStream<{ name: Buffer }, unknown>): Promise<void> {
    let lastSent: Buffer | null = null;
    while (!call.cancelled) {
      await this.srv.linearizableReadNotify();
      const rr = await this.first(pfx);
      const kv = rr.kvs[0];
      if (!kv) {
        // No leader: wait for any put under the prefix.
        await this.waitFor(pfx, prefixEnd(pfx), num(rr.header.revision) + 1, [EventType.Put], call);
        continue;
      }
      const enc = Buffer.concat([kv.key, Buffer.from(`:${kv.mod_revision}`)]);
      if (!lastSent || !lastSent.equals(enc)) {
        call.write({ header: rr.header, kv });
        lastSent = enc;
      }
      await this.waitFor(kv.key, null, num(rr.header.revision) + 1, [], call);
    }
  }
}
