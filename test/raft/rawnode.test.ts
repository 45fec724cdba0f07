// RawNode and Ready: ports of etcd raft's rawnode_test.go, raft_snap_test.go and raft_flow_control_test.go, plus the
// contract the server's node loop relies on (a single voter elects itself and commits on append, held reads) and
// describe.ts's etcd text format.

import t from 'tap';
import { RawNode, SnapshotStatus, type Ready } from '../../src/raft/raw-node';
import { Raft, StateType } from '../../src/raft/raft';
import { MemoryStorage } from '../../src/raft/storage';
import { SnapshotTemporarilyUnavailableError } from '../../src/raft/errors';
import { ProgressStateType } from '../../src/raft/tracker/progress';
import { decodeConfChange, encodeConfChange } from '../../src/raft/confchange/codec';
import { describeEntry, describeMessage, describeReady } from '../../src/raft/describe';
import { ConfChangeType, type Entry, EntryType, MessageType, type Snapshot, isLocalMsg, isResponseMsg, message } from '../../src/raft/types';
import { entrySizeBytes, noLimit } from '../../src/raft/util';
import { Xoshiro128 } from '../../src/util/prng';
import { cc, ent, msg, newTestConfig, newTestRaft, newTestRawNode, readMessages } from './helpers';

const testingSnap: Snapshot = { metadata: { index: 11, term: 11, confState: { voters: [1n, 2n], learners: [] } } };
const ti = (ents: Entry[]) => ents.map((e) => [e.term, e.index, e.data.toString()]);

/** Persists the Ready into s (snapshot, entries, HardState) and advances, as the node loop would. */
function handle(rn: RawNode, s: MemoryStorage, rd: Ready = rn.ready()): Ready {
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
  for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) rn.applyConfChange(decodeConfChange(e.data));
  rn.advance(rd);
  return rd;
}

// --- raft_snap_test.go ---

t.test('TestSendingSnapshotSetPendingSnapshot', async (t) => {
  const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  sm.restore(testingSnap);
  sm.becomeCandidate();
  sm.becomeLeader();
  // Force-set the next of node 2, so that node 2 needs a snapshot.
  sm.prs.progress.get(2n)!.next = sm.raftLog.firstIndex();
  sm.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: sm.prs.progress.get(2n)!.next - 1, reject: true }));
  t.equal(sm.prs.progress.get(2n)!.pendingSnapshot, 11);
});

t.test('TestPendingSnapshotPauseReplication', async (t) => {
  const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  sm.restore(testingSnap);
  sm.becomeCandidate();
  sm.becomeLeader();
  sm.prs.progress.get(2n)!.becomeSnapshot(11);
  sm.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'somedata')] }));
  t.equal(readMessages(sm).length, 0);
});

for (const reject of [true, false]) {
  t.test(reject ? 'TestSnapshotFailure' : 'TestSnapshotSucceed', async (t) => {
    const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
    sm.restore(testingSnap);
    sm.becomeCandidate();
    sm.becomeLeader();
    const pr = sm.prs.progress.get(2n)!;
    pr.next = 1;
    pr.becomeSnapshot(11);
    sm.step(msg({ from: 2n, to: 1n, type: MessageType.MsgSnapStatus, reject }));
    t.equal(pr.pendingSnapshot, 0);
    t.equal(pr.next, reject ? 1 : 12);
    t.ok(pr.probeSent);
  });
}

t.test('TestSnapshotAbort', async (t) => {
  const sm = newTestRaft(1, [1, 2], 10, 1, new MemoryStorage());
  sm.restore(testingSnap);
  sm.becomeCandidate();
  sm.becomeLeader();
  const pr = sm.prs.progress.get(2n)!;
  pr.next = 1;
  pr.becomeSnapshot(11);
  // A successful MsgAppResp at or beyond the pending snapshot aborts it.
  sm.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: 11 }));
  t.equal(pr.pendingSnapshot, 0);
  // The follower entered StateReplicate and the leader sent its empty entry (index 12) optimistically.
  t.equal(pr.next, 13);
  t.equal(pr.inflights.count(), 1);
});

// --- raft_flow_control_test.go ---

function replicatingLeader(): Raft {
  const r = newTestRaft(1, [1, 2], 5, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  // Force the progress to be in replicate state.
  r.prs.progress.get(2n)!.becomeReplicate();
  return r;
}
const propose = (r: Raft): void => r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'somedata')] }));

