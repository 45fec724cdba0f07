// etcdserverpb.Watch (etcd v3rpc/watch.go). One ordered queue per gRPC stream carries every response
// (created, events, progress, cancel), so a progress notification can never overtake the events it covers
// and no event is ever sent before its watch's `created` response.
//
// Flow control: the MVCC watch stream hands us responses through send(); when our queue is full we refuse
// (return false) and MVCC keeps the watcher as a victim and retries later, so a slow client never stalls
// writes or other watchers. The queue drains into the gRPC stream, waiting for 'drain' when it pushes back.

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdServer } from '../etcd-server';
import type { WatchResponse as MvccWatchResponse, WatchStream } from '../../mvcc';
import { EventType, type KeyValue, type MvccEvent } from '../../mvcc/types';
import type { PbEvent, WatchCreateRequest, WatchRequest, WatchResponse } from '../../api/types';
import { num, toPbKv } from '../apply';
import { failpoint } from '../../util/failpoints';

/** Responses queued per stream before MVCC is told to hold back (etcd: chanBufLen = 128). */
const QUEUE_LIMIT = 128;

const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;

interface WatchOptions {
  prevKv: boolean;
  fragment: boolean;
  progressNotify: boolean;
  /** No events were sent since the last progress tick (etcd: sws.progress[id]). */
  progressDue: boolean;
}

export class WatchServer {
  private readonly streams = new Set<ServerWatchStream>();
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly srv: EtcdServer,
    private readonly logger: Logger,
    private readonly opts: { maxRequestBytes: number; progressNotifyIntervalMs: number },
  ) {
    if (opts.progressNotifyIntervalMs > 0) {
      this.progressTimer = setInterval(() => {
        for (const s of this.streams) s.progressTick();
      }, opts.progressNotifyIntervalMs);
      this.progressTimer.unref();
    }
  }

  service() {
    return {
      Watch: (call: grpc.ServerDuplexStream<WatchRequest, WatchResponse>) => {
        const s = new ServerWatchStream(this.srv, call, this.opts.maxRequestBytes, this.logger);
        this.streams.add(s);
        const done = () => {
          if (this.streams.delete(s)) s.close();
        };
        call.on('end', () => {
          done();
          call.end();
        });
        call.on('error', done);
        call.on('close', done);
        call.on('cancelled', done);
      },
    };
  }

  /** Called after MVCC's watcher sync: retry deferred RequestProgress answers. */
  afterSync(): void {
    for (const s of this.streams) s.retryDeferredProgress();
  }

  close(): void {
    if (this.progressTimer) clearInterval(this.progressTimer);
    for (const s of this.streams) {
      s.close();
      s.end();
    }
    this.streams.clear();
  }
}

class ServerWatchStream {
  private readonly ws: WatchStream;
  private readonly watches = new Map<number, WatchOptions>();
  private nextId = 0;
  // Each slot resolves to the response to write; slots are written strictly in queue order.
  private queue: Array<Promise<WatchResponse[]> | WatchResponse[]> = [];
  private writing = false;
  private closed = false;
  private deferredProgress = false;

  constructor(
    private readonly srv: EtcdServer,
    private readonly call: grpc.ServerDuplexStream<WatchRequest, WatchResponse>,
    private readonly maxRequestBytes: number,
    private readonly logger: Logger,
  ) {
    this.ws = srv.store.newWatchStream((resp) => this.onMvccResponse(resp));
    call.on('data', (req: WatchRequest) => {
      try {
        this.onRequest(req);
      } catch (err) {
        this.logger.warn({ error: String(err) }, 'failed to handle watch request');
      }
    });
  }

  private onRequest(req: WatchRequest): void {
    if (this.closed) return;
    if (req.create_request) this.create(req.create_request);
    else if (req.cancel_request) {
      const id = num(req.cancel_request.watch_id);
      if (this.ws.cancel(id)) {
        this.watches.delete(id);
        this.push([{ ...this.base(this.srv.store.currentRev), watch_id: id, canceled: true }]);
      }
    } else if (req.progress_request) {
      if (!this.ws.requestProgressAll()) this.deferredProgress = true;
    }
  }

