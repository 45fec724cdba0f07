// The plaintext client front (src/server/client-front.ts): the frame rewriter against hpack.js's encoder under any
// chunking; the front's paths (direct, rewritten, HTTP/1, dropped) and bounds with a grpc-js echo server behind it;
// and a whole member behind it with grpc-js clients, a raw HTTP/2 client sending etcdctl 3.4's schemed
// :authority, keepalive pings, HTTP/1 /health, and etcdctl itself when installed.

import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import {
  ClientFrameRewriter,
  ClientFront,
  HeaderBlockDecoder,
  Http2ConnectionError,
  encodeLiteralBlock,
  etcdHttpRoutes,
  httpRouter,
  inspectHttp2Start,
  isAuthorityAcceptable,
  normalizeAuthority,
  type ClientFrontLimits,
  type HeaderField,
} from '../../src/server/client-front';
import { Xoshiro128 } from '../../src/util/prng';
import { loadApi } from '../../src/api/proto';
import { startTestMember, call, rawClient, type TestMember } from '../helpers/member';
import { RawWatch } from '../helpers/watch';

const hpack = require('hpack.js');
const exec = promisify(execFile);
const silent = pino({ level: 'silent' });
const b = (s: string) => Buffer.from(s);

const PREFACE = b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = 0x4;
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  raw: Buffer;
}

function parseFrames(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  let i = 0;
  while (i < bytes.length) {
    const length = bytes.readUIntBE(i, 3);
    const raw = bytes.subarray(i, i + 9 + length);
    out.push({ type: bytes[i + 3]!, flags: bytes[i + 4]!, streamId: bytes.readUInt32BE(i + 5) & 0x7fffffff, payload: raw.subarray(9), raw });
    i += 9 + length;
  }
  if (i !== bytes.length) throw new Error('trailing partial frame');
  return out;
}

