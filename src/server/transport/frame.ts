// Framing for the Raft peer transport: length-prefixed frames on a long-lived TCP, TLS or Unix-socket connection.
//
// Every frame is a five-byte header followed by its payload:
//
//   offset  size  field
//   0       4     length   payload length in bytes, unsigned 32-bit big-endian; excludes the header itself
//   4       1     type     the frame type (FrameType below)
//   5       n     payload  `length` bytes, opaque to the framing layer
//
// A frame whose length exceeds the decoder's bound (DEFAULT_MAX_FRAME_BYTES, 64 MiB) is a protocol violation: the
// decoder throws FrameError as soon as it has read the header, before buffering any of the payload, and the
// connection is closed. An unknown type byte is a violation too, so that a peer speaking another protocol (for
// example etcd's HTTP transport dialing our port) is cut off at its first bytes instead of being misread.
//
// Example: a MESSAGE frame carrying the three bytes 0xaa 0xbb 0xcc is
//
//   00 00 00 03  04  aa bb cc
//
// The payloads of the handshake frames are specified in handshake.ts.

import { assert } from '../../util/assert';
import { DomainError } from '../../util/errors';

export const FRAME_HEADER_BYTES = 5;

/** The default bound on one frame's payload. Raft messages are far smaller; snapshot data travels in chunks. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** The largest payload the 32-bit length field can describe. */
const MAX_ENCODABLE_PAYLOAD_BYTES = 0xffff_ffff;

export enum FrameType {
  /** Dialer → listener, first frame of every connection (handshake.ts encodeHello). */
  Hello = 1,
  /** Listener → dialer: the handshake was accepted (handshake.ts encodeAck). */
  Ack = 2,
  /** Either direction: a refusal or a failure, with a code and etcd's text; the sender closes afterwards. */
  Error = 3,
  /** Dialer → listener on a stream connection: one opaque Raft message. */
  Message = 4,
  /** Both directions on a stream connection, empty: keeps an idle connection provably alive (etcd's linkHeartbeat). */
  Heartbeat = 5,
  /** Dialer → listener on a snapshot connection, once, first after the ack: the snapshot's opaque metadata. */
  SnapshotMeta = 6,
  /** Dialer → listener on a snapshot connection: the next piece of snapshot data. */
  SnapshotChunk = 7,
  /** Dialer → listener on a snapshot connection, empty: all data has been sent. */
  SnapshotEnd = 8,
  /** Listener → dialer on a snapshot connection, empty: the receiver consumed the whole snapshot. */
  SnapshotDone = 9,
  /** Listener → dialer on a members connection, once, then close: the cluster ID and members as JSON (what a
   * member joining an existing cluster learns from its peers, etcd's GET /members). */
  Members = 10,
}

const MAX_FRAME_TYPE = FrameType.Members;

export const ErrFrameTooLarge = 'ErrFrameTooLarge';
export const ErrFrameType = 'ErrFrameType';
/** A well-formed frame that the connection's current phase does not allow (e.g. a MESSAGE on a snapshot). */
export const ErrUnexpectedFrame = 'ErrUnexpectedFrame';

/** A framing violation by the remote end. The connection it came from must be closed. */
export class FrameError extends DomainError {}

export interface Frame {
  type: FrameType;
  /**
   * The payload. It may be a view into a buffer that the socket handed us; the decoder never writes to it again,
   * so the receiver owns it and may keep it.
   */
  payload: Buffer;
}

/** The five header bytes for a frame of `type` with a `payloadBytes`-long payload. */
export function encodeFrameHeader(type: FrameType, payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, 0, type, payloadBytes);
  return header;
}

/** Writes a frame header into `target` at `offset`; used to build the headers of a coalesced batch in one buffer. */
export function writeFrameHeader(target: Buffer, offset: number, type: FrameType, payloadBytes: number): void {
  assert(Number.isInteger(payloadBytes) && payloadBytes >= 0, 'frame payload length must be a non-negative integer');
  assert(payloadBytes <= MAX_ENCODABLE_PAYLOAD_BYTES, 'frame payload length must fit in 32 bits');
  assert(type >= FrameType.Hello && type <= MAX_FRAME_TYPE, 'unknown frame type');
  target.writeUInt32BE(payloadBytes, offset);
  target.writeUInt8(type, offset + 4);
}

