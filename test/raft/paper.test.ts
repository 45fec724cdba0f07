// Ports of etcd raft's raft_paper_test.go: the rules of the Raft paper (§5.1-§5.4), one test per rule.

import t from 'tap';
import { Raft, StateType, None } from '../../src/raft/raft';
import { MemoryStorage } from '../../src/raft/storage';
import { type Entry, type Message, MessageType, message } from '../../src/raft/types';
import { ent, msg, mustAppendEntry, newNetwork, newTestRaft, nopStepper, readMessages, strip } from './helpers';

const idsBySize = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
const sortByTo = (ms: Message[]): Message[] => [...ms].sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : a.type - b.type));
const termIndex = (ents: Entry[]) => ents.map((e) => ({ term: e.term, index: e.index, data: e.data.toString() }));

/** Acks the noop entry of a new leader on all followers, and makes the log stable and applied (etcd commitNoopEntry). */
function commitNoopEntry(r: Raft, s: MemoryStorage): void {
  if (r.state !== StateType.Leader) throw new Error('it should only be used when it is the leader');
  r.bcastAppend();
  // Simulate the responses to MsgApp.
  for (const m of readMessages(r)) {
    if (m.type !== MessageType.MsgApp || m.entries.length !== 1 || m.entries[0]!.data.length !== 0) {
      throw new Error('not a message to append noop entry');
    }
    r.step(acceptAndReply(m));
  }
  // Ignore further messages to refresh followers' commit index.
  readMessages(r);
  s.append(r.raftLog.unstableEntries());
  r.raftLog.appliedTo(r.raftLog.committed);
  r.raftLog.stableTo(r.raftLog.lastIndex(), r.raftLog.lastTerm());
}

function acceptAndReply(m: Message): Message {
  if (m.type !== MessageType.MsgApp) throw new Error('type should be MsgApp');
  return message({ from: m.to, to: m.from, term: m.term, type: MessageType.MsgAppResp, index: m.index + m.entries.length });
}

for (const state of [StateType.Follower, StateType.Candidate, StateType.Leader]) {
  t.test(`Test${state.replace('State', '')}UpdateTermFromMessage (§5.1)`, async (t) => {
    // A server with a smaller term updates it; a candidate or leader reverts to follower.
    const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    if (state === StateType.Follower) r.becomeFollower(1, 2n);
    else if (state === StateType.Candidate) r.becomeCandidate();
    else {
      r.becomeCandidate();
      r.becomeLeader();
    }
    r.step(msg({ type: MessageType.MsgApp, term: 2 }));
    t.equal(r.term, 2);
    t.equal(r.state, StateType.Follower);
  });
}

t.test('TestRejectStaleTermMessage (§5.1)', async (t) => {
  // A request with a stale term is ignored (the paper says rejected).
  const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
  r.loadState({ term: 2, vote: 0n, commit: 0 });
  r.step(msg({ type: MessageType.MsgApp, term: r.term - 1, entries: [ent(1, 1)] }));
  t.equal(r.raftLog.lastIndex(), 0);
  t.equal(r.msgs.length, 0);
});

t.test('TestStartAsFollower (§5.2)', async (t) => {
  t.equal(newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage()).state, StateType.Follower);
});

t.test('TestLeaderBcastBeat (§5.2)', async (t) => {
  const hi = 1;
  const r = newTestRaft(1, [1, 2, 3], 10, hi, new MemoryStorage());
  r.becomeCandidate();
  r.becomeLeader();
  for (let i = 0; i < 10; i++) mustAppendEntry(r, ent(0, i + 1));
  for (let i = 0; i < hi; i++) r.tick();
  t.same(sortByTo(readMessages(r)).map(strip), [
    { type: 'MsgHeartbeat', from: 1, to: 2, term: 1 },
    { type: 'MsgHeartbeat', from: 1, to: 3, term: 1 },
  ]);
});

for (const state of [StateType.Follower, StateType.Candidate]) {
  t.test(`Test${state === StateType.Follower ? 'FollowerStartElection' : 'CandidateStartNewElection'} (§5.2)`, async (t) => {
    // Without communication over the election timeout, a follower (or a candidate without a majority) starts an
    // election: increments its term, votes for itself, requests votes in parallel.
    const et = 10;
    const r = newTestRaft(1, [1, 2, 3], et, 1, new MemoryStorage());
    if (state === StateType.Follower) r.becomeFollower(1, 2n);
    else r.becomeCandidate();
    for (let i = 1; i < 2 * et; i++) r.tick();
    t.equal(r.term, 2);
    t.equal(r.state, StateType.Candidate);
    t.equal(r.prs.votes.get(r.id), true);
    t.same(sortByTo(readMessages(r)).map(strip), [
      { type: 'MsgVote', from: 1, to: 2, term: 2 },
      { type: 'MsgVote', from: 1, to: 3, term: 2 },
    ]);
  });
}

