// The Raft peer transport end to end, on loopback: two and three members exchanging messages over TCP, TLS
// (etcd's fixture certificates and auto-TLS) and Unix sockets; the handshake's refusals with etcd's texts;
// reconnection; the send-queue bound; the liveness timeout; snapshots streamed beside the message stream.

import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { emptyTlsConfig, type TlsConfig } from '../../src/server/config';
import { createLogger } from '../../src/server/logger';
import { resolveTls, type TlsMaterial } from '../../src/server/tls';
import { Connection } from '../../src/server/transport/connection';
import { FrameType, encodeFrame } from '../../src/server/transport/frame';
import { ErrMemberRemoved, ErrSnapshotFailed, encodeAck, type TransportError } from '../../src/server/transport/handshake';
import { PeerTransport, type TransportOptions } from '../../src/server/transport/peer-transport';
import { isDomainError } from '../../src/util/errors';

const FIXTURES = '/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures';
const haveFixtures = fs.existsSync(path.join(FIXTURES, 'ca.crt'));
const fx = (name: string): string => path.join(FIXTURES, name);

interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

interface Member {
  id: bigint;
  transport: PeerTransport;
  url: string;
  urls: string[];
  received: Array<{ from: bigint; payload: Buffer }>;
  unreachable: bigint[];
  critical: TransportError[];
  logs(): LogLine[];
  logged(msg: string): LogLine[];
}

type MemberOptions = Partial<Omit<TransportOptions, 'logger'>> & { memberId: bigint };

async function member(t: Test, o: MemberOptions): Promise<Member> {
  const lines: string[] = [];
  const logger = createLogger({ logLevel: 'debug', logger: 'zap', logOutputs: ['stderr'] }, { stream: { write: (s: string) => void lines.push(s) } });
  const received: Array<{ from: bigint; payload: Buffer }> = [];
  const unreachable: bigint[] = [];
  const critical: TransportError[] = [];
  const transport = new PeerTransport({
    clusterId: 0x1000n,
    listenUrls: ['http://127.0.0.1:0'],
    onMessage: (from, payload) => received.push({ from, payload }),
    onSnapshot: async (_from, _meta, data) => {
      for await (const _chunk of data);
    },
    onPeerUnreachable: (id) => unreachable.push(id),
    onCriticalError: (err) => critical.push(err),
    logger,
    ...o,
  });
  const urls = await transport.start();
  t.teardown(() => transport.stop());
  const logs = (): LogLine[] =>
    lines
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogLine);
  return { id: o.memberId, transport, url: urls[0] as string, urls, received, unreachable, critical, logs, logged: (msg) => logs().filter((l) => l.msg === msg) };
}