/** hpack.js's encoder, with its dynamic table and Huffman coding: the client side of a connection. */
function hpackEncoder(): (fields: Array<{ name: string; value: string; neverIndex?: boolean; huffman?: boolean }>, reset?: boolean) => Buffer {
  const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
  return (fields, reset = false) => {
    if (reset) comp.reset();
    comp.write(fields);
    const out: Buffer[] = [];
    for (let c = comp.read(); c !== null; c = comp.read()) out.push(c);
    return Buffer.concat(out);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Pure parts

t.test('authority: what nghttp2 accepts passes unchanged; schemes and paths are cut', async (t) => {
  for (const ok of ['127.0.0.1:2379', 'localhost', '[::1]:2379', 'etcd-0.etcd:2379', 'user@h:1', '']) {
    t.ok(isAuthorityAcceptable(ok), ok);
    t.equal(normalizeAuthority(ok), ok);
  }
  const cases: Array<[string, string]> = [
    ['http://127.0.0.1:2379', '127.0.0.1:2379'],
    ['https://etcd.example.com:2379/', 'etcd.example.com:2379'],
    ['http://[::1]:2379', '[::1]:2379'],
    ['unix://localhost:12345', 'localhost:12345'],
    ['unix:///tmp/etcd.sock', 'localhost'],
    ['host:1/path?q', 'host:1'],
    ['a b{c}', 'abc'],
  ];
  for (const [input, want] of cases) {
    t.notOk(isAuthorityAcceptable(input), input);
    t.equal(normalizeAuthority(input), want, input);
    t.ok(isAuthorityAcceptable(normalizeAuthority(input)));
  }
});

t.test('literal block: decodes with an empty table, keeps never-indexed, sizes long integers right', async (t) => {
  const fields: HeaderField[] = [
    { name: ':authority', value: '127.0.0.1:2379', neverIndex: false },
    { name: 'authorization', value: 'secret', neverIndex: true },
    { name: 'x-long', value: 'v'.repeat(300_000), neverIndex: false },
    { name: 'x-latin1', value: 'caf\u00e9\u00ff', neverIndex: false },
    { name: 'x-empty', value: '', neverIndex: false },
  ];
  const block = encodeLiteralBlock(fields);
  t.same(new HeaderBlockDecoder().decode(block), fields);
  t.same(new HeaderBlockDecoder().decode(encodeLiteralBlock([])), []);
});

interface Expected {
  kind: 'same' | 'headers';
  raw?: Buffer;
  streamId?: number;
  endStream?: boolean;
  priority?: Buffer;
  fields?: HeaderField[];
}

/** A random client byte stream after the preface, with what the rewriter must make of each frame. */
function randomClientStream(rng: Xoshiro128, dropFirstAck: boolean): { input: Buffer; expected: Expected[] } {
  const encode = hpackEncoder();
  const parts: Buffer[] = [];
  const expected: Expected[] = [];
  const pass = (raw: Buffer) => {
    parts.push(raw);
    expected.push({ kind: 'same', raw });
  };
  pass(frame(SETTINGS, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0, 0x40, 0, 0])));
  let ackPending = dropFirstAck;
  let stream = 1;
  const authorities = ['http://127.0.0.1:2379', '127.0.0.1:2379', 'unix://localhost:1', 'unix:///tmp/s.sock', 'https://h:1/p'];
  const steps = 5 + rng.intn(20);
  for (let s = 0; s < steps; s++) {
    const kind = rng.intn(7);
    if (kind <= 2) {
      const fields = [
        { name: ':method', value: 'POST' },
        { name: ':scheme', value: 'http' },
        { name: ':path', value: `/etcdserverpb.KV/${['Range', 'Put', 'Txn'][rng.intn(3)]}` },
        { name: ':authority', value: authorities[rng.intn(authorities.length)]! },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
        { name: 'x-secret', value: `s${rng.intn(3)}`, neverIndex: rng.intn(2) === 0 },
        ...(rng.intn(4) === 0 ? [{ name: 'host', value: authorities[rng.intn(authorities.length)]! }] : []),
        ...(rng.intn(5) === 0 ? [{ name: 'x-big', value: 'x'.repeat(1 + rng.intn(40_000)) }] : []),
      ].map((f) => ({ ...f, huffman: rng.intn(2) === 0 }));
      const block = encode(fields, rng.intn(8) === 0);
      const endStream = rng.intn(3) === 0;
      const priority = rng.intn(3) === 0 ? Buffer.from([0, 0, 0, 0, 15]) : undefined;
      const padded = rng.intn(3) === 0;
      // Split the block into a HEADERS fragment and CONTINUATION fragments of random sizes.
      const cuts: number[] = [0];
      while (cuts[cuts.length - 1]! < block.length) cuts.push(Math.min(block.length, cuts[cuts.length - 1]! + 1 + rng.intn(Math.min(16_000, block.length))));
      if (cuts.length === 1) cuts.push(0);
      for (let c = 0; c + 1 < cuts.length; c++) {
        const fragment = block.subarray(cuts[c], cuts[c + 1]);
        const last = c + 2 === cuts.length;
        if (c === 0) {
          const pad = padded ? rng.intn(20) : 0;
          const payload = Buffer.concat([padded ? Buffer.from([pad]) : Buffer.alloc(0), priority ?? Buffer.alloc(0), fragment, Buffer.alloc(pad)]);
          const flags = (endStream ? END_STREAM : 0) | (padded ? PADDED : 0) | (priority ? PRIORITY : 0) | (last ? END_HEADERS : 0);
          parts.push(frame(HEADERS, flags, stream, payload));
        } else {
          parts.push(frame(CONTINUATION, last ? END_HEADERS : 0, stream, fragment));
        }
      }
      const want = fields.map((f) => ({
        name: f.name,
        value: f.name === ':authority' || f.name === 'host' ? normalizeAuthority(f.value) : f.value,
        neverIndex: f.neverIndex === true,
      }));
      expected.push({ kind: 'headers', streamId: stream, endStream, priority, fields: want });
      stream += 2;
    } else if (kind === 3) {
      pass(frame(0x0, rng.intn(2), Math.max(1, stream - 2), Buffer.alloc(rng.intn(16_384), 7)));
    } else if (kind === 4) {
      pass(frame(0x6, 0, 0, Buffer.alloc(8, rng.intn(256)))); // PING
      pass(frame(0x8, 0, 0, Buffer.from([0, 1, 0, 0]))); // WINDOW_UPDATE
    } else if (kind === 5) {
      const ack = frame(SETTINGS, 0x1, 0);
      parts.push(ack);
      if (ackPending) ackPending = false;
      else expected.push({ kind: 'same', raw: ack });
    } else {
      pass(frame(0xfa, 0, 3, Buffer.alloc(rng.intn(100), 1))); // an unknown extension frame
    }
  }
  return { input: Buffer.concat(parts), expected };
}

