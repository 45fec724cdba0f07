// A message-aware proxy in front of one member's peer listener (faults.md §6.2 option B; F12): the only way to get
// loss, delay, duplication and reordering of Raft messages on this machine, which has no tc netem.
//
//   member A ──stream──▶ proxy of B (listens on B's advertised peer URL) ──▶ B's real peer listener
//
// The peer transport (src/server/transport) opens one TCP connection per ordered pair and per snapshot; its first
// frame is a HELLO naming the dialer (`from`) and the listener (`to`). The proxy decodes whole frames in both
// directions (frame.ts: u32 BE length, u8 type, payload) and applies the rule of the link the frame travels on:
//
//   dialer → listener   the rule for from→to: MESSAGE frames can be dropped, delayed (base ± jitter ms, so they
//                       also overtake each other), duplicated, held back until the next one has gone (reorder), or
//                       make the proxy reset the connection (a MsgProp is never duplicated, see below); on a
//                       snapshot connection a "drop" of any snapshot frame resets the connection instead (a
//                       snapshot with a hole must not be delivered);
//   listener → dialer   the rule for to→from: only `blackhole` applies (ACK, HEARTBEAT, SNAPSHOT_DONE).
//
// `blackhole` discards every frame in its direction, handshake included, and leaves the connection open, as a
// blackhole route does. Every other frame (HELLO/ACK/ERROR, HEARTBEAT, members requests) passes intact and in
// order. Random choices come from one seeded Rng per proxy. Counters per link say what was done.
//
// Run as a process (`node peer-proxy.js --listen H:P --target H:P --seed N`, inside the member's network namespace
// when there is one), it prints one line {"listening": port} and is controlled by JSON lines on stdin, one reply
// line each on stdout:
//
//   {"id": 1, "op": "rules", "rules": [LinkRule, ...]}   replace every rule ([] heals); held frames are released
//   {"id": 2, "op": "stats"}                            → {"id": 2, "stats": {"<from>-><to>": LinkCounters}}
//
// Why no duplicate MsgProp: a follower forwards a client's proposal to the leader as a MsgProp, and two copies
// become two log entries, both applied, so the client's one Put is committed twice. Raft gives at-least-once
// delivery only; exactly-once needs client sessions (Raft thesis §6.3), which etcd does not have either. etcd's
// TCP streams never duplicate a message, nor does our transport (it drops its queue on reconnect rather than
// resend), so a duplicated proposal is a fault neither can meet. (Found by flaky-network, seed 12: one Put at
// revisions 1131 and 1132.) Every other Raft message is duplicated, which Raft must and does tolerate.
//
// stdin rather than a port, so that the harness reaches the proxy even when the member's link is down, and the
// proxy exits when stdin closes: it cannot outlive the harness that started it. Plain TCP only (no peer TLS).

import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { encodeFrameHeader, FrameDecoder, FrameError, FrameType, type Frame } from '../../../src/server/transport/frame';
import { decodeHello, idString, isHello, type ConnectionKind } from '../../../src/server/transport/handshake';
import { MessageType } from '../../../src/raft/types';
import { Rng } from './rng';

/** What happens to the frames on one directed link; member IDs in etcd's hex form (idString). */
export interface LinkRule {
  from: string;
  to: string;
  /** Probability that a MESSAGE frame is dropped (on a snapshot connection: that the connection is reset). */
  drop?: number;
  delayMs?: number;
  /** The delay is uniform in delayMs ± jitterMs (never below 0). */
  jitterMs?: number;
  /** Probability that a MESSAGE frame is sent twice. */
  duplicate?: number;
  /** Probability that a MESSAGE frame is held back until the next one on its connection has gone. */
  reorder?: number;
  /** Probability, per MESSAGE frame, that the connection is reset instead. */
  reset?: number;
  blackhole?: boolean;
}

export interface LinkCounters {
  /** Frames written to the other side (a duplicate counts twice). */
  forwarded: number;
  dropped: number;
  delayed: number;
  duplicated: number;
  reordered: number;
  blackholed: number;
  resets: number;
}

const newCounters = (): LinkCounters => ({ forwarded: 0, dropped: 0, delayed: 0, duplicated: 0, reordered: 0, blackholed: 0, resets: 0 });

/** How long a frame held back for reordering waits for a successor before it goes anyway. */
const REORDER_HOLD_MAX_MS = 500;

export interface PeerProxyOptions {
  listenHost: string;
  /** 0: any free port. */
  listenPort: number;
  targetHost: string;
  targetPort: number;
  seed: number;
}

export class PeerProxy {
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly conns = new Set<ProxiedConnection>();
  private readonly rules = new Map<string, LinkRule>();
  private readonly counters = new Map<string, LinkCounters>();
  readonly rng: Rng;

  constructor(readonly opts: PeerProxyOptions) {
    this.rng = new Rng(opts.seed);
  }

