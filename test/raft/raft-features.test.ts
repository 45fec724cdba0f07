// Ports of etcd raft's raft_test.go (v3.4), second half: check-quorum and the leader lease, disruptive followers and
// pre-vote, ReadIndex, leader replication details, snapshots, conf changes, leader transfer and pre-vote migration.

import t from 'tap';
import { Raft, StateType, None } from '../../src/raft/raft';
import { RaftLog } from '../../src/raft/log';
import { MemoryStorage } from '../../src/raft/storage';
import { discardLogger } from '../../src/raft/logger';
import { ReadOnly, ReadOnlyOption } from '../../src/raft/read-only';
import { ProgressStateType } from '../../src/raft/tracker/progress';
import { encodeConfChange } from '../../src/raft/confchange/codec';
import { ConfChangeType, type Entry, EntryType, MessageType, type Snapshot } from '../../src/raft/types';
import { noLimit } from '../../src/raft/util';
import {
  type Network,
  cc,
  ent,
  msg,
  mustAppendEntry,
  newNetwork,
  newTestConfig,
  newTestLearnerRaft,
  newTestRaft,
  nextEnts,
  readMessages,
  setRandomizedElectionTimeout,
} from './helpers';

const data = (s: string): Entry[] => [ent(0, 0, s)];
const empty = (): Entry[] => [ent(0, 0)];
const hup = (id: number) => msg({ from: BigInt(id), to: BigInt(id), type: MessageType.MsgHup });
const beat = (id: number) => msg({ from: BigInt(id), to: BigInt(id), type: MessageType.MsgBeat });
const prop = (id: number, entries: Entry[] = empty()) => msg({ from: BigInt(id), to: BigInt(id), type: MessageType.MsgProp, entries });

function snap(index: number, term: number, voters: number[], learners: number[] = []): Snapshot {
  return { metadata: { index, term, confState: { voters: voters.map(BigInt), learners: learners.map(BigInt) } } };
}

function three(): [Raft, Raft, Raft] {
  return [1, 2, 3].map((id) => newTestRaft(id, [1, 2, 3], 10, 1, new MemoryStorage())) as [Raft, Raft, Raft];
}

for (const mt of [MessageType.MsgHeartbeat, MessageType.MsgApp]) {
  t.test(`TestCandidateResetTerm${MessageType[mt]}`, async (t) => {
    // A candidate receiving MsgHeartbeat or MsgApp from the leader adopts its term and reverts to follower.
    const [a, b, c] = three();
    const nt = newNetwork(a, b, c);
    nt.send(hup(1));
    t.equal(a.state, StateType.Leader);
    t.equal(b.state, StateType.Follower);
    t.equal(c.state, StateType.Follower);
    // Isolate 3 and increase the term in the rest.
    nt.isolate(3);
    nt.send(hup(2));
    nt.send(hup(1));
    t.equal(a.state, StateType.Leader);
    t.equal(b.state, StateType.Follower);
    // Trigger a campaign in isolated c.
    c.resetRandomizedElectionTimeout();
    for (let i = 0; i < c.randomizedElectionTimeout; i++) c.tick();
    t.equal(c.state, StateType.Candidate);
    nt.recover();
    // The leader sends to the isolated candidate and expects it to revert to follower.
    nt.send(msg({ from: 1n, to: 3n, term: a.term, type: mt }));
    t.equal(c.state, StateType.Follower);
    t.equal(c.term, a.term);
  });
}

t.test('TestLeaderStepdownWhenQuorumActive', async (t) => {
  const sm = newTestRaft(1, [1, 2, 3], 5, 1, new MemoryStorage());
  sm.checkQuorum = true;
  sm.becomeCandidate();
  sm.becomeLeader();
  for (let i = 0; i < sm.electionTimeout + 1; i++) {
    sm.step(msg({ from: 2n, type: MessageType.MsgHeartbeatResp, term: sm.term }));
    sm.tick();
  }
  t.equal(sm.state, StateType.Leader);
});

t.test('TestLeaderStepdownWhenQuorumLost', async (t) => {
  const sm = newTestRaft(1, [1, 2, 3], 5, 1, new MemoryStorage());
  sm.checkQuorum = true;
  sm.becomeCandidate();
  sm.becomeLeader();
  for (let i = 0; i < sm.electionTimeout + 1; i++) sm.tick();
  t.equal(sm.state, StateType.Follower);
});

t.test('TestLeaderSupersedingWithCheckQuorum', async (t) => {
  const [a, b, c] = three();
  for (const r of [a, b, c]) r.checkQuorum = true;
  const nt = newNetwork(a, b, c);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  t.equal(c.state, StateType.Follower);
  nt.send(hup(3));
  // b rejected c's vote since its electionElapsed had not reached electionTimeout (the lease).
  t.equal(c.state, StateType.Candidate);
  // Letting b's electionElapsed reach electionTimeout.
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(3));
  t.equal(c.state, StateType.Leader);
});

t.test('TestLeaderElectionWithCheckQuorum', async (t) => {
  const [a, b, c] = three();
  for (const r of [a, b, c]) r.checkQuorum = true;
  const nt = newNetwork(a, b, c);
  setRandomizedElectionTimeout(a, a.electionTimeout + 1);
  setRandomizedElectionTimeout(b, b.electionTimeout + 2);
  // Immediately after creation, votes are cast regardless of the election timeout.
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  t.equal(c.state, StateType.Follower);
  // Reset the randomized timeouts above electionTimeout again (they were redrawn at the last state change).
  setRandomizedElectionTimeout(a, a.electionTimeout + 1);
  setRandomizedElectionTimeout(b, b.electionTimeout + 2);
  for (let i = 0; i < a.electionTimeout; i++) a.tick();
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(3));
  t.equal(a.state, StateType.Follower);
  t.equal(c.state, StateType.Leader);
});

