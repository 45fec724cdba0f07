// Ports of etcd raft's raft_test.go (v3.4): progress and flow control basics, elections, pre-vote, log replication,
// commit rules, and message handling. Test names are etcd's, so a failure can be looked up in the Go source.

import t from 'tap';
import { Raft, StateType, None } from '../../src/raft/raft';
import { RaftLog } from '../../src/raft/log';
import { MemoryStorage } from '../../src/raft/storage';
import { discardLogger } from '../../src/raft/logger';
import { ProgressStateType } from '../../src/raft/tracker/progress';
import { ConfChangeType, type Entry, MessageType, voteRespMsgType } from '../../src/raft/types';
import {
  Network,
  cc,
  ent,
  entsWithConfig,
  msg,
  newNetwork,
  newNetworkWithConfig,
  newTestConfig,
  newTestLearnerRaft,
  newTestRaft,
  nextEnts,
  nopStepper,
  preVoteConfig,
  readMessages,
  setRandomizedElectionTimeout,
  votedWithConfig,
} from './helpers';

const data = (s: string): Entry[] => [ent(0, 0, s)];

/** etcd's ltoa: the log's committed and applied indexes and all entries. */
function ltoa(l: RaftLog): { committed: number; applied: number; entries: Array<[number, number, string]> } {
  return { committed: l.committed, applied: l.applied, entries: l.allEntries().map((e) => [e.term, e.index, e.data.toString()]) };
}

function wantLog(committed: number, entries: Array<[number, number, string]>): ReturnType<typeof ltoa> {
  return { committed, applied: 0, entries };
}

t.test('TestProgressLeader', async (t) => {
  const r = newTestRaft(1, [1, 2], 5, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  r.prs.progress.get(2n)!.becomeReplicate();
  // Send proposals to r1. The first 5 entries should be appended to the log.
  for (let i = 0; i < 5; i++) {
    const pr = r.prs.progress.get(r.id)!;
    t.equal(pr.state, ProgressStateType.StateReplicate);
    t.equal(pr.match, i + 1);
    t.equal(pr.next, pr.match + 1);
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('foo') }));
  }
});

t.test('TestProgressResumeByHeartbeatResp', async (t) => {
  const r = newTestRaft(1, [1, 2], 5, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  r.prs.progress.get(2n)!.probeSent = true;
  r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgBeat }));
  t.ok(r.prs.progress.get(2n)!.probeSent, 'heartbeat does not unpause');
  r.prs.progress.get(2n)!.becomeReplicate();
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeatResp }));
  t.notOk(r.prs.progress.get(2n)!.probeSent, 'heartbeat response unpauses');
});

t.test('TestProgressPaused', async (t) => {
  const r = newTestRaft(1, [1, 2], 5, 1, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  for (let i = 0; i < 3; i++) r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') }));
  t.equal(readMessages(r).length, 1);
});

t.test('TestProgressFlowControl', async (t) => {
  const cfg = newTestConfig(1, [1, 2], 5, 1, new MemoryStorage());
  cfg.maxInflightMsgs = 3;
  cfg.maxSizePerMsg = 2048;
  const r = new Raft(cfg);
  r.becomeCandidate();
  r.becomeLeader();
  // Throw away all the messages relating to the initial election.
  readMessages(r);
  // While node 2 is in probe state, propose a bunch of entries.
  r.prs.progress.get(2n)!.becomeProbe();
  const blob = 'a'.repeat(1000);
  for (let i = 0; i < 10; i++) r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data(blob) }));
  let ms = readMessages(r);
  // First append has two entries: the empty entry to confirm the election, and the first proposal (only one proposal
  // gets sent because we're in probe state).
  t.equal(ms.length, 1);
  t.equal(ms[0]!.type, MessageType.MsgApp);
  t.equal(ms[0]!.entries.length, 2);
  t.equal(ms[0]!.entries[0]!.data.length, 0);
  t.equal(ms[0]!.entries[1]!.data.length, 1000);
  // When this append is acked, we change to replicate state and can send multiple messages at once.
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: ms[0]!.entries[1]!.index }));
  ms = readMessages(r);
  t.equal(ms.length, 3);
  for (const m of ms) {
    t.equal(m.type, MessageType.MsgApp);
    t.equal(m.entries.length, 2);
  }
  // Ack all three of those messages together and get the last two messages (containing three entries).
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: ms[2]!.entries[1]!.index }));
  ms = readMessages(r);
  t.equal(ms.length, 2);
  for (const m of ms) t.equal(m.type, MessageType.MsgApp);
  t.equal(ms[0]!.entries.length, 2);
  t.equal(ms[1]!.entries.length, 1);
});