t.test('TestMsgAppFlowControlFull', async (t) => {
  const r = replicatingLeader();
  const pr2 = r.prs.progress.get(2n)!;
  // Fill in the inflights window.
  for (let i = 0; i < r.prs.maxInflight; i++) {
    propose(r);
    if (readMessages(r).length !== 1) t.fail(`#${i}: one message`);
  }
  t.ok(pr2.inflights.full());
  // When the window is full, no more MsgApp is sent.
  for (let i = 0; i < 10; i++) {
    propose(r);
    t.equal(readMessages(r).length, 0);
  }
});

t.test('TestMsgAppFlowControlMoveForward', async (t) => {
  const r = replicatingLeader();
  const pr2 = r.prs.progress.get(2n)!;
  for (let i = 0; i < r.prs.maxInflight; i++) {
    propose(r);
    readMessages(r);
  }
  // 1 is the noop, 2 the first proposal: start with 2.
  for (let tt = 2; tt < r.prs.maxInflight; tt++) {
    // Move the window forward.
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: tt }));
    readMessages(r);
    // Fill it again.
    propose(r);
    if (readMessages(r).length !== 1) t.fail(`#${tt}: one message`);
    if (!pr2.inflights.full()) t.fail(`#${tt}: full`);
    // Out-of-date acks have no effect.
    for (let i = 0; i < tt; i++) {
      r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: i }));
      if (!pr2.inflights.full()) t.fail(`#${tt}.${i}: still full`);
    }
  }
  t.pass('window moved forward');
});

t.test('TestMsgAppFlowControlRecvHeartbeat', async (t) => {
  const r = replicatingLeader();
  const pr2 = r.prs.progress.get(2n)!;
  for (let i = 0; i < r.prs.maxInflight; i++) {
    propose(r);
    readMessages(r);
  }
  for (let tt = 1; tt < 5; tt++) {
    t.ok(pr2.inflights.full(), `#${tt} full`);
    // Receiving heartbeat responses frees one slot.
    for (let i = 0; i < tt; i++) {
      r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeatResp }));
      readMessages(r);
      t.notOk(pr2.inflights.full(), `#${tt}.${i} not full`);
    }
    // One slot.
    propose(r);
    t.equal(readMessages(r).length, 1);
    // And just one slot.
    for (let i = 0; i < 10; i++) {
      propose(r);
      t.equal(readMessages(r).length, 0);
    }
    // Clear all pending messages.
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeatResp }));
    readMessages(r);
  }
});

// --- rawnode_test.go ---

t.test('TestRawNodeStep', async (t) => {
  for (let i = 0; i <= MessageType.MsgPreVoteResp; i++) {
    const s = new MemoryStorage();
    s.setHardState({ term: 1, vote: 0n, commit: 1 });
    s.append([ent(1, 1)]);
    s.applySnapshot({ metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    const rn = new RawNode(newTestConfig(1, [], 10, 1, s));
    const type = i as MessageType;
    try {
      rn.step(message({ type }));
      t.notOk(isLocalMsg(type), `${MessageType[type]} stepped`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (isLocalMsg(type)) t.equal(code, 'ErrStepLocalMsg', MessageType[type]);
      else if (isResponseMsg(type)) t.equal(code, 'ErrStepPeerNotFound', MessageType[type]);
      else t.equal(code, 'ErrProposalDropped', MessageType[type]);
    }
  }
});

t.test('TestRawNodeProposeAndConfChange (simple changes)', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1], 10, 1, s);
  rn.campaign();
  handle(rn, s);
  t.equal(rn.status().raftState, StateType.Leader);
  rn.propose(Buffer.from('somedata'));
  rn.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 2));
  let rd = handle(rn, s);
  t.same(ti(rd.committedEntries).map((e) => e[2]), ['somedata', encodeConfChange(cc(ConfChangeType.AddLearnerNode, 2)).toString()]);
  t.same(rn.status().config, { voters: [1n], learners: [2n] });
  // Promote it: committed under the old configuration (the single voter 1), then applied.
  rn.proposeConfChange(cc(ConfChangeType.AddNode, 2));
  rd = handle(rn, s);
  t.equal(rd.committedEntries.length, 1);
  t.same(rn.status().config, { voters: [1n, 2n], learners: [] });
  // Now a proposal needs the ack of 2 (which was probed once, and is paused until it answers): not committed.
  rn.propose(Buffer.from('more'));
  rd = handle(rn, s);
  t.equal(rd.committedEntries.length, 0);
  t.equal(rn.status().progress?.get(2n)?.paused, true);
});

