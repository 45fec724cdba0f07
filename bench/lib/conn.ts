// gRPC connections for the load generator. One Connection is one HTTP/2 connection (one TCP connection), in one
// of two transports:
//
// - "grpc-js": @grpc/grpc-js. Every grpc.Client gets its own subchannel pool, so N connections really are N TCP
//   connections (grpc-js would otherwise share one per address).
// - "h2": gRPC framed by hand over node:http2 (POST, content-type application/grpc, te: trailers, 5-byte message
//   prefix, grpc-status in the trailers). Servers cannot tell the difference; it costs about half the client CPU
//   per request of grpc-js (measured on this machine: ~140 µs vs ~270 µs per unary call), which matters when the
//   generator shares two cores with the server. See bench/README.md.
//
// Requests and responses are raw protobuf bytes (see proto.ts).

import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';

export type Transport = 'grpc-js' | 'h2';

const identity = (b: Buffer): Buffer => b;

/** What the workloads use of a bidirectional stream (a subset of grpc-js's ClientDuplexStream). */
export interface BidiStream {
  write(message: Buffer): void;
  /** Half-closes the request side. */
  end(): void;
  /** Abandons the call (the server sees RST_STREAM CANCEL). */
  cancel(): void;
  on(event: 'data', f: (message: Buffer) => void): this;
  on(event: 'error', f: (err: Error) => void): this;
  on(event: 'end', f: () => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: 'data' | 'error' | 'end', f: (...args: any[]) => void): this;
}

export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
  }
}

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Splits a gRPC response body into messages (each prefixed by a compression flag and a 4-byte length). */
class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, emit: (message: Buffer) => void): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const len = this.pending.readUInt32BE(1);
      if (this.pending.length < 5 + len) break;
      emit(this.pending.subarray(5, 5 + len));
      this.pending = this.pending.subarray(5 + len);
    }
  }
}

function statusOf(headers: http2.IncomingHttpHeaders): { code: number; details: string } | null {
  const s = headers['grpc-status'];
  if (s === undefined) return null;
  const raw = headers['grpc-message'];
  const details = typeof raw === 'string' ? decodeURIComponent(raw) : '';
  return { code: Number(s), details };
}

class H2Stream extends EventEmitter implements BidiStream {
  private readonly reader = new FrameReader();
  private status: { code: number; details: string } | null = null;

  constructor(private readonly req: http2.ClientHttp2Stream) {
    super();
    req.on('response', (h) => {
      this.status = statusOf(h);
    });
    req.on('trailers', (h) => {
      this.status = statusOf(h) ?? this.status;
    });
    req.on('data', (chunk: Buffer) => this.reader.push(chunk, (m) => this.emit('data', m)));
    req.on('end', () => {
      if (this.status !== null && this.status.code !== 0) this.emit('error', new GrpcStatusError(this.status.code, this.status.details));
      else this.emit('end');
    });
    req.on('error', (e) => this.emit('error', e));
  }

  write(message: Buffer): void {
    this.req.write(frame(message));
  }

  end(): void {
    this.req.end();
  }

  cancel(): void {
    this.req.close(http2.constants.NGHTTP2_CANCEL);
  }
}

const grpcHeaders = (path: string): http2.OutgoingHttpHeaders => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
  'user-agent': 'tsetcd-bench',
});

export class Connection {
  private grpcClient: grpc.Client | null = null;
  private session: http2.ClientHttp2Session | null = null;

  constructor(
    readonly endpoint: string,
    readonly transport: Transport = 'grpc-js',
  ) {
    if (transport === 'grpc-js') this.grpcClient = this.newGrpcClient();
    else this.session = this.newSession();
  }

  private closed = false;

  private newSession(): http2.ClientHttp2Session {
    const [host, port] = splitHostPort(this.endpoint);
    const session = http2.connect(`http://${this.endpoint}`, {
      createConnection: () => {
        const socket = net.connect(port, host);
        socket.setNoDelay(true);
        return socket;
      },
      // Like grpc-js: no limit from us on what the server sends.
      maxSessionMemory: 1024,
    });
    session.on('error', () => undefined);
    return session;
  }

  /** The live session; a session the server closed (GOAWAY, reset) is replaced, as grpc-js reconnects. */
  private liveSession(): http2.ClientHttp2Session {
    if (!this.closed && (this.session!.closed || this.session!.destroyed)) this.session = this.newSession();
    return this.session!;
  }

  private newGrpcClient(): grpc.Client {
    return new grpc.Client(this.endpoint, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      // A benchmark run must not be cut short by keepalive policy; etcd permits pings every 5 s.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
  }

  /** Resolves once the connection is READY (or rejects after timeoutMs). */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.grpcClient !== null) {
      const c = this.grpcClient;
      return new Promise((resolve, reject) => c.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
    }
    const s = this.session!;
    if (!s.connecting) return s.destroyed ? Promise.reject(new Error(`connection to ${this.endpoint} failed`)) : Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connecting to ${this.endpoint} timed out`)), timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  unary(path: string, request: Buffer): Promise<Buffer> {
    if (this.grpcClient !== null) {
      const c = this.grpcClient;
      return new Promise((resolve, reject) => {
        c.makeUnaryRequest(path, identity, identity, request, (err, res) => {
          if (err) reject(err);
          else resolve(res as Buffer);
        });
      });
    }
    const session = this.liveSession();
    return new Promise((resolve, reject) => {
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request(grpcHeaders(path));
      } catch (e) {
        reject(e);
        return;
      }
      const chunks: Buffer[] = [];
      let status: { code: number; details: string } | null = null;
      req.on('response', (h) => {
        status = statusOf(h);
      });
      req.on('trailers', (h) => {
        status = statusOf(h) ?? status;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (status === null) reject(new Error(`${path}: response without grpc-status`));
        else if (status.code !== 0) reject(new GrpcStatusError(status.code, status.details));
        else {
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
        }
      });
      req.on('error', reject);
      req.end(frame(request));
    });
  }

  bidi(path: string): BidiStream {
    if (this.grpcClient !== null) return this.grpcClient.makeBidiStreamRequest(path, identity, identity) as unknown as BidiStream;
    return new H2Stream(this.liveSession().request(grpcHeaders(path)));
  }

  close(): void {
    this.closed = true;
    this.grpcClient?.close();
    this.session?.close();
  }
}

function splitHostPort(endpoint: string): [string, number] {
  const i = endpoint.lastIndexOf(':');
  return [endpoint.slice(0, i).replace(/^\[|\]$/g, ''), Number(endpoint.slice(i + 1))];
}

/** Global connection i goes to endpoint i mod len (etcd benchmark's mustCreateConn hands them out round-robin). */
export function endpointOf(endpoints: string[], connIndex: number): string {
  return endpoints[connIndex % endpoints.length]!;
}

/** Opens one connection per endpoint given and waits until all are ready. */
export async function openConnections(endpointList: string[], transport: Transport = 'grpc-js'): Promise<Connection[]> {
  const conns = endpointList.map((e) => new Connection(e, transport));
  try {
    await Promise.all(conns.map((c) => c.ready()));
  } catch (err) {
    for (const c of conns) c.close();
    throw err;
  }
  return conns;
}

export function errorMessage(err: unknown): string {
  if (err instanceof GrpcStatusError) return err.message;
  if (err !== null && typeof err === 'object' && 'details' in err && 'code' in err) {
    const e = err as { code: number; details: string };
    return `${grpc.status[e.code] ?? e.code}: ${e.details}`;
  }
  return err instanceof Error ? err.message : String(err);
}
