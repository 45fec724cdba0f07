// A simulated member's disk: what the node loop persisted from its Readys (the WAL and the snapshot file), split into
// a durable part and a tail of writes not yet synced.
//
// Writes append records (snapshot, entries, HardState) to the unsynced tail; sync() makes the whole tail durable, as
// an fsync of an append-only WAL does. A crash keeps a random prefix of the tail (the OS may have flushed some of it)
// and loses the rest; each record is atomic (a torn WAL record fails its CRC and is dropped on replay). The state
// machine's own durability is modelled by the member (it is durable once applied, like the backend's consistent
// index), not here.

import { MemoryStorage } from '../../src/raft/storage';
import type { Entry, HardState, Snapshot } from '../../src/raft/types';
import type { Xoshiro128 } from '../../src/util/prng';

export type DiskRecord =
  | { kind: 'snapshot'; snapshot: Snapshot }
  | { kind: 'entries'; entries: Entry[] }
  | { kind: 'hardState'; hardState: HardState };

export class SimDisk {
  /** The durable state: what survives any crash. */
  readonly durable = new MemoryStorage();
  private pending: DiskRecord[] = [];
  /** Counts, for statistics. */
  syncs = 0;
  lostRecords = 0;

  write(records: DiskRecord[]): void {
    for (const r of records) this.pending.push(r);
  }

  /** Makes every write so far durable (fsync of the WAL). */
  sync(): void {
    for (const r of this.pending) applyRecord(this.durable, r);
    this.pending = [];
    this.syncs++;
  }

  /** A crash: a random prefix of the unsynced writes reaches the disk, the rest is lost. */
  crash(rand: Xoshiro128): void {
    const keep = rand.intn(this.pending.length + 1);
    for (let i = 0; i < keep; i++) applyRecord(this.durable, this.pending[i]!);
    this.lostRecords += this.pending.length - keep;
    this.pending = [];
  }

  /**
   * Saves a snapshot of the applied state and releases the log up to compactIndex (etcd 3.4 storage.SaveSnap: a
   * snapshot record appended to the WAL and fsynced, which makes the whole WAL tail durable, then the snapshot file,
   * then the WAL segments it covers are released). Syncing the tail matters: it holds the HardState whose commit
   * covers the applied index, and a restart needs commit >= the snapshot index. Returns false if the durable log does
   * not reach the snapshot (which would mean applied entries were not durable).
   */
  compact(snapshot: Snapshot, compactIndex: number): boolean {
    this.sync();
    const d = this.durable;
    const i = snapshot.metadata.index;
    if (i <= d.snapshot().metadata.index) return true;
    if (i > d.lastIndex() || d.term(i) !== snapshot.metadata.term) return false;
    d.createSnapshot(i, snapshot.metadata.confState, snapshot.data);
    if (compactIndex >= d.firstIndex()) d.compact(compactIndex);
    return true;
  }

  get unsynced(): number {
    return this.pending.length;
  }

  /** A fresh MemoryStorage holding the durable state, for a restarted node. */
  load(): MemoryStorage {
    const s = new MemoryStorage();
    const snap = this.durable.snapshot();
    if (snap.metadata.index > 0) s.applySnapshot(snap);
    const first = this.durable.firstIndex();
    const last = this.durable.lastIndex();
    if (last >= first) s.append(this.durable.entries(first, last + 1, Number.MAX_SAFE_INTEGER));
    s.setHardState(this.durable.hardState);
    return s;
  }

  /** Whether the entry (index, term) is durable: in the log, or covered by the durable snapshot. */
  hasDurable(index: number, term: number): boolean {
    const snap = this.durable.snapshot().metadata;
    if (index <= snap.index) return true;
    if (index > this.durable.lastIndex()) return false;
    return this.durable.term(index) === term;
  }
}

function applyRecord(s: MemoryStorage, r: DiskRecord): void {
  switch (r.kind) {
    case 'snapshot':
      if (r.snapshot.metadata.index > s.snapshot().metadata.index) s.applySnapshot(r.snapshot);
      return;
    case 'entries':
      s.append(r.entries);
      return;
    case 'hardState':
      s.setHardState(r.hardState);
      return;
  }
}
