// The Raft peer transport: moves opaque Raft messages and snapshots between the members of a cluster over their
// peer URLs. It is etcd's rafthttp in role and vocabulary (peers, streams, "peer became active", ReportUnreachable,
// ErrMemberRemoved), but not in protocol: instead of HTTP it uses long-lived TCP, TLS or Unix-socket connections
// carrying length-prefixed frames (frame.ts), opened by a handshake (handshake.ts).
//
// Connections, per ordered pair of members:
//
//   A ──stream──▶ B    A dials, sends HELLO{kind: stream}, then only writes MESSAGE frames; B only reads them.
//   B ──stream──▶ A    the reverse direction is its own connection, dialed by B. Each direction is thus one TCP
//                      connection with one writer, so messages arrive in the order they were sent.
//   A ─snapshot─▶ B    one short-lived connection per snapshot, so that a snapshot of any size never delays the
//                      heartbeats and appends on the stream.
//
// Both ends of a stream connection send an empty HEARTBEAT every connReadTimeoutMs/3 and close the connection when
// nothing has been read for connReadTimeoutMs (etcd: ConnReadTimeout = 5 s), so a dead peer is noticed within a
// bound even when no message is being sent.
//
// Sending is non-blocking. send() appends to the peer's queue, bounded by message count and by bytes; a microtask
// later the whole queue goes to the socket as one corked write (one writev). When the socket asks for drain, new
// messages wait in the queue until it drains; when the queue is full they are dropped and reported unreachable,
// which is what Raft expects of a lossy network (etcd's peer.send does the same with its 4096-message buffer).
//
// A peer's stream is in one of three states:
//
//   connecting ──ack──▶ active ◀──ack─── inactive
//        │                 │                  ▲
//        │                 └─────failure──────┤
//        └────────────────failure─────────────┘
//
// While connecting (only before the first attempt has ended), messages queue; while active they are written; while
// inactive they are dropped at once and reported unreachable, rather than delivered seconds late after a
// reconnect. Every failure reports the peer unreachable, drops the queue and schedules a reconnect with a backoff
// that doubles from reconnectBackoffMinMs to reconnectBackoffMaxMs, rotating through the peer's URLs (etcd's
// urlPicker). "peer became active" and "peer became inactive (message send to peer failed)" are logged once per
// state change, as etcd's peerStatus does.
//
// Inbound, everything is bounded too: connections per listener (maxInboundConnections), the wait for a HELLO
// (connReadTimeoutMs), the size of a frame (maxFrameBytes), the snapshots received at once (maxInboundSnapshots)
// and the data each one buffers (snapshotHighWaterBytes, enforced by pausing the socket).

import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { assert } from '../../util/assert';
import { formatGoDurationMs } from '../config';
import type { Logger } from '../logger';
import { certSans, tlsClientOptions, tlsServerOptions, verifyTlsSocket, type TlsMaterial } from '../tls';
import { ChunkQueue } from './chunk-queue';
import { Connection, type OutgoingFrame } from './connection';
import { boundUrl, goClientCertErrorText, goDialErrorText, goTlsErrorText, parseEndpoint, type Endpoint } from './endpoint';
import { DEFAULT_MAX_FRAME_BYTES, ErrUnexpectedFrame, FrameError, FrameType, type Frame } from './frame';
import {
  ERROR_TEXT,
  ErrHandshake,
  ErrMemberRemoved,
  ErrPeerUnreachable,
  ErrSnapshotFailed,
  ErrTransportStopped,
  PROTOCOL_VERSION,
  TransportError,
  TransportErrorCode,
  decodeAck,
  decodeError,
  decodeHello,
  encodeAck,
  encodeError,
  encodeHello,
  idString,
  isHello,
  refusalText,
  type ConnectionKind,
  type ErrorFrame,
  type Hello,
} from './handshake';

export type PeerAdmission = 'ok' | 'removed' | 'unknown';

export interface TransportOptions {
  memberId: bigint;
  clusterId: bigint;
  /** --listen-peer-urls: http://host:port, https://host:port, unix://host:port, unixs://host:port (port 0: any). */
  listenUrls: string[];
  /** Peer TLS material (resolveTls with kind 'peer'): used by https/unixs listeners and for dialing https peers. */
  tls?: TlsMaterial;
  logger: Logger;
  /**
   * Called with every message frame received, in order per connection (hence per sending peer). Called
   * synchronously from the socket's read path: it must not block, and the payload is the callee's to keep.
   */
  onMessage(from: bigint, payload: Buffer): void;
  /**
   * Called for each incoming snapshot, with its metadata and a stream of its data. The data can be iterated once;
   * reading it slowly slows the sender down (TCP flow control). Resolve once the snapshot is consumed: the sender's
   * sendSnapshot() then resolves. Reject to make it fail with your error's message. Data still unread when the
   * promise resolves is discarded.
   */
  onSnapshot(from: bigint, meta: Buffer, data: AsyncIterable<Buffer>): Promise<void>;
  /**
   * Raft's ReportUnreachable: a message to that peer was dropped (queue full, peer inactive, connection lost,
   * snapshot failed). May be called often; it must be cheap.
   */
  onPeerUnreachable?(id: bigint): void;
  /**
   * etcd's Transport.ErrorC: an error after which this member must stop. Today only ErrMemberRemoved, raised once
   * when a peer refuses us because we were removed from the cluster.
   */
  onCriticalError?(error: TransportError): void;
  /**
   * Admission of an incoming connection from member `id`: 'removed' refuses it with etcd's "the member has been
   * permanently removed from the cluster" (so that the removed member learns it), 'unknown' with "error sender not
   * found". Default: 'ok' for the peers added with addPeer, 'unknown' for any other.
   */
  isPeerAllowed?(id: bigint): PeerAdmission;
  /** The answer to a members request (FrameType.Members): the cluster ID and members as JSON. */
  membersInfo?(): Buffer;
  /** Bound on each peer's send queue in messages; default 4096 (etcd's streamBufSize). */
  maxQueuedMessagesPerPeer?: number;
  /** Bound on each peer's send queue in payload bytes; default 128 MiB. */
  maxQueuedBytesPerPeer?: number;
  /** Deadline for connect + TLS + handshake; default 2000 ms (etcd's peerDialTimeout for a 1 s election). */
  dialTimeoutMs?: number;
  /**
   * A stream connection on which nothing arrives for this long is closed; default 5000 ms (etcd ConnReadTimeout).
   * Heartbeats go out every third of it, so every member of a cluster must use the same value, as etcd's constant.
   */
  connReadTimeoutMs?: number;
  /** Bound on one frame's payload, for both what we send and what we accept; default 64 MiB. */
  maxFrameBytes?: number;
  /** Snapshot data is sent in frames of at most this many bytes; default 1 MiB. */
  snapshotChunkBytes?: number;
  /** A snapshot receiver stops reading once this much data waits for the consumer; default 4 MiB. */
  snapshotHighWaterBytes?: number;
  /** Bound on the connections each listener accepts at once (Node's server.maxConnections); default 1024. */
  maxInboundConnections?: number;
  /** Bound on snapshots received at once; a snapshot beyond it is refused, and Raft retries later. Default 4. */
  maxInboundSnapshots?: number;
  /** Reconnect backoff; defaults 100 ms doubling to 1000 ms. */
  reconnectBackoffMinMs?: number;
  reconnectBackoffMaxMs?: number;
}