function checkRewritten(t: any, output: Buffer, expected: Expected[]): void {
  const frames = parseFrames(output);
  let f = 0;
  for (const e of expected) {
    if (e.kind === 'same') {
      t.ok(frames[f]?.raw.equals(e.raw!), `frame ${f} passes through unchanged`);
      f++;
      continue;
    }
    const first = frames[f++]!;
    t.equal(first.type, HEADERS);
    t.equal(first.streamId, e.streamId);
    t.equal((first.flags & END_STREAM) !== 0, e.endStream, 'END_STREAM kept');
    t.equal((first.flags & PADDED) !== 0, false, 'padding dropped');
    let payload = first.payload;
    if (e.priority) {
      t.ok((first.flags & PRIORITY) !== 0 && payload.subarray(0, 5).equals(e.priority), 'priority kept');
      payload = payload.subarray(5);
    }
    const fragments = [payload];
    let last = first;
    while ((last.flags & END_HEADERS) === 0) {
      last = frames[f++]!;
      t.equal(last.type, CONTINUATION);
      t.equal(last.streamId, e.streamId);
      fragments.push(last.payload);
    }
    // A fresh decoder per block: the rewritten blocks must not depend on any dynamic table.
    t.same(new HeaderBlockDecoder().decode(Buffer.concat(fragments)), e.fields);
  }
  t.equal(f, frames.length, 'no extra frames');
  t.ok(
    frames.every((x) => x.payload.length <= 16_384),
    'no frame over the default max frame size',
  );
}

