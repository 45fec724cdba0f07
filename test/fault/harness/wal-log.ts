// C4's log half (faults.md §6.4): each member's committed Raft log, read from its WAL after the run, for
// checkLogPrefixes (../checker/convergence.ts). The members were killed with SIGKILL, so the last segment may end
// in a torn record; this reads the way recovery does (src/wal/wal.ts Replay: a damaged record that could be a torn
// append, in the last segment, followed only by zeroes, ends the log) but never writes: no truncation, no removal
// of leftover temporary segments. Damage anywhere else is an error, as it would stop the member's own open.
//
// Only a tail of the log exists once snapshots let the WAL release old segments, so the entries start wherever the
// oldest remaining segment does; and a snapshot marker past the last entry (a follower that installed the leader's
// snapshot) starts the log afresh after it. A later entry at an index already read replaces that index and
// everything after it (Raft's conflict truncation, as ReadAll does). Committed = index <= the last HardState's commit.

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LogEntry } from '../checker';
import { decodeEntry, decodeHardState, decodeSnapshot, firstNonZeroByte, readFrame } from '../../../src/wal/decoder';
import { RecordType } from '../../../src/wal/encoder';
import { parseSegmentFileName } from '../../../src/wal/segment-name';

export interface CommittedLog {
  entries: LogEntry[];
  commit: number;
  segments: number;
  /** Why the last segment ended early (a torn tail), if it did. */
  tornTail?: string;
}

export async function readCommittedLog(walDir: string): Promise<CommittedLog> {
  const names = (await fs.readdir(walDir)).flatMap((n) => {
    const s = parseSegmentFileName(n);
    return s ? [{ ...s, file: path.join(walDir, n) }] : [];
  });
  names.sort((a, b) => a.seq - b.seq);
  let entries: LogEntry[] = [];
  let commit = 0;
  let tornTail: string | undefined;
  for (const [k, seg] of names.entries()) {
    const buf = await fs.readFile(seg.file);
    const isLast = k === names.length - 1;
    let offset = 0;
    let crc = 0;
    for (;;) {
      const r = readFrame(buf, offset, crc);
      if (r.kind === 'end') break;
      if (r.kind === 'damage') {
        if (isLast && r.tornCandidate && firstNonZeroByte(buf, r.damageEnd) === -1) {
          tornTail = `${path.basename(seg.file)} at offset ${offset}: ${r.reason}`;
          break;
        }
        throw new Error(`${seg.file} at offset ${offset}: ${r.reason}`);
      }
      if (r.type === RecordType.Entry) {
        const e = decodeEntry(r.payload);
        const first = entries[0]?.index;
        const entry = { index: e.index, term: e.term, data: `${e.type}:${createHash('sha1').update(e.data).digest('hex').slice(0, 16)}` };
        if (first === undefined || e.index < first) entries = [entry];
        else if (e.index - first > entries.length) throw new Error(`${seg.file} at offset ${offset}: entry ${e.index} leaves a gap after ${first + entries.length - 1}`);
        else {
          entries.length = e.index - first;
          entries.push(entry);
        }
      } else if (r.type === RecordType.Snapshot) {
        const last = entries[entries.length - 1]?.index ?? 0;
        if (decodeSnapshot(r.payload).index > last) entries = [];
      } else if (r.type === RecordType.HardState) {
        commit = decodeHardState(r.payload).commit;
      }
      crc = r.crc;
      offset = r.end;
    }
  }
  return { entries: entries.filter((e) => e.index <= commit), commit, segments: names.length, tornTail };
}