t.test('TestProgressFlowControlBytes (MaxInflightBytes, etcd-io/raft v3.6)', async (t) => {
  const cfg = newTestConfig(1, [1, 2], 5, 1, new MemoryStorage());
  cfg.maxInflightMsgs = 100;
  cfg.maxInflightBytes = 2500;
  cfg.maxSizePerMsg = 1; // One entry per message.
  const r = new Raft(cfg);
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  r.prs.progress.get(2n)!.becomeReplicate();
  const blob = 'b'.repeat(1000);
  for (let i = 0; i < 5; i++) r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data(blob) }));
  const ms = readMessages(r);
  // The empty entry (0 bytes), then three 1000-byte entries take the window to 3000 >= 2500: full.
  t.equal(ms.length, 4, 'sends until the byte bound is reached');
  const pr = r.prs.progress.get(2n)!;
  t.ok(pr.inflights.full());
  t.equal(pr.inflights.bytes(), 3000);
  // Acking frees bytes and lets the rest through.
  r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, index: ms[2]!.entries[0]!.index }));
  const more = readMessages(r).filter((m) => m.entries.length > 0);
  t.equal(more.length, 2);
  t.equal(pr.inflights.count(), 3);
});

t.test('TestUncommittedEntryLimit', async (t) => {
  const maxEntries = 1024;
  const testEntry = ent(0, 0, 'testdata');
  const maxEntrySize = maxEntries * testEntry.data.length;
  const cfg = newTestConfig(1, [1, 2, 3], 5, 1, new MemoryStorage());
  cfg.maxUncommittedEntriesSize = maxEntrySize;
  cfg.maxInflightMsgs = 2 * 1024; // Avoid interference.
  const r = new Raft(cfg);
  r.becomeCandidate();
  r.becomeLeader();
  t.equal(r.uncommittedSize, 0);
  // Set the two followers to the replicate state. Commit to tail of log.
  const numFollowers = 2;
  r.prs.progress.get(2n)!.becomeReplicate();
  r.prs.progress.get(3n)!.becomeReplicate();
  r.uncommittedSize = 0;
  r.uncommittedCount = 0;
  const propMsg = () => msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [testEntry] });
  const propEnts: Entry[] = [];
  for (let i = 0; i < maxEntries; i++) {
    r.step(propMsg());
    propEnts.push(testEntry);
  }
  // Send one more proposal to r1. It should be rejected.
  t.throws(() => r.step(propMsg()), { code: 'ErrProposalDropped' });
  // Read messages and reduce the uncommitted size as if we had committed these entries.
  t.equal(readMessages(r).length, maxEntries * numFollowers);
  r.reduceUncommittedSize(propEnts);
  t.equal(r.uncommittedSize, 0);
  // A single large proposal is accepted even though it goes above the limit, because we were beneath it before.
  const large = Array.from({ length: 2 * maxEntries }, () => testEntry);
  r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: large }));
  t.throws(() => r.step(propMsg()), { code: 'ErrProposalDropped' });
  t.equal(readMessages(r).length, numFollowers);
  r.reduceUncommittedSize(large);
  t.equal(r.uncommittedSize, 0);
});

t.test('TestUncommittedEntryCountLimit (maxUncommittedEntries)', async (t) => {
  const cfg = newTestConfig(1, [1, 2, 3], 5, 1, new MemoryStorage());
  cfg.maxUncommittedEntries = 3;
  const r = new Raft(cfg);
  r.becomeCandidate();
  r.becomeLeader();
  for (let i = 0; i < 3; i++) r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('x') }));
  t.throws(() => r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('x') })), { code: 'ErrProposalDropped' });
  r.reduceUncommittedSize([ent(1, 2, 'x')]);
  r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('x') }));
});

for (const preVote of [false, true]) {
  t.test(`TestLeaderElection${preVote ? 'PreVote' : ''}`, async (t) => {
    const cfg = preVote ? preVoteConfig : undefined;
    // In pre-vote mode, an election that fails to complete leaves the node in pre-candidate state without advancing
    // the term.
    const candState = preVote ? StateType.PreCandidate : StateType.Candidate;
    const candTerm = preVote ? 0 : 1;
    const tests: Array<[Network, StateType, number]> = [
      [newNetworkWithConfig(cfg, null, null, null), StateType.Leader, 1],
      [newNetworkWithConfig(cfg, null, null, nopStepper), StateType.Leader, 1],
      [newNetworkWithConfig(cfg, null, nopStepper, nopStepper), candState, candTerm],
      [newNetworkWithConfig(cfg, null, nopStepper, nopStepper, null), candState, candTerm],
      [newNetworkWithConfig(cfg, null, nopStepper, nopStepper, null, null), StateType.Leader, 1],
      // Three logs further along than 0, but in the same term so rejections are returned instead of the votes being
      // ignored.
      [
        newNetworkWithConfig(cfg, null, entsWithConfig(cfg, 1), entsWithConfig(cfg, 1), entsWithConfig(cfg, 1, 1), null),
        StateType.Follower,
        1,
      ],
    ];
    tests.forEach(([nw, state, expTerm], i) => {
      nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
      const sm = nw.raft(1);
      t.equal(sm.state, state, `#${i} state`);
      t.equal(sm.term, expTerm, `#${i} term`);
    });
  });
}

t.test('TestLearnerElectionTimeout', async (t) => {
  const n1 = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  const n2 = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  n1.becomeFollower(1, None);
  n2.becomeFollower(1, None);
  // n2 is learner. Learner should not start election even when times out.
  setRandomizedElectionTimeout(n2, n2.electionTimeout);
  for (let i = 0; i < n2.electionTimeout; i++) n2.tick();
  t.equal(n2.state, StateType.Follower);
});

