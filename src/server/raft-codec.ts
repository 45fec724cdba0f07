// The wire encoding of Raft messages between peers: a hand-written binary layout (fast, and exact for 64-bit
// IDs). The transport carries the bytes; a MsgSnap's snapshot data travels separately, streamed.
//
// Layout (big-endian; "num" = float64, exact for integers below 2^53; "id" = u64):
//   u8  version (1)
//   u8  type            id to        id from       num term     num logTerm   num index    num commit
//   u8  reject          num rejectHint
//   u32 context length, context bytes
//   u32 entry count, then per entry: num term, num index, u8 type, u32 data length, data bytes
//   u8  has snapshot; if 1: num index, num term, u32 voter count, ids, u32 learner count, ids
// A decoder checks the version and that it consumed the buffer exactly; anything else is a corrupt frame.

import { assert } from '../util/assert';
import { type Entry, type Message, type MessageType, type Snapshot } from '../raft';

const VERSION = 1;

export function encodeMessage(m: Message): Buffer {
  let size = 1 + 1 + 8 + 8 + 8 * 4 + 1 + 8 + 4 + m.context.length + 4 + 1;
  for (const e of m.entries) size += 8 + 8 + 1 + 4 + e.data.length;
  const cs = m.snapshot?.metadata.confState;
  if (m.snapshot) size += 8 + 8 + 4 + 8 * cs!.voters.length + 4 + 8 * cs!.learners.length;
  const b = Buffer.allocUnsafe(size);
  let o = 0;
  o = b.writeUInt8(VERSION, o);
  o = b.writeUInt8(m.type, o);
  o = b.writeBigUInt64BE(m.to, o);
  o = b.writeBigUInt64BE(m.from, o);
  o = b.writeDoubleBE(m.term, o);
  o = b.writeDoubleBE(m.logTerm, o);
  o = b.writeDoubleBE(m.index, o);
  o = b.writeDoubleBE(m.commit, o);
  o = b.writeUInt8(m.reject ? 1 : 0, o);
  o = b.writeDoubleBE(m.rejectHint, o);
  o = b.writeUInt32BE(m.context.length, o);
  o += m.context.copy(b, o);
  o = b.writeUInt32BE(m.entries.length, o);
  for (const e of m.entries) {
    o = b.writeDoubleBE(e.term, o);
    o = b.writeDoubleBE(e.index, o);
    o = b.writeUInt8(e.type, o);
    o = b.writeUInt32BE(e.data.length, o);
    o += e.data.copy(b, o);
  }
  if (m.snapshot) {
    o = b.writeUInt8(1, o);
    o = b.writeDoubleBE(m.snapshot.metadata.index, o);
    o = b.writeDoubleBE(m.snapshot.metadata.term, o);
    o = b.writeUInt32BE(cs!.voters.length, o);
    for (const id of cs!.voters) o = b.writeBigUInt64BE(id, o);
    o = b.writeUInt32BE(cs!.learners.length, o);
    for (const id of cs!.learners) o = b.writeBigUInt64BE(id, o);
  } else {
    o = b.writeUInt8(0, o);
  }
  assert(o === size, `encodeMessage: wrote ${o} of ${size} bytes`);
  return b;
}

export function decodeMessage(b: Buffer): Message {
  let o = 0;
  const need = (n: number) => {
    if (o + n > b.length) throw new Error(`raft message frame truncated at offset ${o} (need ${n} of ${b.length - o} bytes)`);
  };
  need(2);
  const version = b.readUInt8(o++);
  if (version !== VERSION) throw new Error(`raft message frame has unknown version ${version}`);
  const type = b.readUInt8(o++) as MessageType;
  need(8 * 6 + 1 + 8 + 4);
  const to = b.readBigUInt64BE(o);
  const from = b.readBigUInt64BE(o + 8);
  const term = b.readDoubleBE(o + 16);
  const logTerm = b.readDoubleBE(o + 24);
  const index = b.readDoubleBE(o + 32);
  const commit = b.readDoubleBE(o + 40);
  const reject = b.readUInt8(o + 48) === 1;
  const rejectHint = b.readDoubleBE(o + 49);
  const ctxLen = b.readUInt32BE(o + 57);
  o += 61;
  need(ctxLen + 4);
  const context = b.subarray(o, o + ctxLen);
  o += ctxLen;
  const n = b.readUInt32BE(o);
  o += 4;
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) {
    need(21);
    const eterm = b.readDoubleBE(o);
    const eindex = b.readDoubleBE(o + 8);
    const etype = b.readUInt8(o + 16);
    const len = b.readUInt32BE(o + 17);
    o += 21;
    need(len);
    entries.push({ term: eterm, index: eindex, type: etype, data: b.subarray(o, o + len) });
    o += len;
  }
  need(1);
  let snapshot: Snapshot | undefined;
  if (b.readUInt8(o++) === 1) {
    need(20);
    const sindex = b.readDoubleBE(o);
    const sterm = b.readDoubleBE(o + 8);
    const nv = b.readUInt32BE(o + 16);
    o += 20;
    need(8 * nv + 4);
    const voters: bigint[] = [];
    for (let i = 0; i < nv; i++, o += 8) voters.push(b.readBigUInt64BE(o));
    const nl = b.readUInt32BE(o);
    o += 4;
    need(8 * nl);
    const learners: bigint[] = [];
    for (let i = 0; i < nl; i++, o += 8) learners.push(b.readBigUInt64BE(o));
    snapshot = { metadata: { index: sindex, term: sterm, confState: { voters, learners } } };
  }
  if (o !== b.length) throw new Error(`raft message frame has ${b.length - o} trailing bytes`);
  const m: Message = { type, to, from, term, logTerm, index, entries, commit, reject, rejectHint, context };
  if (snapshot) m.snapshot = snapshot;
  return m;
}