t.test('TestLeaderElectionInOneRoundRPC (§5.2)', async (t) => {
  const tests: Array<[number, Record<number, boolean>, StateType]> = [
    // Win the election with votes from a majority.
    [1, {}, StateType.Leader],
    [3, { 2: true, 3: true }, StateType.Leader],
    [3, { 2: true }, StateType.Leader],
    [5, { 2: true, 3: true, 4: true, 5: true }, StateType.Leader],
    [5, { 2: true, 3: true, 4: true }, StateType.Leader],
    [5, { 2: true, 3: true }, StateType.Leader],
    // Return to follower on denial from a majority.
    [3, { 2: false, 3: false }, StateType.Follower],
    [5, { 2: false, 3: false, 4: false, 5: false }, StateType.Follower],
    [5, { 2: true, 3: false, 4: false, 5: false }, StateType.Follower],
    // Stay candidate without a majority.
    [3, {}, StateType.Candidate],
    [5, { 2: true }, StateType.Candidate],
    [5, { 2: false, 3: false }, StateType.Candidate],
    [5, {}, StateType.Candidate],
  ];
  tests.forEach(([size, votes, state], i) => {
    const r = newTestRaft(1, idsBySize(size), 10, 1, new MemoryStorage());
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    for (const [id, vote] of Object.entries(votes)) {
      r.step(msg({ from: BigInt(id), to: 1n, term: r.term, type: MessageType.MsgVoteResp, reject: !vote }));
    }
    t.equal(r.state, state, `#${i}`);
    t.equal(r.term, 1);
  });
});

t.test('TestFollowerVote (§5.2)', async (t) => {
  // At most one vote per term, first come first served.
  const tests: Array<[bigint, number, boolean]> = [
    [None, 1, false],
    [None, 2, false],
    [1n, 1, false],
    [2n, 2, false],
    [1n, 2, true],
    [2n, 1, true],
  ];
  for (const [vote, nvote, wreject] of tests) {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    r.loadState({ term: 1, vote, commit: 0 });
    r.step(msg({ from: BigInt(nvote), to: 1n, term: 1, type: MessageType.MsgVote }));
    t.same(readMessages(r).map(strip), [{ type: 'MsgVoteResp', from: 1, to: nvote, term: 1, ...(wreject ? { reject: true } : {}) }]);
  }
});

t.test('TestCandidateFallback (§5.2)', async (t) => {
  // A candidate that hears from a leader of at least its term returns to follower.
  for (const m of [msg({ from: 2n, to: 1n, term: 1, type: MessageType.MsgApp }), msg({ from: 2n, to: 1n, term: 2, type: MessageType.MsgApp })]) {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    t.equal(r.state, StateType.Candidate);
    r.step(m);
    t.equal(r.state, StateType.Follower);
    t.equal(r.term, m.term);
  }
});

for (const state of [StateType.Follower, StateType.Candidate]) {
  t.test(`Test${state === StateType.Follower ? 'Follower' : 'Candidate'}ElectionTimeoutRandomized (§5.2)`, async (t) => {
    const et = 10;
    const r = newTestRaft(1, [1, 2, 3], et, 1, new MemoryStorage());
    const timeouts = new Set<number>();
    for (let round = 0; round < 50 * et; round++) {
      if (state === StateType.Follower) r.becomeFollower(r.term + 1, 2n);
      else r.becomeCandidate();
      let time = 0;
      while (readMessages(r).length === 0) {
        r.tick();
        time++;
      }
      timeouts.add(time);
    }
    for (let d = et + 1; d < 2 * et; d++) t.ok(timeouts.has(d), `timeout in ${d} ticks should happen`);
  });

  t.test(`Test${state === StateType.Follower ? 'Followers' : 'Candidates'}ElectionTimeoutNonconflict (§5.2)`, async (t) => {
    // In most cases only one server times out, which makes split votes unlikely.
    const et = 10;
    const size = 5;
    const rs = idsBySize(size).map((id) => newTestRaft(id, idsBySize(size), et, 1, new MemoryStorage()));
    let conflicts = 0;
    for (let round = 0; round < 1000; round++) {
      for (const r of rs) {
        if (state === StateType.Follower) r.becomeFollower(r.term + 1, None);
        else r.becomeCandidate();
      }
      let timeoutNum = 0;
      while (timeoutNum === 0) {
        for (const r of rs) {
          r.tick();
          if (readMessages(r).length > 0) timeoutNum++;
        }
      }
      if (timeoutNum > 1) conflicts++;
    }
    t.ok(conflicts / 1000 <= 0.3, `probability of conflicts ${conflicts / 1000} <= 0.3`);
  });
}