t.test('TestLearnerPromotion', async (t) => {
  const n1 = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  const n2 = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  n1.becomeFollower(1, None);
  n2.becomeFollower(1, None);
  const nt = newNetwork(n1, n2);
  t.not(n1.state, StateType.Leader);
  // n1 should become leader.
  setRandomizedElectionTimeout(n1, n1.electionTimeout);
  for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
  t.equal(n1.state, StateType.Leader);
  t.equal(n2.state, StateType.Follower);
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgBeat }));
  n1.applyConfChange(cc(ConfChangeType.AddNode, 2));
  n2.applyConfChange(cc(ConfChangeType.AddNode, 2));
  t.notOk(n2.isLearner);
  // n2 starts an election, should become leader.
  setRandomizedElectionTimeout(n2, n2.electionTimeout);
  for (let i = 0; i < n2.electionTimeout; i++) n2.tick();
  nt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgBeat }));
  t.equal(n1.state, StateType.Follower);
  t.equal(n2.state, StateType.Leader);
});

t.test('TestLearnerCanVote', async (t) => {
  const n2 = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  n2.becomeFollower(1, None);
  n2.step(msg({ from: 1n, to: 2n, term: 2, type: MessageType.MsgVote, logTerm: 11, index: 11 }));
  t.equal(n2.msgs.length, 1);
  t.equal(n2.msgs[0]!.type, MessageType.MsgVoteResp);
  t.notOk(n2.msgs[0]!.reject, 'learner grants the vote');
});

for (const preVote of [false, true]) {
  t.test(`TestLeaderCycle${preVote ? 'PreVote' : ''}`, async (t) => {
    // Each node in a cluster can campaign and be elected in turn, also when not starting from a clean slate.
    const n = newNetworkWithConfig(preVote ? preVoteConfig : undefined, null, null, null);
    for (let campaigner = 1; campaigner <= 3; campaigner++) {
      n.send(msg({ from: BigInt(campaigner), to: BigInt(campaigner), type: MessageType.MsgHup }));
      for (const [id, p] of n.peers) {
        const sm = p as Raft;
        t.equal(sm.state, id === BigInt(campaigner) ? StateType.Leader : StateType.Follower, `campaign of ${campaigner}: node ${id}`);
      }
    }
  });
}

for (const preVote of [false, true]) {
  t.test(`TestLeaderElectionOverwriteNewerLogs${preVote ? 'PreVote' : ''}`, async (t) => {
    // Node 1 won term 1 and replicated an entry to node 2 only; node 3 won term 2 and wrote an entry only locally.
    // Nodes 4 and 5 voted in term 2 but got no logs. The winner of term 3 overwrites the newer (term 2) entry.
    const cfg = preVote ? preVoteConfig : undefined;
    const n = newNetworkWithConfig(
      cfg,
      entsWithConfig(cfg, 1),
      entsWithConfig(cfg, 1),
      entsWithConfig(cfg, 2),
      votedWithConfig(cfg, 3, 2),
      votedWithConfig(cfg, 3, 2),
    );
    // Node 1 campaigns. The election fails because a quorum knows about term 2; node 1's term is pushed to 2.
    n.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    const sm1 = n.raft(1);
    t.equal(sm1.state, StateType.Follower);
    t.equal(sm1.term, 2);
    // Node 1 campaigns again with a higher term. This time it succeeds.
    n.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    t.equal(sm1.state, StateType.Leader);
    t.equal(sm1.term, 3);
    // Now all nodes agree on a log entry with term 1 at index 1 (and term 3 at index 2).
    for (const [id, p] of n.peers) {
      const entries = (p as Raft).raftLog.allEntries();
      t.equal(entries.length, 2, `node ${id}`);
      t.equal(entries[0]!.term, 1);
      t.equal(entries[1]!.term, 3);
    }
  });
}

for (const vt of [MessageType.MsgVote, MessageType.MsgPreVote]) {
  t.test(`Test${vt === MessageType.MsgVote ? '' : 'Pre'}VoteFromAnyState`, async (t) => {
    for (const st of [StateType.Follower, StateType.Candidate, StateType.Leader, StateType.PreCandidate]) {
      const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
      r.term = 1;
      if (st === StateType.Follower) r.becomeFollower(r.term, 3n);
      else if (st === StateType.PreCandidate) r.becomePreCandidate();
      else if (st === StateType.Candidate) r.becomeCandidate();
      else {
        r.becomeCandidate();
        r.becomeLeader();
      }
      const origTerm = r.term;
      const newTerm = r.term + 1;
      r.step(msg({ from: 2n, to: 1n, type: vt, term: newTerm, logTerm: newTerm, index: 42 }));
      t.equal(r.msgs.length, 1, `${st}: one response`);
      const resp = r.msgs[0]!;
      t.equal(resp.type, voteRespMsgType(vt));
      t.notOk(resp.reject);
      if (vt === MessageType.MsgVote) {
        t.equal(r.state, StateType.Follower);
        t.equal(r.term, newTerm);
        t.equal(r.vote, 2n);
      } else {
        // In a prevote, nothing changes.
        t.equal(r.state, st);
        t.equal(r.term, origTerm);
        t.ok(r.vote === None || r.vote === 1n);
      }
    }
  });
}

