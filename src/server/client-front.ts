// The front for plaintext client listeners (http:// and unix:// client URLs): we own the listening socket, look at
// the first bytes of every connection, and hand it to grpc-js's HTTP/2 server or to an HTTP/1 handler.
//
// Why it exists. etcd 3.4's etcdctl dials `endpoint status`, `endpoint hashkv` and `move-leader` with the raw
// endpoint string as its gRPC target, so those requests carry `:authority: http://127.0.0.1:2379`. nghttp2 (Node's
// HTTP/2) allows only RFC 3986 authority characters there and answers the '/' with RST_STREAM PROTOCOL_ERROR before
// grpc-js sees the stream; etcd's Go server takes any authority. TLS listeners are not affected (Go's client then
// sends the server name), so https:// and unixs:// stay bound by grpc-js directly.
//
// The life of a connection:
//
//   accept ─► sniff ─┬─ does not start with the HTTP/2 preface ───────► HTTP/1 server (health, version, ...)
//                    ├─ first header block's authority is acceptable ─► grpc-js gets the raw socket     "direct"
//                    ├─ the authority has a scheme or bad characters ─► grpc-js gets a rewriting Duplex "rewritten"
//                    ├─ no header block within headersWaitMs, or more
//                    │  than sniffMaxBytes before one ──────────────────► rewritten (always correct, only slower)
//                    └─ no preface within prefaceTimeoutMs, socket error ► destroyed
//
// Direct: the sniffed bytes are unshifted back into the socket and the socket goes to grpc-js, whose HTTP/2 session
// then reads it natively; after the sniff a good connection costs nothing. Clients send the same authority on every
// request of a connection (it is the channel's), so the first header block decides for the connection's life.
//
// Rewritten: HPACK is stateful (each side keeps a dynamic table), so a connection that needs one header changed needs
// every header block of its client→server direction rewritten for its whole life. We decode each block with the
// client's table and re-emit it as literal fields without indexing; the server's decoder then never touches its
// dynamic table, so we keep no encoder state. Every other frame passes through byte for byte, and so does the whole
// server→client direction.
//
// The server preface. A Go gRPC client (etcdctl) sends its preface and SETTINGS and then waits for the server's
// SETTINGS before its first request; grpc-js's session does not exist yet while we sniff, so we would wait for each
// other. When the sniffed bytes hold no header block yet, we therefore send the server preface ourselves: an empty
// SETTINGS frame, which announces only the protocol defaults both sides assume anyway. Its ACK comes back from the
// client and must not reach nghttp2 (which would count it against its own SETTINGS, and a second ACK would then be a
// protocol error): the sniffer cuts it out, or the rewriter drops it when it arrives later. grpc-js's own SETTINGS
// follow at hand-off and are acknowledged as usual.

import { Duplex } from 'node:stream';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import { assert } from '../util/assert';
import { CLUSTER_VERSION, SERVER_VERSION } from './version';

// ---------------------------------------------------------------------------------------------------------------
// Limits

export interface ClientFrontLimits {
  /** How long a new connection has to show which protocol it speaks (the 24-byte HTTP/2 preface, or one other byte). */
  prefaceTimeoutMs: number;
  /** How long an HTTP/2 connection has, after its preface, to send its first header block (and ACK our SETTINGS)
   *  before it is served through the rewriter. Its PINGs wait unanswered meanwhile, so keep this below clients'
   *  keepalive time plus timeout (gRPC-Go allows no keepalive time under 10 s). */
  headersWaitMs: number;
  /** Bytes of an HTTP/2 connection buffered while sniffing; past this, the connection is served through the rewriter. */
  sniffMaxBytes: number;
  /** The largest header block (HEADERS plus CONTINUATION fragments) the rewriter buffers before closing the connection. */
  headerBlockMaxBytes: number;
  /** Idle time after which an HTTP/1 connection is closed. Node checks its headers and request timeouts only on
   *  servers that listen themselves, so this is the bound on HTTP/1 connections. */
  http1IdleTimeoutMs: number;
}

export const DEFAULT_CLIENT_FRONT_LIMITS: Readonly<ClientFrontLimits> = {
  prefaceTimeoutMs: 10_000,
  headersWaitMs: 5_000,
  sniffMaxBytes: 64 * 1024,
  // Node's HTTP/2 server accepts header lists up to 64 KiB (maxHeaderListSize); the margin covers encoders that
  // Huffman-code strings even where that makes them longer.
  headerBlockMaxBytes: 256 * 1024,
  http1IdleTimeoutMs: 60_000,
};