/** Makes every member a peer of every other. */
function mesh(...members: Member[]): void {
  for (const a of members) for (const b of members) if (a !== b) a.transport.addPeer(b.id, b.urls);
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const seq = (i: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(i);
  return b;
};

function tlsCfg(over: Partial<TlsConfig>): TlsConfig {
  return { ...emptyTlsConfig(), ...over };
}

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-transport-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function peerTls(t: Test, over: Partial<TlsConfig>, dataDir = '/nonexistent'): Promise<TlsMaterial> {
  const logger = createLogger({ logLevel: 'error', logger: 'zap', logOutputs: ['/dev/null'] });
  const m = await resolveTls(tlsCfg(over), { dataDir, kind: 'peer', hosts: ['127.0.0.1:0', 'localhost:0'], logger });
  t.ok(m, 'TLS material resolved');
  return m as TlsMaterial;
}

// ---------------------------------------------------------------------------------------------------------------

t.test('two members: messages arrive in order, both directions, and activeSince is set', async (t) => {
  const a = await member(t, { memberId: 1n });
  const b = await member(t, { memberId: 2n });
  t.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(a.url, 'http://127.0.0.1:0', 'port 0 is replaced by the bound port');
  t.equal(a.transport.activeSince(2n), undefined);
  const before = Date.now();
  mesh(a, b);
  // Sent before the stream is up: queued while connecting, delivered once it is.
  for (let i = 0; i < 1000; i++) t.equal(a.transport.send(2n, seq(i)), true);
  for (let i = 0; i < 1000; i++) b.transport.send(1n, seq(i));
  await waitFor('1000 messages each way', () => b.received.length === 1000 && a.received.length === 1000);
  t.ok(b.received.every((m, i) => m.from === 1n && m.payload.readUInt32BE(0) === i), 'A→B in order');
  t.ok(a.received.every((m, i) => m.from === 2n && m.payload.readUInt32BE(0) === i), 'B→A in order');
  t.equal(a.transport.isActive(2n), true);
  const since = a.transport.activeSince(2n);
  t.ok(since !== undefined && since >= before && since <= Date.now(), 'activeSince is a wall-clock timestamp');
  t.equal(a.logged('peer became active').length, 1);
  t.same(a.logged('peer became active')[0]?.['peer-id'], '2');
  t.same(a.unreachable, []);
  t.equal(a.transport.send(9n, seq(0)), false, 'unknown peer');
});

t.test('three members: every pair talks, big payloads intact', async (t) => {
  const ms = [await member(t, { memberId: 0xa1n }), await member(t, { memberId: 0xb2n }), await member(t, { memberId: 0xc3n })];
  mesh(...ms);
  const big = crypto.randomBytes(10 * 1024 * 1024);
  const medium = crypto.randomBytes(1024 * 1024 + 17);
  for (const from of ms) {
    for (const to of ms) {
      if (from === to) continue;
      t.equal(from.transport.send(to.id, big), true);
      t.equal(from.transport.send(to.id, medium), true);
      t.equal(from.transport.send(to.id, Buffer.alloc(0)), true);
    }
  }
  await waitFor('3 messages from each of 2 peers at each member', () => ms.every((m) => m.received.length === 6), 20_000);
  for (const m of ms) {
    for (const from of ms.filter((x) => x !== m)) {
      const got = m.received.filter((r) => r.from === from.id).map((r) => r.payload);
      t.equal(got.length, 3);
      t.ok(got[0]?.equals(big), `${from.id}→${m.id}: 10 MiB payload intact`);
      t.ok(got[1]?.equals(medium), `${from.id}→${m.id}: 1 MiB + 17 payload intact`);
      t.equal(got[2]?.length, 0, 'empty payload');
    }
  }
});

t.test('many small messages are coalesced into few writes', async (t) => {
  const writes: number[] = [];
  const original = Connection.prototype.writeFrames;
  Connection.prototype.writeFrames = function (this: Connection, frames) {
    writes.push(frames.length);
    return original.call(this, frames);
  };
  t.teardown(() => {
    Connection.prototype.writeFrames = original;
  });
  const a = await member(t, { memberId: 1n, maxQueuedMessagesPerPeer: 100_000 });
  const b = await member(t, { memberId: 2n });
  mesh(a, b);
  await waitFor('stream up', () => a.transport.isActive(2n));
  writes.length = 0;
  const n = 50_000;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < n / 5; i++) a.transport.send(2n, seq(round * (n / 5) + i));
    await sleep(1);
  }
  await waitFor(`${n} messages`, () => b.received.length === n);
  t.ok(b.received.every((m, i) => m.payload.readUInt32BE(0) === i), 'in order');
  const batches = writes.reduce((x, y) => x + y, 0);
  t.equal(batches, n, 'every message written once');
  t.ok(writes.length <= 10, `${n} messages in ${writes.length} writes`);
});