t.test('TestLogReplication', async (t) => {
  const tests: Array<[Network, ReturnType<typeof msg>[], number]> = [
    [newNetwork(null, null, null), [msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') })], 2],
    [
      newNetwork(null, null, null),
      [
        msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') }),
        msg({ from: 1n, to: 2n, type: MessageType.MsgHup }),
        msg({ from: 1n, to: 2n, type: MessageType.MsgProp, entries: data('somedata') }),
      ],
      4,
    ],
  ];
  tests.forEach(([nw, msgs, wcommitted], i) => {
    nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    for (const m of msgs) nw.send(m);
    for (const [j, p] of nw.peers) {
      const sm = p as Raft;
      t.equal(sm.raftLog.committed, wcommitted, `#${i}.${j} committed`);
      const ents = nextEnts(sm, nw.storage.get(j)!).filter((e) => e.data.length > 0);
      const props = msgs.filter((m) => m.type === MessageType.MsgProp);
      props.forEach((m, k) => t.same(ents[k]!.data, m.entries[0]!.data));
    }
  });
});

t.test('TestLearnerLogReplication', async (t) => {
  const n1 = newTestLearnerRaft(1, [1], [2], 10, 1, new MemoryStorage());
  const n2 = newTestLearnerRaft(2, [1], [2], 10, 1, new MemoryStorage());
  const nt = newNetwork(n1, n2);
  n1.becomeFollower(1, None);
  n2.becomeFollower(1, None);
  setRandomizedElectionTimeout(n1, n1.electionTimeout);
  for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgBeat }));
  // n1 is leader and n2 is learner.
  t.equal(n1.state, StateType.Leader);
  t.ok(n2.isLearner);
  const nextCommitted = n1.raftLog.committed + 1;
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') }));
  t.equal(n1.raftLog.committed, nextCommitted, 'the learner does not count for commit, the sole voter does');
  t.equal(n2.raftLog.committed, n1.raftLog.committed);
  t.equal(n1.prs.progress.get(2n)!.match, n2.raftLog.committed);
});

t.test('TestSingleNodeCommit', async (t) => {
  const tt = newNetwork(null);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  t.equal(tt.raft(1).raftLog.committed, 3);
});

t.test('TestCannotCommitWithoutNewTermEntry', async (t) => {
  // Entries cannot be committed when the leader changes, no new proposal comes in and the new term's entry is
  // filtered.
  const tt = newNetwork(null, null, null, null, null);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  // 1 cannot reach 3, 4, 5.
  tt.cut(1, 3);
  tt.cut(1, 4);
  tt.cut(1, 5);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  t.equal(tt.raft(1).raftLog.committed, 1);
  // Network recovery; avoid committing the new term's entry.
  tt.recover();
  tt.ignore(MessageType.MsgApp);
  // Elect 2 as the new leader with term 2.
  tt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgHup }));
  // No log entries from the previous term should be committed.
  const sm = tt.raft(2);
  t.equal(sm.raftLog.committed, 1);
  tt.recover();
  // Send heartbeat; reset wait.
  tt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgBeat }));
  // Append an entry at the current term: now everything commits.
  tt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgProp, entries: data('some data') }));
  t.equal(sm.raftLog.committed, 5);
});

t.test('TestCommitWithoutNewTermEntry', async (t) => {
  const tt = newNetwork(null, null, null, null, null);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  tt.cut(1, 3);
  tt.cut(1, 4);
  tt.cut(1, 5);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('some data') }));
  const sm = tt.raft(1);
  t.equal(sm.raftLog.committed, 1);
  tt.recover();
  // Elect 2 as the new leader with term 2: once its empty entry of the new term commits, so does everything before.
  tt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgHup }));
  t.equal(sm.raftLog.committed, 4);
});

t.test('TestDuelingCandidates', async (t) => {
  const a = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
  const b = newTestRaft(2, [1, 2, 3], 10, 1, new MemoryStorage());
  const c = newTestRaft(3, [1, 2, 3], 10, 1, new MemoryStorage());
  const nt = newNetwork(a, b, c);
  nt.cut(1, 3);
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  nt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgHup }));
  // 1 becomes leader since it receives votes from 1 and 2.
  t.equal(nt.raft(1).state, StateType.Leader);
  // 3 stays as candidate since it receives a vote from 3 and a rejection from 2.
  t.equal(nt.raft(3).state, StateType.Candidate);
  nt.recover();
  // Candidate 3 now increases its term and tries to vote again: it disrupts leader 1 with its higher term, and
  // becomes a follower again since 1 and 2 reject it (its log is shorter).
  nt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgHup }));
  const wlog = wantLog(1, [[1, 1, '']]);
  t.equal(a.state, StateType.Follower);
  t.equal(a.term, 2);
  t.same(ltoa(a.raftLog), wlog);
  t.equal(b.state, StateType.Follower);
  t.equal(b.term, 2);
  t.same(ltoa(b.raftLog), wlog);
  t.equal(c.state, StateType.Follower);
  t.equal(c.term, 2);
  t.same(ltoa(c.raftLog), wantLog(0, []));
});