t.test('TestRawNodeProposeAddDuplicateNode', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1], 10, 1, s);
  handle(rn, s);
  rn.campaign();
  for (;;) {
    const rd = handle(rn, s);
    if (rd.softState?.lead === rn.id) break;
  }
  const proposeAndApply = (change: ReturnType<typeof cc>): void => {
    rn.proposeConfChange(change);
    handle(rn, s);
  };
  const cc1 = cc(ConfChangeType.AddNode, 1);
  proposeAndApply(cc1);
  // Try to add the same node again.
  proposeAndApply(cc1);
  // The new node join should be ok.
  const cc2 = cc(ConfChangeType.AddNode, 2);
  proposeAndApply(cc2);
  const last = s.lastIndex();
  const entries = s.entries(last - 2, last + 1, noLimit);
  t.equal(entries.length, 3);
  t.same(entries[0]!.data, encodeConfChange(cc1));
  t.same(entries[2]!.data, encodeConfChange(cc2));
});

t.test('TestRawNodeReadIndex', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1], 10, 1, s);
  rn.raft.readStates = [{ index: 1, requestCtx: Buffer.from('somedata') }];
  // The ReadStates can be read out.
  t.ok(rn.hasReady());
  let rd = rn.ready();
  t.same(rd.readStates, [{ index: 1, requestCtx: Buffer.from('somedata') }]);
  s.append(rd.entries);
  rn.advance(rd);
  t.same(rn.raft.readStates, [], 'reset after the Ready');
  rn.campaign();
  for (;;) {
    rd = handle(rn, s);
    if (rd.softState?.lead === rn.id) break;
  }
  // Once leader (a single voter), a ReadIndex is answered at the commit index right away.
  rn.readIndex(Buffer.from('somedata2'));
  rd = handle(rn, s);
  t.same(rd.readStates, [{ index: rn.status().commit, requestCtx: Buffer.from('somedata2') }]);
});

t.test('TestRawNodeStart (bootstrap with a snapshot at index 1)', async (t) => {
  const storage = new MemoryStorage();
  // Bootstrap: a snapshot at index 1 holding the initial configuration, so that a member starting from an empty log
  // (index 0) can only catch up through a snapshot and thereby learns the configuration (what CockroachDB does).
  storage.applySnapshot({ metadata: { index: 1, term: 0, confState: { voters: [1n], learners: [] } } });
  const rn = new RawNode(newTestConfig(1, [], 10, 1, storage));
  t.notOk(rn.hasReady());
  rn.campaign();
  rn.propose(Buffer.from('foo'));
  t.ok(rn.hasReady());
  const rd = rn.ready();
  storage.append(rd.entries);
  rn.advance(rd);
  t.same(rd.hardState, { term: 1, vote: 1n, commit: 3 });
  t.same(ti(rd.entries), [
    [1, 2, ''],
    [1, 3, 'foo'],
  ]);
  t.same(ti(rd.committedEntries), ti(rd.entries));
  t.equal(rd.mustSync, true);
  t.equal(rd.messages.length, 0);
  t.notOk(rn.hasReady());
});

t.test('TestRawNodeRestart', async (t) => {
  const entries = [ent(1, 1), ent(1, 2, 'foo')];
  const storage = new MemoryStorage();
  storage.setHardState({ term: 1, vote: 0n, commit: 1 });
  storage.append(entries);
  const rn = newTestRawNode(1, [1], 10, 1, storage);
  const rd = rn.ready();
  t.equal(rd.hardState, undefined);
  t.same(ti(rd.committedEntries), ti(entries.slice(0, 1)), 'commit up to the commit index of the HardState');
  t.equal(rd.mustSync, false);
  rn.advance(rd);
  t.notOk(rn.hasReady());
});

t.test('TestRawNodeRestartFromSnapshot', async (t) => {
  const entries = [ent(1, 3, 'foo')];
  const s = new MemoryStorage();
  s.setHardState({ term: 1, vote: 0n, commit: 3 });
  s.applySnapshot({ metadata: { index: 2, term: 1, confState: { voters: [1n, 2n], learners: [] } } });
  s.append(entries);
  const rn = new RawNode(newTestConfig(1, [], 10, 1, s));
  const rd = rn.ready();
  t.equal(rd.hardState, undefined);
  t.same(ti(rd.committedEntries), ti(entries));
  t.equal(rd.mustSync, false);
  rn.advance(rd);
  t.notOk(rn.hasReady());
});