type StreamStatus = 'connecting' | 'active' | 'inactive';

/** A dial that did not end in an ACK: Go's text for what went wrong, and the refusal when the listener sent one. */
class DialFailure extends Error {
  constructor(
    message: string,
    readonly refusal?: ErrorFrame,
  ) {
    super(message);
  }
}

/** The sending side of one remote peer (etcd's peer: its stream writer, its urlPicker and its peerStatus). */
class RemotePeer {
  endpoints: Endpoint[];
  /** etcd's urlPicker: the URL to dial next; advanced after each failure. */
  urlIndex = 0;
  status: StreamStatus = 'connecting';
  /** Wall-clock ms when the stream became active; undefined unless status === 'active'. */
  activeSinceMs: number | undefined;
  /** Invariant: queuedBytes === sum of queue[i].payload.length; queue.length <= maxQueuedMessagesPerPeer. */
  queue: OutgoingFrame[] = [];
  queuedBytes = 0;
  /** The established stream connection. Invariant: defined iff status === 'active'. */
  conn: Connection | undefined;
  /** The socket of a dial in progress, so that removePeer and stop can abort it. */
  dialing: net.Socket | undefined;
  snapshotConns = new Set<Connection>();
  reconnectTimer: NodeJS.Timeout | undefined;
  backoffMs: number;
  flushScheduled = false;
  waitingForDrain = false;
  /** A queue overflow has been logged and the queue has not been emptied since: log it once per episode. */
  overflowing = false;
  /** The last refusal text logged for this peer, so that a refusal repeated on every retry is logged once. */
  lastRefusal: string | undefined;
  /** The last reason logged for a deactivation, so that a repeated reason is logged at debug only. */
  lastDeactivation: string | undefined;
  stopped = false;

  constructor(
    readonly id: bigint,
    endpoints: Endpoint[],
    backoffMs: number,
  ) {
    this.endpoints = endpoints;
    this.backoffMs = backoffMs;
  }

  get endpoint(): Endpoint {
    const e = this.endpoints[this.urlIndex % this.endpoints.length];
    assert(e !== undefined, 'a peer has at least one URL');
    return e;
  }
}

interface Listener {
  endpoint: Endpoint;
  server: net.Server;
  url: string;
}

const EMPTY = Buffer.alloc(0);
const KEEPALIVE_MS = 30_000; // etcd's dialer and listener KeepAlive
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000; // Go's http.Transport TLSHandshakeTimeout, which etcd uses

export class PeerTransport {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  private readonly logger: Logger;
  private readonly maxQueuedMessages: number;
  private readonly maxQueuedBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly connReadTimeoutMs: number;
  private readonly maxFrameBytes: number;
  private readonly snapshotChunkBytes: number;
  private readonly snapshotHighWaterBytes: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxInboundConnections: number;
  private readonly maxInboundSnapshots: number;
  /** Invariant: inboundSnapshots <= maxInboundSnapshots. */
  private inboundSnapshots = 0;

  private readonly peers = new Map<bigint, RemotePeer>();
  /** The stream connection each peer dialed to us (at most one per peer: a newer one replaces the older). */
  private readonly inboundStreams = new Map<bigint, Connection>();
  /** Every socket we accepted or dialed and that is not yet closed, so that stop() can end them all. */
  private readonly sockets = new Set<net.Socket>();
  private listeners: Listener[] = [];
  private started = false;
  private stopped = false;
  private criticalReported = false;

