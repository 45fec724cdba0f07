// A minimal port of etcd raft's datadriven interaction tests (rafttest/interaction_env*.go), running etcd v3.4.23's
// own testdata scripts (test/raft/testdata/*.txt, the ones that use only V1 conf changes) unchanged: every Ready,
// message and log line must print exactly as etcd's does (describe.ts), so these pin our behaviour to etcd's at the
// level of individual messages.
//
// Commands: log-level, add-nodes, campaign, propose, propose-conf-change (v1), process-ready, deliver-msgs,
// stabilize, tick-heartbeat, raft-log, status, compact. Set REWRITE=1 to print the actual output instead of failing.

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { RawNode, type Ready } from '../../src/raft/raw-node';
import { MemoryStorage } from '../../src/raft/storage';
import type { Logger } from '../../src/raft/logger';
import { decodeConfChange } from '../../src/raft/confchange/codec';
import { describeEntries, describeMessage, describeReady } from '../../src/raft/describe';
import { ConfChangeType, type ConfState, EntryType, type Message, type Snapshot, emptyConfState } from '../../src/raft/types';
import { noLimit } from '../../src/raft/util';
import { Xoshiro128 } from '../../src/util/prng';

const levels = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL', 'NONE'];

class Output {
  buf = '';
  level = 0;
  logger(): Logger {
    const at = (lvl: number) => (msg: string) => {
      if (this.level <= lvl) this.buf += `${levels[lvl]} ${msg}\n`;
    };
    return { debug: at(0), info: at(1), warn: at(2), error: at(3) };
  }
}

/** MemoryStorage whose snapshot() is the node's latest applied state (etcd's snapOverrideStorage). */
class HistoryStorage extends MemoryStorage {
  history: Snapshot[] = [];
  override snapshot(): Snapshot {
    return this.history[this.history.length - 1]!;
  }
}

interface EnvNode {
  rn: RawNode;
  storage: HistoryStorage;
  heartbeatTick: number;
}

interface Directive {
  cmd: string;
  args: Array<{ key: string; vals: string[] }>;
  input: string[];
  expected: string;
  line: number;
}

function parse(text: string): Directive[] {
  const lines = text.split('\n');
  const out: Directive[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      i++;
      continue;
    }
    const start = i + 1;
    const [cmd, ...rest] = line.trim().split(/\s+(?![^(]*\))/);
    const args = rest.map((a) => {
      const eq = a.indexOf('=');
      if (eq < 0) return { key: a, vals: [] };
      const v = a.slice(eq + 1);
      return { key: a.slice(0, eq), vals: v.startsWith('(') ? v.slice(1, -1).split(/[, ]+/).filter((x) => x !== '') : [v] };
    });
    i++;
    const input: string[] = [];
    while (i < lines.length && lines[i] !== '----') input.push(lines[i++]!);
    i++; // ----
    const expected: string[] = [];
    while (i < lines.length && lines[i] !== '') expected.push(lines[i++]!);
    out.push({ cmd: cmd!, args, input, expected: expected.join('\n'), line: start });
  }
  return out;
}

class InteractionEnv {
  nodes: EnvNode[] = [];
  messages: Message[] = [];
  readonly out = new Output();

  handle(d: Directive): string {
    this.out.buf = '';
    const first = (): number => Number(d.args[0]!.key) - 1;
    try {
      switch (d.cmd) {
        case 'log-level':
          this.out.level = levels.indexOf(d.args[0]!.key.toUpperCase());
          break;
        case 'add-nodes':
          this.addNodes(Number(d.args[0]!.key), d.args.slice(1));
          break;
        case 'campaign':
          this.nodes[first()]!.rn.campaign();
          break;
        case 'propose':
          this.nodes[first()]!.rn.propose(Buffer.from(d.args[1]!.key));
          break;
        case 'propose-conf-change': {
          const spec = d.input.join(' ').trim();
          const kind = spec[0];
          const type = kind === 'v' ? ConfChangeType.AddNode : kind === 'l' ? ConfChangeType.AddLearnerNode : kind === 'r' ? ConfChangeType.RemoveNode : ConfChangeType.UpdateNode;
          this.nodes[first()]!.rn.proposeConfChange({ id: 0n, type, nodeId: BigInt(spec.slice(1)), context: Buffer.alloc(0) });
          break;
        }
        case 'process-ready':
          this.processReady(first());
          break;
        case 'deliver-msgs': {
          const rs: Array<{ id: bigint; drop: boolean }> = [];
          for (const a of d.args) {
            if (a.vals.length === 0) rs.push({ id: BigInt(a.key), drop: false });
            else if (a.key === 'drop') for (const v of a.vals) rs.push({ id: BigInt(v), drop: true });
          }
          if (this.deliverMsgs(rs) === 0) this.out.buf += 'no messages\n';
          break;
        }
        case 'stabilize':
          this.stabilize(d.args.filter((a) => a.vals.length === 0).map((a) => Number(a.key) - 1));
          break;
        case 'tick-heartbeat': {
          const n = this.nodes[first()]!;
          for (let i = 0; i < n.heartbeatTick; i++) n.rn.tick();
          break;
        }
        case 'raft-log':
          this.raftLog(first());
          break;
        case 'status': {
          const st = this.nodes[first()]!.rn.raft.prs;
          const ids = [...st.progress.keys()].sort((a, b) => (a < b ? -1 : 1));
          for (const id of ids) this.out.buf += `${id}: ${st.progress.get(id)!.toString()}\n`;
          break;
        }
        case 'compact': {
          const idx = first();
          this.nodes[idx]!.storage.compact(Number(d.args[1]!.key));
          this.raftLog(idx);
          break;
        }
        default:
          throw new Error(`unknown command ${d.cmd}`);
      }
    } catch (err) {
      this.out.buf += (err as Error).message;
    }
    if (this.out.buf.length === 0) return 'ok';
    if (this.out.level === levels.length - 1) return 'ok (quiet)';
    return this.out.buf.replace(/\n$/, '');
  }