t.test('TestRawNodeStatus', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1], 10, 1, s);
  t.equal(rn.status().progress, undefined, 'no progress when not leader');
  rn.campaign();
  const st = rn.status();
  t.equal(st.lead, 1n);
  t.equal(st.raftState, StateType.Leader);
  const pr = rn.raft.prs.progress.get(1n)!;
  t.same(st.progress?.get(1n), {
    match: pr.match,
    next: pr.next,
    state: ProgressStateType.StateReplicate,
    isLearner: false,
    recentActive: pr.recentActive,
    paused: false,
    pendingSnapshot: 0,
    inflightCount: 0,
    inflightBytes: 0,
  });
  t.same(st.config, { voters: [1n], learners: [] });
});

t.test('TestRawNodeCommitPaginationAfterRestart', async (t) => {
  // Storage that ignores the size hint: the commit index may be reached by entries beyond the size limit.
  class IgnoreSizeHintStorage extends MemoryStorage {
    override entries(lo: number, hi: number): Entry[] {
      return super.entries(lo, hi, noLimit);
    }
  }
  const s = new IgnoreSizeHintStorage();
  s.hardState = { term: 1, vote: 1n, commit: 10 };
  const ents: Entry[] = [];
  let size = 0;
  for (let i = 0; i < 10; i++) {
    const e = ent(1, i + 1, 'a');
    ents.push(e);
    size += entrySizeBytes(e);
  }
  s.append(ents);
  const cfg = newTestConfig(1, [1], 10, 1, s);
  // A MaxSizePerMsg that would leave the last committed entry out of the first committedEntries.
  cfg.maxSizePerMsg = size - entrySizeBytes(ents[9]!) - 1;
  s.append([ent(1, 11, 'boom')]);
  const rn = new RawNode(cfg);
  for (let highestApplied = 0; highestApplied !== 11; ) {
    const rd = rn.ready();
    const n = rd.committedEntries.length;
    t.ok(n > 0, `applying after ${highestApplied}`);
    if (n === 0) break;
    const next = rd.committedEntries[0]!.index;
    if (highestApplied !== 0) t.equal(next, highestApplied + 1, 'no gap');
    highestApplied = rd.committedEntries[n - 1]!.index;
    rn.advance(rd);
    rn.step(msg({ type: MessageType.MsgHeartbeat, to: 1n, from: 1n, term: 1, commit: 11 }));
  }
});

t.test('TestRawNodeBoundedLogGrowthWithPartition', async (t) => {
  const maxEntries = 16;
  const data = Buffer.from('testdata');
  const maxEntrySize = maxEntries * data.length;
  const s = new MemoryStorage();
  const cfg = newTestConfig(1, [1], 10, 1, s);
  cfg.maxUncommittedEntriesSize = maxEntrySize;
  const rn = new RawNode(cfg);
  handle(rn, s);
  // Become the leader.
  rn.campaign();
  for (;;) {
    const rd = handle(rn, s);
    if (rd.softState?.lead === rn.id) break;
  }
  // Simulate a partition by never committing anything: proposals must not grow the log indefinitely.
  for (let i = 0; i < 1024; i++) {
    try {
      rn.propose(data);
    } catch {
      // Dropped beyond the bound.
    }
  }
  t.equal(rn.raft.uncommittedSize, maxEntrySize);
  // Recover: the uncommitted tail disappears as entries are committed.
  const rd = rn.ready();
  t.equal(rd.committedEntries.length, maxEntries);
  s.append(rd.entries);
  rn.advance(rd);
  t.equal(rn.raft.uncommittedSize, 0);
});

t.test('TestRawNodeConsumeReady: one Ready at a time', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1], 3, 1, s);
  const m1 = message({ type: MessageType.MsgApp, context: Buffer.from('foo') });
  const m2 = message({ type: MessageType.MsgApp, context: Buffer.from('bar') });
  rn.raft.msgs.push(m1);
  const rd = rn.ready();
  t.equal(rn.raft.msgs.length, 0, 'messages moved into the Ready');
  t.same(rd.messages, [m1]);
  t.notOk(rn.hasReady(), 'no Ready while one is outstanding');
  t.throws(() => rn.ready(), { name: 'AssertionError' });
  rn.raft.msgs.push(m2);
  rn.advance(rd);
  t.same(rn.raft.msgs, [m2], 'advance does not drop new messages');
  t.throws(() => rn.advance(rd), { name: 'AssertionError' }, 'a Ready is advanced once');
});