  /** Starts listening; resolves with the port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.listenPort, this.opts.listenHost, () => resolve((this.server.address() as net.AddressInfo).port));
    });
  }

  /** Replaces every rule; an empty list heals. Frames held back for reordering are released at once. */
  setRules(rules: readonly LinkRule[]): void {
    this.rules.clear();
    for (const r of rules) this.rules.set(linkKey(r.from, r.to), r);
    for (const c of this.conns) c.releaseHeld();
  }

  rule(from: string, to: string): LinkRule | undefined {
    return this.rules.get(linkKey(from, to));
  }

  count(from: string, to: string): LinkCounters {
    const k = linkKey(from, to);
    let c = this.counters.get(k);
    if (!c) this.counters.set(k, (c = newCounters()));
    return c;
  }

  stats(): Record<string, LinkCounters> {
    return Object.fromEntries([...this.counters].map(([k, c]) => [k, { ...c }]));
  }

  close(): Promise<void> {
    for (const c of [...this.conns]) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const c = new ProxiedConnection(this, socket, net.connect(this.opts.targetPort, this.opts.targetHost));
    this.conns.add(c);
    c.onClose = () => this.conns.delete(c);
  }
}

/** A MESSAGE payload (src/server/raft-codec.ts: u8 version 1, u8 type, ...) that carries a MsgProp. */
function isProposal(payload: Buffer): boolean {
  return payload.length >= 2 && payload[0] === 1 && payload[1] === MessageType.MsgProp;
}

function linkKey(from: string, to: string): string {
  return `${from}->${to}`;
}

/** One proxied TCP connection: the dialer's socket (`down`) and ours to the member (`up`). */
class ProxiedConnection {
  onClose: (() => void) | undefined;
  private readonly fromDialer = new FrameDecoder();
  private readonly fromListener = new FrameDecoder();
  /** From the HELLO; undefined before it, or if the first frame was something else (then frames pass untouched). */
  private link: { from: string; to: string; kind: ConnectionKind } | undefined;
  private sawFirstFrame = false;
  /** A frame held back for reordering, with the counters of its link. */
  private held: { frame: Frame; counters: LinkCounters; timer: NodeJS.Timeout } | undefined;
  private closed = false;

  constructor(private readonly proxy: PeerProxy, private readonly down: net.Socket, private readonly up: net.Socket) {
    down.on('data', (d: Buffer) => this.read(this.fromDialer, d, 'forward'));
    up.on('data', (d: Buffer) => this.read(this.fromListener, d, 'backward'));
    // Flow control: a side that cannot take more stops the other from reading.
    down.on('drain', () => up.resume());
    up.on('drain', () => down.resume());
    // A FIN is passed on once what was written before it has gone (a listener answers a members request with
    // one frame and closes); an error on either side tears both down.
    for (const [s, other] of [[down, up], [up, down]] as const) {
      s.on('error', () => this.destroy());
      s.on('end', () => other.end());
      s.on('close', () => {
        other.end();
        if (down.destroyed && up.destroyed) this.destroy();
      });
    }
  }

  private read(decoder: FrameDecoder, data: Buffer, direction: 'forward' | 'backward'): void {
    if (this.closed) return;
    decoder.push(data);
    try {
      for (let f = decoder.next(); f && !this.closed; f = decoder.next()) {
        if (direction === 'forward') this.forward(f);
        else this.backward(f);
      }
    } catch (err) {
      // A framing violation: the member behind us would close the connection too. Anything else is our bug.
      if (!(err instanceof FrameError)) throw err;
      this.destroy();
    }
  }

  private forward(f: Frame): void {
    if (!this.sawFirstFrame) {
      this.sawFirstFrame = true;
      if (f.type === FrameType.Hello) {
        try {
          const h = decodeHello(f.payload);
          if (isHello(h)) this.link = { from: idString(h.from), to: idString(h.to), kind: h.kind };
        } catch {
          // Malformed: the member refuses it; we just pass it on.
        }
      }
    }
    const link = this.link;
    if (!link) return this.write(this.up, f);
    const rule = this.proxy.rule(link.from, link.to);
    const n = this.proxy.count(link.from, link.to);
    const rng = this.proxy.rng;
    if (rule?.blackhole) {
      n.blackholed++;
      return;
    }
    const chance = (p: number | undefined) => p !== undefined && p > 0 && rng.next() < p;
    if (link.kind === 'snapshot' && f.type !== FrameType.Hello && chance(rule?.drop)) {
      n.resets++;
      return this.reset();
    }
    if (link.kind !== 'stream' || f.type !== FrameType.Message || !rule) return this.emit(f, n);
    if (chance(rule.reset)) {
      n.resets++;
      return this.reset();
    }
    if (chance(rule.drop)) {
      n.dropped++;
      return;
    }
    const copies = chance(rule.duplicate) && !isProposal(f.payload) ? 2 : 1;
    if (copies === 2) n.duplicated++;
    const reorder = chance(rule.reorder);
    const base = rule.delayMs ?? 0;
    const jitter = rule.jitterMs ?? 0;
    const delayMs = base > 0 || jitter > 0 ? Math.max(0, base - jitter + rng.next() * 2 * jitter) : 0;
    const send = () => {
      if (this.closed) return;
      for (let k = 0; k < copies; k++) {
        if (reorder && k === 0 && !this.held) {
          n.reordered++;
          this.hold(f, n);
        } else this.emit(f, n);
      }
    };
    if (delayMs > 0) {
      n.delayed++;
      setTimeout(send, delayMs);
    } else send();
  }

