// The peer proxy's frame handling (peer-proxy.ts), between a fake dialer and a fake listener that speak the peer
// transport's framing: frames cut at every byte still arrive whole and in order, each rule does what it says to
// MESSAGE frames only and only on its own link, a snapshot "drop" resets the connection, and the process form
// answers its control lines.

import net from 'node:net';
import t from 'tap';
import { encodeFrame, FrameDecoder, FrameType, type Frame } from '../../../src/server/transport/frame';
import { encodeHello, idString, PROTOCOL_VERSION, type ConnectionKind } from '../../../src/server/transport/handshake';
import { MessageType } from '../../../src/raft/types';
import { PeerProxy, spawnPeerProxy, type LinkRule } from './peer-proxy';

const A = 0xaan;
const B = 0xbbn;
const C = 0xccn;
const hello = (from: bigint, to: bigint, kind: ConnectionKind = 'stream') =>
  encodeFrame(FrameType.Hello, encodeHello({ protocolVersion: PROTOCOL_VERSION, kind, clusterId: 1n, from, to }));
const msg = (s: string) => encodeFrame(FrameType.Message, Buffer.from(s));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects the frames arriving on a socket. */
function collect(socket: net.Socket): { frames: Frame[]; closed: Promise<void> } {
  const d = new FrameDecoder();
  const frames: Frame[] = [];
  socket.on('data', (b: Buffer) => {
    d.push(b);
    for (let f = d.next(); f; f = d.next()) frames.push({ type: f.type, payload: Buffer.from(f.payload) });
  });
  socket.on('error', () => {});
  return { frames, closed: new Promise((r) => socket.once('close', () => r())) };
}

const messages = (fs: Frame[]) => fs.filter((f) => f.type === FrameType.Message).map((f) => f.payload.toString());

/** A listener (the member) behind a proxy; connect() gives a dialer socket and what the member received on it. */
async function setup(t: { teardown(fn: () => unknown): void }, rules: LinkRule[] = [], seed = 1) {
  const accepted: Array<{ socket: net.Socket; got: ReturnType<typeof collect> }> = [];
  const member = net.createServer((socket) => accepted.push({ socket, got: collect(socket) }));
  await new Promise<void>((r) => member.listen(0, '127.0.0.1', () => r()));
  const proxy = new PeerProxy({ listenHost: '127.0.0.1', listenPort: 0, targetHost: '127.0.0.1', targetPort: (member.address() as net.AddressInfo).port, seed });
  const port = await proxy.listen();
  proxy.setRules(rules);
  const dialers: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of dialers) s.destroy();
    for (const a of accepted) a.socket.destroy();
    await proxy.close();
    await new Promise<void>((r) => member.close(() => r()));
  });
  const connect = async (first: Buffer) => {
    const socket = net.connect(port, '127.0.0.1');
    dialers.push(socket);
    const back = collect(socket);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const n = accepted.length;
    socket.write(first);
    while (accepted.length === n) await sleep(5);
    return { socket, back, member: accepted[n]! };
  };
  return { proxy, connect };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

t.test('frames split across TCP chunks arrive whole and in order, both ways', async (t) => {
  const { proxy, connect } = await setup(t);
  const { socket, back, member } = await connect(Buffer.alloc(0));
  const bytes = Buffer.concat([hello(A, B), msg('one'), encodeFrame(FrameType.Heartbeat), msg('two'), msg('x'.repeat(70_000))]);
  // One byte per write, with pauses so that they reach the proxy as separate chunks.
  for (let i = 0; i < 40; i++) {
    socket.write(bytes.subarray(i, i + 1));
    await sleep(1);
  }
  socket.write(bytes.subarray(40));
  await until(() => member.got.frames.length === 5);
  t.same(member.got.frames.map((f) => f.type), [FrameType.Hello, FrameType.Message, FrameType.Heartbeat, FrameType.Message, FrameType.Message]);
  t.same(messages(member.got.frames), ['one', 'two', 'x'.repeat(70_000)]);
  t.same(member.got.frames[0]!.payload, hello(A, B).subarray(5), 'the handshake passes intact');
  const ack = encodeFrame(FrameType.Ack, Buffer.alloc(16, 7));
  member.socket.write(Buffer.concat([ack, encodeFrame(FrameType.Heartbeat)]));
  await until(() => back.frames.length === 2);
  t.same(back.frames[0], { type: FrameType.Ack, payload: Buffer.alloc(16, 7) });
  const s = proxy.stats();
  t.equal(s[`${idString(A)}->${idString(B)}`]?.forwarded, 5);
  t.equal(s[`${idString(B)}->${idString(A)}`]?.forwarded, 2, 'listener → dialer frames are counted on the reverse link');
});

t.test('drop: every MESSAGE of the link is lost, heartbeats and other links are not', async (t) => {
  const { proxy, connect } = await setup(t, [{ from: idString(A), to: idString(B), drop: 1 }]);
  const ab = await connect(hello(A, B));
  const cb = await connect(hello(C, B));
  ab.socket.write(Buffer.concat([msg('m1'), encodeFrame(FrameType.Heartbeat), msg('m2')]));
  cb.socket.write(msg('c1'));
  await until(() => ab.member.got.frames.length === 2 && cb.member.got.frames.length === 2);
  await sleep(50);
  t.same(ab.member.got.frames.map((f) => f.type), [FrameType.Hello, FrameType.Heartbeat]);
  t.same(messages(cb.member.got.frames), ['c1']);
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.dropped, 2);
});

