// The receiving side of a snapshot stream: an AsyncIterable<Buffer> fed by the connection, with flow control.
//
// The connection pushes each SNAPSHOT_CHUNK payload; the consumer (onSnapshot) iterates. When more than
// `highWaterBytes` are waiting, the queue asks the connection to stop reading, so the sender's writes back up
// through TCP into its own write()/drain backpressure; when the consumer has brought the backlog down to half of
// that, reading resumes. A snapshot of any size therefore holds at most about highWaterBytes plus one socket read
// in memory on the receiver.

import { assert } from '../../util/assert';

export interface ChunkQueueControl {
  pause(): void;
  resume(): void;
}

export class ChunkQueue implements AsyncIterable<Buffer> {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Invariant: queuedBytes === sum of chunks[i].length for i >= head. */
  private queuedBytes = 0;
  private ended = false;
  private error: Error | undefined;
  private paused = false;
  private iterated = false;
  /** The consumer stopped early (break / return()); later chunks are discarded. */
  private abandoned = false;
  private waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly highWaterBytes: number,
    private readonly control: ChunkQueueControl,
  ) {
    assert(highWaterBytes > 0, 'highWaterBytes must be positive');
  }

  /** True once end() was called: every chunk the sender meant to send has arrived. */
  get complete(): boolean {
    return this.ended;
  }

  push(chunk: Buffer): void {
    assert(!this.ended && this.error === undefined, 'chunk pushed after the end of the snapshot stream');
    if (this.abandoned || chunk.length === 0) return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: chunk, done: false });
      return;
    }
    this.chunks.push(chunk);
    this.queuedBytes += chunk.length;
    if (!this.paused && this.queuedBytes > this.highWaterBytes) {
      this.paused = true;
      this.control.pause();
    }
  }

  end(): void {
    if (this.ended || this.error !== undefined) return;
    this.ended = true;
    this.settleWaiter();
  }

  /** Ends the stream with an error: the consumer's next read rejects with it (after the chunks already queued). */
  fail(error: Error): void {
    if (this.ended || this.error !== undefined) return;
    this.error = error;
    this.settleWaiter();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    // One consumer only: a second iterator would silently see a subset of the data.
    assert(!this.iterated, 'a snapshot data stream can be iterated only once');
    this.iterated = true;
    return {
      next: () => this.next(),
      return: () => {
        this.abandon();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private next(): Promise<IteratorResult<Buffer>> {
    assert(this.waiter === undefined, 'concurrent next() on a snapshot data stream');
    const chunk = this.shift();
    if (chunk !== undefined) return Promise.resolve({ value: chunk, done: false });
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.ended || this.abandoned) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private shift(): Buffer | undefined {
    if (this.head === this.chunks.length) return undefined;
    const chunk = this.chunks[this.head];
    assert(chunk !== undefined, 'chunk queue index out of step');
    this.head++;
    this.queuedBytes -= chunk.length;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    if (this.paused && this.queuedBytes <= this.highWaterBytes / 2) {
      this.paused = false;
      this.control.resume();
    }
    return chunk;
  }

  /**
   * Drops what is queued and everything pushed from now on, and lets reading resume: the consumer is done (it
   * returned, or stopped iterating), and the rest of the stream must not stall the connection.
   */
  discardRest(): void {
    this.abandon();
  }

  private abandon(): void {
    this.abandoned = true;
    this.chunks = [];
    this.head = 0;
    this.queuedBytes = 0;
    if (this.paused) {
      this.paused = false;
      this.control.resume();
    }
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (w === undefined) return;
    this.waiter = undefined;
    if (this.error !== undefined) w.reject(this.error);
    else w.resolve({ value: undefined, done: true });
  }
}