/** One whole frame in a single buffer (a copy); meant for small control frames. */
export function encodeFrame(type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, type, payload.length);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/**
 * A streaming frame decoder. Feed it whatever the socket delivers with push(), then call next() until it returns
 * undefined. It handles frames split across any number of chunks and many frames in one chunk.
 *
 * Cost: a frame that lies within one chunk is returned as a view of that chunk (no copy); a frame split across
 * chunks is copied once into a buffer of its exact size. Chunks are consumed through a head index and offset, so
 * no byte is copied or scanned twice, however the input is cut.
 *
 * Invariant: bufferedBytes === sum of chunks[i].length for i >= head, minus offset.
 * Invariant: offset < chunks[head].length whenever head < chunks.length.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private head = 0;
  private offset = 0;
  private bufferedBytes = 0;
  private failed = false;

  constructor(readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    assert(Number.isInteger(maxFrameBytes) && maxFrameBytes >= 0 && maxFrameBytes <= MAX_ENCODABLE_PAYLOAD_BYTES, 'maxFrameBytes out of range');
  }

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  push(chunk: Buffer): void {
    assert(!this.failed, 'FrameDecoder used after a framing error');
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /**
   * The next complete frame, or undefined when more bytes are needed. Throws FrameError (ErrFrameTooLarge,
   * ErrFrameType) on a violation; the decoder is unusable afterwards.
   */
  next(): Frame | undefined {
    assert(!this.failed, 'FrameDecoder used after a framing error');
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return undefined;
    const header = this.peek(FRAME_HEADER_BYTES);
    const payloadBytes = header.readUInt32BE(0);
    const type = header.readUInt8(4);
    // Checked before waiting for the payload, so that a hostile length never makes us buffer it.
    if (payloadBytes > this.maxFrameBytes) {
      this.failed = true;
      throw new FrameError(ErrFrameTooLarge, `frame of ${payloadBytes} bytes exceeds the limit of ${this.maxFrameBytes} bytes`);
    }
    if (type < FrameType.Hello || type > MAX_FRAME_TYPE) {
      this.failed = true;
      throw new FrameError(ErrFrameType, `unknown frame type ${type}`);
    }
    if (this.bufferedBytes < FRAME_HEADER_BYTES + payloadBytes) return undefined;
    this.skip(FRAME_HEADER_BYTES);
    const payload = this.take(payloadBytes);
    return { type: type as FrameType, payload };
  }

  /** The first `n` buffered bytes without consuming them; a view when they lie in one chunk. */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head];
    assert(first !== undefined && this.bufferedBytes >= n, 'peek beyond the buffered bytes');
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let offset = this.offset;
    for (let i = this.head; copied < n; i++) {
      const chunk = this.chunks[i];
      assert(chunk !== undefined, 'buffered byte count out of step with the chunks');
      copied += chunk.copy(out, copied, offset, Math.min(chunk.length, offset + n - copied));
      offset = 0;
    }
    return out;
  }

  private skip(n: number): void {
    this.consume(n, undefined);
  }

  /** Consumes `n` bytes and returns them: a view if they lie within the first chunk, else one exact-size copy. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head];
    assert(first !== undefined, 'take from an empty decoder');
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.consume(n, undefined);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    this.consume(n, out);
    return out;
  }

  /** Advances past `n` bytes, copying them into `into` when given. */
  private consume(n: number, into: Buffer | undefined): void {
    assert(n <= this.bufferedBytes, 'consume beyond the buffered bytes');
    let done = 0;
    while (done < n) {
      const chunk = this.chunks[this.head];
      assert(chunk !== undefined, 'buffered byte count out of step with the chunks');
      const step = Math.min(chunk.length - this.offset, n - done);
      if (into !== undefined) chunk.copy(into, done, this.offset, this.offset + step);
      done += step;
      this.offset += step;
      if (this.offset === chunk.length) {
        this.head++;
        this.offset = 0;
      }
    }
    this.bufferedBytes -= n;
    // Drop consumed chunks so that they can be collected, compacting only when at least half of the array is
    // consumed: amortized constant time per chunk, however many chunks one frame spans.
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head > 0 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