t.test('TestFreeStuckCandidateWithCheckQuorum', async (t) => {
  // A candidate with a higher term can disrupt the leader even if the leader still holds the lease: the leader steps
  // down and adopts the candidate's term.
  const [a, b, c] = three();
  for (const r of [a, b, c]) r.checkQuorum = true;
  const nt = newNetwork(a, b, c);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  nt.isolate(1);
  nt.send(hup(3));
  t.equal(b.state, StateType.Follower);
  t.equal(c.state, StateType.Candidate);
  t.equal(c.term, b.term + 1);
  // Vote again for safety.
  nt.send(hup(3));
  t.equal(b.state, StateType.Follower);
  t.equal(c.state, StateType.Candidate);
  t.equal(c.term, b.term + 2);
  nt.recover();
  nt.send(msg({ from: 1n, to: 3n, type: MessageType.MsgHeartbeat, term: a.term }));
  // Disrupt the leader so that the stuck peer is freed.
  t.equal(a.state, StateType.Follower);
  t.equal(c.term, a.term);
  // Vote again, should become leader this time.
  nt.send(hup(3));
  t.equal(c.state, StateType.Leader);
});

t.test('TestNonPromotableVoterWithCheckQuorum', async (t) => {
  const a = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  const b = newTestRaft(2, [1], 10, 1, new MemoryStorage());
  a.checkQuorum = true;
  b.checkQuorum = true;
  const nt = newNetwork(a, b);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  // Remove 2 again to make it non-promotable (newNetwork overwrote some state).
  b.applyConfChange(cc(ConfChangeType.RemoveNode, 2));
  t.notOk(b.promotable());
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  t.equal(b.state, StateType.Follower);
  t.equal(b.lead, 1n);
});

t.test('TestDisruptiveFollower', async (t) => {
  // An isolated follower whose election times out becomes a candidate with a higher term; its response to a late
  // leader heartbeat forces the leader to step down.
  const [n1, n2, n3] = three();
  for (const r of [n1, n2, n3]) {
    r.checkQuorum = true;
    r.becomeFollower(1, None);
  }
  const nt = newNetwork(n1, n2, n3);
  nt.send(hup(1));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.Follower);
  // Leader messages are delayed while ticks elapse at n3.
  setRandomizedElectionTimeout(n3, n3.electionTimeout + 2);
  for (let i = 0; i < n3.randomizedElectionTimeout - 1; i++) n3.tick();
  n3.tick();
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.Candidate);
  t.equal(n1.term, 2);
  t.equal(n2.term, 2);
  t.equal(n3.term, 3);
  // The leader heartbeat finally arrives at candidate n3, with a lower term; n3 answers MsgAppResp at its higher
  // term, and the leader steps down.
  nt.send(msg({ from: 1n, to: 3n, term: n1.term, type: MessageType.MsgHeartbeat }));
  t.equal(n1.state, StateType.Follower);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.Candidate);
  t.equal(n1.term, 3);
  t.equal(n2.term, 2);
  t.equal(n3.term, 3);
});

t.test('TestDisruptiveFollowerPreVote', async (t) => {
  // With pre-vote, the isolated follower (with a shorter log) cannot make the leader step down.
  const [n1, n2, n3] = three();
  for (const r of [n1, n2, n3]) {
    r.checkQuorum = true;
    r.becomeFollower(1, None);
  }
  const nt = newNetwork(n1, n2, n3);
  nt.send(hup(1));
  t.equal(n1.state, StateType.Leader);
  nt.isolate(3);
  for (let i = 0; i < 3; i++) nt.send(prop(1, data('somedata')));
  for (const r of [n1, n2, n3]) r.preVote = true;
  nt.recover();
  nt.send(hup(3));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.PreCandidate);
  t.equal(n1.term, 2);
  t.equal(n2.term, 2);
  t.equal(n3.term, 2);
  // A delayed leader heartbeat does not force the current leader to step down.
  nt.send(msg({ from: 1n, to: 3n, term: n1.term, type: MessageType.MsgHeartbeat }));
  t.equal(n1.state, StateType.Leader);
});

function readIndexRounds(t: tap.Test, nt: Network, rounds: Array<[Raft, number, number, string]>): void {
  rounds.forEach(([r, proposals, wri, wctx], i) => {
    for (let j = 0; j < proposals; j++) nt.send(prop(1));
    nt.send(msg({ from: r.id, to: r.id, type: MessageType.MsgReadIndex, entries: [ent(0, 0, wctx)] }));
    t.ok(r.readStates.length > 0, `#${i} got a read state`);
    const rs = r.readStates[0]!;
    t.equal(rs.index, wri, `#${i} read index`);
    t.equal(rs.requestCtx.toString(), wctx);
    r.readStates = [];
  });
}

t.test('TestReadOnlyOptionSafe', async (t) => {
  const [a, b, c] = three();
  const nt = newNetwork(a, b, c);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  readIndexRounds(t, nt, [
    [a, 10, 11, 'ctx1'],
    [b, 10, 21, 'ctx2'],
    [c, 10, 31, 'ctx3'],
    [a, 10, 41, 'ctx4'],
    [b, 10, 51, 'ctx5'],
    [c, 10, 61, 'ctx6'],
  ]);
});

t.test('TestReadOnlyWithLearner', async (t) => {
  const a = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  const b = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  const nt = newNetwork(a, b);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  readIndexRounds(t, nt, [
    [a, 10, 11, 'ctx1'],
    [b, 10, 21, 'ctx2'],
    [a, 10, 31, 'ctx3'],
    [b, 10, 41, 'ctx4'],
  ]);
});

t.test('TestReadOnlyOptionLease', async (t) => {
  const [a, b, c] = three();
  for (const r of [a, b, c]) {
    r.readOnly = new ReadOnly(ReadOnlyOption.LeaseBased);
    r.checkQuorum = true;
  }
  const nt = newNetwork(a, b, c);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  for (let i = 0; i < b.electionTimeout; i++) b.tick();
  nt.send(hup(1));
  t.equal(a.state, StateType.Leader);
  readIndexRounds(t, nt, [
    [a, 10, 11, 'ctx1'],
    [b, 10, 21, 'ctx2'],
    [c, 10, 31, 'ctx3'],
    [a, 10, 41, 'ctx4'],
    [b, 10, 51, 'ctx5'],
    [c, 10, 61, 'ctx6'],
  ]);
});