// --- The server's contract (src/server/etcd-server.ts) ---

t.test('single voter: advanceTicksForElection + tick elects; a proposal commits in the same Ready', async (t) => {
  const storage = new MemoryStorage();
  const rn = new RawNode({ id: 0xabcn, voters: [0xabcn], electionTick: 10, heartbeatTick: 1, storage, applied: 0, rand: new Xoshiro128(1) });
  t.throws(() => rn.propose(Buffer.from('x')), { code: 'ErrProposalDropped', name: 'ErrProposalDropped' });
  // A read before leadership is held, not dropped (the server issues one and waits).
  rn.readIndex(Buffer.from('early'));
  rn.advanceTicksForElection();
  rn.tick();
  t.equal(rn.status().raftState, StateType.Leader);
  t.equal(rn.status().lead, 0xabcn);
  let rd = rn.ready();
  t.same(rd.softState, { lead: 0xabcn, raftState: StateType.Leader });
  t.same(rd.hardState, { term: 1, vote: 0xabcn, commit: 1 });
  t.equal(rd.entries.length, 1);
  t.same(ti(rd.committedEntries), ti(rd.entries));
  t.same(rd.readStates, [{ index: 1, requestCtx: Buffer.from('early') }]);
  t.equal(rd.messages.length, 0);
  storage.append(rd.entries);
  storage.hardState = rd.hardState!;
  rn.advance(rd);
  rn.propose(Buffer.from('put'));
  rd = rn.ready();
  t.same(ti(rd.entries), [[1, 2, 'put']]);
  t.same(ti(rd.committedEntries), [[1, 2, 'put']]);
  t.ok(rd.mustSync);
  storage.append(rd.entries);
  storage.hardState = rd.hardState!;
  rn.advance(rd);
  t.equal(rn.status().commit, 2);
  t.equal(rn.status().applied, 2);
  // Restart with the applied index: nothing is handed out again.
  const rn2 = new RawNode({ id: 0xabcn, voters: [0xabcn], electionTick: 10, heartbeatTick: 1, storage, applied: 2, rand: new Xoshiro128(2) });
  t.equal(rn2.status().term, 1);
  t.equal(rn2.status().commit, 2);
  t.notOk(rn2.hasReady());
  rn2.advanceTicksForElection();
  rn2.tick();
  t.equal(rn2.status().raftState, StateType.Leader);
  t.equal(rn2.status().term, 2);
});

t.test('restart with applied beyond the persisted commit (a lost commit-only write) raises the commit', async (t) => {
  const storage = new MemoryStorage();
  storage.append([ent(1, 1), ent(1, 2, 'a'), ent(1, 3, 'b')]);
  storage.setHardState({ term: 1, vote: 1n, commit: 1 });
  const rn = new RawNode({ id: 1n, voters: [1n, 2n, 3n], electionTick: 10, heartbeatTick: 1, storage, applied: 3, rand: new Xoshiro128(3) });
  t.equal(rn.status().commit, 3);
  t.equal(rn.status().applied, 3);
  t.throws(
    () => new RawNode({ id: 1n, voters: [1n, 2n, 3n], electionTick: 10, heartbeatTick: 1, storage, applied: 4, rand: new Xoshiro128(3) }),
    { name: 'AssertionError' },
    'applied beyond the log is a lost log',
  );
});

t.test('config validation', async (t) => {
  const base = { id: 1n, voters: [1n], electionTick: 10, heartbeatTick: 1, storage: new MemoryStorage(), rand: new Xoshiro128(1) };
  t.throws(() => new RawNode({ ...base, id: 0n }), /none as id/);
  t.throws(() => new RawNode({ ...base, heartbeatTick: 0 }), /heartbeat tick/);
  t.throws(() => new RawNode({ ...base, electionTick: 1 }), /election tick/);
  t.throws(() => new RawNode({ ...base, maxInflightMsgs: 0 }), /inflight/);
  const s = new MemoryStorage();
  s.applySnapshot({ metadata: { index: 5, term: 1, confState: { voters: [1n, 2n], learners: [] } } });
  t.throws(() => new RawNode({ ...base, storage: s, voters: [1n] }), /ConfState/);
  t.doesNotThrow(() => new RawNode({ ...base, storage: s, voters: [2n, 1n] }), 'an equivalent ConfState is accepted');
});