t.test('cluster ID mismatch is refused with etcd\'s texts on both sides', async (t) => {
  const a = await member(t, { memberId: 1n, clusterId: 0xaaaan });
  const b = await member(t, { memberId: 2n, clusterId: 0xbbbbn });
  mesh(a, b);
  await waitFor('refusal logged', () => a.logged('request sent was ignored by remote peer due to cluster ID mismatch').length > 0);
  const listener = b.logged('request cluster ID mismatch')[0];
  t.match(listener, { level: 'warn', 'local-member-id': '2', 'local-member-cluster-id': 'bbbb', 'remote-peer-id': '1', 'remote-peer-cluster-id': 'aaaa' });
  const dialer = a.logged('request sent was ignored by remote peer due to cluster ID mismatch')[0];
  t.match(dialer, { 'remote-peer-id': '2', 'remote-peer-cluster-id': 'bbbb', 'local-member-id': '1', 'local-member-cluster-id': 'aaaa', error: 'cluster ID mismatch' });
  await waitFor('inactive', () => a.logged('peer became inactive (message send to peer failed)').length > 0);
  t.match(a.logged('peer became inactive (message send to peer failed)')[0], { 'peer-id': '2', error: 'failed to dial 2 on stream (cluster ID mismatch)' });
  t.equal(a.transport.isActive(2n), false);
  t.equal(a.transport.send(2n, seq(1)), false, 'sends to an inactive peer are dropped');
  t.ok(a.unreachable.includes(2n), 'and reported unreachable');
  // Retries go on with backoff, but the refusal and the state change are logged once.
  await sleep(700);
  t.equal(a.logged('request sent was ignored by remote peer due to cluster ID mismatch').length, 1);
  t.equal(a.logged('peer became inactive (message send to peer failed)').length, 1);
  t.ok(a.logged('peer deactivated again').length >= 1);
  t.equal(b.received.length, 0);
});

t.test('a removed member is refused with ErrMemberRemoved, so that it can stop', async (t) => {
  const a = await member(t, { memberId: 1n });
  const b = await member(t, { memberId: 2n, isPeerAllowed: (id) => (id === 1n ? 'removed' : 'ok') });
  a.transport.addPeer(2n, b.urls);
  await waitFor('critical error', () => a.critical.length > 0);
  t.equal(a.critical.length, 1);
  t.ok(isDomainError(a.critical[0], ErrMemberRemoved));
  t.equal(a.critical[0]?.message, 'the member has been permanently removed from the cluster');
  t.match(b.logged('rejected stream from remote peer because it was removed')[0], { level: 'warn', 'local-member-id': '2', 'remote-peer-id-from': '1' });
  await waitFor('inactive', () => a.logged('peer became inactive (message send to peer failed)').length > 0);
  t.match(a.logged('peer became inactive (message send to peer failed)')[0]?.error, /the member has been permanently removed from the cluster/);
  await sleep(400);
  t.equal(a.critical.length, 1, 'raised once, however often the dial is retried');
});

t.test('an unknown sender and a wrong `to` are refused', async (t) => {
  const a = await member(t, { memberId: 1n });
  const b = await member(t, { memberId: 2n });
  a.transport.addPeer(2n, b.urls); // B does not know A
  await waitFor('sender not found', () => b.logged('failed to find remote peer in cluster').length > 0);
  t.match(b.logged('failed to find remote peer in cluster')[0], { 'local-member-id': '2', 'remote-peer-id-from': '1', 'cluster-id': '1000' });
  await waitFor('dialer told', () => a.logged('peer became inactive (message send to peer failed)').length > 0);
  t.match(a.logged('peer became inactive (message send to peer failed)')[0]?.error, 'failed to dial 2 on stream (peer 2 failed to find local node 1)');

  const c = await member(t, { memberId: 3n });
  b.transport.addPeer(3n, c.urls);
  c.transport.addPeer(4n, b.urls); // C believes member 4 lives at B's URL
  await waitFor('to mismatch', () => b.logged('ignored streaming request; ID mismatch').length > 0);
  t.match(b.logged('ignored streaming request; ID mismatch')[0], { 'local-member-id': '2', 'remote-peer-id-header': '4', 'remote-peer-id-from': '3' });
  await waitFor('dialer told', () => c.logged('peer became inactive (message send to peer failed)').length > 0);
  t.match(c.logged('peer became inactive (message send to peer failed)')[0]?.error, /to field mismatch/);
});