t.test('TestDuelingPreCandidates', async (t) => {
  const mk = (id: number): Raft => {
    const cfg = newTestConfig(id, [1, 2, 3], 10, 1, new MemoryStorage());
    cfg.preVote = true;
    return new Raft(cfg);
  };
  const a = mk(1);
  const b = mk(2);
  const c = mk(3);
  const nt = newNetwork(a, b, c);
  nt.cut(1, 3);
  nt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  nt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgHup }));
  t.equal(nt.raft(1).state, StateType.Leader);
  // 3 campaigns then reverts to follower when its PreVote is rejected.
  t.equal(nt.raft(3).state, StateType.Follower);
  nt.recover();
  // With PreVote, candidate 3 does not disrupt the leader.
  nt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgHup }));
  const wlog = wantLog(1, [[1, 1, '']]);
  t.equal(a.state, StateType.Leader);
  t.equal(a.term, 1);
  t.same(ltoa(a.raftLog), wlog);
  t.equal(b.state, StateType.Follower);
  t.equal(b.term, 1);
  t.same(ltoa(b.raftLog), wlog);
  t.equal(c.state, StateType.Follower);
  t.equal(c.term, 1);
  t.same(ltoa(c.raftLog), wantLog(0, []));
});

t.test('TestCandidateConcede', async (t) => {
  const tt = newNetwork(null, null, null);
  tt.isolate(1);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  tt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgHup }));
  // Heal the partition; send heartbeat to reset wait.
  tt.recover();
  tt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgBeat }));
  // Send a proposal to 3 to flush out a MsgApp to 1, then a heartbeat to flush out the commit.
  tt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgProp, entries: data('force follower') }));
  tt.send(msg({ from: 3n, to: 3n, type: MessageType.MsgBeat }));
  const a = tt.raft(1);
  t.equal(a.state, StateType.Follower);
  t.equal(a.term, 1);
  const want = wantLog(2, [
    [1, 1, ''],
    [1, 2, 'force follower'],
  ]);
  for (const [, p] of tt.peers) t.same(ltoa((p as Raft).raftLog), want);
});

t.test('TestSingleNodeCandidate', async (t) => {
  const tt = newNetwork(null);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  t.equal(tt.raft(1).state, StateType.Leader);
});

t.test('TestSingleNodePreCandidate', async (t) => {
  const tt = newNetworkWithConfig(preVoteConfig, null);
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  t.equal(tt.raft(1).state, StateType.Leader);
});

t.test('TestOldMessages', async (t) => {
  const tt = newNetwork(null, null, null);
  // Make 1 leader at term 3.
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  tt.send(msg({ from: 2n, to: 2n, type: MessageType.MsgHup }));
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  // Pretend we're an old leader trying to make progress; this entry is expected to be ignored.
  tt.send(msg({ from: 2n, to: 1n, type: MessageType.MsgApp, term: 2, entries: [ent(2, 3)] }));
  // Commit a new entry.
  tt.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') }));
  const want = wantLog(4, [
    [1, 1, ''],
    [2, 2, ''],
    [3, 3, ''],
    [3, 4, 'somedata'],
  ]);
  for (const [, p] of tt.peers) t.same(ltoa((p as Raft).raftLog), want);
});

t.test('TestProposal', async (t) => {
  const tests: Array<[Network, boolean]> = [
    [newNetwork(null, null, null), true],
    [newNetwork(null, null, nopStepper), true],
    [newNetwork(null, nopStepper, nopStepper), false],
    [newNetwork(null, nopStepper, nopStepper, null), false],
    [newNetwork(null, nopStepper, nopStepper, null, null), true],
  ];
  tests.forEach(([nw, success], j) => {
    // Promote 1 to become leader.
    nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    // Without a leader the proposal is dropped (Network.send swallows ErrProposalDropped).
    nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: data('somedata') }));
    const want = success
      ? wantLog(2, [
          [1, 1, ''],
          [1, 2, 'somedata'],
        ])
      : wantLog(0, []);
    for (const [, p] of nw.peers) if (p instanceof Raft) t.same(ltoa(p.raftLog), want, `#${j}`);
    t.equal(nw.raft(1).term, 1);
  });
});

t.test('TestProposalByProxy', async (t) => {
  for (const nw of [newNetwork(null, null, null), newNetwork(null, null, nopStepper)]) {
    nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    // Propose via follower.
    nw.send(msg({ from: 2n, to: 2n, type: MessageType.MsgProp, entries: data('somedata') }));
    const want = wantLog(2, [
      [1, 1, ''],
      [1, 2, 'somedata'],
    ]);
    for (const [, p] of nw.peers) if (p instanceof Raft) t.same(ltoa(p.raftLog), want);
    t.equal(nw.raft(1).term, 1);
  }
});

t.test('TestDisableProposalForwarding', async (t) => {
  const nw = newNetworkWithConfig((c) => {
    c.disableProposalForwarding = true;
  }, null, null, null);
  nw.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
  const f = nw.raft(2);
  t.throws(() => f.step(msg({ from: 2n, to: 2n, type: MessageType.MsgProp, entries: data('x') })), { code: 'ErrProposalDropped' });
  t.equal(f.msgs.length, 0);
});

