// The internal request carried in a Raft log entry (etcd's InternalRaftRequest, same field names), and its
// codec. The payloads are the decoded protobuf requests themselves (keys/values as Buffers, int64 fields as
// decimal strings), so nothing is lost in translation; msgpackr encodes them compactly.

import { Packr } from 'msgpackr';
import type {
  AlarmRequest,
  CompactionRequest,
  DeleteRangeRequest,
  LeaseGrantRequest,
  LeaseRevokeRequest,
  PutRequest,
  RangeRequest,
  TxnRequest,
} from '../api/types';

export interface InternalRequest {
  /** Request ID: unique per member and across its restarts, so a replayed entry never answers a new waiter. */
  ID: number;
  range?: RangeRequest;
  put?: PutRequest;
  delete_range?: DeleteRangeRequest;
  txn?: TxnRequest;
  compaction?: CompactionRequest;
  lease_grant?: LeaseGrantRequest;
  lease_revoke?: LeaseRevokeRequest;
  lease_checkpoint?: { checkpoints: Array<{ ID: string; remaining_TTL: number }> };
  alarm?: AlarmRequest;
  cluster_version_set?: { ver: string };
  cluster_member_attr_set?: { member_ID: string; member_attributes: { name: string; client_urls: string[] } };
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeRequest(r: InternalRequest): Buffer {
  return packr.pack(r);
}

export function decodeRequest(data: Buffer): InternalRequest {
  return packr.unpack(data) as InternalRequest;
}

/**
 * Request IDs as etcd's idutil generator shapes them, kept below 2^53 so they stay exact as JS numbers:
 * 8 bits of the member ID, then 45 bits that start at the current time in units of 1/8 ms and count up.
 * Restarting never reuses an ID unless a member issued more than 8 requests per millisecond on average
 * over its whole previous life.
 */
export class IdGenerator {
  private readonly prefix: number;
  private suffix: number;
  constructor(memberId: bigint, nowMs: number) {
    this.prefix = Number(memberId & 0xffn) * 2 ** 45;
    this.suffix = (nowMs * 8) % 2 ** 45;
  }
  next(): number {
    this.suffix = (this.suffix + 1) % 2 ** 45;
    return this.prefix + this.suffix;
  }
}