t.test('reportSnapshot and reportUnreachable reach the leader', async (t) => {
  const s = new MemoryStorage();
  const rn = newTestRawNode(1, [1, 2], 10, 1, s);
  rn.campaign();
  rn.raft.step(msg({ from: 2n, to: 1n, term: 1, type: MessageType.MsgVoteResp }));
  t.equal(rn.status().raftState, StateType.Leader);
  const pr = rn.raft.prs.progress.get(2n)!;
  pr.becomeReplicate();
  rn.reportUnreachable(2n);
  t.equal(pr.state, ProgressStateType.StateProbe);
  pr.becomeSnapshot(7);
  rn.reportSnapshot(2n, SnapshotStatus.Failure);
  t.equal(pr.state, ProgressStateType.StateProbe);
  t.equal(pr.pendingSnapshot, 0);
  t.ok(pr.probeSent);
});

t.test('describe: etcd text format', async (t) => {
  const m = message({ type: MessageType.MsgApp, from: 1n, to: 2n, term: 1, logTerm: 1, index: 2, commit: 3, entries: [ent(1, 3, 'foo')] });
  t.equal(describeMessage(m), '1->2 MsgApp Term:1 Log:1/2 Commit:3 Entries:[1/3 EntryNormal "foo"]');
  t.equal(describeMessage(message({ type: MessageType.MsgAppResp, from: 10n, to: 11n, term: 2, index: 5, reject: true, rejectHint: 4 })), 'a->b MsgAppResp Term:2 Log:0/5 Rejected (Hint: 4)');
  t.equal(describeEntry(ent(1, 2)), '1/2 EntryNormal ""');
  t.equal(describeEntry(ent(1, 4, encodeConfChange(cc(ConfChangeType.AddLearnerNode, 3)), EntryType.ConfChange)), '1/4 EntryConfChange l3');
  t.equal(describeEntry(ent(1, 5, Buffer.from([0x22, 0x0a, 0xff]))), '1/5 EntryNormal "\\"\\n\\xff"');
  const rd: Ready = {
    softState: { lead: 1n, raftState: StateType.Leader },
    hardState: { term: 1, vote: 1n, commit: 2 },
    readStates: [],
    entries: [ent(1, 2)],
    committedEntries: [ent(1, 2)],
    messages: [message({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1 })],
    mustSync: true,
  };
  t.equal(
    describeReady(rd),
    'Ready MustSync=true:\nLead:1 State:StateLeader\nHardState Term:1 Vote:1 Commit:2\nEntries:\n1/2 EntryNormal ""\nCommittedEntries:\n1/2 EntryNormal ""\nMessages:\n1->2 MsgHeartbeat Term:1 Log:0/0\n',
  );
  t.equal(describeReady({ readStates: [], entries: [], committedEntries: [], messages: [], mustSync: false }), '<empty Ready>');
});

t.test('a snapshot that is temporarily unavailable is retried later, not an error', async (t) => {
  class Unready extends MemoryStorage {
    ready = false;
    override snapshot(): Snapshot {
      if (!this.ready) throw new SnapshotTemporarilyUnavailableError();
      return super.snapshot();
    }
  }
  const s = new Unready();
  s.applySnapshot({ metadata: { index: 11, term: 11, confState: { voters: [1n, 2n], learners: [] } } });
  const r = new Raft(newTestConfig(1, [], 10, 1, s));
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  const pr = r.prs.progress.get(2n)!;
  pr.next = r.raftLog.firstIndex() - 1;
  pr.recentActive = true;
  r.sendAppend(2n);
  t.equal(readMessages(r).length, 0, 'nothing sent while the snapshot is being prepared');
  t.equal(pr.state, ProgressStateType.StateProbe);
  s.ready = true;
  r.sendAppend(2n);
  const ms = readMessages(r);
  t.equal(ms.length, 1);
  t.equal(ms[0]!.type, MessageType.MsgSnap);
  t.equal(pr.state, ProgressStateType.StateSnapshot);
});