t.test('rewriter: blocks re-emitted as literals with acceptable authorities, other frames unchanged, any chunking', async (t) => {
  const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed}`);
  const rng = new Xoshiro128(seed);
  for (let round = 0; round < 40; round++) {
    const dropFirstAck = rng.intn(2) === 0;
    const { input, expected } = randomClientStream(rng, dropFirstAck);
    const rewriter = new ClientFrameRewriter({ dropSettingsAck: dropFirstAck, headerBlockMaxBytes: 256 * 1024 });
    const out: Buffer[] = [];
    // Chunk sizes from 1 byte up, so frame headers and payloads split everywhere.
    const maxChunk = [1, 7, 100, 5000, 70_000][rng.intn(5)]!;
    for (let i = 0; i < input.length; ) {
      const n = 1 + rng.intn(maxChunk);
      out.push(rewriter.feed(input.subarray(i, i + n)));
      i += n;
    }
    await t.test(`round ${round} (chunks <= ${maxChunk} bytes)`, async (t) => checkRewritten(t, Buffer.concat(out), expected));
  }
});

t.test('rewriter: connection errors', async (t) => {
  const encode = hpackEncoder();
  const block = encode([{ name: ':authority', value: 'http://h:1' }]);
  const interleaved = new ClientFrameRewriter({ dropSettingsAck: false, headerBlockMaxBytes: 1024 });
  interleaved.feed(frame(HEADERS, 0, 1, block.subarray(0, 2)));
  t.throws(() => interleaved.feed(frame(0x6, 0, 0, Buffer.alloc(8))), { code: 'PROTOCOL_ERROR' }, 'a frame inside a header block');
  const big = new ClientFrameRewriter({ dropSettingsAck: false, headerBlockMaxBytes: 1024 });
  big.feed(frame(HEADERS, 0, 1, Buffer.alloc(1000)));
  t.throws(() => big.feed(frame(CONTINUATION, 0, 1, Buffer.alloc(100))), { code: 'ENHANCE_YOUR_CALM' }, 'a header block over the bound');
  const garbage = new ClientFrameRewriter({ dropSettingsAck: false, headerBlockMaxBytes: 1024 });
  t.throws(() => garbage.feed(frame(HEADERS, END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))), Http2ConnectionError, 'malformed HPACK');
  const badPad = new ClientFrameRewriter({ dropSettingsAck: false, headerBlockMaxBytes: 1024 });
  t.throws(() => badPad.feed(frame(HEADERS, END_HEADERS | PADDED, 1, Buffer.from([10, 1]))), { code: 'PROTOCOL_ERROR' }, 'padding past the payload');
});

t.test('sniffer: finds the first block across CONTINUATIONs and our SETTINGS ACK', async (t) => {
  const encode = hpackEncoder();
  const block = encode([{ name: ':authority', value: 'http://h:1' }, { name: ':path', value: '/x' }]);
  const settings = frame(SETTINGS, 0, 0);
  const headers = frame(HEADERS, 0, 1, block.subarray(0, 3));
  const cont = frame(CONTINUATION, END_HEADERS, 1, block.subarray(3));
  const ack = frame(SETTINGS, 0x1, 0);
  const bytes = Buffer.concat([PREFACE, settings, headers, cont, ack]);
  const s = inspectHttp2Start(bytes, true);
  t.ok(Buffer.isBuffer(s.firstBlock) && s.firstBlock.equals(block));
  t.equal(s.settingsAckAt, bytes.length - 9);
  t.equal(inspectHttp2Start(bytes, false).settingsAckAt, undefined, 'an ACK is ours only if we sent SETTINGS');
  t.equal(inspectHttp2Start(Buffer.concat([PREFACE, settings, headers]), true).firstBlock, undefined, 'incomplete block');
  t.equal(inspectHttp2Start(Buffer.concat([PREFACE, headers, ack]), true).firstBlock, 'malformed');
});

// ---------------------------------------------------------------------------------------------------------------
// The front before a grpc-js echo server

const echoDefinition: grpc.ServiceDefinition = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (x: Buffer) => x,
    requestDeserialize: (x: Buffer) => x,
    responseSerialize: (x: Buffer) => x,
    responseDeserialize: (x: Buffer) => x,
  },
};
const EchoClient = grpc.makeGenericClientConstructor(echoDefinition, 'Echo');

interface EchoFront {
  front: ClientFront;
  server: grpc.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A ClientFront before a grpc-js server whose Echo answers "<authority>|<request>". */
async function echoFront(limits: Partial<ClientFrontLimits> = {}, serverOptions: grpc.ServerOptions = {}, listenUrl = 'http://127.0.0.1:0'): Promise<EchoFront> {
  const server = new grpc.Server(serverOptions);
  server.addService(echoDefinition, {
    Echo: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([b(`${c.getHost()}|`), c.request])),
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const front = new ClientFront({ serveHttp2: (c) => injector.injectConnection(c), serveHttp1: httpRouter(etcdHttpRoutes()), logger: silent, limits });
  const url = await front.listen(listenUrl);
  return {
    front,
    server,
    url,
    port: Number(new URL(url).port),
    async close() {
      front.close();
      await new Promise<void>((res) => server.tryShutdown(() => res()));
    },
  };
}

function echo(client: grpc.Client, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as any).Echo(b(msg), (err: Error | null, r: Buffer) => (err ? reject(err) : resolve(r.toString())));
  });
}

function grpcMessage(msg: Buffer): Buffer {
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

interface RawResult {
  status: number | undefined;
  grpcStatus: string | undefined;
  body: Buffer;
  rstCode: number | undefined;
}

/** One gRPC call over a raw node:http2 session, with whatever :authority we like. */
function rawGrpcCall(session: http2.ClientHttp2Session, o: { path: string; authority: string; message: Buffer; headers?: http2.OutgoingHttpHeaders }): Promise<RawResult> {
  return new Promise((resolve) => {
    const req = session.request({
      ':method': 'POST',
      ':path': o.path,
      ':authority': o.authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...o.headers,
    });
    const result: RawResult = { status: undefined, grpcStatus: undefined, body: Buffer.alloc(0), rstCode: undefined };
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      result.status = h[':status'];
      if (h['grpc-status'] !== undefined) result.grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (h) => {
      result.grpcStatus = String(h['grpc-status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () => {
      result.body = Buffer.concat(chunks);
      result.rstCode = req.rstCode;
      resolve(result);
    });
    req.end(grpcMessage(o.message));
  });
}

function connectRaw(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function ping(session: http2.ClientHttp2Session): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    session.ping(Buffer.from('12345678'), (err, _duration, payload) => (err ? reject(err) : resolve(payload)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('echo: the problem exists without the front (nghttp2 resets a schemed :authority)', async (t) => {
  const server = new grpc.Server();
  server.addService(echoDefinition, { Echo: (c: any, cb: any) => cb(null, c.request) });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const session = await connectRaw(port);
  const r = await rawGrpcCall(session, { path: '/test.Echo/Echo', authority: `http://127.0.0.1:${port}`, message: b('x') });
  t.equal(r.rstCode, http2.constants.NGHTTP2_PROTOCOL_ERROR);
  session.close();
  server.forceShutdown();
});

