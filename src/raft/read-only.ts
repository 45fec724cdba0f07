// Linearizable reads without log writes (etcd raft read_only.go; Raft thesis §6.4, "ReadIndex").
//
// With ReadOnlySafe, the leader records its commit index when a read request arrives, broadcasts a heartbeat carrying
// the request's context, and answers once a quorum has acknowledged that heartbeat: only then does it know it was
// still the leader when the request arrived, so the recorded commit index covers every write acknowledged before.
// Requests are answered in arrival order; an ack for a later request also confirms all earlier ones (batching).

import { assert } from '../util/assert';
import type { Message } from './types';

/** How read-only requests are served (etcd ReadOnlyOption). */
export enum ReadOnlyOption {
  /** Confirm leadership with a quorum of heartbeat acks per batch of requests. The default. */
  Safe = 'ReadOnlySafe',
  /**
   * Rely on the leader lease (check-quorum): answer immediately. Unsafe if clocks drift unboundedly; requires
   * checkQuorum.
   */
  LeaseBased = 'ReadOnlyLeaseBased',
}

/** A read request answered: reads may be served once the applied index reaches `index`. */
export interface ReadState {
  index: number;
  requestCtx: Buffer;
}

export interface ReadIndexStatus {
  /** The original MsgReadIndex (from the local node, from === 0n or the leader itself, or forwarded by a follower). */
  req: Message;
  /** The leader's commit index when the request arrived. */
  index: number;
  /** Members that acknowledged the heartbeat carrying this request's context. */
  acks: Map<bigint, boolean>;
}

/** The pending read requests of a leader, keyed by request context. */
export class ReadOnly {
  readonly pendingReadIndex = new Map<string, ReadIndexStatus>();
  // Invariant: readIndexQueue holds exactly the keys of pendingReadIndex, in arrival order.
  readIndexQueue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  /** Records a read request that arrived when the commit index was `index`. Duplicate contexts are ignored. */
  addRequest(index: number, m: Message): void {
    const s = contextKey(m.entries[0]!.data);
    if (this.pendingReadIndex.has(s)) return;
    this.pendingReadIndex.set(s, { index, req: m, acks: new Map() });
    this.readIndexQueue.push(s);
  }

  /** Records id's acknowledgement of the heartbeat carrying `context`; returns the acks so far (undefined if unknown). */
  recvAck(id: bigint, context: Buffer): Map<bigint, boolean> | undefined {
    const rs = this.pendingReadIndex.get(contextKey(context));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * Dequeues the requests up to and including the one whose context `m` acknowledges, and returns them in order;
   * returns [] if that context is not pending.
   */
  advance(m: Message): ReadIndexStatus[] {
    const ctx = contextKey(m.context);
    const i = this.readIndexQueue.indexOf(ctx);
    if (i < 0) return [];
    const done = this.readIndexQueue.slice(0, i + 1);
    this.readIndexQueue = this.readIndexQueue.slice(i + 1);
    const rss: ReadIndexStatus[] = [];
    for (const key of done) {
      const rs = this.pendingReadIndex.get(key);
      assert(rs !== undefined, 'cannot find corresponding read state from pending map');
      rss.push(rs);
      this.pendingReadIndex.delete(key);
    }
    return rss;
  }

  /** The context of the newest pending request, or undefined. */
  lastPendingRequestCtx(): Buffer | undefined {
    const last = this.readIndexQueue[this.readIndexQueue.length - 1];
    return last === undefined ? undefined : Buffer.from(last, 'latin1');
  }
}

/** Request contexts are compared as byte strings (etcd uses string(bytes)). */
function contextKey(b: Buffer): string {
  return b.toString('latin1');
}
