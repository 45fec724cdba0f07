// Protobuf encode/decode of a RangeResponse with 1,000 keys (40-byte keys, 256-byte values): with protobufjs types
// from proto/ (what the load generator uses), and with the server's own @grpc/proto-loader serialisers from
// src/api/proto.ts loadApi() (what a Range response costs our server on the wire).

import { loadApi } from '../../src/api/proto';
import { pb } from '../lib/proto';
import { done, measure } from './harness';

async function main(): Promise<void> {
  const kvs = Array.from({ length: 1000 }, (_, i) => ({
    key: Buffer.from(`/registry/pods/ns-${String(i % 100).padStart(3, '0')}/pod-${String(i).padStart(6, '0')}`),
    create_revision: 1000 + i,
    mod_revision: 5000 + i,
    version: 3,
    value: Buffer.alloc(256, i & 0xff),
    lease: 0,
  }));
  const response = { header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 123456, raft_term: 4 }, kvs, more: true, count: 5000 };
  const t = pb().RangeResponse;
  const encoded = Buffer.from(t.encode(t.fromObject(response)).finish());
  await measure('protobufjs RangeResponse encode (1,000 kvs)', 'messages', 1, () => t.encode(t.fromObject(response)).finish(), `${encoded.length} bytes`);
  await measure('protobufjs RangeResponse decode (1,000 kvs)', 'messages', 1, () => t.decode(encoded));
  const method = (loadApi().defs['etcdserverpb.KV'] as Record<string, { responseSerialize: (o: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown }>).Range!;
  await measure('proto-loader (server) RangeResponse serialize', 'messages', 1, () => method.responseSerialize(response));
  await measure('proto-loader (server) RangeResponse deserialize', 'messages', 1, () => method.responseDeserialize(encoded));
  done();
}

void main();