t.test('TestLeaderStartReplication (§5.3)', async (t) => {
  const s = new MemoryStorage();
  const r = newTestRaft(1, [1, 2, 3], 10, 1, s);
  r.becomeCandidate();
  r.becomeLeader();
  commitNoopEntry(r, s);
  const li = r.raftLog.lastIndex();
  r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'some data')] }));
  t.equal(r.raftLog.lastIndex(), li + 1);
  t.equal(r.raftLog.committed, li);
  const wents = [[1, li + 1, 'some data']];
  t.same(sortByTo(readMessages(r)).map(strip), [
    { type: 'MsgApp', from: 1, to: 2, term: 1, index: li, logTerm: 1, entries: wents, commit: li },
    { type: 'MsgApp', from: 1, to: 3, term: 1, index: li, logTerm: 1, entries: wents, commit: li },
  ]);
  t.same(termIndex(r.raftLog.unstableEntries()), [{ term: 1, index: li + 1, data: 'some data' }]);
});

t.test('TestLeaderCommitEntry (§5.3)', async (t) => {
  const s = new MemoryStorage();
  const r = newTestRaft(1, [1, 2, 3], 10, 1, s);
  r.becomeCandidate();
  r.becomeLeader();
  commitNoopEntry(r, s);
  const li = r.raftLog.lastIndex();
  r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'some data')] }));
  for (const m of readMessages(r)) r.step(acceptAndReply(m));
  t.equal(r.raftLog.committed, li + 1);
  t.same(termIndex(r.raftLog.nextEnts()), [{ term: 1, index: li + 1, data: 'some data' }]);
  sortByTo(readMessages(r)).forEach((m, i) => {
    t.equal(m.to, BigInt(i + 2));
    t.equal(m.type, MessageType.MsgApp);
    t.equal(m.commit, li + 1);
  });
});

t.test('TestLeaderAcknowledgeCommit (§5.3)', async (t) => {
  const tests: Array<[number, number[], boolean]> = [
    [1, [], true],
    [3, [], false],
    [3, [2], true],
    [3, [2, 3], true],
    [5, [], false],
    [5, [2], false],
    [5, [2, 3], true],
    [5, [2, 3, 4], true],
    [5, [2, 3, 4, 5], true],
  ];
  tests.forEach(([size, acceptors, wack], i) => {
    const s = new MemoryStorage();
    const r = newTestRaft(1, idsBySize(size), 10, 1, s);
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r, s);
    const li = r.raftLog.lastIndex();
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'some data')] }));
    for (const m of readMessages(r)) if (acceptors.includes(Number(m.to))) r.step(acceptAndReply(m));
    t.equal(r.raftLog.committed > li, wack, `#${i}`);
  });
});

t.test('TestLeaderCommitPrecedingEntries (§5.3)', async (t) => {
  // Committing an entry commits all preceding ones, including those of previous leaders, in log order.
  const tests: Entry[][] = [[], [ent(2, 1)], [ent(1, 1), ent(2, 2)], [ent(1, 1)]];
  tests.forEach((tt, i) => {
    const storage = new MemoryStorage();
    storage.append(tt);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storage);
    r.loadState({ term: 2, vote: 0n, commit: 0 });
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0, 'some data')] }));
    for (const m of readMessages(r)) r.step(acceptAndReply(m));
    const li = tt.length;
    const wents = [...tt, ent(3, li + 1), ent(3, li + 2, 'some data')];
    t.same(termIndex(r.raftLog.nextEnts()), termIndex(wents), `#${i}`);
  });
});