// ---------------------------------------------------------------------------------------------------------------
// HTTP/2 framing (RFC 7540 §3.5, §4.1, §6)

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
// The server's SETTINGS_MAX_FRAME_SIZE: Node's default, which grpc-js keeps. Frames we emit never exceed it.
const MAX_FRAME_PAYLOAD_BYTES = 16_384;
// The server's SETTINGS_HEADER_TABLE_SIZE, which bounds the client's encoder table: Node's default, kept by grpc-js.
const HEADER_TABLE_BYTES = 4_096;

const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const PRIORITY_BYTES = 5;

/** The server preface we send while sniffing: an empty SETTINGS frame on stream 0. */
const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);

interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

function readFrameHeader(bytes: Buffer, offset: number): FrameHeader {
  return {
    length: bytes.readUIntBE(offset, 3),
    type: bytes[offset + 3]!,
    flags: bytes[offset + 4]!,
    streamId: bytes.readUInt32BE(offset + 5) & 0x7fffffff,
  };
}

function writeFrameHeader(out: Buffer, offset: number, h: FrameHeader): void {
  out.writeUIntBE(h.length, offset, 3);
  out[offset + 3] = h.type;
  out[offset + 4] = h.flags;
  out.writeUInt32BE(h.streamId, offset + 5);
}

function isSettingsAck(h: FrameHeader): boolean {
  return h.type === FRAME_SETTINGS && (h.flags & FLAG_ACK) !== 0 && h.streamId === 0 && h.length === 0;
}

/** A connection error the front detects itself (RFC 7540 §5.4.1); the connection is closed. */
export class Http2ConnectionError extends Error {
  override name = 'Http2ConnectionError';
  constructor(
    readonly code: 'PROTOCOL_ERROR' | 'COMPRESSION_ERROR' | 'ENHANCE_YOUR_CALM',
    message: string,
  ) {
    super(message);
  }
}

/** The field block fragment of a HEADERS frame payload: padding and priority removed (RFC 7540 §6.2). */
function headersFragment(h: FrameHeader, payload: Buffer): { fragment: Buffer; priority: Buffer | undefined } {
  let start = 0;
  let padBytes = 0;
  if (h.flags & FLAG_PADDED) {
    if (payload.length < 1) throw new Http2ConnectionError('PROTOCOL_ERROR', 'HEADERS: padded frame without pad length');
    padBytes = payload[0]!;
    start = 1;
  }
  let priority: Buffer | undefined;
  if (h.flags & FLAG_PRIORITY) {
    if (payload.length < start + PRIORITY_BYTES) throw new Http2ConnectionError('PROTOCOL_ERROR', 'HEADERS: priority fields truncated');
    priority = payload.subarray(start, start + PRIORITY_BYTES);
    start += PRIORITY_BYTES;
  }
  if (padBytes > payload.length - start) throw new Http2ConnectionError('PROTOCOL_ERROR', 'HEADERS: padding exceeds payload');
  return { fragment: payload.subarray(start, payload.length - padBytes), priority };
}

// ---------------------------------------------------------------------------------------------------------------
// Authority

// nghttp2's VALID_AUTHORITY_CHARS (lib/nghttp2_http.c, nghttp2_check_authority, applied to :authority and host):
// RFC 3986 unreserved and sub-delims, plus ':', '@', '[', ']' and '%'. Checked against Node 20's nghttp2 by sending
// every printable ASCII character.
const AUTHORITY_ACCEPTED = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;
const AUTHORITY_REJECTED_CHAR = /[^A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]/g;
const URL_SCHEME_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/** Whether nghttp2 accepts this :authority (or host) value. */
export function isAuthorityAcceptable(value: string): boolean {
  return AUTHORITY_ACCEPTED.test(value);
}

/**
 * An :authority nghttp2 accepts, for one it would reject: 'http://127.0.0.1:2379' → '127.0.0.1:2379'. Drops a
 * "scheme://" prefix and anything from the first '/', then any remaining rejected character; an empty result
 * (e.g. from 'unix:///tmp/etcd.sock') becomes 'localhost'. Acceptable values are returned unchanged.
 */
export function normalizeAuthority(value: string): string {
  if (isAuthorityAcceptable(value)) return value;
  let rest = value.replace(URL_SCHEME_PREFIX, '');
  const slash = rest.indexOf('/');
  if (slash >= 0) rest = rest.slice(0, slash);
  rest = rest.replace(AUTHORITY_REJECTED_CHAR, '');
  return rest === '' ? 'localhost' : rest;
}