  constructor(private readonly opts: TransportOptions) {
    assert(opts.memberId > 0n, 'member ID must be non-zero');
    assert(opts.listenUrls.length > 0, 'at least one listen URL');
    this.memberId = opts.memberId;
    this.clusterId = opts.clusterId;
    this.logger = opts.logger;
    this.maxQueuedMessages = opts.maxQueuedMessagesPerPeer ?? 4096;
    this.maxQueuedBytes = opts.maxQueuedBytesPerPeer ?? 128 * 1024 * 1024;
    this.dialTimeoutMs = opts.dialTimeoutMs ?? 2000;
    this.connReadTimeoutMs = opts.connReadTimeoutMs ?? 5000;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.snapshotChunkBytes = Math.min(opts.snapshotChunkBytes ?? 1024 * 1024, this.maxFrameBytes);
    this.snapshotHighWaterBytes = opts.snapshotHighWaterBytes ?? 4 * 1024 * 1024;
    this.backoffMinMs = opts.reconnectBackoffMinMs ?? 100;
    this.backoffMaxMs = opts.reconnectBackoffMaxMs ?? 1000;
    this.maxInboundConnections = opts.maxInboundConnections ?? 1024;
    this.maxInboundSnapshots = opts.maxInboundSnapshots ?? 4;
    assert(this.maxQueuedMessages > 0 && this.maxQueuedBytes > 0, 'queue bounds must be positive');
    assert(this.dialTimeoutMs > 0 && this.connReadTimeoutMs >= 3, 'timeouts must be positive');
    assert(this.snapshotChunkBytes > 0 && this.snapshotHighWaterBytes > 0, 'snapshot bounds must be positive');
    assert(this.backoffMinMs > 0 && this.backoffMaxMs >= this.backoffMinMs, 'backoff bounds out of order');
    assert(this.maxInboundConnections > 0 && this.maxInboundSnapshots > 0, 'inbound bounds must be positive');
    for (const url of opts.listenUrls) {
      const e = parseEndpoint(url);
      if (e.secure && opts.tls === undefined) {
        // etcd pkg/transport newTLSListener's text.
        throw new Error(`cannot listen on TLS for ${e.kind === 'unix' ? e.path : `${e.host}:${e.port}`}: KeyFile and CertFile are not presented`);
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lifecycle

  /** Listens on every listen URL; resolves to the bound URLs, in the same order (port 0 replaced by the real port). */
  async start(): Promise<string[]> {
    assert(!this.started, 'PeerTransport started twice');
    this.started = true;
    try {
      for (const url of this.opts.listenUrls) this.listeners.push(await this.listen(parseEndpoint(url)));
    } catch (err) {
      await this.stop();
      throw err;
    }
    return this.listeners.map((l) => l.url);
  }

  /** Closes the listeners and every connection, cancels reconnects and drops the queues. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) this.stopPeer(peer);
    this.peers.clear();
    for (const conn of this.inboundStreams.values()) conn.close();
    this.inboundStreams.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const listeners = this.listeners;
    this.listeners = [];
    await Promise.all(
      listeners.map(
        (l) =>
          new Promise<void>((resolve) => {
            l.server.close(() => resolve());
          }),
      ),
    );
    // etcd's unixListener.Close removes the socket file; Node does too, but not if the process dies first.
    for (const l of listeners) if (l.endpoint.kind === 'unix') fs.rmSync(l.endpoint.path, { force: true });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Membership

  /** Starts sending to `id` at `urls`. A peer added twice keeps its first URLs (etcd ignores the second AddPeer). */
  addPeer(id: bigint, urls: string[]): void {
    assert(!this.stopped, 'addPeer after stop');
    assert(id !== this.memberId, 'a member is not its own peer');
    assert(urls.length > 0, 'a peer needs at least one URL');
    if (this.peers.has(id)) return;
    const endpoints = urls.map(parseEndpoint);
    this.logger.info({ 'remote-peer-id': idString(id) }, 'starting remote peer');
    const peer = new RemotePeer(id, endpoints, this.backoffMinMs);
    this.peers.set(id, peer);
    this.connect(peer);
    this.logger.info({ 'remote-peer-id': idString(id) }, 'started remote peer');
    this.logger.info({ 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(id), 'remote-peer-urls': urls }, 'added remote peer');
  }

  /**
   * Replaces the URLs of `id` (a member update). The current connection is kept; the new URLs are used from the
   * next dial on. Unknown peers are ignored, as in etcd.
   */
  updatePeer(id: bigint, urls: string[]): void {
    assert(urls.length > 0, 'a peer needs at least one URL');
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    peer.endpoints = urls.map(parseEndpoint);
    peer.urlIndex = 0;
    this.logger.info({ 'local-member-id': idString(this.memberId), 'updated-remote-peer-id': idString(id), 'updated-remote-peer-urls': urls }, 'updated remote peer');
  }

  /** Stops sending to `id` and closes its connections in both directions. Removing an unknown peer is a bug. */
  removePeer(id: bigint): void {
    const peer = this.peers.get(id);
    assert(peer !== undefined, `unexpected removal of unknown remote peer ${idString(id)}`);
    this.logger.info({ 'remote-peer-id': idString(id) }, 'stopping remote peer');
    this.stopPeer(peer);
    this.peers.delete(id);
    const inbound = this.inboundStreams.get(id);
    if (inbound !== undefined) {
      this.inboundStreams.delete(id);
      inbound.close();
    }
    this.logger.info({ 'remote-peer-id': idString(id) }, 'stopped remote peer');
    this.logger.info({ 'local-member-id': idString(this.memberId), 'removed-remote-peer-id': idString(id) }, 'removed remote peer');
  }

  /** When the stream to `id` last became active (Date.now() ms), or undefined while it is not active. */
  activeSince(id: bigint): number | undefined {
    return this.peers.get(id)?.activeSinceMs;
  }

  isActive(id: bigint): boolean {
    return this.peers.get(id)?.status === 'active';
  }

  // -------------------------------------------------------------------------------------------------------------
  // Sending

  /**
   * Queues `payload` for `to` without blocking. Returns false, and drops it, when `to` is unknown, its stream is
   * inactive, the payload exceeds maxFrameBytes or the queue is full; in all but the first case onPeerUnreachable
   * is called too. True does not mean delivered: a connection can still fail with the message in flight.
   */
  send(to: bigint, payload: Buffer): boolean {
    if (this.stopped) return false;
    const peer = this.peers.get(to);
    if (peer === undefined) {
      this.logger.debug({ 'unknown-target-peer-id': idString(to) }, 'ignored message send request; unknown remote peer target');
      return false;
    }
    if (payload.length > this.maxFrameBytes) {
      this.logger.warn(
        { 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(to), 'message-size-bytes': payload.length, 'max-frame-bytes': this.maxFrameBytes },
        'dropped internal Raft message since it exceeds the maximum frame size',
      );
      this.reportUnreachable(to);
      return false;
    }
    if (peer.status === 'inactive') {
      this.reportUnreachable(to);
      return false;
    }
    if (peer.queue.length >= this.maxQueuedMessages || peer.queuedBytes + payload.length > this.maxQueuedBytes) {
      if (!peer.overflowing) {
        peer.overflowing = true;
        this.logger.warn(
          { 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(to), 'remote-peer-active': peer.status === 'active' },
          'dropped internal Raft message since sending buffer is full (overloaded network)',
        );
      }
      this.reportUnreachable(to);
      return false;
    }
    peer.queue.push({ type: FrameType.Message, payload });
    peer.queuedBytes += payload.length;
    this.scheduleFlush(peer);
    return true;
  }

  /**
   * Sends a snapshot to `to` on a connection of its own: the metadata, then `data` in frames of at most
   * snapshotChunkBytes, waiting for the socket to drain whenever it asks (so `data` is pulled only as fast as the
   * network and the receiver take it, and never held whole). Resolves once the receiver's onSnapshot resolved;
   * rejects with a TransportError (ErrSnapshotFailed, ErrPeerUnreachable, ErrTransportStopped) otherwise, after
   * reporting the peer unreachable. `data` is iterated at most once, and not at all when the send fails before its
   * first chunk (the peer is unknown, the dial fails): then closing its source is the caller's job.
   */
  async sendSnapshot(to: bigint, meta: Buffer, data: AsyncIterable<Buffer>): Promise<void> {
    if (this.stopped) throw new TransportError(ErrTransportStopped, 'transport is stopped');
    const peer = this.peers.get(to);
    if (peer === undefined) throw new TransportError(ErrPeerUnreachable, `unknown remote peer ${idString(to)}`);
    if (meta.length > this.maxFrameBytes) throw new TransportError(ErrSnapshotFailed, `snapshot metadata of ${meta.length} bytes exceeds the maximum frame size`);
    const started = performance.now();
    const endpoint = peer.endpoint;
    let sentBytes = 0;
    let conn: Connection | undefined;
    this.logger.info({ 'remote-peer-id': idString(to), 'meta-size-bytes': meta.length }, 'sending database snapshot');
    try {
      conn = await this.dial(peer, endpoint, 'snapshot');
      if (peer.stopped || this.stopped) throw new Error('stopped');
      peer.snapshotConns.add(conn);
      const c = conn;
      let failure: Error | undefined;
      const confirmed = new Promise<void>((resolve, reject) => {
        c.setHandlers({
          onFrame: (f: Frame) => {
            if (f.type === FrameType.SnapshotDone) {
              resolve();
              c.close();
            } else if (f.type === FrameType.Error) {
              failure = new Error(refusalText(decodeError(f.payload), { local: this.memberId, remote: to }));
              c.close(failure);
            } else {
              throw new FrameError(ErrUnexpectedFrame, `unexpected frame type ${f.type} on a snapshot connection`);
            }
          },
          onClose: (err) => {
            peer.snapshotConns.delete(c);
            failure ??= err ?? new Error('connection closed before the receiver confirmed the snapshot');
            reject(failure);
          },
        });
        c.resumeReading();
      });
      confirmed.catch(() => undefined); // awaited below; this only keeps an early rejection from being unhandled
      c.writeFrame(FrameType.SnapshotMeta, meta);
      for await (const chunk of data) {
        for (let off = 0; off < chunk.length; off += this.snapshotChunkBytes) {
          if (c.isClosed) throw failure ?? new Error('snapshot connection closed');
          const piece = chunk.subarray(off, Math.min(chunk.length, off + this.snapshotChunkBytes));
          if (!c.writeFrame(FrameType.SnapshotChunk, piece)) await c.waitForDrain();
          sentBytes += piece.length;
        }
        if (c.isClosed) throw failure ?? new Error('snapshot connection closed');
      }
      c.writeFrame(FrameType.SnapshotEnd, EMPTY);
      await confirmed;
    } catch (err) {
      conn?.close();
      const error = this.stopped || peer.stopped ? new TransportError(ErrTransportStopped, 'transport is stopped', { cause: err }) : snapshotError(err);
      this.logger.warn({ 'remote-peer-id': idString(to), bytes: sentBytes, error: error.message }, 'failed to send database snapshot');
      if (err instanceof DialFailure) this.onRefused(peer, err);
      this.reportUnreachable(to);
      throw error;
    }
    this.logger.info({ 'remote-peer-id': idString(to), bytes: sentBytes, took: formatGoDurationMs(performance.now() - started) }, 'sent database snapshot');
  }

  // -------------------------------------------------------------------------------------------------------------
  // Outbound stream: dial, handshake, write, reconnect

  private connect(peer: RemotePeer): void {
    if (peer.stopped || this.stopped) return;
    peer.reconnectTimer = undefined;
    const endpoint = peer.endpoint;
    this.dial(peer, endpoint, 'stream').then(
      (conn) => {
        if (peer.stopped || this.stopped) {
          conn.close();
          return;
        }
        this.onStreamEstablished(peer, conn);
      },
      (err: unknown) => {
        if (peer.stopped || this.stopped) return;
        assert(err instanceof DialFailure, 'dial rejects with DialFailure only');
        peer.urlIndex = (peer.urlIndex + 1) % peer.endpoints.length;
        this.onRefused(peer, err);
        this.deactivate(peer, 'dial', err.message);
        this.scheduleReconnect(peer);
      },
    );
  }

  private onStreamEstablished(peer: RemotePeer, conn: Connection): void {
    assert(peer.conn === undefined, 'a peer has one outbound stream at a time');
    peer.conn = conn;
    peer.backoffMs = this.backoffMinMs;
    peer.lastRefusal = undefined;
    if (peer.status !== 'active') {
      peer.status = 'active';
      peer.activeSinceMs = Date.now();
      this.logger.info({ 'peer-id': idString(peer.id) }, 'peer became active');
    }
    this.logger.info(
      { 'stream-writer-type': 'stream', 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(peer.id) },
      'established TCP streaming connection with remote peer',
    );
    conn.setHandlers({
      onFrame: (f: Frame) => {
        if (f.type === FrameType.Heartbeat) return;
        if (f.type === FrameType.Error) {
          conn.close(new Error(refusalText(decodeError(f.payload), { local: this.memberId, remote: peer.id })));
          return;
        }
        throw new FrameError(ErrUnexpectedFrame, `unexpected frame type ${f.type} on an outbound stream`);
      },
      onClose: (err) => this.onStreamLost(peer, conn, err),
    });
    conn.resumeReading();
    conn.startLiveness(Math.floor(this.connReadTimeoutMs / 3), this.connReadTimeoutMs);
    this.scheduleFlush(peer);
  }

  private onStreamLost(peer: RemotePeer, conn: Connection, err: Error | undefined): void {
    if (peer.conn !== conn) return;
    peer.conn = undefined;
    peer.waitingForDrain = false;
    if (peer.stopped || this.stopped) return;
    const reason = err === undefined ? 'connection closed' : goTlsErrorText(err);
    this.logger.warn(
      { 'stream-writer-type': 'stream', 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(peer.id), error: reason },
      'lost TCP streaming connection with remote peer',
    );
    this.deactivate(peer, 'write', reason);
    this.scheduleReconnect(peer);
  }

  /**
   * etcd peerStatus.deactivate: logs the transition once, then only at debug. Drops the queue (its messages would
   * be stale by the time a new connection is up) and reports the peer unreachable.
   */
  private deactivate(peer: RemotePeer, action: 'dial' | 'write', reason: string): void {
    const message = `failed to ${action} ${idString(peer.id)} on stream (${reason})`;
    if (peer.status !== 'inactive') {
      peer.status = 'inactive';
      peer.activeSinceMs = undefined;
      this.logger.warn({ 'peer-id': idString(peer.id), error: message }, 'peer became inactive (message send to peer failed)');
    } else if (peer.lastDeactivation !== message) {
      // A new reason is worth a warning (a peer that was down and now refuses our certificate, say); the same
      // reason on every retry is not.
      this.logger.warn({ 'peer-id': idString(peer.id), error: message }, 'peer deactivated again');
    } else {
      this.logger.debug({ 'peer-id': idString(peer.id), error: message }, 'peer deactivated again');
    }
    peer.lastDeactivation = message;
    peer.queue = [];
    peer.queuedBytes = 0;
    peer.overflowing = false;
    this.reportUnreachable(peer.id);
  }

  private scheduleReconnect(peer: RemotePeer): void {
    if (peer.stopped || this.stopped || peer.reconnectTimer !== undefined) return;
    const delay = peer.backoffMs;
    peer.backoffMs = Math.min(this.backoffMaxMs, peer.backoffMs * 2);
    peer.reconnectTimer = setTimeout(() => this.connect(peer), delay);
  }

  /** Logs a refusal in etcd's words (once per distinct refusal) and raises ErrMemberRemoved once. */
  private onRefused(peer: RemotePeer, failure: DialFailure): void {
    const refusal = failure.refusal;
    if (refusal === undefined || peer.lastRefusal === failure.message) return;
    peer.lastRefusal = failure.message;
    const ids = { 'remote-peer-id': idString(peer.id), 'local-member-id': idString(this.memberId) };
    switch (refusal.code) {
      case TransportErrorCode.ClusterIdMismatch:
        this.logger.warn(
          { ...ids, 'remote-peer-cluster-id': idString(refusal.clusterId), 'local-member-cluster-id': idString(this.clusterId), error: failure.message },
          'request sent was ignored by remote peer due to cluster ID mismatch',
        );
        break;
      case TransportErrorCode.IncompatibleVersion:
        this.logger.warn({ ...ids, error: failure.message }, 'request sent was ignored by remote peer due to server version incompatibility');
        break;
      case TransportErrorCode.MemberRemoved:
        if (!this.criticalReported) {
          this.criticalReported = true;
          this.opts.onCriticalError?.(new TransportError(ErrMemberRemoved, ERROR_TEXT[TransportErrorCode.MemberRemoved]));
        }
        break;
      default:
        break;
    }
  }

  private scheduleFlush(peer: RemotePeer): void {
    if (peer.flushScheduled || peer.conn === undefined || peer.queue.length === 0) return;
    peer.flushScheduled = true;
    // A microtask, so that all the messages of one Raft Ready (sent in one synchronous run) share one write.
    queueMicrotask(() => {
      peer.flushScheduled = false;
      this.flush(peer);
    });
  }

  /** Writes the whole queue as one corked batch, unless the socket is still draining the previous one. */
  private flush(peer: RemotePeer): void {
    const conn = peer.conn;
    if (conn === undefined || conn.isClosed || peer.waitingForDrain || peer.queue.length === 0) return;
    const batch = peer.queue;
    peer.queue = [];
    peer.queuedBytes = 0;
    peer.overflowing = false;
    if (conn.writeFrames(batch)) return;
    peer.waitingForDrain = true;
    void conn.waitForDrain().then(() => {
      if (peer.conn !== conn) return;
      peer.waitingForDrain = false;
      this.flush(peer);
    });
  }

  /**
   * Connects to `endpoint` and runs the handshake for a connection of `kind` to `peer`. Resolves with the
   * connection, reading paused, once the listener's ACK arrived; rejects with a DialFailure (Go's wording) on a
   * refusal, an error or after dialTimeoutMs.
   */
  private dial(peer: RemotePeer, endpoint: Endpoint, kind: ConnectionKind): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      let socket: net.Socket;
      try {
        socket = this.openSocket(endpoint);
      } catch (err) {
        reject(new DialFailure(goDialErrorText(endpoint, err as Error)));
        return;
      }
      if (kind === 'stream') peer.dialing = socket;
      this.track(socket);
      let settled = false;
      let conn: Connection | undefined;
      const finish = (failure: DialFailure | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (peer.dialing === socket) peer.dialing = undefined;
        if (failure === undefined) {
          assert(conn !== undefined, 'a handshake succeeds on a connection');
          resolve(conn);
          return;
        }
        if (conn !== undefined) conn.close();
        else socket.destroy();
        reject(failure);
      };
      const target = endpoint.kind === 'unix' ? `unix ${endpoint.path}` : `tcp ${endpoint.host}:${endpoint.port}`;
      const timer = setTimeout(() => finish(new DialFailure(`dial ${target}: i/o timeout`)), this.dialTimeoutMs);
      const onSocketError = (err: Error): void => finish(new DialFailure(goDialErrorText(endpoint, err)));
      socket.once('error', onSocketError);
      socket.once('close', () => finish(new DialFailure(`dial ${target}: connection closed`)));
      socket.once(endpoint.secure ? 'secureConnect' : 'connect', () => {
        socket.off('error', onSocketError);
        conn = new Connection(socket, this.maxFrameBytes);
        const c = conn;
        c.start({
          onFrame: (f: Frame) => {
            if (f.type === FrameType.Ack) {
              const ack = decodeAck(f.payload);
              // The listener checked both; a mismatch here means it is not speaking our protocol faithfully.
              if (ack.memberId !== peer.id || ack.clusterId !== this.clusterId) {
                throw new FrameError(ErrHandshake, `ack from member ${idString(ack.memberId)} of cluster ${idString(ack.clusterId)}`);
              }
              c.pauseReading();
              finish(undefined);
              return;
            }
            if (f.type === FrameType.Error) {
              const refusal = decodeError(f.payload);
              finish(new DialFailure(refusalText(refusal, { local: this.memberId, remote: peer.id }), refusal));
              return;
            }
            throw new FrameError(ErrHandshake, `unexpected frame type ${f.type} before the handshake ack`);
          },
          onClose: (err) => finish(new DialFailure(err === undefined ? `dial ${target}: connection closed` : goDialErrorText(endpoint, err))),
        });
        c.writeFrame(FrameType.Hello, encodeHello({ protocolVersion: PROTOCOL_VERSION, kind, clusterId: this.clusterId, from: this.memberId, to: peer.id }));
      });
    });
  }

