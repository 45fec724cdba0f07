// The lease workload for the lease-expiry check (F17, ../checker/lease.ts): short-TTL leases, some kept alive for a
// while and then left to lapse, some left to lapse at once, watched by LeaseTimeToLive polls until they are gone.
//
// No keys are attached. A key would cost a revision when attached and another when its lease expires, and the KV
// history's model checks every header revision, so revisions no recorded request explains would break the
// linearizability check of the `k/` workload. A lease without keys changes no revision, neither when granted nor
// when it expires (etcd: a revoke that deletes nothing leaves the revision alone), and its expiry is just as
// visible: TimeToLive answers TTL -1 and KeepAlive TTL 0.
//
// Every call is timed with the run's monotonic clock. Renewals go over one KeepAlive stream per member (answers come
// in request order); a renewal that gets no answer is recorded with `ret` = the time it was given up on, the latest
// time it could have taken effect.

import { rawClient } from '../../helpers/member';
import type { LeaseKeepAlive, LeaseRecord } from '../checker/lease';
import { sleep, unary } from './cluster';
import type { Rng } from './rng';
import type { Clock } from './workload';

export interface LeaseWorkloadOptions {
  endpoints: string[];
  names: string[];
  clock: Clock;
  rng: Rng;
  /** Granted TTL range, seconds. */
  ttlSeconds: [number, number];
  /** Leases not yet seen gone at once, at most. */
  maxLive: number;
  timeoutMs: number;
}

interface Tracked {
  record: LeaseRecord;
  /** Keep renewing until then (run ms); 0: never renewed. */
  keepUntil: number;
  gone: boolean;
}

interface KeepAliveStream {
  stream: any;
  /** Renewals sent and not answered yet, in order (answers come in request order). */
  pending: Array<{ k: LeaseKeepAlive; timer: NodeJS.Timeout }>;
}

export class LeaseWorkload {
  readonly leases: LeaseRecord[] = [];
  /** The run time at which each new Raft term was first seen in a response header: a possible new leader. */
  readonly newTerms: Array<{ time: number; term: number }> = [];
  private readonly tracked: Tracked[] = [];
  private readonly clients: any[];
  private readonly streams: Array<KeepAliveStream | undefined>;
  /** Granting and renewing have stopped; polls go on. */
  private draining = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private loops: Promise<void>[] = [];
  private maxTerm = 0;

  constructor(private readonly o: LeaseWorkloadOptions) {
    this.clients = o.endpoints.map((e) => rawClient(e, 'etcdserverpb', 'Lease'));
    this.streams = o.endpoints.map(() => undefined);
  }

  start(): void {
    this.loops = [this.grantLoop(), this.renewLoop(), this.observeLoop()];
  }

  /** Stops granting and renewing; polls the leases already lapsed for `drainMs` more so their expiry is seen.
   * Calling it again waits for the first call. */
  stop(drainMs = 0): Promise<void> {
    this.stopped ??= this.shutdown(drainMs);
    return this.stopped;
  }

  private async shutdown(drainMs: number): Promise<void> {
    const now = this.o.clock.now();
    for (const t of this.tracked) t.keepUntil = Math.min(t.keepUntil, now);
    this.draining = true;
    await sleep(drainMs);
    this.stopping = true;
    await Promise.all(this.loops);
    const end = this.o.clock.now();
    for (const s of this.streams) {
      if (!s) continue;
      for (const p of s.pending.splice(0)) {
        clearTimeout(p.timer);
        p.k.ret = end;
      }
      s.stream.cancel();
    }
    for (const c of this.clients) c.close();
  }

  private noteTerm(header: any): void {
    const term = Number(header?.raft_term ?? 0);
    if (term > this.maxTerm) {
      if (this.maxTerm > 0) this.newTerms.push({ time: this.o.clock.now(), term });
      this.maxTerm = term;
    }
  }

