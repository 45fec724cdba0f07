// The peer transport's handshake: the dialer's first frame is a HELLO, the listener answers ACK or ERROR.
//
//   dialer                                      listener
//     | --- HELLO {version, kind, cluster, from, to} --> |  checks, in etcd's order (rafthttp http.go
//     |                                                  |  streamHandler): version, cluster ID, removed,
//     |                                                  |  known sender, `to` is itself
//     | <-- ACK {cluster, member} ---------------------- |  accepted: the connection now carries `kind`
//     | <-- ERROR {code, cluster, text} + close -------- |  refused, with etcd's wording
//
// Payloads (all integers unsigned big-endian; IDs are uint64, as etcd's types.ID):
//
//   HELLO  (26 bytes)  offset 0  u8   protocol version (PROTOCOL_VERSION)
//                      offset 1  u8   kind: 1 = stream (Raft messages), 2 = snapshot, 3 = members (a member joining
//                                     an existing cluster asks for the membership; cluster and IDs are 0,
//                                     the listener answers one MEMBERS frame and closes)
//                      offset 2  u64  cluster ID of the dialer
//                      offset 10 u64  from: the dialer's member ID
//                      offset 18 u64  to: the member the dialer means to reach
//   ACK    (16 bytes)  offset 0  u64  cluster ID of the listener
//                      offset 8  u64  member ID of the listener
//   ERROR  (9+ bytes)  offset 0  u8   code (TransportErrorCode)
//                      offset 1  u64  cluster ID of the sender (etcd puts it in X-Etcd-Cluster-ID, and the dialer
//                                     logs it on a mismatch)
//                      offset 9  ...  UTF-8 text, etcd's wording for the code
//
// A version byte the listener does not know is refused with "incompatible version" before the rest is parsed, so
// a later version may lengthen the HELLO.

import { assert } from '../../util/assert';
import { DomainError } from '../../util/errors';
import { FrameError } from './frame';

export const PROTOCOL_VERSION = 1;

const HELLO_BYTES = 26;
const ACK_BYTES = 16;
const ERROR_HEADER_BYTES = 9;
const MAX_UINT64 = (1n << 64n) - 1n;

export type ConnectionKind = 'stream' | 'snapshot' | 'members';
const KIND_BYTES: Record<ConnectionKind, number> = { stream: 1, snapshot: 2, members: 3 };

export interface Hello {
  protocolVersion: number;
  kind: ConnectionKind;
  clusterId: bigint;
  from: bigint;
  to: bigint;
}

export interface Ack {
  clusterId: bigint;
  memberId: bigint;
}

/** Why a listener refused a connection or a receiver failed a snapshot; the code travels in ERROR frames. */
export enum TransportErrorCode {
  IncompatibleVersion = 1,
  ClusterIdMismatch = 2,
  MemberRemoved = 3,
  SenderNotFound = 4,
  ToMismatch = 5,
  BadCertificate = 6,
  Protocol = 7,
  SnapshotFailed = 8,
}

/**
 * The text sent with each fixed refusal: etcd's words (rafthttp http.go, util.go errMemberRemoved; Go's TLS alert
 * name for a rejected certificate), so that logs and tests can be compared with etcd's by grep.
 */
export const ERROR_TEXT: Readonly<Record<TransportErrorCode, string>> = {
  [TransportErrorCode.IncompatibleVersion]: 'incompatible version',
  [TransportErrorCode.ClusterIdMismatch]: 'cluster ID mismatch',
  [TransportErrorCode.MemberRemoved]: 'the member has been permanently removed from the cluster',
  [TransportErrorCode.SenderNotFound]: 'error sender not found',
  [TransportErrorCode.ToMismatch]: 'to field mismatch',
  [TransportErrorCode.BadCertificate]: 'tls: bad certificate',
  [TransportErrorCode.Protocol]: 'protocol violation',
  [TransportErrorCode.SnapshotFailed]: 'failed to process snapshot',
};

/** Domain error codes raised to the transport's user (style.md: typed, stable code, cause). */
export const ErrMemberRemoved = 'ErrMemberRemoved';
export const ErrSnapshotFailed = 'ErrSnapshotFailed';
export const ErrPeerUnreachable = 'ErrPeerUnreachable';
export const ErrTransportStopped = 'ErrTransportStopped';

/** A malformed HELLO, ACK or ERROR payload (a FrameError: the connection is closed). */
export const ErrHandshake = 'ErrHandshake';

export class TransportError extends DomainError {}

/** etcd's types.ID.String(): lowercase hex without padding. Every member and cluster ID in our logs uses it. */
export function idString(id: bigint): string {
  return id.toString(16);
}