t.test('reconnects after the listener restarts, and reports the outage', async (t) => {
  const a = await member(t, { memberId: 1n });
  let b = await member(t, { memberId: 2n });
  const url = b.url;
  mesh(a, b);
  a.transport.send(2n, seq(1));
  await waitFor('first message', () => b.received.length === 1);
  const firstSince = a.transport.activeSince(2n);
  await b.transport.stop();
  await waitFor('inactive', () => !a.transport.isActive(2n));
  t.equal(a.transport.activeSince(2n), undefined);
  t.ok(a.unreachable.includes(2n), 'loss reported unreachable');
  const lost = a.logged('lost TCP streaming connection with remote peer');
  t.equal(lost.filter((l) => l['stream-writer-type'] !== undefined).length, 1, 'our stream to B');
  t.equal(lost.filter((l) => l['stream-reader-type'] !== undefined).length, 1, "and B's stream to us");
  t.equal(a.transport.send(2n, seq(2)), false, 'dropped while inactive');
  await sleep(300); // a few failed redials
  t.equal(a.logged('peer became inactive (message send to peer failed)').length, 1, 'logged once per state change');

  b = await member(t, { memberId: 2n, listenUrls: [url] });
  t.equal(b.url, url, 'same port');
  b.transport.addPeer(1n, a.urls);
  await waitFor('active again', () => a.transport.isActive(2n), 5000);
  t.ok((a.transport.activeSince(2n) ?? 0) >= (firstSince ?? Infinity), 'activeSince restarts');
  t.equal(a.logged('peer became active').length, 2);
  a.transport.send(2n, seq(3));
  await waitFor('message after reconnect', () => b.received.length === 1);
  t.equal(b.received[0]?.payload.readUInt32BE(0), 3);
});

/**
 * A listener that completes the handshake as member `id` and then never reads, so that the dialer's writes back up.
 * Returns its URL and a function that closes it.
 */