t.test('TestFollowerCommitEntry (§5.3)', async (t) => {
  const tests: Array<[Entry[], number]> = [
    [[ent(1, 1, 'some data')], 1],
    [[ent(1, 1, 'some data'), ent(1, 2, 'some data2')], 2],
    [[ent(1, 1, 'some data2'), ent(1, 2, 'some data')], 2],
    [[ent(1, 1, 'some data'), ent(1, 2, 'some data2')], 1],
  ];
  tests.forEach(([ents, commit], i) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    r.becomeFollower(1, 2n);
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgApp, term: 1, entries: ents, commit }));
    t.equal(r.raftLog.committed, commit, `#${i}`);
    t.same(termIndex(r.raftLog.nextEnts()), termIndex(ents.slice(0, commit)));
  });
});

t.test('TestFollowerCheckMsgApp (§5.3)', async (t) => {
  // A follower refuses entries whose preceding entry it does not have; otherwise it accepts.
  const ents = [ent(1, 1), ent(2, 2)];
  const tests: Array<[number, number, number, boolean, number]> = [
    // Match with committed entries.
    [0, 0, 1, false, 0],
    [1, 1, 1, false, 0],
    // Match with uncommitted entries.
    [2, 2, 2, false, 0],
    // Mismatch with an existing entry.
    [1, 2, 2, true, 2],
    // Nonexistent entry.
    [3, 3, 3, true, 2],
  ];
  tests.forEach(([term, index, windex, wreject, wrejectHint], i) => {
    const storage = new MemoryStorage();
    storage.append(ents);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storage);
    r.loadState({ term: 0, vote: 0n, commit: 1 });
    r.becomeFollower(2, 2n);
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgApp, term: 2, logTerm: term, index }));
    const want: Record<string, unknown> = { type: 'MsgAppResp', from: 1, to: 2, term: 2, index: windex };
    if (wreject) want.reject = true;
    if (wrejectHint) want.rejectHint = wrejectHint;
    t.same(readMessages(r).map(strip), [want], `#${i}`);
  });
});

t.test('TestFollowerAppendEntries (§5.3)', async (t) => {
  // A valid append deletes a conflicting entry and all that follow, and appends the new ones (unstable until
  // persisted).
  const tests: Array<[number, number, Entry[], Entry[], Entry[]]> = [
    [2, 2, [ent(3, 3)], [ent(1, 1), ent(2, 2), ent(3, 3)], [ent(3, 3)]],
    [1, 1, [ent(3, 2), ent(4, 3)], [ent(1, 1), ent(3, 2), ent(4, 3)], [ent(3, 2), ent(4, 3)]],
    [0, 0, [ent(1, 1)], [ent(1, 1), ent(2, 2)], []],
    [0, 0, [ent(3, 1)], [ent(3, 1)], [ent(3, 1)]],
  ];
  tests.forEach(([index, term, ents, wents, wunstable], i) => {
    const storage = new MemoryStorage();
    storage.append([ent(1, 1), ent(2, 2)]);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storage);
    r.becomeFollower(2, 2n);
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgApp, term: 2, logTerm: term, index, entries: ents }));
    t.same(termIndex(r.raftLog.allEntries()), termIndex(wents), `#${i} entries`);
    t.same(termIndex(r.raftLog.unstableEntries()), termIndex(wunstable), `#${i} unstable`);
  });
});

t.test('TestLeaderSyncFollowerLog (§5.3, figure 7)', async (t) => {
  // The leader brings a follower's log into agreement with its own.
  const mk = (pairs: Array<[number, number]>): Entry[] => pairs.map(([term, index]) => ent(term, index));
  const ents = mk([[1, 1], [1, 2], [1, 3], [4, 4], [4, 5], [5, 6], [5, 7], [6, 8], [6, 9], [6, 10]]);
  const term = 8;
  const tests: Entry[][] = [
    mk([[1, 1], [1, 2], [1, 3], [4, 4], [4, 5], [5, 6], [5, 7], [6, 8], [6, 9]]),
    mk([[1, 1], [1, 2], [1, 3], [4, 4]]),
    mk([[1, 1], [1, 2], [1, 3], [4, 4], [4, 5], [5, 6], [5, 7], [6, 8], [6, 9], [6, 10], [6, 11]]),
    mk([[1, 1], [1, 2], [1, 3], [4, 4], [4, 5], [5, 6], [5, 7], [6, 8], [6, 9], [6, 10], [7, 11], [7, 12]]),
    mk([[1, 1], [1, 2], [1, 3], [4, 4], [4, 5], [4, 6], [4, 7]]),
    mk([[1, 1], [1, 2], [1, 3], [2, 4], [2, 5], [2, 6], [3, 7], [3, 8], [3, 9], [3, 10], [3, 11]]),
  ];
  tests.forEach((tt, i) => {
    const leadStorage = new MemoryStorage();
    leadStorage.append(ents);
    const lead = newTestRaft(1, [1, 2, 3], 10, 1, leadStorage);
    lead.loadState({ commit: lead.raftLog.lastIndex(), term, vote: 0n });
    const followerStorage = new MemoryStorage();
    followerStorage.append(tt);
    const follower = newTestRaft(2, [1, 2, 3], 10, 1, followerStorage);
    follower.loadState({ term: term - 1, vote: 0n, commit: 0 });
    // A three-node cluster: the follower may have a more up-to-date log, so the leader needs the third node's vote.
    const n = newNetwork(lead, follower, nopStepper);
    n.send(msg({ from: 1n, to: 1n, type: MessageType.MsgHup }));
    n.send(msg({ from: 3n, to: 1n, type: MessageType.MsgVoteResp, term: term + 1 }));
    n.send(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0)] }));
    const lt = (r: Raft) => ({ committed: r.raftLog.committed, entries: termIndex(r.raftLog.allEntries()) });
    t.same(lt(follower), lt(lead), `#${i}`);
  });
});

