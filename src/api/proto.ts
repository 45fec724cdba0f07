// Loads the etcd v3 API from proto/ once. Options, decided once for the whole server:
// - keepCase: field names exactly as etcd's .proto files spell them (range_end, create_revision, dbSize, ID);
// - longs: String on decode, so int64/uint64 never lose precision; the gateway converts revisions to numbers
//   (after range checks) and IDs to bigint. On encode, protobufjs accepts numbers and decimal strings;
// - bytes: Buffer, so keys and values stay bytes;
// - defaults: true, so a zero-valued field that arrived absent (proto3) decodes as 0/''/empty, never undefined;
// - oneofs: true, so a oneof's case is readable (request_op.request, compare.target_union).

import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

export const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');

export const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: { defs: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } | undefined;

export function loadApi(): { defs: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } {
  if (!cached) {
    const defs = protoLoader.loadSync(['rpc.proto', 'kv.proto', 'auth.proto', 'v3election.proto', 'v3lock.proto'], loaderOptions);
    cached = { defs, grpcObject: grpc.loadPackageDefinition(defs) };
  }
  return cached;
}

/** The service definition of `package.Service`, e.g. serviceDefinition('etcdserverpb.KV'). */
export function serviceDefinition(name: string): grpc.ServiceDefinition {
  const def = loadApi().defs[name];
  if (!def || !('Range' in def || Object.values(def).some((m) => typeof m === 'object' && m !== null && 'path' in m))) {
    throw new Error(`no service ${name} in proto/`);
  }
  return def as grpc.ServiceDefinition;
}