function assertUint64(v: bigint, what: string): void {
  assert(v >= 0n && v <= MAX_UINT64, `${what} must be a uint64`);
}

export function encodeHello(h: Hello): Buffer {
  assert(Number.isInteger(h.protocolVersion) && h.protocolVersion >= 0 && h.protocolVersion <= 255, 'protocol version must be a byte');
  assertUint64(h.clusterId, 'cluster ID');
  assertUint64(h.from, 'from');
  assertUint64(h.to, 'to');
  const out = Buffer.alloc(HELLO_BYTES);
  out.writeUInt8(h.protocolVersion, 0);
  out.writeUInt8(KIND_BYTES[h.kind], 1);
  out.writeBigUInt64BE(h.clusterId, 2);
  out.writeBigUInt64BE(h.from, 10);
  out.writeBigUInt64BE(h.to, 18);
  return out;
}

/**
 * Decodes a HELLO. Returns just the version when it is not ours (the caller refuses it with "incompatible
 * version"); throws FrameError when a HELLO of our version is malformed.
 */
export function decodeHello(payload: Buffer): Hello | { protocolVersion: number } {
  if (payload.length < 1) throw new FrameError(ErrHandshake, 'empty hello');
  const protocolVersion = payload.readUInt8(0);
  if (protocolVersion !== PROTOCOL_VERSION) return { protocolVersion };
  if (payload.length !== HELLO_BYTES) throw new FrameError(ErrHandshake, `hello of ${payload.length} bytes, want ${HELLO_BYTES}`);
  const kindByte = payload.readUInt8(1);
  const kind = (Object.keys(KIND_BYTES) as ConnectionKind[]).find((k) => KIND_BYTES[k] === kindByte);
  if (kind === undefined) throw new FrameError(ErrHandshake, `unknown connection kind ${kindByte}`);
  return {
    protocolVersion,
    kind,
    clusterId: payload.readBigUInt64BE(2),
    from: payload.readBigUInt64BE(10),
    to: payload.readBigUInt64BE(18),
  };
}

export function isHello(h: Hello | { protocolVersion: number }): h is Hello {
  return 'kind' in h;
}

export function encodeAck(a: Ack): Buffer {
  assertUint64(a.clusterId, 'cluster ID');
  assertUint64(a.memberId, 'member ID');
  const out = Buffer.alloc(ACK_BYTES);
  out.writeBigUInt64BE(a.clusterId, 0);
  out.writeBigUInt64BE(a.memberId, 8);
  return out;
}

export function decodeAck(payload: Buffer): Ack {
  if (payload.length !== ACK_BYTES) throw new FrameError(ErrHandshake, `ack of ${payload.length} bytes, want ${ACK_BYTES}`);
  return { clusterId: payload.readBigUInt64BE(0), memberId: payload.readBigUInt64BE(8) };
}

export interface ErrorFrame {
  code: TransportErrorCode;
  clusterId: bigint;
  text: string;
}

export function encodeError(e: ErrorFrame): Buffer {
  assertUint64(e.clusterId, 'cluster ID');
  const text = Buffer.from(e.text, 'utf8');
  const out = Buffer.alloc(ERROR_HEADER_BYTES + text.length);
  out.writeUInt8(e.code, 0);
  out.writeBigUInt64BE(e.clusterId, 1);
  text.copy(out, ERROR_HEADER_BYTES);
  return out;
}

/** Decodes an ERROR frame. An unknown code is kept as Protocol, with the text as sent. */
export function decodeError(payload: Buffer): ErrorFrame {
  if (payload.length < ERROR_HEADER_BYTES) throw new FrameError(ErrHandshake, `error frame of ${payload.length} bytes`);
  const raw = payload.readUInt8(0);
  const code = raw >= TransportErrorCode.IncompatibleVersion && raw <= TransportErrorCode.SnapshotFailed ? (raw as TransportErrorCode) : TransportErrorCode.Protocol;
  return { code, clusterId: payload.readBigUInt64BE(1), text: payload.subarray(ERROR_HEADER_BYTES).toString('utf8') };
}

/**
 * What the dialer reports for a refusal, in etcd's words (rafthttp stream.go streamReader.dial): the text it
 * logs and passes to onPeerUnreachable's log line. A rejected certificate reads as Go's client sees a TLS alert.
 */
export function refusalText(e: ErrorFrame, peer: { local: bigint; remote: bigint }): string {
  switch (e.code) {
    case TransportErrorCode.BadCertificate:
      return `remote error: ${e.text}`;
    case TransportErrorCode.SenderNotFound:
      return `peer ${idString(peer.remote)} failed to find local node ${idString(peer.local)}`;
    default:
      return e.text;
  }
}