  private openSocket(endpoint: Endpoint): net.Socket {
    const address = endpoint.kind === 'unix' ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port };
    let socket: net.Socket;
    if (endpoint.secure) {
      const host = endpoint.host;
      socket = tls.connect({
        ...(this.opts.tls === undefined ? {} : tlsClientOptions(this.opts.tls)),
        ...address,
        // SNI takes host names only; the certificate is checked against the URL's host either way, as Go does.
        ...(net.isIP(host) === 0 && host !== '' ? { servername: host } : {}),
        checkServerIdentity: (_servername, cert) => tls.checkServerIdentity(host, cert),
      });
    } else {
      socket = net.connect(address);
    }
    if (endpoint.kind === 'tcp') {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_MS);
    }
    return socket;
  }

  private stopPeer(peer: RemotePeer): void {
    peer.stopped = true;
    if (peer.reconnectTimer !== undefined) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = undefined;
    peer.dialing?.destroy();
    peer.dialing = undefined;
    const conn = peer.conn;
    peer.conn = undefined;
    conn?.close();
    for (const c of peer.snapshotConns) c.close(new Error('peer stopped'));
    peer.snapshotConns.clear();
    peer.queue = [];
    peer.queuedBytes = 0;
    if (peer.status === 'active') {
      peer.status = 'inactive';
      peer.activeSinceMs = undefined;
    }
  }

  private reportUnreachable(id: bigint): void {
    this.opts.onPeerUnreachable?.(id);
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Inbound: listen, verify TLS, handshake, read

  private async listen(endpoint: Endpoint): Promise<Listener> {
    let server: net.Server;
    const material = this.opts.tls;
    if (endpoint.secure) {
      assert(material !== undefined, 'checked in the constructor');
      // Node, told to reject an unverified client certificate, drops the connection without a word to either side;
      // so the chain's verdict is checked in onSecureConnection instead, where a rejection is logged with Go's text
      // and the dialer is told "tls: bad certificate", as a Go dialer is by a TLS alert. No frame is read first.
      const tlsServer = tls.createServer({ ...tlsServerOptions(material), rejectUnauthorized: false, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS });
      tlsServer.on('connection', (raw: net.Socket) => this.track(raw));
      tlsServer.on('secureConnection', (socket: tls.TLSSocket) => void this.onSecureConnection(material, socket));
      tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => this.logRejected(socket, goTlsErrorText(err)));
      server = tlsServer;
    } else {
      server = net.createServer((socket) => {
        this.track(socket);
        this.accept(socket);
      });
    }
    server.maxConnections = this.maxInboundConnections;
    if (endpoint.kind === 'unix') {
      // etcd's NewUnixListener removes a stale socket file first.
      fs.rmSync(endpoint.path, { force: true });
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const target = endpoint.kind === 'unix' ? `unix ${endpoint.path}` : `tcp ${endpoint.host}:${endpoint.port}`;
        const why = err.code === 'EADDRINUSE' ? 'bind: address already in use' : err.code === 'EACCES' ? 'bind: permission denied' : err.message;
        reject(new Error(`listen ${target}: ${why}`));
      };
      server.once('error', onError);
      const ready = (): void => {
        server.off('error', onError);
        resolve();
      };
      if (endpoint.kind === 'unix') server.listen(endpoint.path, ready);
      else server.listen(endpoint.port, endpoint.host, ready);
    });
    server.on('error', (err) => this.logger.warn({ address: endpoint.url, error: err.message }, 'peer listener error'));
    const address = server.address();
    const port = address !== null && typeof address === 'object' ? address.port : undefined;
    return { endpoint, server, url: boundUrl(endpoint, port) };
  }

  /**
   * etcd's tlsListener: after the handshake, chain verification of the client certificate, then the CRL, allowed-CN/hostname and SAN checks (tls.ts verifyTlsSocket),
   * which Node cannot run inside the handshake. A rejected member gets "tls: bad certificate" in an ERROR frame,
   * which its dialer logs as Go's client does a TLS alert: "remote error: tls: bad certificate".
   */
  private async onSecureConnection(material: TlsMaterial, socket: tls.TLSSocket): Promise<void> {
    this.track(socket);
    let reason = material.rejectUnauthorized ? goClientCertErrorText(socket) : undefined;
    if (reason === undefined) {
      try {
        reason = await verifyTlsSocket(material, socket);
      } catch (err) {
        reason = (err as Error).message;
      }
    }
    if (this.stopped || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (reason === undefined) {
      this.accept(socket);
      return;
    }
    this.logRejected(socket, reason);
    const conn = new Connection(socket, this.maxFrameBytes);
    conn.closeAfter(FrameType.Error, encodeError({ code: TransportErrorCode.BadCertificate, clusterId: this.clusterId, text: ERROR_TEXT[TransportErrorCode.BadCertificate] }));
  }

  /** etcd embed logTLSHandshakeFailure: "rejected connection" with the remote address and the certificate's SANs. */
  private logRejected(socket: tls.TLSSocket, error: string): void {
    const remoteAddr = socket.remoteAddress === undefined ? '' : `${socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]` : socket.remoteAddress}:${socket.remotePort}`;
    const serverName = typeof socket.servername === 'string' ? socket.servername : '';
    let cert;
    try {
      cert = socket.getPeerX509Certificate();
    } catch {
      cert = undefined;
    }
    if (cert === undefined) {
      this.logger.warn({ 'remote-addr': remoteAddr, 'server-name': serverName, error }, 'rejected connection');
      return;
    }
    const sans = certSans(cert);
    this.logger.warn({ 'remote-addr': remoteAddr, 'server-name': serverName, 'ip-addresses': sans.ips, 'dns-names': sans.dnsNames, error }, 'rejected connection');
  }

  /**
   * Asks the member at `url` for the cluster's membership (what a member started with
   * --initial-cluster-state existing and an empty data dir learns first, etcd GetClusterFromRemotePeers).
   */
  static fetchMembers(url: string, tlsMaterial: TlsMaterial | undefined, timeoutMs: number): Promise<Buffer> {
    const endpoint = parseEndpoint(url);
    return new Promise<Buffer>((resolve, reject) => {
      const address = endpoint.kind === 'unix' ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port };
      const socket = endpoint.secure
        ? tls.connect({ ...(tlsMaterial === undefined ? {} : tlsClientOptions(tlsMaterial)), ...address, checkServerIdentity: (_s, cert) => tls.checkServerIdentity(endpoint.host, cert) })
        : net.connect(address);
      let done = false;
      const finish = (err: Error | undefined, b?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(b!);
      };
      const timer = setTimeout(() => finish(new Error(`could not get the cluster members from ${url}: timeout`)), timeoutMs);
      socket.once('error', (err) => finish(new Error(`could not get the cluster members from ${url}: ${err.message}`)));
      socket.once(endpoint.secure ? 'secureConnect' : 'connect', () => {
        const c = new Connection(socket, DEFAULT_MAX_FRAME_BYTES);
        c.start({
          onFrame: (f: Frame) => {
            if (f.type === FrameType.Members) finish(undefined, Buffer.from(f.payload));
            else finish(new Error(`could not get the cluster members from ${url}: unexpected frame type ${f.type}`));
          },
          onClose: (err) => finish(err ?? new Error(`could not get the cluster members from ${url}: connection closed`)),
        });
        c.writeFrame(FrameType.Hello, encodeHello({ protocolVersion: PROTOCOL_VERSION, kind: 'members', clusterId: 0n, from: 0n, to: 0n }));
      });
    });
  }

  /** A new inbound connection: its first frame must be a HELLO, within connReadTimeoutMs. */
  private accept(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (socket.remoteAddress !== undefined) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_MS);
    }
    const conn = new Connection(socket, this.maxFrameBytes);
    const timer = setTimeout(() => conn.close(new Error('handshake timeout')), this.connReadTimeoutMs);
    conn.start({
      onFrame: (f: Frame) => {
        clearTimeout(timer);
        if (f.type !== FrameType.Hello) throw new FrameError(ErrHandshake, `expected a hello, got frame type ${f.type}`);
        const hello = decodeHello(f.payload);
        if (!isHello(hello)) {
          this.logger.warn(
            { 'local-member-id': idString(this.memberId), 'local-member-cluster-id': idString(this.clusterId), 'remote-peer-protocol-version': hello.protocolVersion, error: ERROR_TEXT[TransportErrorCode.IncompatibleVersion] },
            'failed to check version compatibility',
          );
          this.refuse(conn, TransportErrorCode.IncompatibleVersion);
          return;
        }
        this.onHello(conn, hello);
      },
      onClose: () => clearTimeout(timer),
    });
  }

  /** The listener's checks, in etcd's order (rafthttp http.go streamHandler.ServeHTTP). */
  private onHello(conn: Connection, hello: Hello): void {
    const local = idString(this.memberId);
    if (hello.kind === 'members') {
      // A joining member does not know the cluster yet: it asks before any of the checks below can apply.
      conn.closeAfter(FrameType.Members, this.opts.membersInfo?.() ?? EMPTY);
      return;
    }
    if (hello.clusterId !== this.clusterId) {
      this.logger.warn(
        {
          'local-member-id': local,
          'local-member-cluster-id': idString(this.clusterId),
          'remote-peer-id': idString(hello.from),
          'remote-peer-cluster-id': idString(hello.clusterId),
        },
        'request cluster ID mismatch',
      );
      this.refuse(conn, TransportErrorCode.ClusterIdMismatch);
      return;
    }
    const admission = this.opts.isPeerAllowed?.(hello.from) ?? (this.peers.has(hello.from) ? 'ok' : 'unknown');
    if (admission === 'removed') {
      this.logger.warn({ 'local-member-id': local, 'remote-peer-id-from': idString(hello.from) }, 'rejected stream from remote peer because it was removed');
      this.refuse(conn, TransportErrorCode.MemberRemoved);
      return;
    }
    if (admission === 'unknown') {
      this.logger.warn(
        { 'local-member-id': local, 'remote-peer-id-from': idString(hello.from), 'cluster-id': idString(this.clusterId) },
        'failed to find remote peer in cluster',
      );
      this.refuse(conn, TransportErrorCode.SenderNotFound);
      return;
    }
    if (hello.to !== this.memberId) {
      this.logger.warn(
        { 'local-member-id': local, 'remote-peer-id-header': idString(hello.to), 'remote-peer-id-from': idString(hello.from), 'cluster-id': idString(this.clusterId) },
        'ignored streaming request; ID mismatch',
      );
      this.refuse(conn, TransportErrorCode.ToMismatch);
      return;
    }
    if (hello.kind === 'snapshot' && this.inboundSnapshots >= this.maxInboundSnapshots) {
      this.logger.warn({ 'local-member-id': local, 'remote-snapshot-sender-id': idString(hello.from), 'max-inbound-snapshots': this.maxInboundSnapshots }, 'rejected snapshot: too many snapshots being received');
      this.refuse(conn, TransportErrorCode.SnapshotFailed, `${ERROR_TEXT[TransportErrorCode.SnapshotFailed]} (too many snapshots being received)`);
      return;
    }
    conn.writeFrame(FrameType.Ack, encodeAck({ clusterId: this.clusterId, memberId: this.memberId }));
    if (hello.kind === 'stream') this.attachInboundStream(conn, hello.from);
    else this.receiveSnapshot(conn, hello.from);
  }

  private refuse(conn: Connection, code: TransportErrorCode, text = ERROR_TEXT[code]): void {
    conn.closeAfter(FrameType.Error, encodeError({ code, clusterId: this.clusterId, text }));
  }

  private attachInboundStream(conn: Connection, from: bigint): void {
    const previous = this.inboundStreams.get(from);
    this.inboundStreams.set(from, conn);
    const ids = { 'stream-reader-type': 'stream', 'local-member-id': idString(this.memberId), 'remote-peer-id': idString(from) };
    if (previous !== undefined) {
      // The peer redialed (it saw the old connection fail first); the newer connection is the one it writes to.
      previous.close(new Error('replaced by a newer stream from the same peer'));
    }
    this.logger.info(ids, 'established TCP streaming connection with remote peer');
    conn.setHandlers({
      onFrame: (f: Frame) => {
        if (f.type === FrameType.Message) this.opts.onMessage(from, f.payload);
        else if (f.type !== FrameType.Heartbeat) throw new FrameError(ErrUnexpectedFrame, `unexpected frame type ${f.type} on an inbound stream`);
      },
      onClose: (err) => {
        if (this.inboundStreams.get(from) === conn) this.inboundStreams.delete(from);
        if (this.stopped) return;
        this.logger.warn({ ...ids, error: err === undefined ? 'connection closed' : err.message }, 'lost TCP streaming connection with remote peer');
      },
    });
    conn.startLiveness(Math.floor(this.connReadTimeoutMs / 3), this.connReadTimeoutMs);
  }

  /**
   * The receiving side of sendSnapshot: META, then CHUNKs into a ChunkQueue handed to onSnapshot, then END. The
   * sender is told DONE once onSnapshot resolved and the END arrived, or ERROR with the consumer's failure.
   */
  private receiveSnapshot(conn: Connection, from: bigint): void {
    const ids = { 'local-member-id': idString(this.memberId), 'remote-snapshot-sender-id': idString(from) };
    const started = performance.now();
    this.inboundSnapshots++;
    let queue: ChunkQueue | undefined;
    let receivedBytes = 0;
    let consumed = false;
    const finishIfDone = (): void => {
      if (!consumed || queue === undefined || !queue.complete || conn.isClosed) return;
      this.logger.info(
        { ...ids, 'incoming-snapshot-size-bytes': receivedBytes, 'download-took': formatGoDurationMs(performance.now() - started) },
        'received and saved database snapshot',
      );
      conn.closeAfter(FrameType.SnapshotDone, EMPTY);
    };
    conn.setHandlers({
      onFrame: (f: Frame) => {
        if (queue === undefined) {
          if (f.type !== FrameType.SnapshotMeta) throw new FrameError(ErrUnexpectedFrame, `expected snapshot metadata, got frame type ${f.type}`);
          const q = new ChunkQueue(this.snapshotHighWaterBytes, { pause: () => conn.pauseReading(), resume: () => conn.resumeReading() });
          queue = q;
          this.logger.info({ ...ids, 'incoming-snapshot-message-size-bytes': f.payload.length }, 'receiving database snapshot');
          const meta = f.payload;
          new Promise<void>((resolve) => resolve(this.opts.onSnapshot(from, meta, q))).then(
            () => {
              consumed = true;
              q.discardRest();
              finishIfDone();
            },
            (err: unknown) => {
              const message = err instanceof Error ? err.message : String(err);
              this.logger.warn({ ...ids, error: message }, 'failed to save incoming database snapshot');
              q.discardRest();
              conn.closeAfter(
                FrameType.Error,
                encodeError({ code: TransportErrorCode.SnapshotFailed, clusterId: this.clusterId, text: `${ERROR_TEXT[TransportErrorCode.SnapshotFailed]} (${message})` }),
              );
            },
          );
          return;
        }
        if (queue.complete) throw new FrameError(ErrUnexpectedFrame, `frame type ${f.type} after the end of a snapshot`);
        if (f.type === FrameType.SnapshotChunk) {
          receivedBytes += f.payload.length;
          queue.push(f.payload);
        } else if (f.type === FrameType.SnapshotEnd) {
          queue.end();
          finishIfDone();
        } else {
          throw new FrameError(ErrUnexpectedFrame, `unexpected frame type ${f.type} on a snapshot connection`);
        }
      },
      onClose: (err) => {
        this.inboundSnapshots--;
        assert(this.inboundSnapshots >= 0, 'inbound snapshot count out of step');
        if (queue === undefined || queue.complete) return;
        queue.fail(new TransportError(ErrSnapshotFailed, `snapshot stream from ${idString(from)} closed before its end${err === undefined ? '' : ` (${err.message})`}`));
      },
    });
  }
}

function snapshotError(err: unknown): TransportError {
  const message = err instanceof Error ? err.message : String(err);
  return new TransportError(ErrSnapshotFailed, `failed to send snapshot: ${message}`, { cause: err });
}
