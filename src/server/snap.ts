// The member's snapshot directory (etcd etcdserver/api/snap): the markers of the Raft snapshots it took or
// received, and the database copies that arrived from a leader and wait to replace the backend.
//
//   member/snap/<term %016x>-<index %016x>.snap   a marker: {term, index} of a snapshot whose state the backend
//                                                 holds (our backend is the state; etcd's .snap files carry the v2
//                                                 store, which we do not have). The WAL holds a snapshot record
//                                                 for the same {term, index}, and replays from it.
//   member/snap/<index %016x>.snap.db/            a LevelDB database received from the leader, complete and
//                                                 synced; it becomes the backend when the snapshot is applied,
//                                                 and at start if the backend is still behind the newest marker.
//   member/snap/db/                               the backend itself (MvccStore's directory).
//
// Marker file, byte by byte:
//   0  8  magic "TSSNAP01"
//   8  4  CRC-32 (IEEE) of bytes 12..
//   12 8  term  u64 BE
//   20 8  index u64 BE
//
// Markers are written atomically (temporary file, fsync, rename, fsync of the directory), before the WAL's snapshot
// record. At start the newest marker whose WAL record exists is used (a crash can fall between the two writes, as
// in etcd 3.5's ValidSnapshotEntries); a damaged marker stops the member with the file and offset named (never a
// silent fallback to an older one, whose WAL records may already be released).

import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { DomainError } from '../util/errors';
import { assert } from '../util/assert';
import { fsyncDir } from '../util/fsync';

export const ErrSnapCorrupt = 'ErrSnapCorrupt';

const MAGIC = Buffer.from('TSSNAP01', 'ascii');
const MARKER_BYTES = 28;
const MARKER_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const DB_RE = /^([0-9a-f]{16})\.snap\.db$/;

export interface SnapMarker {
  term: number;
  index: number;
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}


export class Snapshotter {
  constructor(readonly dir: string) {}

  markerPath(m: SnapMarker): string {
    return path.join(this.dir, `${hex16(m.term)}-${hex16(m.index)}.snap`);
  }

  /** Where a database received for the snapshot at `index` is kept until it is applied. */
  dbPath(index: number): string {
    return path.join(this.dir, `${hex16(index)}.snap.db`);
  }

  /** Writes the marker durably: temporary file, fsync, rename, fsync of the directory. */
  async save(m: SnapMarker): Promise<void> {
    assert(Number.isSafeInteger(m.index) && m.index > 0 && Number.isSafeInteger(m.term) && m.term > 0, 'snap: bad marker');
    const buf = Buffer.alloc(MARKER_BYTES);
    MAGIC.copy(buf, 0);
    buf.writeBigUInt64BE(BigInt(m.term), 12);
    buf.writeBigUInt64BE(BigInt(m.index), 20);
    buf.writeUInt32BE(zlib.crc32(buf.subarray(12)) >>> 0, 8);
    const final = this.markerPath(m);
    const tmp = `${final}.tmp`;
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(buf);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, final);
    await fsyncDir(this.dir);
  }

  /** The markers present, by name, newest (highest term, then index) first; load() checks one. */
  async list(): Promise<SnapMarker[]> {
    const out: SnapMarker[] = [];
    for (const name of await fs.readdir(this.dir)) {
      const m = MARKER_RE.exec(name);
      if (m) out.push({ term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16) });
    }
    // etcd sorts snapshot names in reverse: term first, then index.
    return out.sort((a, b) => b.term - a.term || b.index - a.index);
  }

  /** Reads and checks the marker file of `m`; throws ErrSnapCorrupt (naming file and offset) if it is damaged. */
  async load(m: SnapMarker): Promise<SnapMarker> {
    const file = this.markerPath(m);
    const buf = await fs.readFile(file);
    const corrupt = (offset: number, why: string): never => {
      throw new DomainError(ErrSnapCorrupt, `snap: ${file} is damaged at offset ${offset}: ${why}`);
    };
    if (buf.length < MARKER_BYTES) corrupt(buf.length, `file is ${buf.length} bytes, a marker is ${MARKER_BYTES} (truncated)`);
    if (buf.length > MARKER_BYTES) corrupt(MARKER_BYTES, `file is ${buf.length} bytes, a marker is ${MARKER_BYTES}`);
    if (!buf.subarray(0, 8).equals(MAGIC)) corrupt(0, 'bad magic');
    const want = buf.readUInt32BE(8);
    if ((zlib.crc32(buf.subarray(12)) >>> 0) !== want) corrupt(12, 'CRC mismatch');
    const term = Number(buf.readBigUInt64BE(12));
    const index = Number(buf.readBigUInt64BE(20));
    if (term !== m.term || index !== m.index) corrupt(12, `holds ${term}/${index}, which does not match its name`);
    return { term, index };
  }

  /** Deletes the marker of `m` (one whose WAL record never became durable). */
  async remove(m: SnapMarker): Promise<void> {
    await fs.rm(this.markerPath(m), { force: true });
    await fsyncDir(this.dir);
  }

  /**
   * Removes all but the newest `keep` markers (etcd --max-snapshots; 0 keeps all), leftover temporary files, and
   * received databases at or below `appliedIndex` (already applied, or superseded).
   */
  async purge(keep: number, appliedIndex: number): Promise<void> {
    let changed = false;
    if (keep > 0) {
      for (const old of (await this.list()).slice(keep)) {
        await fs.rm(this.markerPath(old), { force: true });
        changed = true;
      }
    }
    for (const name of await fs.readdir(this.dir)) {
      const db = DB_RE.exec(name);
      if ((db && parseInt(db[1]!, 16) <= appliedIndex) || name.endsWith('.snap.tmp') || name.endsWith('.snap.db.tmp')) {
        await fs.rm(path.join(this.dir, name), { recursive: true, force: true });
        changed = true;
      }
    }
    if (changed) await fsyncDir(this.dir);
  }
}