  private backward(f: Frame): void {
    const link = this.link;
    if (link && this.proxy.rule(link.to, link.from)?.blackhole) {
      this.proxy.count(link.to, link.from).blackholed++;
      return;
    }
    if (link) this.proxy.count(link.to, link.from).forwarded++;
    this.write(this.down, f);
  }

  /** Writes a dialer → listener frame, then the frame held back for reordering, if any. */
  private emit(f: Frame, n: LinkCounters): void {
    n.forwarded++;
    this.write(this.up, f);
    this.releaseHeld();
  }

  private hold(f: Frame, n: LinkCounters): void {
    this.held = { frame: f, counters: n, timer: setTimeout(() => this.releaseHeld(), REORDER_HOLD_MAX_MS) };
  }

  releaseHeld(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    clearTimeout(h.timer);
    if (this.closed) return;
    h.counters.forwarded++;
    this.write(this.up, h.frame);
  }

  private write(to: net.Socket, f: Frame): void {
    if (this.closed || to.writableEnded) return;
    to.cork();
    to.write(encodeFrameHeader(f.type, f.payload.length));
    const ok = to.write(f.payload);
    to.uncork();
    if (!ok) (to === this.up ? this.down : this.up).pause();
  }

  /** Both sockets get a TCP RST, as a middlebox resetting the connection would. */
  private reset(): void {
    if (this.closed) return;
    this.down.resetAndDestroy();
    this.up.resetAndDestroy();
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.held) clearTimeout(this.held.timer);
    this.held = undefined;
    this.down.destroy();
    this.up.destroy();
    this.onClose?.();
  }
}

/** The harness's handle on a proxy process. */
export interface PeerProxyProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  request(op: 'rules', body: { rules: LinkRule[] }): Promise<void>;
  request(op: 'stats'): Promise<Record<string, LinkCounters>>;
  /** SIGKILL by PID; resolves when it has exited. */
  kill(): Promise<void>;
}

/**
 * Starts a proxy process (inside network namespace `netns` if given: `ip netns exec` execs in place, so the PID
 * is the proxy's own) and resolves once it listens. `log` receives its stderr.
 */
export function spawnPeerProxy(o: PeerProxyOptions & { netns?: string; log?: (line: string) => void }): Promise<PeerProxyProcess> {
  const args = [__filename, '--listen', `${o.listenHost}:${o.listenPort}`, '--target', `${o.targetHost}:${o.targetPort}`, '--seed', String(o.seed)];
  const [file, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, process.execPath, ...args]] : [process.execPath, args];
  const proc = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const pending = new Map<number, { resolve: (x: any) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    o.log?.(d.toString().trimEnd());
  });
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`peer proxy exited: ${stderr.trim()}`));
    pending.clear();
  });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout! });
    let started = false;
    void exited.then(() => {
      if (!started) reject(new Error(`peer proxy exited before listening: ${stderr.trim()}`));
    });
    lines.on('line', (line) => {
      const m = JSON.parse(line);
      if (!started && m.listening !== undefined) {
        started = true;
        resolve({
          proc,
          port: m.listening,
          request(op: string, body: object = {}): Promise<any> {
            const id = nextId++;
            return new Promise((res, rej) => {
              pending.set(id, { resolve: res, reject: rej });
              proc.stdin!.write(JSON.stringify({ id, op, ...body }) + '\n');
            });
          },
          async kill() {
            proc.kill('SIGKILL');
            await exited;
          },
        } as PeerProxyProcess);
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.stats);
    });
  });
}

function hostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0 || argv[i + 1] === undefined) throw new Error(`peer-proxy: --${name} is required`);
    return argv[i + 1]!;
  };
  const [listenHost, listenPort] = hostPort(arg('listen'));
  const [targetHost, targetPort] = hostPort(arg('target'));
  const proxy = new PeerProxy({ listenHost, listenPort, targetHost, targetPort, seed: Number(arg('seed')) });
  const port = await proxy.listen();
  process.stdout.write(JSON.stringify({ listening: port }) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let id: unknown;
    try {
      const m = JSON.parse(line);
      id = m.id;
      if (m.op === 'rules') proxy.setRules(m.rules);
      else if (m.op !== 'stats') throw new Error(`unknown op ${m.op}`);
      process.stdout.write(JSON.stringify({ id, stats: proxy.stats() }) + '\n');
    } catch (err) {
      process.stdout.write(JSON.stringify({ id, error: err instanceof Error ? err.message : String(err) }) + '\n');
    }
  });
  lines.on('close', () => process.exit(0));
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