async function stuckListener(t: Test, id: bigint, clusterId: bigint): Promise<string> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.once('data', () => {
      s.write(encodeFrame(FrameType.Ack, encodeAck({ clusterId, memberId: id })));
      s.pause();
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

t.test('the send queue is bounded: a full queue drops, returns false and reports unreachable', async (t) => {
  const url = await stuckListener(t, 2n, 0x1000n);
  const a = await member(t, { memberId: 1n, maxQueuedMessagesPerPeer: 10, connReadTimeoutMs: 60_000 });
  a.transport.addPeer(2n, [url]);
  await waitFor('active', () => a.transport.isActive(2n));
  const payload = Buffer.alloc(4 * 1024 * 1024);
  // The first batch goes to the socket (far more than the kernel and the peer will take)...
  for (let i = 0; i < 10; i++) t.equal(a.transport.send(2n, payload), true);
  await sleep(50);
  // ... so the next ones wait in the queue for a drain that never comes.
  for (let i = 0; i < 10; i++) t.equal(a.transport.send(2n, payload), true, `queued ${i}`);
  t.equal(a.transport.send(2n, payload), false, 'the 11th queued message is dropped');
  t.equal(a.transport.send(2n, Buffer.alloc(1)), false, 'so is the next');
  t.same(a.unreachable, [2n, 2n]);
  const overflow = a.logged('dropped internal Raft message since sending buffer is full (overloaded network)');
  t.equal(overflow.length, 1, 'logged once per overflow episode');
  t.match(overflow[0], { 'local-member-id': '1', 'remote-peer-id': '2', 'remote-peer-active': true });

  const bytes = await member(t, { memberId: 3n, maxQueuedBytesPerPeer: 1000, connReadTimeoutMs: 60_000 });
  bytes.transport.addPeer(2n, [await stuckListener(t, 2n, 0x1000n)]);
  await waitFor('active', () => bytes.transport.isActive(2n));
  t.equal(bytes.transport.send(2n, Buffer.alloc(600)), true);
  t.equal(bytes.transport.send(2n, Buffer.alloc(600)), false, 'the byte bound applies too');
});

t.test('a silent peer is detected by the read timeout', async (t) => {
  const url = await stuckListener(t, 2n, 0x1000n);
  const a = await member(t, { memberId: 1n, connReadTimeoutMs: 300 });
  a.transport.addPeer(2n, [url]);
  await waitFor('active', () => a.transport.isActive(2n));
  await waitFor('read timeout', () => a.logged('lost TCP streaming connection with remote peer').length > 0, 3000);
  t.match(a.logged('lost TCP streaming connection with remote peer')[0]?.error, /read timeout/);
  t.equal(a.transport.isActive(2n), false);
  t.ok(a.unreachable.includes(2n));
});

t.test('frames over the size bound close the connection', async (t) => {
  const b = await member(t, { memberId: 2n, maxFrameBytes: 1024 });
  const a = await member(t, { memberId: 1n });
  mesh(a, b);
  await waitFor('active', () => a.transport.isActive(2n));
  t.equal(a.transport.send(2n, Buffer.alloc(2048)), true, 'A allows 64 MiB');
  await waitFor('B closed the stream', () => b.logged('lost TCP streaming connection with remote peer').length > 0);
  t.match(b.logged('lost TCP streaming connection with remote peer')[0]?.error, /frame of 2048 bytes exceeds the limit of 1024 bytes/);
  t.equal(b.received.length, 0);
  await waitFor('A noticed', () => a.unreachable.includes(2n));
  t.equal(b.transport.send(1n, Buffer.alloc(2048)), false, 'B does not send what it would refuse');
});

t.test('removePeer closes both directions; stop() is idempotent', async (t) => {
  const a = await member(t, { memberId: 1n });
  const b = await member(t, { memberId: 2n });
  mesh(a, b);
  await waitFor('both active', () => a.transport.isActive(2n) && b.transport.isActive(1n));
  a.transport.removePeer(2n);
  t.equal(a.transport.isActive(2n), false);
  t.equal(a.transport.send(2n, seq(1)), false);
  t.match(a.logged('removed remote peer')[0], { 'local-member-id': '1', 'removed-remote-peer-id': '2' });
  t.throws(() => a.transport.removePeer(2n), /unexpected removal of unknown remote peer 2/);
  await waitFor('B lost its stream to A', () => b.logged('lost TCP streaming connection with remote peer').length > 0);
  await a.transport.stop();
  await a.transport.stop();
});

// ---------------------------------------------------------------------------------------------------------------
// Snapshots

async function* generate(totalBytes: number, chunkBytes: number, produced: { bytes: number }, seed: number): AsyncGenerator<Buffer> {
  let i = 0;
  for (let sent = 0; sent < totalBytes; sent += chunkBytes, i++) {
    const n = Math.min(chunkBytes, totalBytes - sent);
    const chunk = Buffer.alloc(n, (seed + i) & 0xff);
    produced.bytes += n;
    yield chunk;
  }
}

function digest(totalBytes: number, chunkBytes: number, seed: number): string {
  const h = crypto.createHash('sha256');
  let i = 0;
  for (let sent = 0; sent < totalBytes; sent += chunkBytes, i++) h.update(Buffer.alloc(Math.min(chunkBytes, totalBytes - sent), (seed + i) & 0xff));
  return h.digest('hex');
}

t.test('a snapshot of several MB streams in chunks, with backpressure, while messages keep flowing', async (t) => {
  const total = 64 * 1024 * 1024;
  const produced = { bytes: 0 };
  let consumedBytes = 0;
  let maxAhead = 0;
  const chunkSizes: number[] = [];
  let snapshotStarted = false;
  let snapshotDone = false;
  let messagesDuringSnapshot = 0;
  let meta: Buffer | undefined;
  const hash = crypto.createHash('sha256');
  const received: number[] = [];
  const b = await member(t, {
    memberId: 2n,
    onMessage: (_from, _payload) => {
      if (snapshotStarted && !snapshotDone) messagesDuringSnapshot++;
      received.push(1);
    },
    onSnapshot: async (from, m, data) => {
      t.equal(from, 1n);
      meta = m;
      snapshotStarted = true;
      for await (const chunk of data) {
        chunkSizes.push(chunk.length);
        hash.update(chunk);
        consumedBytes += chunk.length;
        maxAhead = Math.max(maxAhead, produced.bytes - consumedBytes);
        await sleep(2); // a slow consumer (a disk)
      }
      snapshotDone = true;
    },
  });
  const a = await member(t, { memberId: 1n });
  mesh(a, b);
  await waitFor('active', () => a.transport.isActive(2n));
  let ticking = true;
  const ticker = (async () => {
    for (let i = 0; ticking; i++) {
      a.transport.send(2n, seq(i));
      await sleep(5);
    }
  })();
  // 3 MiB pieces from the source are cut into 1 MiB frames.
  await a.transport.sendSnapshot(2n, Buffer.from('snapshot-meta'), generate(total, 3 * 1024 * 1024, produced, 7));
  ticking = false;
  await ticker;
  t.equal(snapshotDone, true, 'sendSnapshot resolves after onSnapshot did');
  t.same(meta, Buffer.from('snapshot-meta'));
  t.equal(consumedBytes, total);
  t.equal(hash.digest('hex'), digest(total, 3 * 1024 * 1024, 7), 'data intact');
  t.ok(chunkSizes.length >= 64 && Math.max(...chunkSizes) <= 1024 * 1024, `${chunkSizes.length} chunks of at most 1 MiB`);
  t.ok(maxAhead < total / 2, `the sender ran at most ${(maxAhead / 1048576).toFixed(1)} MiB ahead of the consumer`);
  t.ok(messagesDuringSnapshot > 5, `${messagesDuringSnapshot} messages arrived during the snapshot`);
  t.match(a.logged('sent database snapshot')[0], { 'remote-peer-id': '2', bytes: total });
  t.match(b.logged('received and saved database snapshot')[0], { 'local-member-id': '2', 'remote-snapshot-sender-id': '1', 'incoming-snapshot-size-bytes': total });
});

t.test('snapshot failures reach the sender', async (t) => {
  const b = await member(t, {
    memberId: 2n,
    onSnapshot: async (_from, _meta, data) => {
      for await (const _chunk of data) throw new Error('disk full');
    },
  });
  const a = await member(t, { memberId: 1n });
  mesh(a, b);
  const produced = { bytes: 0 };
  const err = await a.transport.sendSnapshot(2n, Buffer.from('m'), generate(8 * 1024 * 1024, 64 * 1024, produced, 1)).catch((e: unknown) => e);
  t.ok(isDomainError(err, ErrSnapshotFailed));
  t.match((err as Error).message, /failed to process snapshot \(disk full\)/);
  t.ok(produced.bytes < 8 * 1024 * 1024, 'the sender stopped pulling data');
  t.ok(a.unreachable.includes(2n));
  t.match(b.logged('failed to save incoming database snapshot')[0], { error: 'disk full' });

  // The source failing midway: the receiver's stream fails too.
  let receiverError: unknown;
  const c = await member(t, {
    memberId: 3n,
    onSnapshot: async (_from, _meta, data) => {
      try {
        for await (const _chunk of data);
      } catch (e) {
        receiverError = e;
        throw e;
      }
    },
  });
  mesh(a, c);
  async function* broken(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(1024);
    throw new Error('read error');
  }
  await t.rejects(a.transport.sendSnapshot(3n, Buffer.from('m'), broken()), /read error/);
  await waitFor('receiver failed', () => receiverError !== undefined);
  t.match((receiverError as Error).message, /snapshot stream from 1 closed before its end/);

  await t.rejects(a.transport.sendSnapshot(9n, Buffer.alloc(0), broken()), /unknown remote peer 9/);

  // Snapshots received at once are bounded: one more is refused, and Raft will retry it.
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started = 0;
  const d = await member(t, {
    memberId: 4n,
    maxInboundSnapshots: 1,
    onSnapshot: async (_from, _meta, data) => {
      started++;
      for await (const _chunk of data);
      await gate;
    },
  });
  mesh(a, d);
  const first = a.transport.sendSnapshot(4n, Buffer.from('1'), generate(1024, 1024, { bytes: 0 }, 0));
  await waitFor('first snapshot being received', () => started === 1);
  await t.rejects(a.transport.sendSnapshot(4n, Buffer.from('2'), generate(1024, 1024, { bytes: 0 }, 0)), /too many snapshots being received/);
  release();
  await first;
  await a.transport.sendSnapshot(4n, Buffer.from('3'), generate(1024, 1024, { bytes: 0 }, 0));
  t.equal(started, 2);
});

// ---------------------------------------------------------------------------------------------------------------
// TLS

t.test('TLS with etcd\'s fixture certificates and client-certificate auth', { skip: !haveFixtures && 'no etcd fixtures' }, async (t) => {
  const material = await peerTls(t, { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true });
  const a = await member(t, { memberId: 1n, tls: material, listenUrls: ['https://127.0.0.1:0'] });
  const b = await member(t, { memberId: 2n, tls: material, listenUrls: ['https://127.0.0.1:0', 'https://localhost:0'] });
  t.match(b.urls[1], /^https:\/\/localhost:\d+$/);
  mesh(a, b);
  for (let i = 0; i < 100; i++) a.transport.send(2n, seq(i));
  b.transport.send(1n, seq(0));
  await waitFor('messages over TLS', () => b.received.length === 100 && a.received.length === 1);
  t.ok(b.received.every((m, i) => m.payload.readUInt32BE(0) === i));
  await a.transport.sendSnapshot(2n, Buffer.from('m'), generate(3 * 1024 * 1024, 1024 * 1024, { bytes: 0 }, 3));

  // A member whose client certificate is not signed by the trusted CA is refused by the TLS stack itself.
  const c = await member(t, { memberId: 3n, tls: await peerTls(t, { autoTls: true }, tmpdir(t)), listenUrls: ['https://127.0.0.1:0'] });
  b.transport.addPeer(3n, c.urls);
  c.transport.addPeer(2n, b.urls);
  await waitFor('rejected at the TLS layer', () => b.logged('rejected connection').length > 0);
  t.match(b.logged('rejected connection')[0], { level: 'warn', error: "tls: failed to verify client's certificate: x509: certificate signed by unknown authority", 'ip-addresses': ['127.0.0.1'] });
  await waitFor('C told', () => c.logged('peer became inactive (message send to peer failed)').length > 0);
  t.equal(c.logged('peer became inactive (message send to peer failed)')[0]?.error, 'failed to dial 2 on stream (remote error: tls: bad certificate)');
  t.equal(c.transport.isActive(2n), false);
});

t.test('TestEtcdPeerCNAuth: a member whose certificate has another CN is rejected', { skip: !haveFixtures && 'no etcd fixtures' }, async (t) => {
  // Members 0 and 1 accept CN example.com; member 2 presents server2.crt (CN example2.com) and accepts only that.
  const good = await peerTls(t, { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, allowedCn: ['example.com'] });
  const bad = await peerTls(t, { certFile: fx('server2.crt'), keyFile: fx('server2.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, allowedCn: ['example2.com'] });
  const m0 = await member(t, { memberId: 1n, tls: good, listenUrls: ['https://127.0.0.1:0'] });
  const m1 = await member(t, { memberId: 2n, tls: good, listenUrls: ['https://127.0.0.1:0'] });
  const m2 = await member(t, { memberId: 3n, tls: bad, listenUrls: ['https://127.0.0.1:0'] });
  mesh(m0, m1, m2);
  await waitFor('0 and 1 connected', () => m0.transport.isActive(2n) && m1.transport.isActive(1n));
  await waitFor('2 refused', () => m2.logs().some((l) => JSON.stringify(l).includes('remote error: tls: bad certificate')));
  // What etcd's e2e test greps for in member 2's log:
  const m2Text = m2.logs().map((l) => JSON.stringify(l)).join('\n');
  t.match(m2Text, 'remote error: tls: bad certificate');
  // ... and what the members that rejected it log, as etcd's logTLSHandshakeFailure does:
  const rejected = m0.logged('rejected connection')[0];
  t.match(rejected, { level: 'warn', error: 'client certificate authentication failed', 'ip-addresses': ['127.0.0.1'], 'dns-names': ['localhost'] });
  t.match(rejected?.['remote-addr'], /^127\.0\.0\.1:\d+$/);
  t.equal(m2.transport.isActive(1n), false);
  t.equal(m0.transport.isActive(3n), false, 'member 2 rejects the others too');
  m0.transport.send(2n, seq(5));
  await waitFor('0→1 works', () => m1.received.length > 0);
});

t.test('TestEtcdPeerNameAuth: a member whose certificate does not name the allowed host is rejected', { skip: !haveFixtures && 'no etcd fixtures' }, async (t) => {
  const good = await peerTls(t, { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, allowedHostname: ['localhost'] });
  const bad = await peerTls(t, { certFile: fx('server2.crt'), keyFile: fx('server2.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, allowedHostname: ['example2.com'] });
  const m0 = await member(t, { memberId: 1n, tls: good, listenUrls: ['https://127.0.0.1:0'] });
  const m1 = await member(t, { memberId: 2n, tls: good, listenUrls: ['https://127.0.0.1:0'] });
  const m2 = await member(t, { memberId: 3n, tls: bad, listenUrls: ['https://127.0.0.1:0'] });
  mesh(m0, m1, m2);
  await waitFor('0 and 1 connected', () => m0.transport.isActive(2n) && m1.transport.isActive(1n));
  // server2.crt names localhost, so 0 and 1 accept it; member 2 wants example2.com and rejects them: its log has
  // the text etcd's e2e test looks for.
  await waitFor('2 rejected the others', () => m2.logs().some((l) => JSON.stringify(l).includes('client certificate authentication failed')));
  t.match(m2.logged('rejected connection')[0], { error: 'client certificate authentication failed' });
  await waitFor('0 told', () => m0.logs().some((l) => JSON.stringify(l).includes('remote error: tls: bad certificate')));
  t.equal(m0.transport.isActive(3n), false);
});

t.test('auto-TLS: self-signed certificates, verification skipped as etcd does', async (t) => {
  const dirA = tmpdir(t);
  const dirB = tmpdir(t);
  const a = await member(t, { memberId: 1n, tls: await peerTls(t, { autoTls: true }, dirA), listenUrls: ['https://127.0.0.1:0'] });
  const b = await member(t, { memberId: 2n, tls: await peerTls(t, { autoTls: true }, dirB), listenUrls: ['https://127.0.0.1:0'] });
  mesh(a, b);
  a.transport.send(2n, seq(1));
  b.transport.send(1n, seq(2));
  await waitFor('messages over auto-TLS', () => b.received.length === 1 && a.received.length === 1);
  t.equal(b.received[0]?.payload.readUInt32BE(0), 1);

  // A member with certificate verification (no auto-TLS) refuses the self-signed listener.
  const strict = await peerTls(t, { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt') });
  const c = await member(t, { memberId: 3n, tls: strict, listenUrls: ['https://127.0.0.1:0'] });
  c.transport.addPeer(2n, b.urls);
  b.transport.addPeer(3n, c.urls);
  await waitFor('C refused', () => c.logged('peer became inactive (message send to peer failed)').length > 0);
  t.match(c.logged('peer became inactive (message send to peer failed)')[0]?.error, /x509: certificate signed by unknown authority/);
});

t.test('an https listener needs TLS material', async (t) => {
  const logger = createLogger({ logLevel: 'error', logger: 'zap', logOutputs: ['/dev/null'] });
  t.throws(
    () =>
      new PeerTransport({
        memberId: 1n,
        clusterId: 1n,
        listenUrls: ['https://127.0.0.1:2380'],
        logger,
        onMessage: () => undefined,
        onSnapshot: async () => undefined,
      }),
    /cannot listen on TLS for 127\.0\.0\.1:2380: KeyFile and CertFile are not presented/,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Unix sockets

t.test('unix:// and unixs:// peer URLs: the host:port is the socket path, as in etcd', async (t) => {
  const dir = tmpdir(t);
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const a = await member(t, { memberId: 1n, listenUrls: ['unix://localhost:23801'] });
  const b = await member(t, { memberId: 2n, listenUrls: ['unix://etcd.unix:1'] });
  t.equal(a.url, 'unix://localhost:23801');
  t.ok(fs.statSync(path.join(dir, 'localhost:23801')).isSocket(), 'socket file named after host:port');
  t.ok(fs.statSync(path.join(dir, 'etcd.unix:1')).isSocket());
  mesh(a, b);
  for (let i = 0; i < 100; i++) a.transport.send(2n, seq(i));
  b.transport.send(1n, seq(0));
  await waitFor('messages over unix sockets', () => b.received.length === 100 && a.received.length === 1);
  await a.transport.sendSnapshot(2n, Buffer.from('m'), generate(2 * 1024 * 1024, 512 * 1024, { bytes: 0 }, 9));

  if (haveFixtures) {
    const material = await peerTls(t, { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true });
    const c = await member(t, { memberId: 3n, tls: material, listenUrls: ['unixs://localhost:23803'] });
    const d = await member(t, { memberId: 4n, tls: material, listenUrls: ['unixs://localhost:23804'] });
    mesh(c, d);
    c.transport.send(4n, seq(42));
    await waitFor('message over unixs', () => d.received.length === 1);
    t.equal(d.received[0]?.payload.readUInt32BE(0), 42);
  }

  await a.transport.stop();
  t.notOk(fs.existsSync(path.join(dir, 'localhost:23801')), 'stop() removes the socket file');
});
