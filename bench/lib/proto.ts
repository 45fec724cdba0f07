// The etcd v3 messages as protobufjs types, and the gRPC method paths, for the load generator.
//
// The generator does not use @grpc/proto-loader's object (de)serialisers on its hot path: they convert every message
// to and from plain objects with defaults filled in, which costs more CPU per request than the rest of the client.
// Instead requests are encoded once with protobufjs (or built from a template), and responses are kept as raw bytes
// and decoded only when the workload needs a field (a revision, a watch event). The gRPC method paths come from the
// server's own loadApi(), so both sides agree on the service names.

import path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR, loadApi } from '../../src/api/proto';

let root: protobuf.Root | undefined;

/** The protobufjs root of proto/ (rpc.proto and what it imports), field names as in the .proto files. */
export function protoRoot(): protobuf.Root {
  if (root === undefined) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
    r.loadSync(['rpc.proto', 'kv.proto'], { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(name);
}

/** The types the workloads use, looked up once. */
export interface Types {
  RangeRequest: protobuf.Type;
  RangeResponse: protobuf.Type;
  PutRequest: protobuf.Type;
  PutResponse: protobuf.Type;
  TxnRequest: protobuf.Type;
  TxnResponse: protobuf.Type;
  WatchRequest: protobuf.Type;
  WatchResponse: protobuf.Type;
  LeaseGrantRequest: protobuf.Type;
  LeaseGrantResponse: protobuf.Type;
  LeaseKeepAliveRequest: protobuf.Type;
  LeaseKeepAliveResponse: protobuf.Type;
  StatusRequest: protobuf.Type;
  StatusResponse: protobuf.Type;
  ResponseHeader: protobuf.Type;
}

let types: Types | undefined;

export function pb(): Types {
  if (types === undefined) {
    const t = (n: string): protobuf.Type => messageType(`etcdserverpb.${n}`);
    types = {
      RangeRequest: t('RangeRequest'),
      RangeResponse: t('RangeResponse'),
      PutRequest: t('PutRequest'),
      PutResponse: t('PutResponse'),
      TxnRequest: t('TxnRequest'),
      TxnResponse: t('TxnResponse'),
      WatchRequest: t('WatchRequest'),
      WatchResponse: t('WatchResponse'),
      LeaseGrantRequest: t('LeaseGrantRequest'),
      LeaseGrantResponse: t('LeaseGrantResponse'),
      LeaseKeepAliveRequest: t('LeaseKeepAliveRequest'),
      LeaseKeepAliveResponse: t('LeaseKeepAliveResponse'),
      StatusRequest: t('StatusRequest'),
      StatusResponse: t('StatusResponse'),
      ResponseHeader: t('ResponseHeader'),
    };
  }
  return types;
}

/** Encodes a plain object (keepCase field names; int64 as number or decimal string) with `type`. */
export function encode(type: protobuf.Type, obj: object): Buffer {
  const bytes = type.encode(type.fromObject(obj)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** int64 fields decode as Long (protobufjs with the long package) or number; revisions fit in a double. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  if (v !== null && typeof v === 'object' && 'toNumber' in v && typeof (v as { toNumber: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  return 0;
}

/** An int64 field as exact decimal text (Long, number or string in). For lease IDs, which exceed 2^53. */
export function int64Text(v: unknown): string {
  if (v === null || v === undefined) return '0';
  return String(v);
}

/** `/etcdserverpb.KV/Range` and friends, taken from the server's service definitions. */
export function methodPath(service: string, method: string): string {
  const def = loadApi().defs[`etcdserverpb.${service}`] as Record<string, { path?: string }> | undefined;
  const p = def?.[method]?.path;
  if (p === undefined) throw new Error(`no method ${service}.${method} in proto/`);
  return p;
}

export const paths = {
  get range(): string {
    return methodPath('KV', 'Range');
  },
  get put(): string {
    return methodPath('KV', 'Put');
  },
  get txn(): string {
    return methodPath('KV', 'Txn');
  },
  get watch(): string {
    return methodPath('Watch', 'Watch');
  },
  get leaseGrant(): string {
    return methodPath('Lease', 'LeaseGrant');
  },
  get leaseKeepAlive(): string {
    return methodPath('Lease', 'LeaseKeepAlive');
  },
  get status(): string {
    return methodPath('Maintenance', 'Status');
  },
};

/** Compare.CompareTarget and CompareResult as etcd numbers them. */
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