  private addNodes(n: number, args: Array<{ key: string; vals: string[] }>): void {
    const cs: ConfState = emptyConfState();
    let index = 0;
    for (const a of args) {
      if (a.key === 'voters') cs.voters.push(...a.vals.map(BigInt));
      if (a.key === 'learners') cs.learners.push(...a.vals.map(BigInt));
      if (a.key === 'index') index = Number(a.vals[0]);
    }
    const bootstrap = index > 0 || cs.voters.length > 0;
    for (let i = 0; i < n; i++) {
      const id = BigInt(this.nodes.length + 1);
      const storage = new HistoryStorage();
      const snap: Snapshot = { metadata: { index, term: bootstrap ? 1 : 0, confState: { voters: [...cs.voters], learners: [...cs.learners] } } };
      if (bootstrap) storage.applySnapshot(snap);
      storage.history = [snap];
      const rn = new RawNode({
        id,
        applied: index,
        electionTick: 3,
        heartbeatTick: 1,
        storage,
        maxSizePerMsg: noLimit,
        maxInflightMsgs: 2 ** 31 - 1,
        maxUncommittedEntries: 0,
        checkQuorum: false,
        preVote: false,
        logger: this.out.logger(),
        rand: new Xoshiro128(Number(id)),
      });
      this.nodes.push({ rn, storage, heartbeatTick: 1 });
    }
  }

  private processReady(idx: number): void {
    const { rn, storage } = this.nodes[idx]!;
    const rd: Ready = rn.ready();
    this.out.buf += describeReady(rd);
    // etcd's env: HardState, entries, then the snapshot (which drops the entries appended just before).
    if (rd.hardState) storage.setHardState(rd.hardState);
    storage.append(rd.entries);
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    for (const e of rd.committedEntries) {
      let cs: ConfState | undefined;
      let update = e.data;
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        update = cc.context;
        cs = rn.applyConfChange(cc);
      }
      const last = storage.history[storage.history.length - 1]!;
      storage.history.push({
        metadata: { index: e.index, term: e.term, confState: cs ?? last.metadata.confState },
        data: Buffer.concat([last.data ?? Buffer.alloc(0), update]),
      });
    }
    this.messages.push(...rd.messages);
    rn.advance(rd);
  }

  private deliverMsgs(rs: Array<{ id: bigint; drop: boolean }>): number {
    let n = 0;
    for (const r of rs) {
      const msgs = this.messages.filter((m) => m.to === r.id);
      this.messages = this.messages.filter((m) => m.to !== r.id);
      n += msgs.length;
      for (const m of msgs) {
        if (r.drop) this.out.buf += 'dropped: ';
        this.out.buf += describeMessage(m) + '\n';
        if (r.drop) continue;
        try {
          this.nodes[Number(m.to) - 1]!.rn.step(m);
        } catch (err) {
          this.out.buf += (err as Error).message;
        }
      }
    }
    return n;
  }

  private stabilize(idxs: number[]): void {
    const nodes = idxs.length > 0 ? idxs.map((i) => this.nodes[i]!) : this.nodes;
    const indented = (f: () => void): void => {
      const orig = this.out.buf;
      this.out.buf = '';
      f();
      const inner = this.out.buf;
      this.out.buf = orig;
      for (const line of inner.split('\n')) if (line !== '') this.out.buf += `  ${line}\n`;
    };
    for (;;) {
      let done = true;
      for (const n of nodes) {
        if (n.rn.hasReady()) {
          done = false;
          const idx = Number(n.rn.id) - 1;
          this.out.buf += `> ${idx + 1} handling Ready\n`;
          indented(() => this.processReady(idx));
        }
      }
      for (const n of nodes) {
        const id = n.rn.id;
        if (this.messages.some((m) => m.to === id)) {
          this.out.buf += `> ${id} receiving messages\n`;
          indented(() => this.deliverMsgs([{ id, drop: false }]));
          done = false;
        }
      }
      if (done) return;
    }
  }

  private raftLog(idx: number): void {
    const s = this.nodes[idx]!.storage;
    const fi = s.firstIndex();
    const li = s.lastIndex();
    if (li < fi) {
      this.out.buf += `log is empty: first index=${fi}, last index=${li}`;
      return;
    }
    this.out.buf += describeEntries(s.entries(fi, li + 1, noLimit));
  }
}

const dir = path.join(__dirname, '..', '..', '..', 'test', 'raft', 'testdata');
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  t.test(file, async (t) => {
    const env = new InteractionEnv();
    for (const d of parse(fs.readFileSync(path.join(dir, file), 'utf8'))) {
      const got = env.handle(d);
      if (process.env.REWRITE) {
        if (got !== d.expected) console.log(`--- ${file}:${d.line} ${d.cmd}\n${got}\n`);
        continue;
      }
      t.equal(got, d.expected, `${file}:${d.line} ${d.cmd} ${d.args.map((a) => a.key).join(' ')}`);
    }
  });
}