t.test('echo: grpc-js clients go direct, many calls on one connection', async (t) => {
  const f = await echoFront();
  t.teardown(() => f.close());
  const client = new EchoClient(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure());
  const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => echo(client, `m${i}`)));
  t.same(answers, Array.from({ length: 500 }, (_, i) => `127.0.0.1:${f.port}|m${i}`));
  t.same(f.front.counts, { direct: 1, rewritten: 0, http1: 0, dropped: 0 });
  client.close();
});

t.test('echo: a schemed :authority is rewritten, on every request of the connection', async (t) => {
  const f = await echoFront();
  t.teardown(() => f.close());
  const session = await connectRaw(f.port);
  const authority = `http://127.0.0.1:${f.port}`;
  for (let i = 0; i < 20; i++) {
    // Repeated headers go through Node's encoder's dynamic table; a large one needs CONTINUATION frames.
    const headers = i % 5 === 4 ? { 'x-big': 'y'.repeat(30_000) } : { 'x-n': String(i % 3) };
    const r = await rawGrpcCall(session, { path: '/test.Echo/Echo', authority, message: b(`m${i}`), headers });
    t.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR, `call ${i} not reset`);
    t.equal(r.grpcStatus, '0');
    t.equal(r.body.subarray(5).toString(), `127.0.0.1:${f.port}|m${i}`);
  }
  t.same(await ping(session), b('12345678'), 'PING answered through the rewriter');
  t.same(f.front.counts, { direct: 0, rewritten: 1, http1: 0, dropped: 0 });
  session.close();
  // grpc-js client told to use a schemed authority (as etcdctl 3.4 does), on the same front.
  const client = new EchoClient(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => echo(client, `c${i}`)));
  t.same(answers, Array.from({ length: 200 }, (_, i) => `127.0.0.1:${f.port}|c${i}`));
  t.equal(f.front.counts.rewritten, 2);
  client.close();
});

t.test('echo: keepalive pings both ways on both paths keep the connection', async (t) => {
  // The server pings every 100 ms and drops a session whose ACK is 300 ms late; the client pings too.
  const f = await echoFront({}, { 'grpc.keepalive_time_ms': 100, 'grpc.keepalive_timeout_ms': 300 });
  t.teardown(() => f.close());
  const options = { 'grpc.keepalive_time_ms': 100, 'grpc.keepalive_timeout_ms': 300, 'grpc.keepalive_permit_without_calls': 1 };
  const direct = new EchoClient(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure(), options);
  const rewritten = new EchoClient(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure(), { ...options, 'grpc.default_authority': `http://127.0.0.1:${f.port}` });
  await echo(direct, 'a');
  await echo(rewritten, 'a');
  await sleep(1500);
  t.equal(await echo(direct, 'b'), `127.0.0.1:${f.port}|b`);
  t.equal(await echo(rewritten, 'b'), `127.0.0.1:${f.port}|b`);
  t.same(f.front.counts, { direct: 1, rewritten: 1, http1: 0, dropped: 0 }, 'no reconnection');
  direct.close();
  rewritten.close();
});