t.test('TestCommit', async (t) => {
  const tests: Array<[number[], Array<[number, number]>, number, number]> = [
    // single
    [[1], [[1, 1]], 1, 1],
    [[1], [[1, 1]], 2, 0],
    [[2], [[1, 1], [2, 2]], 2, 2],
    [[1], [[1, 2]], 2, 1],
    // odd
    [[2, 1, 1], [[1, 1], [2, 2]], 1, 1],
    [[2, 1, 1], [[1, 1], [2, 1]], 2, 0],
    [[2, 1, 2], [[1, 1], [2, 2]], 2, 2],
    [[2, 1, 2], [[1, 1], [2, 1]], 2, 0],
    // even
    [[2, 1, 1, 1], [[1, 1], [2, 2]], 1, 1],
    [[2, 1, 1, 1], [[1, 1], [2, 1]], 2, 0],
    [[2, 1, 1, 2], [[1, 1], [2, 2]], 1, 1],
    [[2, 1, 1, 2], [[1, 1], [2, 1]], 2, 0],
    [[2, 1, 2, 2], [[1, 1], [2, 2]], 2, 2],
    [[2, 1, 2, 2], [[1, 1], [2, 1]], 2, 0],
  ];
  tests.forEach(([matches, logs, smTerm, w], i) => {
    const storage = new MemoryStorage();
    storage.append(logs.map(([index, term]) => ent(term, index)));
    storage.hardState = { term: smTerm, vote: 0n, commit: 0 };
    const sm = newTestRaft(1, [1], 10, 2, storage);
    matches.forEach((m, j) => {
      const id = j + 1;
      if (id > 1) sm.applyConfChange(cc(ConfChangeType.AddNode, id));
      const pr = sm.prs.progress.get(BigInt(id))!;
      pr.match = m;
      pr.next = m + 1;
    });
    sm.maybeCommit();
    t.equal(sm.raftLog.committed, w, `#${i}`);
  });
});

t.test('TestPastElectionTimeout', async (t) => {
  const tests: Array<[number, number, boolean]> = [
    [5, 0, false],
    [10, 0.1, true],
    [13, 0.4, true],
    [15, 0.6, true],
    [18, 0.9, true],
    [20, 1, false],
  ];
  for (const [elapse, wprobability, round] of tests) {
    const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
    sm.electionElapsed = elapse;
    let c = 0;
    for (let j = 0; j < 10000; j++) {
      sm.resetRandomizedElectionTimeout();
      if (sm.pastElectionTimeout()) c++;
    }
    let got = c / 10000;
    if (round) got = Math.floor(got * 10 + 0.5) / 10;
    t.equal(got, wprobability, `elapse ${elapse}`);
  }
});

t.test('TestStepIgnoreOldTermMsg', async (t) => {
  const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
  sm.term = 2;
  const before = JSON.stringify(ltoa(sm.raftLog));
  sm.step(msg({ type: MessageType.MsgApp, term: sm.term - 1, entries: [ent(1, 1, 'x')] }));
  t.equal(JSON.stringify(ltoa(sm.raftLog)), before);
  t.equal(sm.msgs.length, 0);
});

t.test('TestHandleMsgApp', async (t) => {
  const tests: Array<[ReturnType<typeof msg>, number, number, boolean]> = [
    // Ensure 1: reject if the log has no entry at prevLogIndex whose term matches prevLogTerm.
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 3, index: 2, commit: 3 }), 2, 0, true], // previous log mismatch
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 3, index: 3, commit: 3 }), 2, 0, true], // previous log non-exist
    // Ensure 2: delete a conflicting entry and all that follow; append new entries.
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 1, index: 1, commit: 1 }), 2, 1, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 0, index: 0, commit: 1, entries: [ent(2, 1)] }), 1, 1, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 3, entries: [ent(2, 3), ent(2, 4)] }), 4, 3, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 4, entries: [ent(2, 3)] }), 3, 3, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 1, index: 1, commit: 4, entries: [ent(2, 2)] }), 2, 2, false],
    // Ensure 3: commit min(leaderCommit, index of last new entry).
    [msg({ type: MessageType.MsgApp, term: 1, logTerm: 1, index: 1, commit: 3 }), 2, 1, false],
    [msg({ type: MessageType.MsgApp, term: 1, logTerm: 1, index: 1, commit: 3, entries: [ent(2, 2)] }), 2, 2, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 3 }), 2, 2, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 4 }), 2, 2, false],
  ];
  tests.forEach(([m, wIndex, wCommit, wReject], i) => {
    const storage = new MemoryStorage();
    storage.append([ent(1, 1), ent(2, 2)]);
    const sm = newTestRaft(1, [1], 10, 1, storage);
    sm.becomeFollower(2, None);
    sm.handleAppendEntries(m);
    t.equal(sm.raftLog.lastIndex(), wIndex, `#${i} lastIndex`);
    t.equal(sm.raftLog.committed, wCommit, `#${i} committed`);
    const ms = readMessages(sm);
    t.equal(ms.length, 1);
    t.equal(ms[0]!.reject, wReject, `#${i} reject`);
  });
});