t.test('TestReadOnlyForNewLeader', async (t) => {
  // A leader only answers MsgReadIndex once it has committed an entry of its term.
  const nodeConfigs: Array<[number, number, number, number]> = [
    [1, 1, 1, 0],
    [2, 2, 2, 2],
    [3, 2, 2, 2],
  ];
  const peers = nodeConfigs.map(([id, committed, applied, compactIndex]) => {
    const storage = new MemoryStorage();
    storage.append([ent(1, 1), ent(1, 2)]);
    storage.setHardState({ term: 1, vote: 0n, commit: committed });
    if (compactIndex !== 0) storage.compact(compactIndex);
    const cfg = newTestConfig(id, [1, 2, 3], 10, 1, storage);
    cfg.applied = applied;
    return new Raft(cfg);
  });
  const nt = newNetwork(...peers);
  // Drop MsgApp to forbid peer a to commit any log entry at its term after it becomes leader.
  nt.ignore(MessageType.MsgApp);
  nt.send(hup(1));
  const sm = nt.raft(1);
  t.equal(sm.state, StateType.Leader);
  // Ensure peer a postpones the read only request.
  const windex = 4;
  const wctx = Buffer.from('ctx');
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgReadIndex, entries: [ent(0, 0, wctx)] }));
  t.equal(sm.readStates.length, 0);
  nt.recover();
  // Force peer a to commit a log entry at its term.
  for (let i = 0; i < sm.heartbeatTimeout; i++) sm.tick();
  nt.send(prop(1));
  t.equal(sm.raftLog.committed, 4);
  t.equal(sm.raftLog.zeroTermOnErrCompacted(sm.raftLog.committed), sm.term);
  // The postponed request is answered after the commit in its term.
  t.equal(sm.readStates.length, 1);
  t.equal(sm.readStates[0]!.index, windex);
  t.same(sm.readStates[0]!.requestCtx, wctx);
  // And new ones are accepted.
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgReadIndex, entries: [ent(0, 0, wctx)] }));
  t.equal(sm.readStates.length, 2);
  t.equal(sm.readStates[1]!.index, windex);
});

t.test('TestReadIndexBatching: one heartbeat round answers all earlier requests', async (t) => {
  const [a, b, c] = three();
  const nt = newNetwork(a, b, c);
  nt.send(hup(1));
  nt.send(prop(1));
  // Queue three requests without delivering the heartbeats.
  for (const ctx of ['r1', 'r2', 'r3']) a.step(msg({ from: 1n, to: 1n, type: MessageType.MsgReadIndex, entries: [ent(0, 0, ctx)] }));
  const hbs = readMessages(a);
  t.equal(hbs.length, 6, 'one heartbeat round per request');
  // Only the last round's ack from one follower arrives: it confirms all three.
  a.step(msg({ from: 2n, to: 1n, term: a.term, type: MessageType.MsgHeartbeatResp, context: Buffer.from('r3') }));
  t.same(
    a.readStates.map((rs) => rs.requestCtx.toString()),
    ['r1', 'r2', 'r3'],
  );
  t.ok(a.readStates.every((rs) => rs.index === a.raftLog.committed));
});

t.test('TestLeaderAppResp', async (t) => {
  // Initial progress: match = 0; next = 3.
  const tests: Array<[number, boolean, number, number, number, number, number]> = [
    [3, true, 0, 3, 0, 0, 0], // stale resp; no replies
    [2, true, 0, 2, 1, 1, 0], // denied resp; leader does not commit; decrease next and send probing msg
    [2, false, 2, 4, 2, 2, 2], // accept resp; leader commits; broadcast with commit index
    [0, false, 0, 3, 0, 0, 0], // ignore heartbeat replies
  ];
  tests.forEach(([index, reject, wmatch, wnext, wmsgNum, windex, wcommitted], i) => {
    // The term is 1 after it becomes the leader, so the last log term must be 1 to be committed.
    const sm = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    const storage = new MemoryStorage();
    storage.append([ent(0, 1), ent(1, 2)]);
    sm.raftLog = new RaftLog(storage, discardLogger);
    sm.becomeCandidate();
    sm.becomeLeader();
    readMessages(sm);
    sm.step(msg({ from: 2n, type: MessageType.MsgAppResp, index, term: sm.term, reject, rejectHint: index }));
    const p = sm.prs.progress.get(2n)!;
    t.equal(p.match, wmatch, `#${i} match`);
    t.equal(p.next, wnext, `#${i} next`);
    const msgs = readMessages(sm);
    t.equal(msgs.length, wmsgNum, `#${i} msgNum`);
    for (const m of msgs) {
      t.equal(m.index, windex, `#${i} index`);
      t.equal(m.commit, wcommitted, `#${i} commit`);
    }
  });
});

t.test('TestBcastBeat', async (t) => {
  // A heartbeat has index 0, logTerm 0, no entries, and commit min(committed, match).
  const offset = 1000;
  const storage = new MemoryStorage();
  storage.applySnapshot(snap(offset, 1, [1, 2, 3]));
  const sm = newTestRaft(1, [], 10, 1, storage);
  sm.term = 1;
  sm.becomeCandidate();
  sm.becomeLeader();
  for (let i = 0; i < 10; i++) mustAppendEntry(sm, ent(0, i + 1));
  // Slow follower.
  sm.prs.progress.get(2n)!.match = 5;
  sm.prs.progress.get(2n)!.next = 6;
  // Normal follower.
  sm.prs.progress.get(3n)!.match = sm.raftLog.lastIndex();
  sm.prs.progress.get(3n)!.next = sm.raftLog.lastIndex() + 1;
  sm.step(msg({ type: MessageType.MsgBeat }));
  const msgs = readMessages(sm);
  t.equal(msgs.length, 2);
  const want = new Map([
    [2n, Math.min(sm.raftLog.committed, 5)],
    [3n, Math.min(sm.raftLog.committed, sm.raftLog.lastIndex())],
  ]);
  for (const m of msgs) {
    t.equal(m.type, MessageType.MsgHeartbeat);
    t.equal(m.index, 0);
    t.equal(m.logTerm, 0);
    t.equal(m.commit, want.get(m.to));
    t.equal(m.entries.length, 0);
  }
});

t.test('TestRecvMsgBeat', async (t) => {
  const tests: Array<[StateType, number]> = [
    [StateType.Leader, 2],
    // Candidate and follower ignore MsgBeat.
    [StateType.Candidate, 0],
    [StateType.Follower, 0],
  ];
  for (const [state, wMsg] of tests) {
    const sm = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    const storage = new MemoryStorage();
    storage.append([ent(0, 1), ent(1, 2)]);
    sm.raftLog = new RaftLog(storage, discardLogger);
    sm.term = 1;
    sm.state = state;
    sm.step(msg({ from: 1n, to: 1n, type: MessageType.MsgBeat }));
    const msgs = readMessages(sm);
    t.equal(msgs.length, wMsg, state);
    for (const m of msgs) t.equal(m.type, MessageType.MsgHeartbeat);
  }
});

