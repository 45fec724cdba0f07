// The peer transport's wire pieces without sockets: the frame decoder under every way of cutting its input, the
// frame-size bound, the handshake payloads, and the snapshot receiver's flow control.

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Xoshiro128 } from '../../src/util/prng';
import { isDomainError } from '../../src/util/errors';
import { ChunkQueue } from '../../src/server/transport/chunk-queue';
import { ErrFrameTooLarge, ErrFrameType, FRAME_HEADER_BYTES, FrameDecoder, FrameType, encodeFrame, encodeFrameHeader, type Frame } from '../../src/server/transport/frame';
import {
  ERROR_TEXT,
  PROTOCOL_VERSION,
  TransportErrorCode,
  decodeAck,
  decodeError,
  decodeHello,
  encodeAck,
  encodeError,
  encodeHello,
  isHello,
  refusalText,
} from '../../src/server/transport/handshake';

const MAX_U64 = (1n << 64n) - 1n;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function drain(d: FrameDecoder): Frame[] {
  const out: Frame[] = [];
  for (let f = d.next(); f !== undefined; f = d.next()) out.push(f);
  return out;
}

t.test('frame byte format, as documented in frame.ts', async (t) => {
  t.same([...encodeFrame(FrameType.Message, Buffer.from([0xaa, 0xbb, 0xcc]))], [0, 0, 0, 3, 4, 0xaa, 0xbb, 0xcc]);
  t.same([...encodeFrameHeader(FrameType.Heartbeat, 0)], [0, 0, 0, 0, 5]);
  t.same([...encodeFrameHeader(FrameType.SnapshotChunk, 0x01020304)], [1, 2, 3, 4, 7]);
  t.equal(FRAME_HEADER_BYTES, 5);
});

t.test('decoder: many frames in one chunk, views without copies', async (t) => {
  const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello world'), Buffer.alloc(1000, 7)];
  const chunk = Buffer.concat(payloads.map((p) => encodeFrame(FrameType.Message, p)));
  const d = new FrameDecoder();
  d.push(chunk);
  const frames = drain(d);
  t.equal(frames.length, payloads.length);
  frames.forEach((f, i) => {
    t.equal(f.type, FrameType.Message);
    t.same(f.payload, payloads[i]);
  });
  // A frame that lies within one chunk is a view of it, not a copy.
  t.equal(frames[2]?.payload.buffer, chunk.buffer);
  t.equal(d.pendingBytes, 0);
});

t.test('decoder: one byte at a time, and a header split across chunks', async (t) => {
  const payload = Buffer.from('split me');
  const bytes = Buffer.concat([encodeFrame(FrameType.Message, payload), encodeFrame(FrameType.Heartbeat)]);
  const d = new FrameDecoder();
  const frames: Frame[] = [];
  for (const b of bytes) {
    d.push(Buffer.from([b]));
    frames.push(...drain(d));
  }
  t.equal(frames.length, 2);
  t.same(frames[0]?.payload, payload);
  t.equal(frames[1]?.type, FrameType.Heartbeat);
  t.equal(frames[1]?.payload.length, 0);
});

t.test('decoder: random cuts of a random frame sequence (seeded)', async (t) => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const rng = new Xoshiro128(seed);
    const payloads: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const size = rng.intn(10) === 0 ? rng.intn(200_000) : rng.intn(64);
      const p = Buffer.allocUnsafe(size);
      for (let j = 0; j < size; j += 997) p[j] = rng.intn(256);
      payloads.push(p);
    }
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(FrameType.Message, p)));
    const d = new FrameDecoder();
    const got: Buffer[] = [];
    for (let off = 0; off < stream.length; ) {
      const n = 1 + rng.intn(rng.intn(4) === 0 ? 300_000 : 100);
      d.push(stream.subarray(off, off + n));
      off += n;
      for (const f of drain(d)) got.push(f.payload);
    }
    t.equal(got.length, payloads.length, `seed ${seed}: frame count`);
    t.ok(
      got.every((p, i) => p.equals(payloads[i] as Buffer)),
      `seed ${seed}: every payload intact and in order`,
    );
    t.equal(d.pendingBytes, 0);
  }
});