t.test('TestHandleHeartbeat', async (t) => {
  const commit = 2;
  const tests: Array<[ReturnType<typeof msg>, number]> = [
    [msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeat, term: 2, commit: commit + 1 }), commit + 1],
    [msg({ from: 2n, to: 1n, type: MessageType.MsgHeartbeat, term: 2, commit: commit - 1 }), commit], // Do not decrease commit.
  ];
  for (const [m, wCommit] of tests) {
    const storage = new MemoryStorage();
    storage.append([ent(1, 1), ent(2, 2), ent(3, 3)]);
    const sm = newTestRaft(1, [1, 2], 5, 1, storage);
    sm.becomeFollower(2, 2n);
    sm.raftLog.commitTo(commit);
    sm.handleHeartbeat(m);
    t.equal(sm.raftLog.committed, wCommit);
    const ms = readMessages(sm);
    t.equal(ms.length, 1);
    t.equal(ms[0]!.type, MessageType.MsgHeartbeatResp);
  }
});

t.test('TestHandleHeartbeatResp', async (t) => {
  const storage = new MemoryStorage();
  storage.append([ent(1, 1), ent(2, 2), ent(3, 3)]);
  const sm = newTestRaft(1, [1, 2], 5, 1, storage);
  sm.becomeCandidate();
  sm.becomeLeader();
  sm.raftLog.commitTo(sm.raftLog.lastIndex());
  // A heartbeat response from a node that is behind: re-send MsgApp.
  sm.step(msg({ from: 2n, type: MessageType.MsgHeartbeatResp }));
  let msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgApp);
  // A second heartbeat response generates another MsgApp re-send.
  sm.step(msg({ from: 2n, type: MessageType.MsgHeartbeatResp }));
  msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgApp);
  // Once we have an MsgAppResp, heartbeats no longer send MsgApp.
  sm.step(msg({ from: 2n, type: MessageType.MsgAppResp, index: msgs[0]!.index + msgs[0]!.entries.length }));
  readMessages(sm);
  sm.step(msg({ from: 2n, type: MessageType.MsgHeartbeatResp }));
  t.equal(readMessages(sm).length, 0);
});

t.test('TestRaftFreesReadOnlyMem', async (t) => {
  const sm = newTestRaft(1, [1, 2], 5, 1, new MemoryStorage());
  sm.becomeCandidate();
  sm.becomeLeader();
  sm.raftLog.commitTo(sm.raftLog.lastIndex());
  const ctx = Buffer.from('ctx');
  // The leader starts a linearizable read (thesis §6.4, step 2).
  sm.step(msg({ from: 2n, type: MessageType.MsgReadIndex, entries: [ent(0, 0, ctx)] }));
  const msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgHeartbeat);
  t.same(msgs[0]!.context, ctx);
  t.equal(sm.readOnly.readIndexQueue.length, 1);
  t.equal(sm.readOnly.pendingReadIndex.size, 1);
  t.ok(sm.readOnly.pendingReadIndex.has('ctx'));
  // Heartbeat responses from a majority acknowledge the leader's authority (step 3).
  sm.step(msg({ from: 2n, type: MessageType.MsgHeartbeatResp, context: ctx }));
  t.equal(sm.readOnly.readIndexQueue.length, 0);
  t.equal(sm.readOnly.pendingReadIndex.size, 0);
});

t.test('TestMsgAppRespWaitReset', async (t) => {
  const sm = newTestRaft(1, [1, 2, 3], 5, 1, new MemoryStorage());
  sm.becomeCandidate();
  sm.becomeLeader();
  // The new leader has just emitted its entry; consume those messages.
  sm.bcastAppend();
  readMessages(sm);
  // Node 2 acks the first entry, making it committed.
  sm.step(msg({ from: 2n, type: MessageType.MsgAppResp, index: 1 }));
  t.equal(sm.raftLog.committed, 1);
  // Also consume the MsgApp messages that update Commit on the followers.
  readMessages(sm);
  // A new command is now proposed on node 1.
  sm.step(msg({ from: 1n, type: MessageType.MsgProp, entries: [ent(0, 0)] }));
  // It is sent to all nodes not in the wait state: node 2 left it with its MsgAppResp, node 3 is still waiting.
  let msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgApp);
  t.equal(msgs[0]!.to, 2n);
  t.equal(msgs[0]!.entries.length, 1);
  t.equal(msgs[0]!.entries[0]!.index, 2);
  // Now node 3 acks the first entry. This releases the wait and entry 2 is sent.
  sm.step(msg({ from: 3n, type: MessageType.MsgAppResp, index: 1 }));
  msgs = readMessages(sm);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.type, MessageType.MsgApp);
  t.equal(msgs[0]!.to, 3n);
  t.equal(msgs[0]!.entries.length, 1);
  t.equal(msgs[0]!.entries[0]!.index, 2);
});