function isAuthorityField(name: string): boolean {
  return name === ':authority' || name === 'host';
}

// ---------------------------------------------------------------------------------------------------------------
// HPACK (RFC 7541): decoding through hpack.js, encoding as literals without indexing

/** One decoded header field. Names and values are latin1 strings: one char per octet, as on the wire. */
export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed" (RFC 7541 §6.2.3); kept so when re-encoding. */
  neverIndex: boolean;
}

// hpack.js ships no type declarations; this is the part of its API we use (lib/hpack/decompressor.js). Its
// decompressor is a readable-stream Duplex, but write() and execute() decode synchronously: each decoded field is
// pushed as an object, and a malformed block is reported through 'error' before execute() returns.
interface HpackDecompressor {
  write(block: Buffer): boolean;
  execute(): void;
  read(): HeaderField | null;
  on(event: 'error', listener: (err: Error) => void): void;
}
const hpack = require('hpack.js') as { decompressor: { create(options: { table: { maxSize: number } }): HpackDecompressor } };

/** Decodes the header blocks of one direction of one connection, in order: the decoder owns that direction's table. */
export class HeaderBlockDecoder {
  private readonly decompressor: HpackDecompressor;
  private error: Error | undefined;
  // Invariant: once a block failed to decode, the table is out of step with the encoder's, so the decoder is dead.
  private failed = false;

  constructor() {
    this.decompressor = hpack.decompressor.create({ table: { maxSize: HEADER_TABLE_BYTES } });
    this.decompressor.on('error', (err) => {
      this.error = err;
    });
  }

  /** Decodes one complete header block. Throws Http2ConnectionError(COMPRESSION_ERROR) if it is malformed. */
  decode(block: Buffer): HeaderField[] {
    assert(!this.failed, 'HeaderBlockDecoder used after a decoding error');
    this.decompressor.write(block);
    this.decompressor.execute();
    const fields: HeaderField[] = [];
    for (let f = this.decompressor.read(); f !== null; f = this.decompressor.read()) fields.push(f);
    if (this.error !== undefined) {
      this.failed = true;
      throw new Http2ConnectionError('COMPRESSION_ERROR', `HPACK: ${this.error.message}`);
    }
    return fields;
  }
}