t.test('duplicate and reorder', async (t) => {
  const { proxy, connect } = await setup(t, [{ from: idString(A), to: idString(B), duplicate: 1 }]);
  const dup = await connect(hello(A, B));
  dup.socket.write(Buffer.concat([msg('m1'), msg('m2')]));
  await until(() => messages(dup.member.got.frames).length === 4);
  t.same(messages(dup.member.got.frames), ['m1', 'm1', 'm2', 'm2']);
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.duplicated, 2);
  // A forwarded proposal is never duplicated (it would be committed twice); raft-codec: version 1, then the type.
  const prop = (s: string) => encodeFrame(FrameType.Message, Buffer.concat([Buffer.from([1, MessageType.MsgProp]), Buffer.from(s)]));
  dup.socket.write(Buffer.concat([prop('p1'), msg('m3')]));
  await until(() => messages(dup.member.got.frames).length === 7);
  t.same(messages(dup.member.got.frames).slice(4).map((m) => m.replace(/^\x01\x02/, '')), ['p1', 'm3', 'm3'], 'F12 flaky-network, seed 12: a forwarded MsgProp is never duplicated');

  proxy.setRules([{ from: idString(A), to: idString(B), reorder: 1 }]);
  const re = await connect(hello(A, B));
  re.socket.write(Buffer.concat([msg('r1'), msg('r2'), msg('r3'), msg('r4'), msg('r5')]));
  await until(() => messages(re.member.got.frames).length === 4);
  t.same(messages(re.member.got.frames), ['r2', 'r1', 'r4', 'r3'], 'each held frame goes after the next one');
  // The last one has no successor: it goes after REORDER_HOLD_MAX_MS, or at once when the rules change.
  proxy.setRules([]);
  await until(() => messages(re.member.got.frames).length === 5);
  t.equal(messages(re.member.got.frames)[4], 'r5');
});

t.test('delay: base ± jitter, so messages can overtake each other', async (t) => {
  const { proxy, connect } = await setup(t, [{ from: idString(A), to: idString(B), delayMs: 150, jitterMs: 0 }]);
  const c = await connect(hello(A, B));
  const sent = Date.now();
  c.socket.write(msg('late'));
  await until(() => messages(c.member.got.frames).length === 1);
  t.ok(Date.now() - sent >= 140, `delayed ${Date.now() - sent} ms`);
  proxy.setRules([{ from: idString(A), to: idString(B), delayMs: 100, jitterMs: 100 }]);
  const many = Array.from({ length: 40 }, (_, i) => `d${i}`);
  c.socket.write(Buffer.concat(many.map(msg)));
  await until(() => messages(c.member.got.frames).length === 41);
  const got = messages(c.member.got.frames).slice(1);
  t.same([...got].sort(), [...many].sort(), 'nothing lost');
  t.not(got.join(), many.join(), 'jitter reorders');
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.delayed, 41);
});

t.test('blackhole: each direction of a link on its own, the connection stays open', async (t) => {
  const { proxy, connect } = await setup(t, [{ from: idString(B), to: idString(A), blackhole: true }]);
  const c = await connect(hello(A, B));
  c.socket.write(msg('through'));
  c.member.socket.write(encodeFrame(FrameType.Heartbeat));
  await until(() => messages(c.member.got.frames).length === 1);
  await sleep(50);
  t.equal(c.back.frames.length, 0, 'B → A is blackholed on A\'s connection to B');
  proxy.setRules([{ from: idString(A), to: idString(B), blackhole: true }]);
  c.socket.write(Buffer.concat([msg('lost'), encodeFrame(FrameType.Heartbeat)]));
  c.member.socket.write(encodeFrame(FrameType.Heartbeat));
  await until(() => c.back.frames.length === 1);
  await sleep(50);
  t.same(messages(c.member.got.frames), ['through']);
  t.equal(c.member.got.frames.length, 2);
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.blackholed, 2);
  t.notOk(c.socket.destroyed);
});

t.test('a dropped snapshot frame resets the snapshot connection; reset resets streams', async (t) => {
  const { proxy, connect } = await setup(t, [{ from: idString(A), to: idString(B), drop: 1 }]);
  const snap = await connect(hello(A, B, 'snapshot'));
  snap.socket.write(encodeFrame(FrameType.SnapshotMeta, Buffer.from('meta')));
  await snap.back.closed;
  await snap.member.got.closed;
  t.same(snap.member.got.frames.map((f) => f.type), [FrameType.Hello], 'no part of the snapshot was delivered');
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.resets, 1);

  proxy.setRules([{ from: idString(A), to: idString(B), reset: 1 }]);
  const s = await connect(hello(A, B));
  s.socket.write(encodeFrame(FrameType.Heartbeat));
  await until(() => s.member.got.frames.length === 2);
  s.socket.write(msg('m'));
  await s.back.closed;
  t.equal(proxy.stats()[`${idString(A)}->${idString(B)}`]?.resets, 2);
});

t.test('the proxy process: listens, takes rules and reports counters over stdin/stdout', async (t) => {
  const member = net.createServer((socket) => collect(socket));
  await new Promise<void>((r) => member.listen(0, '127.0.0.1', () => r()));
  const p = await spawnPeerProxy({ listenHost: '127.0.0.1', listenPort: 0, targetHost: '127.0.0.1', targetPort: (member.address() as net.AddressInfo).port, seed: 3 });
  t.teardown(async () => {
    await p.kill();
    await new Promise<void>((r) => member.close(() => r()));
  });
  await p.request('rules', { rules: [{ from: idString(A), to: idString(B), drop: 1 }] });
  const socket = net.connect(p.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(Buffer.concat([hello(A, B), msg('m1'), msg('m2')]));
  const end = Date.now() + 5000;
  let dropped = 0;
  while (dropped < 2 && Date.now() < end) {
    dropped = (await p.request('stats'))[`${idString(A)}->${idString(B)}`]?.dropped ?? 0;
    await sleep(20);
  }
  t.equal(dropped, 2, 'both messages dropped, as the counters say');
});