for (const msgType of [MessageType.MsgVote, MessageType.MsgPreVote]) {
  t.test(`TestRecv${MessageType[msgType]}`, async (t) => {
    const tests: Array<[StateType, number, number, bigint, boolean]> = [
      [StateType.Follower, 0, 0, None, true],
      [StateType.Follower, 0, 1, None, true],
      [StateType.Follower, 0, 2, None, true],
      [StateType.Follower, 0, 3, None, false],
      [StateType.Follower, 1, 0, None, true],
      [StateType.Follower, 1, 1, None, true],
      [StateType.Follower, 1, 2, None, true],
      [StateType.Follower, 1, 3, None, false],
      [StateType.Follower, 2, 0, None, true],
      [StateType.Follower, 2, 1, None, true],
      [StateType.Follower, 2, 2, None, false],
      [StateType.Follower, 2, 3, None, false],
      [StateType.Follower, 3, 0, None, true],
      [StateType.Follower, 3, 1, None, true],
      [StateType.Follower, 3, 2, None, false],
      [StateType.Follower, 3, 3, None, false],
      [StateType.Follower, 3, 2, 2n, false],
      [StateType.Follower, 3, 2, 1n, true],
      [StateType.Leader, 3, 3, 1n, true],
      [StateType.PreCandidate, 3, 3, 1n, true],
      [StateType.Candidate, 3, 3, 1n, true],
    ];
    tests.forEach(([state, index, logTerm, voteFor, wreject], i) => {
      const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
      sm.state = state;
      sm.vote = voteFor;
      const storage = new MemoryStorage();
      storage.append([ent(2, 1), ent(2, 2)]);
      sm.raftLog = new RaftLog(storage, discardLogger);
      // The terms are equal: only the logs and the existing vote decide.
      const term = Math.max(sm.raftLog.lastTerm(), logTerm);
      sm.term = term;
      sm.step(msg({ type: msgType, term, from: 2n, index, logTerm }));
      const msgs = readMessages(sm);
      t.equal(msgs.length, 1, `#${i}`);
      t.equal(msgs[0]!.type, voteRespMsgType(msgType));
      t.equal(msgs[0]!.reject, wreject, `#${i} reject`);
    });
  });
}

t.test('TestStateTransition', async (t) => {
  const tests: Array<[StateType, StateType, boolean, number, bigint]> = [
    [StateType.Follower, StateType.Follower, true, 1, None],
    [StateType.Follower, StateType.PreCandidate, true, 0, None],
    [StateType.Follower, StateType.Candidate, true, 1, None],
    [StateType.Follower, StateType.Leader, false, 0, None],
    [StateType.PreCandidate, StateType.Follower, true, 0, None],
    [StateType.PreCandidate, StateType.PreCandidate, true, 0, None],
    [StateType.PreCandidate, StateType.Candidate, true, 1, None],
    [StateType.PreCandidate, StateType.Leader, true, 0, 1n],
    [StateType.Candidate, StateType.Follower, true, 0, None],
    [StateType.Candidate, StateType.PreCandidate, true, 0, None],
    [StateType.Candidate, StateType.Candidate, true, 1, None],
    [StateType.Candidate, StateType.Leader, true, 0, 1n],
    [StateType.Leader, StateType.Follower, true, 1, None],
    [StateType.Leader, StateType.PreCandidate, false, 0, None],
    [StateType.Leader, StateType.Candidate, false, 1, None],
    [StateType.Leader, StateType.Leader, true, 0, 1n],
  ];
  tests.forEach(([from, to, wallow, wterm, wlead], i) => {
    const sm = newTestRaft(1, [1], 10, 1, new MemoryStorage());
    sm.state = from;
    const go = (): void => {
      if (to === StateType.Follower) sm.becomeFollower(wterm, wlead);
      else if (to === StateType.PreCandidate) sm.becomePreCandidate();
      else if (to === StateType.Candidate) sm.becomeCandidate();
      else sm.becomeLeader();
    };
    if (!wallow) {
      t.throws(go, `#${i} ${from} -> ${to} is not allowed`);
      return;
    }
    go();
    t.equal(sm.term, wterm, `#${i} term`);
    t.equal(sm.lead, wlead, `#${i} lead`);
  });
});

t.test('TestAllServerStepdown', async (t) => {
  const tests: Array<[StateType, StateType, number, number]> = [
    [StateType.Follower, StateType.Follower, 3, 0],
    [StateType.PreCandidate, StateType.Follower, 3, 0],
    [StateType.Candidate, StateType.Follower, 3, 0],
    [StateType.Leader, StateType.Follower, 3, 1],
  ];
  const tterm = 3;
  tests.forEach(([state, wstate, wterm, windex], i) => {
    const sm = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    if (state === StateType.Follower) sm.becomeFollower(1, None);
    else if (state === StateType.PreCandidate) sm.becomePreCandidate();
    else if (state === StateType.Candidate) sm.becomeCandidate();
    else {
      sm.becomeCandidate();
      sm.becomeLeader();
    }
    for (const msgType of [MessageType.MsgVote, MessageType.MsgApp]) {
      sm.step(msg({ from: 2n, type: msgType, term: tterm, logTerm: tterm }));
      t.equal(sm.state, wstate, `#${i} state`);
      t.equal(sm.term, wterm, `#${i} term`);
      t.equal(sm.raftLog.lastIndex(), windex, `#${i} index`);
      t.equal(sm.raftLog.allEntries().length, windex);
      t.equal(sm.lead, msgType === MessageType.MsgVote ? None : 2n, `#${i} lead`);
    }
  });
});