function integerBytes(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let n = 2;
  for (let rest = value - max; rest >= 128; rest = Math.floor(rest / 128)) n++;
  return n;
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `flags` holds the first octet's bits above the prefix. */
function writeInteger(out: Buffer, offset: number, value: number, prefixBits: number, flags: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[offset++] = flags | value;
    return offset;
  }
  out[offset++] = flags | max;
  let rest = value - max;
  while (rest >= 128) {
    out[offset++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[offset++] = rest;
  return offset;
}

/**
 * A header block of literal fields with literal names and no Huffman coding, "without indexing" (0000xxxx) or
 * "never indexed" (0001xxxx) as the client sent them (RFC 7541 §6.2.2, §6.2.3): decoding it needs no dynamic table
 * and changes none.
 */
export function encodeLiteralBlock(fields: readonly HeaderField[]): Buffer {
  let size = 0;
  for (const f of fields) size += 1 + integerBytes(f.name.length, 7) + f.name.length + integerBytes(f.value.length, 7) + f.value.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const f of fields) {
    out[offset++] = f.neverIndex ? 0x10 : 0x00; // index 0: the name follows as a literal
    offset = writeInteger(out, offset, f.name.length, 7, 0);
    offset += out.write(f.name, offset, 'latin1');
    offset = writeInteger(out, offset, f.value.length, 7, 0);
    offset += out.write(f.value, offset, 'latin1');
  }
  assert(offset === size, `encodeLiteralBlock: wrote ${offset} bytes, sized ${size}`);
  return out;
}

/** HEADERS (+ CONTINUATION) frames carrying `block`, each payload at most MAX_FRAME_PAYLOAD_BYTES. */
function headerFrames(o: { streamId: number; endStream: boolean; priority: Buffer | undefined; block: Buffer }): Buffer {
  const priorityBytes = o.priority === undefined ? 0 : PRIORITY_BYTES;
  const firstBlockBytes = Math.min(o.block.length, MAX_FRAME_PAYLOAD_BYTES - priorityBytes);
  const continuations = Math.ceil((o.block.length - firstBlockBytes) / MAX_FRAME_PAYLOAD_BYTES);
  const out = Buffer.allocUnsafe((1 + continuations) * FRAME_HEADER_BYTES + priorityBytes + o.block.length);
  let flags = (o.endStream ? FLAG_END_STREAM : 0) | (o.priority === undefined ? 0 : FLAG_PRIORITY) | (continuations === 0 ? FLAG_END_HEADERS : 0);
  writeFrameHeader(out, 0, { length: priorityBytes + firstBlockBytes, type: FRAME_HEADERS, flags, streamId: o.streamId });
  let offset = FRAME_HEADER_BYTES;
  if (o.priority !== undefined) offset += o.priority.copy(out, offset);
  offset += o.block.copy(out, offset, 0, firstBlockBytes);
  for (let start = firstBlockBytes; start < o.block.length; start += MAX_FRAME_PAYLOAD_BYTES) {
    const end = Math.min(o.block.length, start + MAX_FRAME_PAYLOAD_BYTES);
    flags = end === o.block.length ? FLAG_END_HEADERS : 0;
    writeFrameHeader(out, offset, { length: end - start, type: FRAME_CONTINUATION, flags, streamId: o.streamId });
    offset += FRAME_HEADER_BYTES;
    offset += o.block.copy(out, offset, start, end);
  }
  assert(offset === out.length, `headerFrames: wrote ${offset} bytes, sized ${out.length}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The rewriter: client→server frames after the preface

interface OpenHeaderBlock {
  streamId: number;
  endStream: boolean;
  priority: Buffer | undefined;
  fragments: Buffer[];
  bytes: number;
}

/**
 * Rewrites the client→server frames of one connection (everything after the 24-byte preface), fed in arbitrary
 * chunks: every header block is re-emitted as literals with :authority and host made acceptable to nghttp2; every
 * other frame passes through unchanged, without being buffered (its bytes go out as they come in). If told to, it
 * drops the first SETTINGS ACK: the one answering the server preface the front sent itself.
 */
export class ClientFrameRewriter {
  private readonly decoder = new HeaderBlockDecoder();
  private readonly partialHeader = Buffer.alloc(FRAME_HEADER_BYTES);
  // Invariant: 0 <= partialHeaderBytes < FRAME_HEADER_BYTES; > 0 only between feeds that split a frame header.
  private partialHeaderBytes = 0;
  private frame: FrameHeader | undefined;
  /** Payload bytes of `frame` still to come; `frame` is undefined when this is 0 and its payload was handled. */
  private payloadRemaining = 0;
  /** What happens to the current frame's payload: passed through, collected (a header block fragment), or dropped. */
  private mode: 'pass' | 'collect' | 'drop' = 'pass';
  private collected: Buffer[] = [];
  private block: OpenHeaderBlock | undefined;
  private dropSettingsAck: boolean;
  private readonly headerBlockMaxBytes: number;

  constructor(o: { dropSettingsAck: boolean; headerBlockMaxBytes: number }) {
    this.dropSettingsAck = o.dropSettingsAck;
    this.headerBlockMaxBytes = o.headerBlockMaxBytes;
  }

  /** The bytes to send on for `chunk` (possibly empty). Throws Http2ConnectionError when the connection must close. */
  feed(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    // Bytes of `chunk` from runStart to the cursor pass through unchanged; they are emitted as one slice.
    let runStart = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.payloadRemaining > 0) {
        const n = Math.min(this.payloadRemaining, chunk.length - i);
        if (this.mode !== 'pass') {
          if (this.mode === 'collect') this.collected.push(chunk.subarray(i, i + n));
          runStart = i + n;
        }
        i += n;
        this.payloadRemaining -= n;
        if (this.payloadRemaining === 0) this.endFrame(out);
        continue;
      }
      let headerInChunk: boolean;
      let h: FrameHeader;
      if (this.partialHeaderBytes === 0 && chunk.length - i >= FRAME_HEADER_BYTES) {
        h = readFrameHeader(chunk, i);
        i += FRAME_HEADER_BYTES;
        headerInChunk = true;
      } else {
        // A frame header split across chunks: hold its bytes back until we know the frame's type.
        if (this.partialHeaderBytes === 0 && i > runStart) out.push(chunk.subarray(runStart, i));
        const n = Math.min(FRAME_HEADER_BYTES - this.partialHeaderBytes, chunk.length - i);
        chunk.copy(this.partialHeader, this.partialHeaderBytes, i, i + n);
        this.partialHeaderBytes += n;
        i += n;
        runStart = i;
        if (this.partialHeaderBytes < FRAME_HEADER_BYTES) continue;
        this.partialHeaderBytes = 0;
        h = readFrameHeader(this.partialHeader, 0);
        headerInChunk = false;
      }
      this.mode = this.frameMode(h);
      if (this.mode === 'pass') {
        if (!headerInChunk) out.push(Buffer.from(this.partialHeader));
      } else {
        if (headerInChunk && i - FRAME_HEADER_BYTES > runStart) out.push(chunk.subarray(runStart, i - FRAME_HEADER_BYTES));
        runStart = i;
      }
      this.frame = h;
      this.payloadRemaining = h.length;
      if (h.length === 0) this.endFrame(out);
    }
    if (i > runStart) out.push(chunk.subarray(runStart, i));
    if (out.length === 1) return out[0]!;
    return Buffer.concat(out);
  }

  private frameMode(h: FrameHeader): 'pass' | 'collect' | 'drop' {
    if (this.block !== undefined) {
      // RFC 7540 §6.10: a header block is contiguous; anything else in between is a connection error.
      if (h.type !== FRAME_CONTINUATION || h.streamId !== this.block.streamId) {
        throw new Http2ConnectionError('PROTOCOL_ERROR', `frame type ${h.type} on stream ${h.streamId} inside the header block of stream ${this.block.streamId}`);
      }
      return 'collect';
    }
    if (h.type === FRAME_HEADERS) return 'collect';
    if (this.dropSettingsAck && isSettingsAck(h)) {
      this.dropSettingsAck = false;
      return 'drop';
    }
    // CONTINUATION outside a block, PUSH_PROMISE from a client and malformed frames pass: nghttp2 rejects them.
    return 'pass';
  }

  private endFrame(out: Buffer[]): void {
    const h = this.frame;
    assert(h !== undefined, 'endFrame without a frame');
    this.frame = undefined;
    if (this.mode !== 'collect') return;
    const payload = this.collected.length === 1 ? this.collected[0]! : Buffer.concat(this.collected);
    this.collected = [];
    if (h.type === FRAME_HEADERS) {
      const { fragment, priority } = headersFragment(h, payload);
      this.block = { streamId: h.streamId, endStream: (h.flags & FLAG_END_STREAM) !== 0, priority, fragments: [fragment], bytes: fragment.length };
    } else {
      assert(this.block !== undefined, 'CONTINUATION collected outside a header block');
      this.block.fragments.push(payload);
      this.block.bytes += payload.length;
    }
    if (this.block.bytes > this.headerBlockMaxBytes) {
      throw new Http2ConnectionError('ENHANCE_YOUR_CALM', `header block over ${this.headerBlockMaxBytes} bytes`);
    }
    if ((h.flags & FLAG_END_HEADERS) === 0) return;
    const block = this.block;
    this.block = undefined;
    const fields = this.decoder.decode(block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments));
    for (const f of fields) if (isAuthorityField(f.name)) f.value = normalizeAuthority(f.value);
    out.push(headerFrames({ streamId: block.streamId, endStream: block.endStream, priority: block.priority, block: encodeLiteralBlock(fields) }));
  }
}

/**
 * A client connection as grpc-js sees it on the rewritten path: client→server bytes go through a ClientFrameRewriter,
 * server→client bytes go to the socket unchanged. Node's HTTP/2 session takes any Duplex (it wraps one that has no
 * native handle in a JSStreamSocket).
 */
class RewritingConnection extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    private readonly rewriter: ClientFrameRewriter,
    sniffed: Buffer,
  ) {
    super();
    assert(sniffed.subarray(0, PREFACE.length).equals(PREFACE), 'RewritingConnection: the sniffed bytes must start with the preface');
    this.push(sniffed.subarray(0, PREFACE.length));
    this.forward(sniffed.subarray(PREFACE.length));
    socket.on('data', (chunk: Buffer) => this.forward(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    // Node's HTTP/2 session sets TCP_NODELAY on the socket it gets; here it only reaches our Duplex.
    socket.setNoDelay(true);
  }

  private forward(chunk: Buffer): void {
    if (this.destroyed) return;
    let out: Buffer;
    try {
      out = this.rewriter.feed(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (out.length > 0 && !this.push(out)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  // The session's JSStreamSocket corks us around each batch of frames; passing the batch on corked makes it one
  // writev on the socket, as on the direct path, rather than a write per frame.
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.socket.cork();
    for (let i = 0; i < chunks.length; i++) this.socket.write(chunks[i]!.chunk, i === chunks.length - 1 ? callback : undefined);
    this.socket.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The sniffer

/** What the first frames after the preface show (RFC 7540 §3.5: the client's SETTINGS, then anything). */
export interface Http2Start {
  /** The first header block (HEADERS + CONTINUATION fragments), 'malformed' if its framing is broken, undefined if not complete yet. */
  firstBlock: Buffer | 'malformed' | undefined;
  /** Offset of the 9-byte SETTINGS ACK answering our server preface, if it has arrived (and we sent one). */
  settingsAckAt: number | undefined;
}

/** Inspects the complete frames of `bytes` (which start with the preface); pure, so it can run again as bytes arrive. */
export function inspectHttp2Start(bytes: Buffer, settingsSent: boolean): Http2Start {
  let firstBlock: Buffer | 'malformed' | undefined;
  let settingsAckAt: number | undefined;
  let open: { streamId: number; fragments: Buffer[] } | undefined;
  let offset = PREFACE.length;
  while (offset + FRAME_HEADER_BYTES <= bytes.length) {
    const h = readFrameHeader(bytes, offset);
    const end = offset + FRAME_HEADER_BYTES + h.length;
    if (end > bytes.length) break;
    const payload = bytes.subarray(offset + FRAME_HEADER_BYTES, end);
    if (open !== undefined) {
      if (h.type !== FRAME_CONTINUATION || h.streamId !== open.streamId) {
        firstBlock = 'malformed';
        open = undefined;
      } else {
        open.fragments.push(payload);
        if (h.flags & FLAG_END_HEADERS) {
          firstBlock = Buffer.concat(open.fragments);
          open = undefined;
        }
      }
    } else if (firstBlock === undefined && h.type === FRAME_HEADERS) {
      try {
        const { fragment } = headersFragment(h, payload);
        if (h.flags & FLAG_END_HEADERS) firstBlock = fragment;
        else open = { streamId: h.streamId, fragments: [fragment] };
      } catch {
        firstBlock = 'malformed';
      }
    } else if (settingsSent && settingsAckAt === undefined && isSettingsAck(h)) {
      settingsAckAt = offset;
    }
    offset = end;
    if (firstBlock !== undefined && (!settingsSent || settingsAckAt !== undefined)) break;
  }
  return { firstBlock, settingsAckAt };
}

/** The verdict on the first header block: whether the connection can go to nghttp2 as it is. */
function firstBlockIsAcceptable(block: Buffer | 'malformed'): boolean {
  // A block we cannot parse goes to nghttp2 untouched, which answers it with its own GOAWAY.
  if (block === 'malformed') return true;
  let fields: HeaderField[];
  try {
    fields = new HeaderBlockDecoder().decode(block);
  } catch {
    return true;
  }
  return fields.every((f) => !isAuthorityField(f.name) || isAuthorityAcceptable(f.value));
}

function withoutFrameAt(bytes: Buffer, offset: number | undefined): Buffer {
  if (offset === undefined) return bytes;
  return Buffer.concat([bytes.subarray(0, offset), bytes.subarray(offset + FRAME_HEADER_BYTES)]);
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP/1: the extension point for etcd's HTTP endpoints

/** Serves one HTTP/1 request on a client URL. */
export type HttpRoute = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * An HTTP/1 request listener over exact-path routes, answering like Go's net/http mux for the rest: "404 page not
 * found". This is where etcd's other client-URL endpoints plug in (the gRPC-JSON gateway under /v3/, /metrics,
 * /debug/vars, /readyz, /livez), each as a route.
 */
export function httpRouter(routes: ReadonlyMap<string, HttpRoute>): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const route = routes.get(path);
    if (route !== undefined) return route(req, res);
    sendText(res, 404, '404 page not found\n');
  };
}

function sendText(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

/** A /health that always answers healthy, in etcd 3.4.23's format (Go sniffs the JSON body as text/plain). */
const healthyRoute: HttpRoute = (req, res) => {
  if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed\n', { Allow: 'GET' });
  const body = '{"health":"true"}';
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
};

function getJson(body: () => unknown): HttpRoute {
  return (req, res) => {
    // Mirrors etcd's allowMethod(w, r, "GET") in etcdhttp: other methods get 405 with an Allow header.
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed\n', { Allow: 'GET' });
    const json = JSON.stringify(body());
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) });
    res.end(json);
  };
}

/**
 * etcd's HTTP endpoints as far as we serve them: /health (the member's checks, maintenance/health.ts; without
 * a member, always healthy in etcd 3.4's format) and /version, our versions (etcd etcdhttp/version.go).
 */
export function etcdHttpRoutes(o: { health?: HttpRoute } = {}): Map<string, HttpRoute> {
  return new Map([
    ['/health', o.health ?? healthyRoute],
    ['/version', getJson(() => ({ etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION }))],
  ]);
}

// ---------------------------------------------------------------------------------------------------------------
// The front

export interface ClientFrontOptions {
  /** Takes an HTTP/2 connection whose next bytes are the client preface: grpc-js's ConnectionInjector.injectConnection. */
  serveHttp2(connection: Duplex): void;
  /** Serves connections that do not speak HTTP/2 (with prior knowledge). */
  serveHttp1: http.RequestListener;
  logger: Logger;
  limits?: Partial<ClientFrontLimits>;
}

/** How many connections took each path; for tests and, later, metrics. */
export interface ClientFrontCounts {
  direct: number;
  rewritten: number;
  http1: number;
  /** Closed before being sorted: by the client, on a socket error, on the preface timeout, or by close(). */
  dropped: number;
}

/** A connection being sniffed. */
interface Sniff {
  socket: net.Socket;
  /** Everything received so far (at most sniffMaxBytes plus one read). */
  received: Buffer;
  /** Whether the whole preface has arrived (the connection speaks HTTP/2). */
  http2: boolean;
  settingsSent: boolean;
  timer: NodeJS.Timeout;
  onData(chunk: Buffer): void;
  onError(err: Error): void;
  onClose(): void;
}

/**
 * Owns the listeners of the plaintext client URLs and sorts their connections (see the module header). Sockets
 * being sniffed and HTTP/1 sockets belong to the front until they close; a socket handed to serveHttp2 belongs to
 * grpc-js from then on, which closes it on shutdown.
 */
export class ClientFront {
  readonly counts: ClientFrontCounts = { direct: 0, rewritten: 0, http1: 0, dropped: 0 };
  private readonly limits: ClientFrontLimits;
  private readonly logger: Logger;
  private readonly serveHttp2: (connection: Duplex) => void;
  private readonly http1: http.Server;
  private readonly listeners = new Set<net.Server>();
  private readonly sniffing = new Set<Sniff>();
  private readonly http1Sockets = new Set<net.Socket>();
  private closed = false;

  constructor(o: ClientFrontOptions) {
    this.limits = { ...DEFAULT_CLIENT_FRONT_LIMITS, ...o.limits };
    this.logger = o.logger;
    this.serveHttp2 = o.serveHttp2;
    // Never listens: the front hands it connections. Its parser, keep-alive and timeouts are Node's.
    this.http1 = http.createServer(o.serveHttp1);
    this.http1.timeout = this.limits.http1IdleTimeoutMs;
  }

  /**
   * Listens on one http:// or unix:// client URL and returns it with the bound port filled in (port 0 → the actual
   * one). 'localhost' binds 127.0.0.1 only, as Go's net.Listen does for etcd.
   */
  async listen(clientUrl: string): Promise<string> {
    assert(!this.closed, 'ClientFront.listen after close');
    const url = new URL(clientUrl);
    const server = net.createServer((socket) => this.accept(socket));
    let options: net.ListenOptions;
    if (url.protocol === 'unix:') {
      options = { path: `${url.host}${url.pathname}` };
    } else {
      assert(url.protocol === 'http:', `ClientFront serves http:// and unix:// URLs, not ${clientUrl}`);
      const hostname = url.hostname.replace(/^\[|\]$/g, '');
      options = { host: hostname === 'localhost' ? '127.0.0.1' : hostname, port: Number(url.port || '80') };
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.warn({ err, url: clientUrl }, 'client listener error'));
    this.listeners.add(server);
    if (url.protocol === 'http:') {
      const address = server.address();
      assert(address !== null && typeof address === 'object', 'a TCP listener has an address');
      url.port = String(address.port);
    }
    return url.toString().replace(/\/$/, '');
  }

  /** Stops accepting and closes every socket the front still owns. Sockets handed to grpc-js are its to close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const server of this.listeners) server.close();
    this.listeners.clear();
    for (const s of this.sniffing) this.drop(s, 'front closed');
    for (const socket of this.http1Sockets) socket.destroy();
    this.http1Sockets.clear();
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const s: Sniff = {
      socket,
      received: Buffer.alloc(0),
      http2: false,
      settingsSent: false,
      timer: setTimeout(() => this.onSniffTimeout(s), this.limits.prefaceTimeoutMs),
      onData: (chunk) => this.onSniffData(s, chunk),
      onError: (err) => this.drop(s, err.message),
      onClose: () => this.drop(s, 'closed by the client'),
    };
    this.sniffing.add(s);
    socket.on('data', s.onData);
    socket.on('error', s.onError);
    socket.on('close', s.onClose);
  }

  private onSniffData(s: Sniff, chunk: Buffer): void {
    const bytes = s.received.length === 0 ? chunk : Buffer.concat([s.received, chunk]);
    s.received = bytes;
    if (!s.http2) {
      const n = Math.min(bytes.length, PREFACE.length);
      if (!bytes.subarray(0, n).equals(PREFACE.subarray(0, n))) return this.toHttp1(s, bytes);
      if (bytes.length < PREFACE.length) return;
      s.http2 = true;
      clearTimeout(s.timer);
      s.timer = setTimeout(() => this.onSniffTimeout(s), this.limits.headersWaitMs);
    }
    const start = inspectHttp2Start(bytes, s.settingsSent);
    if (start.firstBlock === undefined) {
      if (!s.settingsSent) {
        // The client may be waiting for the server preface before it sends a request (see the module header).
        s.settingsSent = true;
        s.socket.write(EMPTY_SETTINGS_FRAME);
      }
      if (bytes.length >= this.limits.sniffMaxBytes) this.toGrpc(s, bytes, start, 'rewrite');
      return;
    }
    if (!firstBlockIsAcceptable(start.firstBlock)) return this.toGrpc(s, bytes, start, 'rewrite');
    if (s.settingsSent && start.settingsAckAt === undefined) {
      // Direct needs our ACK cut out first; wait for it, within the same bounds.
      if (bytes.length >= this.limits.sniffMaxBytes) this.toGrpc(s, bytes, start, 'rewrite');
      return;
    }
    this.toGrpc(s, bytes, start, 'direct');
  }

  private onSniffTimeout(s: Sniff): void {
    if (!s.http2) return this.drop(s, 'no protocol preface in time');
    this.toGrpc(s, s.received, inspectHttp2Start(s.received, s.settingsSent), 'rewrite');
  }

  /** Ends the sniff: the socket keeps no front listener and is no longer the front's to close. */
  private release(s: Sniff): void {
    assert(this.sniffing.delete(s), 'release of a connection not being sniffed');
    clearTimeout(s.timer);
    s.socket.off('data', s.onData);
    s.socket.off('error', s.onError);
    s.socket.off('close', s.onClose);
    s.socket.pause();
  }

  private drop(s: Sniff, reason: string): void {
    if (!this.sniffing.has(s)) return;
    this.release(s);
    this.counts.dropped++;
    this.logger.debug({ reason, remote: s.socket.remoteAddress }, 'client connection dropped while sniffing');
    s.socket.destroy();
  }

  private toHttp1(s: Sniff, bytes: Buffer): void {
    this.release(s);
    this.counts.http1++;
    const socket = s.socket;
    this.http1Sockets.add(socket);
    socket.once('close', () => this.http1Sockets.delete(socket));
    socket.unshift(bytes);
    this.http1.emit('connection', socket);
    // Node's HTTP/1 server reads new bytes from the native handle, and the sniffed ones through 'data' events, which
    // a paused socket never emits.
    socket.resume();
  }

  private toGrpc(s: Sniff, bytes: Buffer, start: Http2Start, path: 'direct' | 'rewrite'): void {
    this.release(s);
    this.logger.debug({ path, remote: s.socket.remoteAddress, sniffedBytes: bytes.length, settingsSent: s.settingsSent }, 'client connection to gRPC');
    const sniffed = withoutFrameAt(bytes, start.settingsAckAt);
    if (path === 'direct') {
      this.counts.direct++;
      s.socket.unshift(sniffed);
      this.serveHttp2(s.socket);
      return;
    }
    this.counts.rewritten++;
    const socket = s.socket;
    const rewriter = new ClientFrameRewriter({
      dropSettingsAck: s.settingsSent && start.settingsAckAt === undefined,
      headerBlockMaxBytes: this.limits.headerBlockMaxBytes,
    });
    const connection = new RewritingConnection(socket, rewriter, sniffed);
    connection.on('error', (err) => this.logger.debug({ err, remote: socket.remoteAddress }, 'rewritten client connection closed on error'));
    // The sniffed bytes alone can already be a connection error (say, a frame inside the first header block).
    if (!connection.destroyed) this.serveHttp2(connection);
  }
}