t.test('decoder: a frame split over 1000 chunks is assembled in linear time', async (t) => {
  const payload = Buffer.alloc(16 * 1024 * 1024, 1);
  const bytes = encodeFrame(FrameType.SnapshotChunk, payload);
  const d = new FrameDecoder();
  const started = process.hrtime.bigint();
  const step = Math.ceil(bytes.length / 1000);
  let frames: Frame[] = [];
  for (let off = 0; off < bytes.length; off += step) {
    d.push(bytes.subarray(off, off + step));
    frames = frames.concat(drain(d));
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.equal(frames.length, 1);
  t.ok(frames[0]?.payload.equals(payload));
  t.ok(ms < 2000, `took ${ms} ms`);
});

t.test('decoder: the size bound is enforced on the header, before buffering the payload', async (t) => {
  const d = new FrameDecoder(1024);
  d.push(encodeFrame(FrameType.Message, Buffer.alloc(1024)));
  t.equal(drain(d).length, 1, 'exactly at the bound is fine');
  d.push(encodeFrameHeader(FrameType.Message, 1025));
  const tooLarge = thrown(() => d.next());
  t.ok(isDomainError(tooLarge, ErrFrameTooLarge), 'ErrFrameTooLarge');
  t.match((tooLarge as Error).message, /1025 bytes exceeds the limit of 1024/);
  t.throws(() => d.next(), /FrameDecoder used after a framing error/, 'unusable afterwards');

  // An HTTP request (e.g. etcd's rafthttp dialing us) reads as a 1.2 GB frame and is cut off at once.
  const http = new FrameDecoder();
  http.push(Buffer.from('GET /raft/stream/message/1 HTTP/1.1\r\n'));
  t.ok(isDomainError(thrown(() => http.next()), ErrFrameTooLarge));

  const badType = new FrameDecoder();
  badType.push(Buffer.from([0, 0, 0, 0, 99]));
  t.ok(isDomainError(thrown(() => badType.next()), ErrFrameType));
});

t.test('handshake payloads', async (t) => {
  for (const id of [0n, 1n, 0x8e9e05c52164694dn, MAX_U64]) {
    const h = { protocolVersion: PROTOCOL_VERSION, kind: 'snapshot' as const, clusterId: id, from: MAX_U64 - id, to: id ^ 5n };
    const bytes = encodeHello(h);
    t.equal(bytes.length, 26);
    t.same(decodeHello(bytes), h);
    t.same(decodeAck(encodeAck({ clusterId: id, memberId: MAX_U64 })), { clusterId: id, memberId: MAX_U64 });
  }
  const hello = encodeHello({ protocolVersion: PROTOCOL_VERSION, kind: 'stream', clusterId: 0x1122n, from: 1n, to: 2n });
  t.same([...hello.subarray(0, 10)], [1, 1, 0, 0, 0, 0, 0, 0, 0x11, 0x22]);
  t.throws(() => encodeHello({ protocolVersion: 1, kind: 'stream', clusterId: MAX_U64 + 1n, from: 1n, to: 2n }), /uint64/);

  // Another version is returned for refusal, whatever follows it; a malformed hello of ours is a framing error.
  const future = decodeHello(Buffer.from([2, 9, 9]));
  t.notOk(isHello(future));
  t.equal(future.protocolVersion, 2);
  t.throws(() => decodeHello(hello.subarray(0, 20)), /hello of 20 bytes/);
  const badKind = Buffer.from(hello);
  badKind[1] = 4;
  t.throws(() => decodeHello(badKind), /unknown connection kind 4/);

  const e = { code: TransportErrorCode.ClusterIdMismatch, clusterId: 0xcdef0123n, text: 'cluster ID mismatch' };
  t.same(decodeError(encodeError(e)), e);
  t.equal(refusalText({ code: TransportErrorCode.BadCertificate, clusterId: 0n, text: 'tls: bad certificate' }, { local: 1n, remote: 2n }), 'remote error: tls: bad certificate');
  t.equal(refusalText({ code: TransportErrorCode.SenderNotFound, clusterId: 0n, text: 'error sender not found' }, { local: 0xabn, remote: 0xcdn }), 'peer cd failed to find local node ab');
});

t.test('snapshot chunk queue: pauses above the high-water mark, resumes at half', async (t) => {
  const events: string[] = [];
  const q = new ChunkQueue(100, { pause: () => events.push('pause'), resume: () => events.push('resume') });
  for (let i = 0; i < 5; i++) q.push(Buffer.alloc(30, i));
  t.same(events, ['pause'], 'paused once, when 120 > 100 bytes waited');
  const it = q[Symbol.asyncIterator]();
  t.equal((await it.next()).value?.[0], 0);
  t.same(events, ['pause'], '120 bytes still above 50');
  await it.next();
  await it.next();
  t.same(events, ['pause'], '60 bytes still above 50');
  q.end();
  t.equal((await it.next()).value?.[0], 3);
  t.same(events, ['pause', 'resume'], 'resumed once down to 30 bytes');
  t.equal((await it.next()).value?.[0], 4);
  t.equal((await it.next()).done, true);
  t.throws(() => q[Symbol.asyncIterator](), /only once/);

  const failing = new ChunkQueue(100, { pause: () => undefined, resume: () => undefined });
  const pending = failing[Symbol.asyncIterator]().next();
  failing.fail(new Error('closed before its end'));
  await t.rejects(pending, /closed before its end/);

  // A consumer that stops early: what follows is discarded and reading is never left paused.
  const early = new ChunkQueue(10, { pause: () => events.push('pause2'), resume: () => events.push('resume2') });
  early.push(Buffer.alloc(20));
  for await (const chunk of early) {
    t.equal(chunk.length, 20);
    break;
  }
  early.push(Buffer.alloc(20));
  t.same(events.slice(2), ['pause2', 'resume2']);
});

const ETCD_SOURCE = '/usr/share/gocode/src/go.etcd.io/etcd';

t.test("the refusal texts and log messages are etcd's, word for word", { skip: !fs.existsSync(path.join(ETCD_SOURCE, 'etcdserver/api/rafthttp/http.go')) && 'no etcd source' }, async (t) => {
  const etcd = ETCD_SOURCE;
  const goSource = ['etcdserver/api/rafthttp', 'embed']
    .flatMap((dir) => fs.readdirSync(path.join(etcd, dir)).filter((f) => f.endsWith('.go') && !f.endsWith('_test.go')).map((f) => path.join(etcd, dir, f)))
    .map((f) => fs.readFileSync(f, 'utf8'))
    .join('\n');
  const ours = ['peer-transport.ts', 'handshake.ts'].map((f) => fs.readFileSync(path.join(__dirname, '../../../src/server/transport', f), 'utf8')).join('\n');
  for (const code of [
    TransportErrorCode.IncompatibleVersion,
    TransportErrorCode.ClusterIdMismatch,
    TransportErrorCode.MemberRemoved,
    TransportErrorCode.SenderNotFound,
    TransportErrorCode.ToMismatch,
  ]) {
    t.ok(goSource.includes(`"${ERROR_TEXT[code]}"`), `etcd says "${ERROR_TEXT[code]}"`);
  }
  const messages = [
    'peer became active',
    'peer became inactive (message send to peer failed)',
    'peer deactivated again',
    'request cluster ID mismatch',
    'request sent was ignored by remote peer due to cluster ID mismatch',
    'request sent was ignored by remote peer due to server version incompatibility',
    'failed to check version compatibility',
    'rejected stream from remote peer because it was removed',
    'failed to find remote peer in cluster',
    'ignored streaming request; ID mismatch',
    'established TCP streaming connection with remote peer',
    'lost TCP streaming connection with remote peer',
    'dropped internal Raft message since sending buffer is full (overloaded network)',
    'ignored message send request; unknown remote peer target',
    'rejected connection',
    'starting remote peer',
    'started remote peer',
    'added remote peer',
    'updated remote peer',
    'stopping remote peer',
    'stopped remote peer',
    'removed remote peer',
    'sending database snapshot',
    'sent database snapshot',
    'failed to send database snapshot',
    'receiving database snapshot',
    'received and saved database snapshot',
    'failed to save incoming database snapshot',
  ];
  for (const msg of messages) {
    t.ok(goSource.includes(`"${msg}"`), `etcd logs "${msg}"`);
    t.ok(ours.includes(`'${msg}'`), `we log "${msg}"`);
  }
});