  private async grantLoop(): Promise<void> {
    const { rng, clock } = this.o;
    while (!this.stopping && !this.draining) {
      await sleep(rng.int(400, 1000));
      if (this.stopping || this.draining || this.tracked.filter((t) => !t.gone).length >= this.o.maxLive) continue;
      const m = rng.int(0, this.o.endpoints.length - 1);
      const ttl = rng.int(this.o.ttlSeconds[0], this.o.ttlSeconds[1]);
      // Half are renewed for 2 to 8 s before they lapse, half lapse at once.
      const keepMs = rng.next() < 0.5 ? rng.int(2000, 8000) : 0;
      const grantCall = clock.now();
      try {
        const r = await unary(this.clients[m], 'LeaseGrant', { TTL: ttl, ID: 0 }, this.o.timeoutMs);
        const grantRet = clock.now();
        this.noteTerm(r.header);
        const record: LeaseRecord = { id: String(r.ID), ttlMs: Number(r.TTL) * 1000, grantCall, grantRet, keepAlives: [], observations: [] };
        this.leases.push(record);
        this.tracked.push({ record, keepUntil: keepMs ? grantRet + keepMs : 0, gone: false });
      } catch {
        // A grant that failed may still exist; it is simply not tracked (it expires unobserved).
      }
    }
  }

  private keepAliveStream(m: number): KeepAliveStream {
    let s = this.streams[m];
    if (s) return s;
    const stream = this.clients[m].LeaseKeepAlive();
    const ks: KeepAliveStream = { stream, pending: [] };
    const fail = () => {
      if (this.streams[m] === ks) this.streams[m] = undefined;
      for (const p of ks.pending.splice(0)) {
        clearTimeout(p.timer);
        p.k.ret = this.o.clock.now();
      }
    };
    stream.on('data', (r: any) => {
      const p = ks.pending.shift();
      if (!p) return;
      clearTimeout(p.timer);
      p.k.ret = this.o.clock.now();
      p.k.ttl = Number(r.TTL);
      this.noteTerm(r.header);
    });
    stream.on('error', fail);
    stream.on('end', fail);
    this.streams[m] = s = ks;
    return s;
  }

  private async renewLoop(): Promise<void> {
    const { rng, clock } = this.o;
    while (!this.stopping) {
      await sleep(200);
      const now = clock.now();
      for (const t of this.tracked) {
        if (t.gone || now >= t.keepUntil) continue;
        // Renew about three times per TTL, as clients do (etcd's client renews at TTL/3).
        const last = t.record.keepAlives[t.record.keepAlives.length - 1]?.call ?? t.record.grantRet;
        if (now - last < t.record.ttlMs / 3) continue;
        const m = rng.int(0, this.o.endpoints.length - 1);
        const ks = this.keepAliveStream(m);
        const k: LeaseKeepAlive = { call: now, ret: now };
        t.record.keepAlives.push(k);
        const timer = setTimeout(() => {
          // No answer in time: give up on this stream (later answers could not be matched any more).
          const i = ks.pending.findIndex((p) => p.k === k);
          if (i < 0) return;
          ks.stream.cancel();
        }, this.o.timeoutMs);
        ks.pending.push({ k, timer });
        try {
          ks.stream.write({ ID: t.record.id });
        } catch {
          k.ret = clock.now();
        }
      }
    }
  }

  private async observeLoop(): Promise<void> {
    const { rng, clock } = this.o;
    while (!this.stopping) {
      await sleep(250);
      for (const t of this.tracked) {
        if (t.gone || this.stopping) continue;
        const m = rng.int(0, this.o.endpoints.length - 1);
        const call = clock.now();
        try {
          const r = await unary(this.clients[m], 'LeaseTimeToLive', { ID: t.record.id, keys: false }, this.o.timeoutMs);
          this.noteTerm(r.header);
          const present = Number(r.TTL) !== -1;
          t.record.observations.push({ call, ret: clock.now(), present, member: this.o.names[m]! });
          if (!present) t.gone = true;
        } catch {
          // No answer: no evidence either way.
        }
        if (t.record.keepAlives.some((k) => k.ttl === 0)) t.gone = true;
      }
    }
  }
}