t.test('TestLeaderIncreaseNext', async (t) => {
  const previousEnts = [ent(1, 1), ent(1, 2), ent(1, 3)];
  const tests: Array<[ProgressStateType, number, number]> = [
    // State replicate: optimistically increase next (previous entries + noop entry + propose + 1).
    [ProgressStateType.StateReplicate, 2, previousEnts.length + 1 + 1 + 1],
    // State probe: not optimistically.
    [ProgressStateType.StateProbe, 2, 2],
  ];
  for (const [state, next, wnext] of tests) {
    const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
    sm.raftLog.append(previousEnts);
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.prs.progress.get(2n)!.state = state;
    sm.prs.progress.get(2n)!.next = next;
    sm.step(prop(1, data('somedata')));
    t.equal(sm.prs.progress.get(2n)!.next, wnext, state);
  }
});

t.test('TestSendAppendForProgressProbe', async (t) => {
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  r.prs.progress.get(2n)!.becomeProbe();
  // Each round is a heartbeat.
  for (let i = 0; i < 3; i++) {
    if (i === 0) {
      // Raft sends only one MsgApp on the first loop; then the follower is paused until a heartbeat response.
      mustAppendEntry(r, ent(0, 0, 'somedata'));
      r.sendAppend(2n);
      const m = readMessages(r);
      t.equal(m.length, 1);
      t.equal(m[0]!.index, 0);
    }
    t.ok(r.prs.progress.get(2n)!.probeSent);
    for (let j = 0; j < 10; j++) {
      mustAppendEntry(r, ent(0, 0, 'somedata'));
      r.sendAppend(2n);
      t.equal(readMessages(r).length, 0);
    }
    // Do a heartbeat.
    for (let j = 0; j < r.heartbeatTimeout; j++) r.step(beat(1));
    t.ok(r.prs.progress.get(2n)!.probeSent);
    // Consume the heartbeat.
    const m = readMessages(r);
    t.equal(m.length, 1);
    t.equal(m[0]!.type, MessageType.MsgHeartbeat);
  }
  // A heartbeat response allows another message to be sent.
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeatResp }));
  const m = readMessages(r);
  t.equal(m.length, 1);
  t.equal(m[0]!.index, 0);
  t.ok(r.prs.progress.get(2n)!.probeSent);
});

t.test('TestSendAppendForProgressReplicate', async (t) => {
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  r.prs.progress.get(2n)!.becomeReplicate();
  for (let i = 0; i < 10; i++) {
    mustAppendEntry(r, ent(0, 0, 'somedata'));
    r.sendAppend(2n);
    t.equal(readMessages(r).length, 1);
  }
});

t.test('TestSendAppendForProgressSnapshot', async (t) => {
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  r.prs.progress.get(2n)!.becomeSnapshot(10);
  for (let i = 0; i < 10; i++) {
    mustAppendEntry(r, ent(0, 0, 'somedata'));
    r.sendAppend(2n);
    t.equal(readMessages(r).length, 0);
  }
});

t.test('TestRecvMsgUnreachable', async (t) => {
  const s = new MemoryStorage();
  s.append([ent(1, 1), ent(1, 2), ent(1, 3)]);
  const r = newTestRaft(1, [1, 2], 10, 1, s);
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  // Set node 2 to state replicate.
  const pr = r.prs.progress.get(2n)!;
  pr.match = 3;
  pr.becomeReplicate();
  pr.optimisticUpdate(5);
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgUnreachable }));
  t.equal(pr.state, ProgressStateType.StateProbe);
  t.equal(pr.next, pr.match + 1);
});

t.test('TestRestore', async (t) => {
  const s = snap(11, 11, [1, 2, 3]);
  const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  t.ok(sm.restore(s));
  t.equal(sm.raftLog.lastIndex(), 11);
  t.equal(sm.raftLog.term(11), 11);
  t.same(sm.prs.voterNodes(), [1n, 2n, 3n]);
  t.notOk(sm.restore(s), 'restoring the same snapshot again is ignored');
});

t.test('TestRestoreWithLearner', async (t) => {
  const s = snap(11, 11, [1, 2], [3]);
  const sm = newTestLearnerRaft(3, [1, 2], [3], 8, 2, new MemoryStorage());
  t.ok(sm.restore(s));
  t.equal(sm.raftLog.lastIndex(), 11);
  t.equal(sm.raftLog.term(11), 11);
  t.same(sm.prs.voterNodes(), [1n, 2n]);
  t.same(sm.prs.learnerNodes(), [3n]);
  for (const n of [1n, 2n]) t.notOk(sm.prs.progress.get(n)!.isLearner);
  t.ok(sm.prs.progress.get(3n)!.isLearner);
  t.notOk(sm.restore(s));
});

t.test('TestRestoreVoterToLearner', async (t) => {
  // A voter may learn from a snapshot that it is now a learner (the snapshot may compress removal and re-adding as
  // a learner); it must accept that snapshot or be cut off from the log forever.
  const sm = newTestRaft(3, [1, 2, 3], 10, 1, new MemoryStorage());
  t.notOk(sm.isLearner);
  t.ok(sm.restore(snap(11, 11, [1, 2], [3])));
  t.ok(sm.isLearner);
});

t.test('TestRestoreLearnerPromotion', async (t) => {
  const sm = newTestLearnerRaft(3, [1, 2], [3], 10, 1, new MemoryStorage());
  t.ok(sm.isLearner);
  t.ok(sm.restore(snap(11, 11, [1, 2, 3])));
  t.notOk(sm.isLearner);
});

t.test('TestLearnerReceiveSnapshot', async (t) => {
  const s = snap(11, 11, [1], [2]);
  const n1 = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  const n2 = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  n1.restore(s);
  // Force-set n1's applied index.
  n1.raftLog.appliedTo(n1.raftLog.committed);
  const nt = newNetwork(n1, n2);
  setRandomizedElectionTimeout(n1, n1.electionTimeout);
  for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
  nt.send(beat(1));
  t.equal(n2.raftLog.committed, n1.raftLog.committed);
});

