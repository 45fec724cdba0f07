// TypeScript shapes of the decoded etcd protobuf messages we handle, as @grpc/proto-loader produces them with
// the options in proto.ts (keepCase names; int64/uint64 as decimal strings on decode; numbers or strings
// accepted on encode; bytes as Buffer; enums as numbers; absent fields filled with defaults).

export type Int64 = string | number;

export interface ResponseHeader {
  cluster_id: Int64;
  member_id: Int64;
  revision: Int64;
  raft_term: Int64;
}

export interface PbKeyValue {
  key: Buffer;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Buffer;
  lease: Int64;
}

export enum SortOrder { NONE = 0, ASCEND = 1, DESCEND = 2 }
export enum SortTarget { KEY = 0, VERSION = 1, CREATE = 2, MOD = 3, VALUE = 4 }

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Int64;
  revision: Int64;
  sort_order: SortOrder;
  sort_target: SortTarget;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: PbKeyValue[];
  more: boolean;
  count: Int64;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv?: PbKeyValue | null;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: Int64;
  prev_kvs: PbKeyValue[];
}

export interface RequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: RangeRequest | null;
  request_put?: PutRequest | null;
  request_delete_range?: DeleteRangeRequest | null;
  request_txn?: TxnRequest | null;
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export enum CompareResult { EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3 }
export enum CompareTarget { VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4 }

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  version?: Int64 | null;
  create_revision?: Int64 | null;
  mod_revision?: Int64 | null;
  value?: Buffer | null;
  lease?: Int64 | null;
  range_end: Buffer;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

export interface LeaseGrantRequest {
  TTL: Int64;
  ID: Int64;
}

export interface LeaseRevokeRequest {
  ID: Int64;
}

export enum AlarmAction { GET = 0, ACTIVATE = 1, DEACTIVATE = 2 }
export enum AlarmType { NONE = 0, NOSPACE = 1, CORRUPT = 2 }

export interface AlarmRequest {
  action: AlarmAction;
  memberID: Int64;
  alarm: AlarmType;
}

export interface AlarmMember {
  memberID: Int64;
  alarm: AlarmType;
}

export enum EventType { PUT = 0, DELETE = 1 }

export interface PbEvent {
  type: EventType;
  kv: PbKeyValue;
  prev_kv?: PbKeyValue | null;
}

export interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: Int64;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: Int64;
  fragment: boolean;
}

export interface WatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WatchCreateRequest | null;
  cancel_request?: { watch_id: Int64 } | null;
  progress_request?: object | null;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: Int64;
  created: boolean;
  canceled: boolean;
  compact_revision: Int64;
  cancel_reason: string;
  fragment: boolean;
  events: PbEvent[];
}