t.test('echo: a client that waits for the server preface gets our SETTINGS first', async (t) => {
  const f = await echoFront();
  t.teardown(() => f.close());
  const socket = net.connect(f.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]));
  const first = await new Promise<Buffer>((r) => socket.once('data', r));
  t.same(first.subarray(0, 9), frame(SETTINGS, 0, 0), 'an empty SETTINGS frame');
  // ACK it and ask: the front cuts our ACK out and hands over; grpc-js answers with its own SETTINGS.
  const encode = hpackEncoder();
  const block = encode([
    { name: ':method', value: 'POST' },
    { name: ':scheme', value: 'http' },
    { name: ':path', value: '/test.Echo/Echo' },
    { name: ':authority', value: `127.0.0.1:${f.port}` },
    { name: 'content-type', value: 'application/grpc' },
    { name: 'te', value: 'trailers' },
  ]);
  const received: Buffer[] = [];
  socket.on('data', (c) => received.push(c));
  socket.write(Buffer.concat([frame(SETTINGS, 0x1, 0), frame(HEADERS, END_HEADERS, 1, block), frame(0x0, END_STREAM, 1, grpcMessage(b('hi')))]));
  for (let i = 0; i < 50 && !Buffer.concat(received).includes(b('|hi')); i++) await sleep(20);
  t.ok(Buffer.concat(received).includes(b(`127.0.0.1:${f.port}|hi`)), 'the call is answered');
  const goaway = parseFrames(Buffer.concat(received).subarray(0, Buffer.concat(received).length)).find((x) => x.type === 0x7);
  t.equal(goaway, undefined, 'no GOAWAY: the ACK did not reach nghttp2');
  t.same(f.front.counts, { direct: 1, rewritten: 0, http1: 0, dropped: 0 });
  socket.destroy();
});

t.test('echo: bounds', async (t) => {
  const f = await echoFront({ prefaceTimeoutMs: 100, headersWaitMs: 100, sniffMaxBytes: 4096 });
  t.teardown(() => f.close());
  const closed = (s: net.Socket) => new Promise<void>((r) => s.once('close', () => r()));
  const silentSocket = net.connect(f.port, '127.0.0.1');
  silentSocket.on('error', () => {});
  await closed(silentSocket);
  const partial = net.connect(f.port, '127.0.0.1', () => partial.write(PREFACE.subarray(0, 10)));
  partial.on('error', () => {});
  await closed(partial);
  t.equal(f.front.counts.dropped, 2, 'no preface in time: dropped');

  // An HTTP/2 connection slow to send its first request is served through the rewriter.
  const session = await connectRaw(f.port);
  await sleep(300);
  const r = await rawGrpcCall(session, { path: '/test.Echo/Echo', authority: `127.0.0.1:${f.port}`, message: b('late') });
  t.equal(r.body.subarray(5).toString(), `127.0.0.1:${f.port}|late`);
  t.equal(f.front.counts.rewritten, 1);
  session.close();

  // So is one that sends more than sniffMaxBytes before a header block; its PINGs are answered after the hand-off.
  const socket = net.connect(f.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const pings = Array.from({ length: 400 }, (_, i) => frame(0x6, 0, 0, Buffer.alloc(8, i % 256)));
  const received: Buffer[] = [];
  socket.on('data', (c) => received.push(c));
  socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0), ...pings]));
  const acks = () => {
    const all = Buffer.concat(received);
    let n = 0;
    for (let i = 0; i + 9 <= all.length; i += 9 + all.readUIntBE(i, 3)) if (all[i + 3] === 0x6 && all[i + 4] === 0x1) n++;
    return n;
  };
  for (let i = 0; i < 100 && acks() < 400; i++) await sleep(20);
  t.equal(acks(), 400, 'every PING answered');
  t.equal(f.front.counts.rewritten, 2);
  socket.destroy();
});