t.test('TestRestoreIgnoreSnapshot', async (t) => {
  const commit = 1;
  const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  sm.raftLog.append([ent(1, 1), ent(1, 2), ent(1, 3)]);
  sm.raftLog.commitTo(commit);
  // Ignore the snapshot.
  t.notOk(sm.restore(snap(commit, 1, [1, 2])));
  t.equal(sm.raftLog.committed, commit);
  // Ignore the snapshot and fast-forward the commit.
  t.notOk(sm.restore(snap(commit + 1, 1, [1, 2])));
  t.equal(sm.raftLog.committed, commit + 1);
});

t.test('TestProvideSnap', async (t) => {
  const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  sm.restore(snap(11, 11, [1, 2]));
  sm.becomeCandidate();
  sm.becomeLeader();
  // Force-set the next of node 2, so that it needs a snapshot.
  sm.prs.progress.get(2n)!.next = sm.raftLog.firstIndex();
  sm.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: sm.prs.progress.get(2n)!.next - 1, reject: true }));
  const msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgSnap);
});

t.test('TestIgnoreProvidingSnap', async (t) => {
  const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  sm.restore(snap(11, 11, [1, 2]));
  sm.becomeCandidate();
  sm.becomeLeader();
  // Node 2 needs a snapshot but is inactive: the leader does not send one.
  sm.prs.progress.get(2n)!.next = sm.raftLog.firstIndex() - 1;
  sm.prs.progress.get(2n)!.recentActive = false;
  sm.step(prop(1, data('somedata')));
  t.equal(readMessages(sm).length, 0);
});

t.test('TestRestoreFromSnapMsg', async (t) => {
  const sm = newTestRaft(2, [1, 2], 10, 1, new MemoryStorage());
  sm.step(msg({ type: MessageType.MsgSnap, from: 1n, term: 2, snapshot: snap(11, 11, [1, 2]) }));
  t.equal(sm.lead, 1n);
  t.equal(sm.raftLog.committed, 11);
  t.equal(sm.raftLog.unstable.snapshot?.metadata.index, 11);
});

t.test('TestSlowNodeRestore', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  for (let j = 0; j <= 100; j++) nt.send(prop(1));
  const lead = nt.raft(1);
  nextEnts(lead, nt.storage.get(1n)!);
  nt.storage.get(1n)!.createSnapshot(lead.raftLog.applied, { voters: lead.prs.voterNodes(), learners: [] });
  nt.storage.get(1n)!.compact(lead.raftLog.applied);
  nt.recover();
  // Send heartbeats so that the leader learns everyone is active (3 only once its reply arrives).
  for (let i = 0; i < 100 && !lead.prs.progress.get(3n)!.recentActive; i++) nt.send(beat(1));
  t.ok(lead.prs.progress.get(3n)!.recentActive);
  // Trigger a snapshot, then a commit.
  nt.send(prop(1));
  const follower = nt.raft(3);
  nt.send(prop(1));
  t.equal(follower.raftLog.committed, lead.raftLog.committed);
});

t.test('TestStepConfig', async (t) => {
  // Stepping a MsgProp with a conf change appends it and records it as pending.
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  const index = r.raftLog.lastIndex();
  r.step(prop(1, [ent(0, 0, undefined, EntryType.ConfChange)]));
  t.equal(r.raftLog.lastIndex(), index + 1);
  t.equal(r.pendingConfIndex, index + 1);
});

t.test('TestStepIgnoreConfig', async (t) => {
  // A second conf change while the first is uncommitted becomes an empty normal entry.
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  r.step(prop(1, [ent(0, 0, undefined, EntryType.ConfChange)]));
  const index = r.raftLog.lastIndex();
  const pendingConfIndex = r.pendingConfIndex;
  const proposed = [ent(0, 0, undefined, EntryType.ConfChange)];
  r.step(prop(1, proposed));
  t.same(r.raftLog.entries(index + 1, noLimit), [ent(1, 3)]);
  t.equal(r.pendingConfIndex, pendingConfIndex);
  t.equal(proposed[0]!.type, EntryType.ConfChange, "the proposer's entries are not modified");
});

t.test('TestNewLeaderPendingConfig', async (t) => {
  // A new leader sets pendingConfIndex from its uncommitted entries.
  for (const [addEntry, wpendingIndex] of [
    [false, 0],
    [true, 1],
  ] as Array<[boolean, number]>) {
    const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
    if (addEntry) mustAppendEntry(r, ent(0, 0));
    r.becomeCandidate();
    r.becomeLeader();
    t.equal(r.pendingConfIndex, wpendingIndex);
  }
});

t.test('TestAddNode', async (t) => {
  const r = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  r.applyConfChange(cc(ConfChangeType.AddNode, 2));
  t.same(r.prs.voterNodes(), [1n, 2n]);
});

t.test('TestAddLearner', async (t) => {
  const r = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  // Add a new learner.
  r.applyConfChange(cc(ConfChangeType.AddLearnerNode, 2));
  t.notOk(r.isLearner);
  t.same(r.prs.learnerNodes(), [2n]);
  t.ok(r.prs.progress.get(2n)!.isLearner);
  // Promote the learner.
  r.applyConfChange(cc(ConfChangeType.AddNode, 2));
  t.notOk(r.prs.progress.get(2n)!.isLearner);
  // Demote r.
  r.applyConfChange(cc(ConfChangeType.AddLearnerNode, 1));
  t.ok(r.prs.progress.get(1n)!.isLearner);
  t.ok(r.isLearner);
  // Promote r again.
  r.applyConfChange(cc(ConfChangeType.AddNode, 1));
  t.notOk(r.prs.progress.get(1n)!.isLearner);
  t.notOk(r.isLearner);
});

t.test('TestAddNodeCheckQuorum', async (t) => {
  // Adding a node does not make the leader step down at the next quorum check: the new node counts as active.
  const r = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  r.checkQuorum = true;
  r.becomeCandidate();
  r.becomeLeader();
  for (let i = 0; i < r.electionTimeout - 1; i++) r.tick();
  r.applyConfChange(cc(ConfChangeType.AddNode, 2));
  // This tick reaches electionTimeout, which triggers a quorum check.
  r.tick();
  t.equal(r.state, StateType.Leader);
  // After another electionTimeout ticks without hearing from node 2, node 1 steps down.
  for (let i = 0; i < r.electionTimeout; i++) r.tick();
  t.equal(r.state, StateType.Follower);
});

