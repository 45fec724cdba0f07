// Majority quorums (etcd raft quorum/majority.go, quorum.go). Joint configurations (quorum/joint.go) are not ported:
// only single-step membership changes are supported, so the active configuration is always one majority.

/** The outcome of a vote (etcd quorum.VoteResult). */
export enum VoteResult {
  /** Neither a quorum of yes nor of no has been reached yet. */
  VotePending = 1,
  /** A quorum voted no. */
  VoteLost = 2,
  /** A quorum voted yes. */
  VoteWon = 3,
}

/** The committed index of an empty configuration: "everything" (etcd returns math.MaxUint64). */
export const infiniteIndex = Number.MAX_SAFE_INTEGER;

/** Looks up the index a voter has acknowledged (its Progress.match); undefined when unknown. */
export type AckedIndexer = (id: bigint) => number | undefined;

/** A set of voter IDs that decides by majority (etcd quorum.MajorityConfig). */
export class MajorityConfig {
  readonly ids: Set<bigint>;

  constructor(ids: Iterable<bigint> = []) {
    this.ids = new Set(ids);
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: bigint): boolean {
    return this.ids.has(id);
  }

  /** The IDs sorted ascending. */
  slice(): bigint[] {
    return [...this.ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** "(1 2 3)", as etcd prints a MajorityConfig. */
  toString(): string {
    return `(${this.slice().join(' ')})`;
  }

  clone(): MajorityConfig {
    return new MajorityConfig(this.ids);
  }

  /**
   * The largest index acknowledged by a majority (etcd CommittedIndex): sort the acked indexes (unknown ones count
   * as 0) and take the one a quorum has reached. An empty configuration commits everything, so that it behaves as
   * the neutral element of a joint quorum.
   */
  committedIndex(acked: AckedIndexer): number {
    const n = this.ids.size;
    if (n === 0) return infiniteIndex;
    const srt: number[] = [];
    for (const id of this.ids) srt.push(acked(id) ?? 0);
    srt.sort((a, b) => a - b);
    // From the end of the sorted indexes, move n/2+1 to the left: that index is on a quorum.
    const pos = n - (Math.floor(n / 2) + 1);
    return srt[pos]!;
  }

  /**
   * The outcome of an election given yes (true) and no (false) votes (etcd VoteResult). By convention an empty
   * configuration wins.
   */
  voteResult(votes: ReadonlyMap<bigint, boolean>): VoteResult {
    if (this.ids.size === 0) return VoteResult.VoteWon;
    let yes = 0;
    let no = 0;
    let missing = 0;
    for (const id of this.ids) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) yes++;
      else no++;
    }
    const q = Math.floor(this.ids.size / 2) + 1;
    if (yes >= q) return VoteResult.VoteWon;
    if (yes + missing >= q) return VoteResult.VotePending;
    return VoteResult.VoteLost;
  }

  /**
   * A multi-line picture of the acked indexes (etcd MajorityConfig.Describe), for datadriven tests: one line per
   * voter, with a bar whose length is the number of voters with a smaller index.
   */
  describe(acked: AckedIndexer): string {
    if (this.ids.size === 0) return '<empty majority quorum>';
    const n = this.ids.size;
    const info = [...this.ids].map((id) => {
      const idx = acked(id);
      return { id, idx: idx ?? 0, ok: idx !== undefined, bar: 0 };
    });
    info.sort((a, b) => (a.idx === b.idx ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.idx - b.idx));
    for (let i = 1; i < info.length; i++) {
      if (info[i - 1]!.idx < info[i]!.idx) info[i]!.bar = i;
    }
    info.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let buf = ' '.repeat(n) + '    idx\n';
    for (const t of info) {
      if (!t.ok) buf += '?' + ' '.repeat(n);
      else buf += 'x'.repeat(t.bar) + '>' + ' '.repeat(n - t.bar);
      buf += ` ${String(t.idx).padStart(5)}    (id=${t.id})\n`;
    }
    return buf;
  }
}