t.test('echo: HTTP/1 requests, pipelined too', async (t) => {
  const f = await echoFront();
  t.teardown(() => f.close());
  const get = (p: string, method = 'GET') =>
    new Promise<{ status: number; body: string; type: string | undefined }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: f.port, path: p, method, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, type: res.headers['content-type'] }));
      });
      req.on('error', reject);
      req.end();
    });
  // etcd 3.4.23's format; Go sniffs the JSON body as text/plain.
  t.same(await get('/health'), { status: 200, body: '{"health":"true"}', type: 'text/plain; charset=utf-8' });
  t.same(await get('/version'), { status: 200, body: '{"etcdserver":"3.5.21","etcdcluster":"3.5.0"}', type: 'application/json' });
  t.same(await get('/nope'), { status: 404, body: '404 page not found\n', type: 'text/plain; charset=utf-8' });
  t.equal((await get('/health', 'POST')).status, 405);
  const socket = net.connect(f.port, '127.0.0.1');
  let raw = '';
  socket.on('data', (c) => (raw += c));
  socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await new Promise((r) => socket.once('close', r));
  t.match(raw, /^HTTP\/1\.1 200 OK[\s\S]*"health":"true"[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"etcdserver"/);
  t.equal(f.front.counts.http1, 5);
});

t.test('echo: unix listener', async (t) => {
  const sock = path.join(os.tmpdir(), `tsetcd-front-${process.pid}.sock`);
  const f = await echoFront({}, {}, `unix://${sock}`);
  t.teardown(() => f.close());
  t.equal(f.url, `unix://${sock}`);
  const client = new EchoClient(`unix:${sock}`, grpc.credentials.createInsecure());
  t.match(await echo(client, 'u'), /\|u$/);
  client.close();
});

t.test('echo: shutdown closes sniffing, direct and rewritten connections, and stops accepting', async (t) => {
  const f = await echoFront({ prefaceTimeoutMs: 60_000 });
  const waiting = net.connect(f.port, '127.0.0.1');
  waiting.on('error', () => {});
  await new Promise((r) => waiting.once('connect', r));
  const sessions = await Promise.all([connectRaw(f.port), connectRaw(f.port)]);
  for (const [i, session] of sessions.entries()) {
    const authority = i === 0 ? `127.0.0.1:${f.port}` : `http://127.0.0.1:${f.port}`;
    t.equal((await rawGrpcCall(session, { path: '/test.Echo/Echo', authority, message: b('x') })).grpcStatus, '0');
    session.on('error', () => {});
  }
  t.same(f.front.counts, { direct: 1, rewritten: 1, http1: 0, dropped: 0 });
  const closed = [waiting, ...sessions].map((x) => new Promise<void>((r) => (x as any).once('close', () => r())));
  await f.close(); // the front's close(), then grpc-js's tryShutdown, as a member closes
  await Promise.all(closed);
  t.equal(f.front.counts.dropped, 1);
  const refused = net.connect(f.port, '127.0.0.1');
  const err = await new Promise<NodeJS.ErrnoException>((r) => refused.once('error', r));
  t.equal(err.code, 'ECONNREFUSED');
});

// ---------------------------------------------------------------------------------------------------------------
// A whole member behind the front

