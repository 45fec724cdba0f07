// One framed peer connection: a socket (TCP, TLS or Unix) with a FrameDecoder on the read side, batched and
// backpressured writes on the write side, an optional liveness check, and a single close path.
//
// The connection knows nothing of handshakes or peers; peer-transport.ts drives it through onFrame and onClose.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { assert } from '../../util/assert';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameError, FrameType, encodeFrame, encodeFrameHeader, writeFrameHeader, type Frame } from './frame';

export interface ConnectionHandlers {
  /**
   * Called for every decoded frame, in order. Throwing a FrameError closes the connection as a protocol violation;
   * any other exception propagates (it is a programmer error).
   */
  onFrame(frame: Frame): void;
  /** Called exactly once, when the connection is closed for any reason; `error` is undefined for a clean close. */
  onClose(error: Error | undefined): void;
}

/** A queued frame: its type and its payload (written as is, never copied). */
export interface OutgoingFrame {
  type: FrameType;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

export class Connection {
  private readonly decoder: FrameDecoder;
  private handlers: ConnectionHandlers | undefined;
  private closed = false;
  /** Reading is paused by the consumer (snapshot backpressure); frames already decoded wait in the decoder. */
  private readPaused = false;
  /** Re-entrancy guard: onFrame may pause, resume or close the connection. */
  private delivering = false;
  private livenessTimer: NodeJS.Timeout | undefined;
  private lastReadMs = performance.now();
  private drainWaiters: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    maxFrameBytes: number,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.close(err));
    socket.on('end', () => this.close(new Error('EOF')));
    socket.on('close', () => this.close(new Error('use of closed network connection')));
    socket.on('drain', () => this.onDrain());
    socket.pause();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while the socket's write buffer is over its high-water mark; writers should wait for drain. */
  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Starts delivering frames to `handlers`. Until then the socket is paused and its bytes wait in the kernel. */
  start(handlers: ConnectionHandlers): void {
    assert(this.handlers === undefined, 'connection started twice');
    this.handlers = handlers;
    if (this.closed) return;
    this.socket.resume();
  }

  /**
   * Hands the connection to the next phase (handshake → stream or snapshot). Frames decoded from then on, including
   * the rest of the current chunk, go to the new handlers.
   */
  setHandlers(handlers: ConnectionHandlers): void {
    assert(this.handlers !== undefined, 'setHandlers before start');
    this.handlers = handlers;
  }

  /**
   * Sends a heartbeat every `intervalMs` and closes the connection when nothing has been read for `readTimeoutMs`,
   * so that a silently dead peer (a partition, a powered-off host) is noticed within a bounded time even on a
   * connection that carries nothing. Mirrors etcd's ConnReadTimeout and its linkHeartbeat every ConnReadTimeout/3.
   */
  startLiveness(intervalMs: number, readTimeoutMs: number): void {
    assert(intervalMs > 0 && readTimeoutMs > intervalMs, 'liveness interval must be positive and below the read timeout');
    this.lastReadMs = performance.now();
    this.livenessTimer = setInterval(() => {
      if (performance.now() - this.lastReadMs > readTimeoutMs) {
        this.close(new Error(`read timeout: nothing received for ${readTimeoutMs} ms`));
        return;
      }
      // A full write buffer already proves we have data in flight; adding to it would only grow it.
      if (!this.needsDrain) this.writeFrame(FrameType.Heartbeat, EMPTY);
    }, intervalMs);
    this.livenessTimer.unref();
  }

  /** Writes one frame; returns false when the socket asks the writer to wait for drain. */
  writeFrame(type: FrameType, payload: Buffer): boolean {
    if (this.closed) return false;
    if (payload.length <= 4096) return this.socket.write(encodeFrame(type, payload));
    this.socket.cork();
    this.socket.write(encodeFrameHeader(type, payload.length));
    const ok = this.socket.write(payload);
    this.socket.uncork();
    return ok;
  }

  /**
   * Writes a batch of frames as one corked write: the kernel sees a single writev of all headers and payloads, and
   * no payload is copied. The headers share one buffer. Returns false when the writer should wait for drain.
   */
  writeFrames(frames: readonly OutgoingFrame[]): boolean {
    if (this.closed || frames.length === 0) return !this.closed;
    const headers = Buffer.allocUnsafe(frames.length * FRAME_HEADER_BYTES);
    this.socket.cork();
    let ok = true;
    let runStart = 0;
    // Headers of consecutive frames whose payloads are empty are written as one slice.
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      assert(f !== undefined, 'frame batch has a hole');
      writeFrameHeader(headers, i * FRAME_HEADER_BYTES, f.type, f.payload.length);
      if (f.payload.length > 0) {
        ok = this.socket.write(headers.subarray(runStart * FRAME_HEADER_BYTES, (i + 1) * FRAME_HEADER_BYTES)) && ok;
        ok = this.socket.write(f.payload) && ok;
        runStart = i + 1;
      }
    }
    if (runStart < frames.length) ok = this.socket.write(headers.subarray(runStart * FRAME_HEADER_BYTES, frames.length * FRAME_HEADER_BYTES)) && ok;
    this.socket.uncork();
    return ok;
  }

  /** Resolves once the write buffer has drained below the high-water mark, or the connection closed. */
  waitForDrain(): Promise<void> {
    if (this.closed || !this.needsDrain) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Stops reading (the remote's writes then back up into its socket buffer: TCP flow control). */
  pauseReading(): void {
    this.readPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.deliver();
    if (!this.readPaused && !this.closed) this.socket.resume();
  }

  /**
   * Sends a last frame (typically ERROR) and half-closes, so that the remote reads it before it sees the end; the
   * socket is destroyed if the remote does not close its side in time.
   */
  closeAfter(type: FrameType, payload: Buffer, lingerMs = 1000): void {
    if (this.closed) return;
    this.writeFrame(type, payload);
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), lingerMs);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
    this.close(undefined, false);
  }

  /**
   * Closes the connection and reports `error` (undefined: a clean close) to onClose once. Idempotent: the first
   * reason wins.
   */
  close(error?: Error, destroy = true): void {
    if (this.closed) return;
    this.closed = true;
    if (this.livenessTimer !== undefined) clearInterval(this.livenessTimer);
    this.livenessTimer = undefined;
    if (destroy) this.socket.destroy();
    for (const w of this.drainWaiters.splice(0)) w();
    this.handlers?.onClose(error);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReadMs = performance.now();
    this.decoder.push(chunk);
    this.deliver();
  }

  private deliver(): void {
    if (this.delivering || this.handlers === undefined) return;
    this.delivering = true;
    try {
      while (!this.closed && !this.readPaused) {
        let frame: Frame | undefined;
        try {
          frame = this.decoder.next();
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          this.close(err);
          return;
        }
        if (frame === undefined) return;
        try {
          this.handlers.onFrame(frame);
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          this.close(err);
          return;
        }
      }
    } finally {
      this.delivering = false;
    }
  }

  private onDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }
}
