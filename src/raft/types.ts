// Types shared by the Raft core, the WAL and the node loop. Terms and indexes are JavaScript numbers
// (safe up to 2^53, far beyond any reachable log); member IDs are bigint (etcd's uint64 IDs).

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

/** One Raft log entry. `data` is opaque to Raft: the server's encoded request (empty for a leader's no-op). */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Buffer;
}

/** The state a member must persist before it answers any message (Raft paper, Figure 2). */
export interface HardState {
  term: number;
  /** The member voted for in `term`, 0n for none. */
  vote: bigint;
  commit: number;
}

export const emptyHardState: HardState = Object.freeze({ term: 0, vote: 0n, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0n && hs.commit === 0;
}

/** Position of a snapshot in the log: the last index (and its term) that the snapshot covers. */
export interface SnapshotMeta {
  index: number;
  term: number;
}