  private create(c: WatchCreateRequest): void {
    // Mirrors etcd watch.go recvLoop: an empty key is "\0" (the smallest key), an empty range_end means a
    // single key, and range_end "\0" means every key >= key.
    const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
    let end: Buffer | null = c.range_end.length === 0 ? null : c.range_end;
    if (end && end.length === 1 && end[0] === 0) end = Buffer.alloc(0);
    const wsrev = this.srv.store.currentRev;
    let rev = num(c.start_revision);
    if (rev === 0) rev = wsrev + 1;
    let id = num(c.watch_id);
    let err: string | undefined;
    if (end && end.length > 0 && Buffer.compare(key, end) >= 0) err = 'mvcc: watcher range is empty';
    else if (id !== 0) {
      if (this.watches.has(id)) err = 'mvcc: duplicate watch ID provided on the WatchStream';
    } else {
      while (this.watches.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    if (err !== undefined) {
      this.push([{ ...this.base(wsrev), watch_id: -1, created: true, canceled: true, cancel_reason: err }]);
      return;
    }
    this.watches.set(id, { prevKv: c.prev_kv, fragment: c.fragment, progressNotify: c.progress_notify, progressDue: true });
    // The created response is queued before the watch exists in MVCC, so nothing can precede it.
    this.push([{ ...this.base(wsrev), watch_id: id, created: true }]);
    this.ws.watch({
      id,
      key,
      end,
      startRev: rev,
      filterPut: c.filters.includes(FILTER_NOPUT),
      filterDelete: c.filters.includes(FILTER_NODELETE),
    });
    if (rev <= this.srv.store.currentRev) this.srv.kickWatchSync();
  }

  private onMvccResponse(r: MvccWatchResponse): boolean {
    if (this.closed) return true; // drop: the stream is gone
    if (this.queue.length >= QUEUE_LIMIT) return false;
    const opts = this.watches.get(r.watchId);
    if (r.events.length > 0 && opts) opts.progressDue = false;
    const canceled = r.compactRevision !== 0;
    if (canceled) this.watches.delete(r.watchId);
    const head: WatchResponse = {
      ...this.base(r.revision),
      watch_id: r.watchId,
      compact_revision: r.compactRevision,
      canceled,
      events: [],
    };
    if (r.events.length === 0) {
      this.push([head]);
      return true;
    }
    const needPrev = opts?.prevKv ?? false;
    const fragment = opts?.fragment ?? false;
    if (!needPrev) {
      head.events = r.events.map((e) => toPbEvent(e));
      this.push(fragment ? this.fragments(head) : [head]);
      return true;
    }
    this.push(
      this.withPrevKvs(r.events).then((events) => {
        head.events = events;
        return fragment ? this.fragments(head) : [head];
      }),
    );
    return true;
  }

  /** etcd fetches prev_kv when sending: the key at mod_revision - 1, for every event that is not a create.
   * A prev_kv compacted away is left out, as etcd does. */
  private async withPrevKvs(events: MvccEvent[]): Promise<PbEvent[]> {
    const wanted = events.filter((e) => !(e.type === EventType.Put && e.kv.createRevision === e.kv.modRevision));
    const prevs = wanted.length > 0 ? await this.srv.store.prevKvs(wanted) : [];
    const byEvent = new Map<MvccEvent, KeyValue | null>();
    wanted.forEach((e, i) => byEvent.set(e, prevs[i] ?? null));
    return events.map((e) => {
      const ev = toPbEvent(e);
      const prev = byEvent.get(e);
      if (prev) ev.prev_kv = toPbKv(prev);
      return ev;
    });
  }

  /** etcd sendFragments: split into responses below max-request-bytes, all but the last marked fragment. */
  private fragments(wr: WatchResponse): WatchResponse[] {
    const size = (evs: PbEvent[]) => evs.reduce((n, e) => n + eventSize(e), 64);
    if (wr.events.length < 2 || size(wr.events) < this.maxRequestBytes) return [wr];
    const out: WatchResponse[] = [];
    let cur: PbEvent[] = [];
    let curSize = 64;
    for (const e of wr.events) {
      const s = eventSize(e);
      if (cur.length > 0 && curSize + s >= this.maxRequestBytes) {
        out.push({ ...wr, events: cur, fragment: true });
        cur = [];
        curSize = 64;
      }
      cur.push(e);
      curSize += s;
    }
    out.push({ ...wr, events: cur, fragment: false });
    return out;
  }

  progressTick(): void {
    for (const [id, o] of this.watches) {
      if (!o.progressNotify) continue;
      if (o.progressDue) this.ws.requestProgress(id);
      o.progressDue = true;
    }
  }

  retryDeferredProgress(): void {
    if (this.deferredProgress && !this.closed && this.ws.requestProgressAll()) this.deferredProgress = false;
  }

  private base(rev: number): WatchResponse {
    return {
      header: this.srv.header(rev),
      watch_id: 0,
      created: false,
      canceled: false,
      compact_revision: 0,
      cancel_reason: '',
      fragment: false,
      events: [],
    };
  }

  private push(slot: Promise<WatchResponse[]> | WatchResponse[]): void {
    this.queue.push(slot);
    if (!this.writing) void this.drain();
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const resps = await this.queue[0]!;
        for (const r of resps) {
          // etcd's sendLoop has the same point before each Send: a slow send path for the fault tests (F16).
          const fp = failpoint('beforeSendWatchResponse');
          if (fp) await fp;
          if (this.closed) return;
          if (!this.call.write(r)) await new Promise<void>((res) => this.call.once('drain', res));
        }
        this.queue.shift();
      }
    } catch (err) {
      this.logger.warn({ error: String(err) }, 'watch stream send failed');
      this.close();
    } finally {
      this.writing = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close();
    this.queue = [];
  }

  end(): void {
    try {
      this.call.end();
    } catch {
      // already closed
    }
  }
}

function toPbEvent(e: MvccEvent): PbEvent {
  if (e.type === EventType.Delete) {
    return { type: 1, kv: { key: e.kv.key, create_revision: 0, mod_revision: e.kv.modRevision, version: 0, value: Buffer.alloc(0), lease: 0 } };
  }
  return { type: 0, kv: toPbKv(e.kv) };
}

function eventSize(e: PbEvent): number {
  let n = 32 + e.kv.key.length + e.kv.value.length;
  if (e.prev_kv) n += 32 + e.prev_kv.key.length + e.prev_kv.value.length;
  return n;
}