t.test('member', async (t) => {
  const m: TestMember = await startTestMember();
  t.teardown(() => m.destroy());
  const port = Number(new URL(m.endpoint).port);
  t.ok(port > 0, 'startMember reports the bound port');

  await t.test('grpc-js clients: many calls and a watch, direct and rewritten', async (t) => {
    const api = loadApi().grpcObject as any;
    for (const authority of [undefined, m.endpoint]) {
      const options = authority === undefined ? {} : { 'grpc.default_authority': authority };
      const kv = new api.etcdserverpb.KV(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
      const watch = new api.etcdserverpb.Watch(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
      const prefix = authority === undefined ? 'direct/' : 'rewritten/';
      const stream = watch.Watch();
      stream.on('error', () => {}); // CANCELLED, from our cancel() below
      const events: string[] = [];
      const created = new Promise<void>((resolve) => {
        stream.on('data', (r: any) => {
          if (r.created) resolve();
          for (const e of r.events ?? []) events.push(e.kv.key.toString());
        });
      });
      stream.write({ create_request: { key: b(prefix), range_end: b(prefix.slice(0, -1) + '0') } });
      await created;
      await Promise.all(Array.from({ length: 200 }, (_, i) => call(kv, 'Put', { key: b(`${prefix}${i}`), value: b('v') })));
      const r = await call(kv, 'Range', { key: b(prefix), range_end: b(prefix.slice(0, -1) + '0'), count_only: true });
      t.equal(r.count, '200', `${prefix}: 200 keys`);
      for (let i = 0; i < 100 && events.length < 200; i++) await sleep(20);
      t.equal(events.length, 200, `${prefix}: the watch saw every put`);
      // A 1 MiB value: many DATA frames each way (and flow control) through the front.
      const big = Buffer.alloc(1024 * 1024, prefix.length);
      await call(kv, 'Put', { key: b(`${prefix}big`), value: big });
      const got = await call(kv, 'Range', { key: b(`${prefix}big`) });
      t.ok(Buffer.from(got.kvs[0].value).equals(big), `${prefix}: 1 MiB value round trip`);
      stream.cancel();
      kv.close();
      watch.close();
    }
  });

  await t.test('raw HTTP/2 with etcdctl 3.4 style :authority gets a gRPC answer, not PROTOCOL_ERROR', async (t) => {
    const session = await connectRaw(port);
    for (const authority of [m.endpoint, `127.0.0.1:${port}`]) {
      const r = await rawGrpcCall(session, { path: '/etcdserverpb.Maintenance/Status', authority, message: Buffer.alloc(0) });
      t.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR, authority);
      t.equal(r.status, 200);
      t.equal(r.grpcStatus, '0');
      t.ok(r.body.length > 5, 'a StatusResponse');
    }
    t.same(await ping(session), b('12345678'));
    session.close();
  });

  await t.test('HTTP/1 health on the client URL', async (t) => {
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`${m.endpoint}/health`, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      }).on('error', reject);
    });
    t.equal(body, '{"health":"true"}');
  });

  await t.test('etcdctl 3.4 with a schemed endpoint', async (t: any) => {
    try {
      await exec('etcdctl', ['version']);
    } catch {
      t.skip('etcdctl is not installed');
      return;
    }
    const env = { ...process.env, ETCDCTL_API: '3' };
    const status = await exec('etcdctl', ['--endpoints', m.endpoint, '--command-timeout', '5s', 'endpoint', 'status'], { env });
    t.match(status.stdout, new RegExp(`^${m.endpoint}, [0-9a-f]+, 3\\.5\\.21,`));
    const hash = await exec('etcdctl', ['--endpoints', m.endpoint, '--command-timeout', '5s', 'endpoint', 'hashkv'], { env });
    t.match(hash.stdout, new RegExp(`^${m.endpoint}, \\d+`));
    const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
    await call(kv, 'Put', { key: b('ctl'), value: b('ok') });
    kv.close();
    const get = await exec('etcdctl', ['--endpoints', m.endpoint, 'get', 'ctl', '--print-value-only'], { env });
    t.equal(get.stdout, 'ok\n');
  });

  await t.test('a watch through the helper still works', async (t) => {
    const w = new RawWatch(m.endpoint);
    w.create({ key: b('hw') });
    t.ok((await w.next()).created);
    const kv = rawClient(m.endpoint, 'etcdserverpb', 'KV');
    await call(kv, 'Put', { key: b('hw'), value: b('1') });
    t.equal((await w.next()).events[0].kv.value.toString(), '1');
    kv.close();
    w.close();
  });
});