t.test('TestRemoveNode', async (t) => {
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.applyConfChange(cc(ConfChangeType.RemoveNode, 2));
  t.same(r.prs.voterNodes(), [1n]);
  // Removing the remaining voter throws.
  t.throws(() => r.applyConfChange(cc(ConfChangeType.RemoveNode, 1)), { code: 'ErrConfChange' });
  t.same(r.prs.voterNodes(), [1n], 'a refused change leaves the configuration alone');
});

t.test('TestRemoveLearner', async (t) => {
  const r = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  r.applyConfChange(cc(ConfChangeType.RemoveNode, 2));
  t.same(r.prs.voterNodes(), [1n]);
  t.same(r.prs.learnerNodes(), []);
  t.throws(() => r.applyConfChange(cc(ConfChangeType.RemoveNode, 1)), { code: 'ErrConfChange' });
});

t.test('TestSimpleChangeRefusesTwoVoters', async (t) => {
  // Simple changes alter the voters by at most one; the Changer validates this even for a single ConfChange.
  const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
  // Demoting a voter and a no-op update both keep the symmetric difference at most one.
  r.applyConfChange(cc(ConfChangeType.AddLearnerNode, 3));
  t.same(r.prs.voterNodes(), [1n, 2n]);
  t.same(r.prs.learnerNodes(), [3n]);
  r.applyConfChange(cc(ConfChangeType.UpdateNode, 2));
  t.same(r.prs.voterNodes(), [1n, 2n]);
  // NodeID 0 is a no-op (etcd's convention for changes the server refused).
  r.applyConfChange(cc(ConfChangeType.AddNode, 0));
  t.same(r.prs.voterNodes(), [1n, 2n]);
});

t.test('TestPromotable', async (t) => {
  const tests: Array<[number[], boolean]> = [
    [[1], true],
    [[1, 2, 3], true],
    [[], false],
    [[2, 3], false],
  ];
  for (const [peers, wp] of tests) t.equal(newTestRaft(1, peers, 5, 1, new MemoryStorage()).promotable(), wp);
});

t.test('TestRaftNodes', async (t) => {
  t.same(newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage()).prs.voterNodes(), [1n, 2n, 3n]);
  t.same(newTestRaft(1, [3, 2, 1], 10, 1, new MemoryStorage()).prs.voterNodes(), [1n, 2n, 3n]);
});

for (const preVote of [false, true]) {
  t.test(`Test${preVote ? 'Pre' : ''}CampaignWhileLeader`, async (t) => {
    const cfg = newTestConfig(1, [1], 5, 1, new MemoryStorage());
    cfg.preVote = preVote;
    const r = new Raft(cfg);
    t.equal(r.state, StateType.Follower);
    r.step(hup(1));
    t.equal(r.state, StateType.Leader);
    const term = r.term;
    r.step(hup(1));
    t.equal(r.state, StateType.Leader);
    t.equal(r.term, term);
  });
}

t.test('TestCommitAfterRemoveNode', async (t) => {
  // Pending commands commit when a config change reduces the quorum.
  const s = new MemoryStorage();
  const r = newTestRaft(1, [1, 2], 5, 1, s);
  r.becomeCandidate();
  r.becomeLeader();
  // Begin to remove the second node.
  const change = cc(ConfChangeType.RemoveNode, 2);
  r.step(msg({ type: MessageType.MsgProp, entries: [ent(0, 0, encodeConfChange(change), EntryType.ConfChange)] }));
  // Stabilize the log and make sure nothing is committed yet.
  t.equal(nextEnts(r, s).length, 0);
  const ccIndex = r.raftLog.lastIndex();
  // While the config change is pending, make another proposal.
  r.step(msg({ type: MessageType.MsgProp, entries: [ent(0, 0, 'hello')] }));
  // Node 2 acknowledges the config change, committing it.
  r.step(msg({ type: MessageType.MsgAppResp, from: 2n, index: ccIndex }));
  let ents = nextEnts(r, s);
  t.equal(ents.length, 2);
  t.equal(ents[0]!.type, EntryType.Normal);
  t.equal(ents[0]!.data.length, 0);
  t.equal(ents[1]!.type, EntryType.ConfChange);
  // Apply the config change. This reduces the quorum so the pending command commits.
  r.applyConfChange(change);
  ents = nextEnts(r, s);
  t.equal(ents.length, 1);
  t.equal(ents[0]!.type, EntryType.Normal);
  t.equal(ents[0]!.data.toString(), 'hello');
});

function checkLeaderTransferState(t: tap.Test, r: Raft, state: StateType, lead: bigint): void {
  t.equal(r.state, state, 'state after transfer');
  t.equal(r.lead, lead, 'lead after transfer');
  t.equal(r.leadTransferee, None, 'no transfer pending');
}

const transfer = (from: number, to: number) => msg({ from: BigInt(from), to: BigInt(to), type: MessageType.MsgTransferLeader });

t.test('TestLeaderTransferToUpToDateNode', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  const lead = nt.raft(1);
  t.equal(lead.lead, 1n);
  // Transfer leadership to 2.
  nt.send(transfer(2, 1));
  checkLeaderTransferState(t, lead, StateType.Follower, 2n);
  // After some log replication, transfer leadership back to 1.
  nt.send(prop(1));
  nt.send(transfer(1, 2));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferToUpToDateNodeFromFollower', async (t) => {
  // The transfer request goes to the follower, which forwards it to the leader.
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  const lead = nt.raft(1);
  nt.send(transfer(2, 2));
  checkLeaderTransferState(t, lead, StateType.Follower, 2n);
  nt.send(prop(1));
  nt.send(transfer(1, 1));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferWithCheckQuorum', async (t) => {
  // A transfer works even while the current leader holds its lease.
  const nt = newNetwork(null, null, null);
  for (let i = 1; i < 4; i++) {
    const r = nt.raft(i);
    r.checkQuorum = true;
    setRandomizedElectionTimeout(r, r.electionTimeout + i);
  }
  // Let peer 2's electionElapsed reach the timeout so that it can vote for peer 1.
  const f = nt.raft(2);
  for (let i = 0; i < f.electionTimeout; i++) f.tick();
  nt.send(hup(1));
  const lead = nt.raft(1);
  t.equal(lead.lead, 1n);
  nt.send(transfer(2, 1));
  checkLeaderTransferState(t, lead, StateType.Follower, 2n);
  nt.send(prop(1));
  nt.send(transfer(1, 2));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferToSlowFollower', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  nt.send(prop(1));
  nt.recover();
  const lead = nt.raft(1);
  t.equal(lead.prs.progress.get(3n)!.match, 1);
  // Transfer leadership to 3 while it lacks log entries: the leader catches it up first.
  nt.send(transfer(3, 1));
  checkLeaderTransferState(t, lead, StateType.Follower, 3n);
});

