// The wire encoding of a ConfChange entry's data: the protobuf encoding of etcd's raftpb.ConfChange, byte for byte as
// gogoproto's MarshalTo writes it, so that a WAL written here carries the same bytes etcd would write:
//
//   0x08 uvarint(id)  0x10 uvarint(type)  0x18 uvarint(nodeId)  [0x22 uvarint(len(context)) context]
//
// The context field is written only when non-empty (Go writes it when non-nil; after a round trip through the WAL
// the two are indistinguishable). The decoder accepts fields in any order and skips unknown ones, as protobuf does.

import { assert } from '../../util/assert';
import { type ConfChange, ConfChangeType } from '../types';

const maxUint64 = (1n << 64n) - 1n;

/** Encodes a ConfChange as etcd's raftpb.ConfChange.Marshal() does. */
export function encodeConfChange(cc: ConfChange): Buffer {
  assert(cc.id >= 0n && cc.id <= maxUint64, `conf change id ${cc.id} is not a uint64`);
  assert(cc.nodeId >= 0n && cc.nodeId <= maxUint64, `conf change node id ${cc.nodeId} is not a uint64`);
  const bytes: number[] = [];
  bytes.push(0x08);
  putUvarint(bytes, cc.id);
  bytes.push(0x10);
  putUvarint(bytes, BigInt(cc.type));
  bytes.push(0x18);
  putUvarint(bytes, cc.nodeId);
  if (cc.context.length > 0) {
    bytes.push(0x22);
    putUvarint(bytes, BigInt(cc.context.length));
    return Buffer.concat([Buffer.from(bytes), cc.context]);
  }
  return Buffer.from(bytes);
}

/** Decodes raftpb.ConfChange bytes. Throws an Error (not an assertion) on malformed input: the bytes come from a log. */
export function decodeConfChange(data: Buffer): ConfChange {
  const cc: ConfChange = { id: 0n, type: ConfChangeType.AddNode, nodeId: 0n, context: Buffer.alloc(0) };
  let pos = 0;
  const uvarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= data.length) throw new Error('confchange: truncated varint');
      const b = data[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
      if (shift > 63n) throw new Error('confchange: varint overflow');
    }
    return result & maxUint64;
  };
  while (pos < data.length) {
    const key = Number(uvarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = uvarint();
      if (field === 1) cc.id = v;
      else if (field === 2) cc.type = Number(v) as ConfChangeType;
      else if (field === 3) cc.nodeId = v;
    } else if (wire === 2) {
      const len = Number(uvarint());
      if (pos + len > data.length) throw new Error('confchange: truncated bytes field');
      const bytes = data.subarray(pos, pos + len);
      pos += len;
      if (field === 4) cc.context = Buffer.from(bytes);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`confchange: unsupported wire type ${wire}`);
    }
    if (pos > data.length) throw new Error('confchange: truncated field');
  }
  return cc;
}

function putUvarint(out: number[], v: bigint): void {
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}
