// Human-readable descriptions of messages, entries and Readys in etcd raft's text format (util.go Describe*), so that
// datadriven tests and traces read like etcd's testdata and can be diffed against them.

import { decodeConfChange } from './confchange/codec';
import type { Ready } from './raw-node';
import type { SoftState } from './raft';
import type { ReadState } from './read-only';
import { type ConfChange, ConfChangeType, type ConfState, type Entry, EntryType, type HardState, type Message, MessageType, type Snapshot } from './types';

/** Formats entry data for display; the default quotes it as Go's %q does. */
export type EntryFormatter = (data: Buffer) => string;

/** "Term:1 Vote:2 Commit:3" (Vote omitted when 0). */
export function describeHardState(hs: HardState): string {
  let s = `Term:${hs.term}`;
  if (hs.vote !== 0n) s += ` Vote:${hs.vote}`;
  return s + ` Commit:${hs.commit}`;
}

/** "Lead:1 State:StateLeader". */
export function describeSoftState(ss: SoftState): string {
  return `Lead:${ss.lead} State:${ss.raftState}`;
}

/** "Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false" (joint fields always empty here). */
export function describeConfState(cs: ConfState): string {
  return `Voters:[${cs.voters.join(' ')}] VotersOutgoing:[] Learners:[${cs.learners.join(' ')}] LearnersNext:[] AutoLeave:false`;
}

/** "Index:5 Term:2 ConfState:...". */
export function describeSnapshot(snap: Snapshot): string {
  const m = snap.metadata;
  return `Index:${m.index} Term:${m.term} ConfState:${describeConfState(m.confState)}`;
}

function describeReadStates(rss: ReadState[]): string {
  return `[${rss.map((rs) => `{${rs.index} [${[...rs.requestCtx].join(' ')}]}`).join(' ')}]`;
}

/** The Ready, as etcd's DescribeReady prints it ("<empty Ready>" when there is nothing). */
export function describeReady(rd: Ready, f?: EntryFormatter): string {
  let buf = '';
  if (rd.softState !== undefined) buf += describeSoftState(rd.softState) + '\n';
  if (rd.hardState !== undefined && !(rd.hardState.term === 0 && rd.hardState.vote === 0n && rd.hardState.commit === 0)) {
    buf += `HardState ${describeHardState(rd.hardState)}\n`;
  }
  if (rd.readStates.length > 0) buf += `ReadStates ${describeReadStates(rd.readStates)}\n`;
  if (rd.entries.length > 0) buf += 'Entries:\n' + describeEntries(rd.entries, f);
  if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) buf += `Snapshot ${describeSnapshot(rd.snapshot)}\n`;
  if (rd.committedEntries.length > 0) buf += 'CommittedEntries:\n' + describeEntries(rd.committedEntries, f);
  if (rd.messages.length > 0) {
    buf += 'Messages:\n';
    for (const m of rd.messages) buf += describeMessage(m, f) + '\n';
  }
  if (buf.length > 0) return `Ready MustSync=${rd.mustSync}:\n${buf}`;
  return '<empty Ready>';
}

/** "1->2 MsgApp Term:1 Log:1/2 Commit:3 Entries:[1/3 EntryNormal \"foo\"]", as etcd's DescribeMessage. */
export function describeMessage(m: Message, f?: EntryFormatter): string {
  let s = `${m.from.toString(16)}->${m.to.toString(16)} ${MessageType[m.type]} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map((e) => describeEntry(e, f)).join(', ')}]`;
  if (m.snapshot !== undefined && m.snapshot.metadata.index !== 0) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}

const entryTypeNames: Record<EntryType, string> = {
  [EntryType.Normal]: 'EntryNormal',
  [EntryType.ConfChange]: 'EntryConfChange',
};

/** "v2", "r3", "l4", "u5": etcd's ConfChangesToString for one change. */
export function describeConfChange(cc: ConfChange): string {
  const prefix: Record<ConfChangeType, string> = {
    [ConfChangeType.AddNode]: 'v',
    [ConfChangeType.AddLearnerNode]: 'l',
    [ConfChangeType.RemoveNode]: 'r',
    [ConfChangeType.UpdateNode]: 'u',
  };
  return `${prefix[cc.type] ?? 'unknown'}${cc.nodeId}`;
}

/** "2/5 EntryNormal \"data\"", as etcd's DescribeEntry. */
export function describeEntry(e: Entry, f: EntryFormatter = goQuote): string {
  let formatted: string;
  if (e.type === EntryType.ConfChange) {
    try {
      formatted = describeConfChange(decodeConfChange(e.data));
    } catch (err) {
      formatted = (err as Error).message;
    }
  } else {
    formatted = f(e.data);
  }
  if (formatted !== '') formatted = ' ' + formatted;
  return `${e.term}/${e.index} ${entryTypeNames[e.type] ?? `EntryType(${e.type})`}${formatted}`;
}

/** One describeEntry line per entry, each ending in a newline. */
export function describeEntries(ents: readonly Entry[], f?: EntryFormatter): string {
  let s = '';
  for (const e of ents) s += describeEntry(e, f) + '\n';
  return s;
}

/** Quotes bytes as Go's %q does for ASCII (other bytes as \x escapes). */
export function goQuote(data: Buffer): string {
  let s = '"';
  for (const b of data) {
    if (b === 0x22) s += '\\"';
    else if (b === 0x5c) s += '\\\\';
    else if (b === 0x0a) s += '\\n';
    else if (b === 0x09) s += '\\t';
    else if (b === 0x0d) s += '\\r';
    else if (b === 0x07) s += '\\a';
    else if (b === 0x08) s += '\\b';
    else if (b === 0x0c) s += '\\f';
    else if (b === 0x0b) s += '\\v';
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += '\\x' + b.toString(16).padStart(2, '0');
  }
  return s + '"';
}