t.test('TestLeaderTransferAfterSnapshot', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  nt.send(prop(1));
  const lead = nt.raft(1);
  nextEnts(lead, nt.storage.get(1n)!);
  nt.storage.get(1n)!.createSnapshot(lead.raftLog.applied, { voters: lead.prs.voterNodes(), learners: [] });
  nt.storage.get(1n)!.compact(lead.raftLog.applied);
  nt.recover();
  t.equal(lead.prs.progress.get(3n)!.match, 1);
  // Transfer leadership to 3 while it lacks the snapshot.
  nt.send(transfer(3, 1));
  // A heartbeat response makes the leader send the snapshot.
  nt.send(msg({ from: 3n, to: 1n, type: MessageType.MsgHeartbeatResp }));
  checkLeaderTransferState(t, lead, StateType.Follower, 3n);
});

t.test('TestLeaderTransferToSelf', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  const lead = nt.raft(1);
  nt.send(transfer(1, 1));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferToNonExistingNode', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  const lead = nt.raft(1);
  nt.send(transfer(4, 1));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferTimeout', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  // Transfer leadership to the isolated node and wait for the timeout.
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  for (let i = 0; i < lead.heartbeatTimeout; i++) lead.tick();
  t.equal(lead.leadTransferee, 3n);
  for (let i = 0; i < lead.electionTimeout - lead.heartbeatTimeout; i++) lead.tick();
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferIgnoreProposal', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  nt.send(prop(1));
  t.throws(() => lead.step(prop(1)), { code: 'ErrProposalDropped' }, 'proposals are dropped while transferring');
  t.equal(lead.prs.progress.get(1n)!.match, 1);
});

t.test('TestLeaderTransferReceiveHigherTermVote', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  nt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgHup, index: 1, term: 2 }));
  checkLeaderTransferState(t, lead, StateType.Follower, 2n);
});

t.test('TestLeaderTransferRemoveNode', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.ignore(MessageType.MsgTimeoutNow);
  const lead = nt.raft(1);
  // The transferee is removed while the transfer is in progress.
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  lead.applyConfChange(cc(ConfChangeType.RemoveNode, 3));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferBack', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  // Transfer leadership back to self.
  nt.send(transfer(1, 1));
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestLeaderTransferSecondTransferToAnotherNode', async (t) => {
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  nt.send(transfer(2, 1));
  checkLeaderTransferState(t, lead, StateType.Follower, 2n);
});

t.test('TestLeaderTransferSecondTransferToSameNode', async (t) => {
  // A second request for the same transferee does not extend the timeout.
  const nt = newNetwork(null, null, null);
  nt.send(hup(1));
  nt.isolate(3);
  const lead = nt.raft(1);
  nt.send(transfer(3, 1));
  t.equal(lead.leadTransferee, 3n);
  for (let i = 0; i < lead.heartbeatTimeout; i++) lead.tick();
  nt.send(transfer(3, 1));
  for (let i = 0; i < lead.electionTimeout - lead.heartbeatTimeout; i++) lead.tick();
  checkLeaderTransferState(t, lead, StateType.Leader, 1n);
});

t.test('TestTransferNonMember', async (t) => {
  // A MsgTimeoutNow at a member removed from the group does nothing.
  const r = newTestRaft(1, [2, 3, 4], 5, 1, new MemoryStorage());
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgTimeoutNow }));
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgVoteResp }));
  r.step(msg({ from: 3n, to: 1n, type: MessageType.MsgVoteResp }));
  t.equal(r.state, StateType.Follower);
});

function preVoteTrio(): [Raft, Raft, Raft] {
  const rs = three();
  for (const r of rs) {
    r.becomeFollower(1, None);
    r.preVote = true;
  }
  return rs;
}

t.test('TestNodeWithSmallerTermCanCompleteElection', async (t) => {
  // A member partitioned away (and behind) rejoins as the leader is partitioned away: with pre-vote, the cluster
  // must still elect a leader.
  const [n1, n2, n3] = preVoteTrio();
  const nt = newNetwork(n1, n2, n3);
  nt.cut(1, 3);
  nt.cut(2, 3);
  nt.send(hup(1));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  nt.send(hup(3));
  t.equal(n3.state, StateType.PreCandidate);
  nt.send(hup(2));
  t.equal(n1.term, 3);
  t.equal(n2.term, 3);
  t.equal(n3.term, 1);
  t.equal(n1.state, StateType.Follower);
  t.equal(n2.state, StateType.Leader);
  t.equal(n3.state, StateType.PreCandidate);
  // Recover the network then isolate b, the leader (emulating its crash).
  nt.recover();
  nt.cut(2, 1);
  nt.cut(2, 3);
  nt.send(hup(3));
  nt.send(hup(1));
  t.ok(n1.state === StateType.Leader || n3.state === StateType.Leader, 'a leader is elected');
});

t.test('TestPreVoteWithSplitVote', async (t) => {
  const [n1, n2, n3] = preVoteTrio();
  const nt = newNetwork(n1, n2, n3);
  nt.send(hup(1));
  // Simulate leader down. Followers start a split vote.
  nt.isolate(1);
  nt.send(hup(2), hup(3));
  t.equal(n2.term, 3);
  t.equal(n3.term, 3);
  t.equal(n2.state, StateType.Candidate);
  t.equal(n3.state, StateType.Candidate);
  // Node 2's election times out first.
  nt.send(hup(2));
  t.equal(n2.term, 4);
  t.equal(n3.term, 4);
  t.equal(n2.state, StateType.Leader);
  t.equal(n3.state, StateType.Follower);
});