t.test('TestVoteRequest (§5.4.1)', async (t) => {
  // Vote requests carry the candidate's last log position and go to all other members.
  const tests: Array<[Entry[], number]> = [
    [[ent(1, 1)], 2],
    [[ent(1, 1), ent(2, 2)], 3],
  ];
  for (const [ents, wterm] of tests) {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, new MemoryStorage());
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgApp, term: wterm - 1, logTerm: 0, index: 0, entries: ents }));
    readMessages(r);
    for (let i = 1; i < r.electionTimeout * 2; i++) r.tickElection();
    const msgs = sortByTo(readMessages(r));
    t.equal(msgs.length, 2);
    msgs.forEach((m, i) => {
      t.equal(m.type, MessageType.MsgVote);
      t.equal(m.to, BigInt(i + 2));
      t.equal(m.term, wterm);
      t.equal(m.index, ents[ents.length - 1]!.index);
      t.equal(m.logTerm, ents[ents.length - 1]!.term);
    });
  }
});

t.test('TestVoter (§5.4.1)', async (t) => {
  // A voter denies its vote if its own log is more up-to-date than the candidate's.
  const tests: Array<[Entry[], number, number, boolean]> = [
    // Same log term.
    [[ent(1, 1)], 1, 1, false],
    [[ent(1, 1)], 1, 2, false],
    [[ent(1, 1), ent(1, 2)], 1, 1, true],
    // Candidate has a higher log term.
    [[ent(1, 1)], 2, 1, false],
    [[ent(1, 1)], 2, 2, false],
    [[ent(1, 1), ent(1, 2)], 2, 1, false],
    // Voter has a higher log term.
    [[ent(2, 1)], 1, 1, true],
    [[ent(2, 1)], 1, 2, true],
    [[ent(2, 1), ent(1, 2)], 1, 1, true],
  ];
  tests.forEach(([ents, logTerm, index, wreject], i) => {
    const storage = new MemoryStorage();
    storage.append(ents);
    const r = newTestRaft(1, [1, 2], 10, 1, storage);
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgVote, term: 3, logTerm, index }));
    const msgs = readMessages(r);
    t.equal(msgs.length, 1);
    t.equal(msgs[0]!.type, MessageType.MsgVoteResp);
    t.equal(msgs[0]!.reject, wreject, `#${i}`);
  });
});

t.test('TestLeaderOnlyCommitsLogFromCurrentTerm (§5.4.2)', async (t) => {
  // Only entries of the leader's current term are committed by counting replicas.
  const tests: Array<[number, number]> = [
    // Do not commit log entries of previous terms.
    [1, 0],
    [2, 0],
    // Commit log entries of the current term.
    [3, 3],
  ];
  for (const [index, wcommit] of tests) {
    const storage = new MemoryStorage();
    storage.append([ent(1, 1), ent(2, 2)]);
    const r = newTestRaft(1, [1, 2], 10, 1, storage);
    r.loadState({ term: 2, vote: 0n, commit: 0 });
    // Become leader at term 3.
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    // Propose an entry in the current term.
    r.step(msg({ from: 1n, to: 1n, type: MessageType.MsgProp, entries: [ent(0, 0)] }));
    r.step(msg({ from: 2n, to: 1n, type: MessageType.MsgAppResp, term: r.term, index }));
    t.equal(r.raftLog.committed, wcommit, `ack of ${index}`);
  }
});