t.test('TestPreVoteWithCheckQuorum', async (t) => {
  const [n1, n2, n3] = preVoteTrio();
  for (const r of [n1, n2, n3]) r.checkQuorum = true;
  const nt = newNetwork(n1, n2, n3);
  nt.send(hup(1));
  // Isolate node 1. Nodes 2 and 3 have leader info.
  nt.isolate(1);
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.Follower);
  // Node 2 ignores node 3's PreVote (lease); then node 2 campaigns.
  nt.send(hup(3));
  nt.send(hup(2));
  t.ok(n2.state === StateType.Leader || n3.state === StateType.Follower);
});

t.test('TestLearnerCampaign', async (t) => {
  // A learner does not campaign, even on MsgHup or MsgTimeoutNow.
  const n1 = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  n1.applyConfChange(cc(ConfChangeType.AddLearnerNode, 2));
  const n2 = newTestRaft(2, [1], 10, 1, new MemoryStorage());
  n2.applyConfChange(cc(ConfChangeType.AddLearnerNode, 2));
  const nt = newNetwork(n1, n2);
  nt.send(hup(2));
  t.ok(n2.isLearner);
  t.equal(n2.state, StateType.Follower);
  nt.send(hup(1));
  t.equal(n1.state, StateType.Leader);
  t.equal(n1.lead, 1n);
  nt.send(msg({ from: 1n, to: 2n, type: MessageType.MsgTimeoutNow }));
  t.equal(n2.state, StateType.Follower);
});

/** A cluster mid pre-vote rollout: n1 leader at term 2, n2 follower at 2, n3 partitioned candidate at term 4 (no pre-vote then). */
function newPreVoteMigrationCluster(t: tap.Test): Network {
  const [n1, n2, n3] = three();
  for (const r of [n1, n2, n3]) r.becomeFollower(1, None);
  n1.preVote = true;
  n2.preVote = true;
  // n3 deliberately without pre-vote: a mixed-version cluster during a rolling restart.
  const nt = newNetwork(n1, n2, n3);
  nt.send(hup(1));
  nt.isolate(3);
  nt.send(prop(1, data('some data')));
  nt.send(hup(3));
  nt.send(hup(3));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.Candidate);
  t.equal(n1.term, 2);
  t.equal(n2.term, 2);
  t.equal(n3.term, 4);
  // Enable pre-vote on n3, then recover the network.
  n3.preVote = true;
  nt.recover();
  return nt;
}

t.test('TestPreVoteMigrationCanCompleteElection', async (t) => {
  const nt = newPreVoteMigrationCluster(t);
  const n2 = nt.raft(2);
  const n3 = nt.raft(3);
  // Simulate leader down.
  nt.isolate(1);
  nt.send(hup(3));
  nt.send(hup(2));
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.PreCandidate);
  nt.send(hup(3));
  nt.send(hup(2));
  t.ok(n2.state === StateType.Leader || n3.state === StateType.Follower, 'a leader is elected');
});

t.test('TestPreVoteMigrationWithFreeStuckPreCandidate', async (t) => {
  const nt = newPreVoteMigrationCluster(t);
  const n1 = nt.raft(1);
  const n2 = nt.raft(2);
  const n3 = nt.raft(3);
  nt.send(hup(3));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.PreCandidate);
  // Pre-vote again for safety.
  nt.send(hup(3));
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  t.equal(n3.state, StateType.PreCandidate);
  nt.send(msg({ from: 1n, to: 3n, type: MessageType.MsgHeartbeat, term: n1.term }));
  // Disrupt the leader so that the stuck peer is freed.
  t.equal(n1.state, StateType.Follower);
  t.equal(n3.term, n1.term);
});

t.test('TestTimeoutNowWithUnappliedConfChange (regression: simulator seed 27444)', async (t) => {
  // A transferee that has not applied a committed conf change must not campaign: it would lead with a configuration
  // older than the committed one. etcd 3.4 campaigned on MsgTimeoutNow without this check (3.5's hup() has it).
  const storage = new MemoryStorage();
  storage.append([ent(1, 1), ent(1, 2, encodeConfChange(cc(ConfChangeType.AddNode, 4)), EntryType.ConfChange)]);
  storage.setHardState({ term: 1, vote: 0n, commit: 2 });
  const cfg = newTestConfig(2, [1, 2, 3], 10, 1, storage);
  cfg.applied = 1;
  const r = new Raft(cfg);
  r.becomeFollower(1, 1n);
  r.step(msg({ from: 1n, to: 2n, term: 1, type: MessageType.MsgTimeoutNow }));
  t.equal(r.state, StateType.Follower);
  t.equal(r.term, 1);
  t.equal(readMessages(r).length, 0);
  // Once applied, the transfer goes through.
  r.raftLog.appliedTo(2);
  r.applyConfChange(cc(ConfChangeType.AddNode, 4));
  r.step(msg({ from: 1n, to: 2n, term: 1, type: MessageType.MsgTimeoutNow }));
  t.equal(r.state, StateType.Candidate);
  t.equal(r.term, 2);
  t.same(
    readMessages(r).map((m) => [MessageType[m.type], Number(m.to)]),
    [
      ['MsgVote', 1],
      ['MsgVote', 3],
      ['MsgVote', 4],
    ],
  );
});

t.test('TestProgressNeverBelowMatch (regression: a duplicated rejection after the ack)', async (t) => {
  // etcd 3.4's Progress.MaybeDecrTo could set next <= match when a stale rejection arrived in StateProbe; the
  // simulator found it with duplicated MsgAppResp messages. Next stays above match.
  const r = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  for (let i = 0; i < 5; i++) mustAppendEntry(r, ent(0, 0, 'x'));
  const pr = r.prs.progress.get(2n)!;
  pr.match = 4;
  pr.next = 5;
  pr.becomeProbe();
  t.equal(pr.next, 5);
  // A rejection of index 4 with hint 2, sent before the follower caught up, arrives late.
  r.step(msg({ from: 2n, to: 1n, term: r.term, type: MessageType.MsgAppResp, index: 4, reject: true, rejectHint: 2 }));
  t.ok(pr.next > pr.match, `next ${pr.next} > match ${pr.match}`);
});
