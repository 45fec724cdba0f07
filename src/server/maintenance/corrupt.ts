// Data corruption checks: a port of etcd 3.4.23 etcdserver/corrupt.go (CheckInitialHashKV, monitorKVHash,
// checkHashKV, getPeerHashKVs), on by default here.
//
// - Initial check (--experimental-initial-corrupt-check, default true here): a member restarting from existing
//   data, before it serves anything, hashes its store at its current revision (HashKV) and asks every peer for
//   its hash at that revision. A different hash at the same compact revision fails the start with
//   "<id> found data inconsistency with peers", as etcd does.
// - Periodic check (--experimental-corrupt-check-time, default 1m here, 0 turns it off): the leader hashes,
//   asks every peer for its hash at the same revision, confirms with a linearizable read that it is still the
//   leader and hashes again; then a peer ahead of the leader (revision or compact revision), or a peer with the
//   same compact revision and a different hash, raises the CORRUPT alarm through the log.
//
// Peers are asked over their client URLs (Maintenance.HashKV over gRPC), with the member's client TLS material;
// etcd 3.4 asks the same question over the peer URLs' HTTP API, which our framed peer transport does not have.
//
// Which member the alarm names: etcd 3.4.23 names member 0 ("it isn't clear which member's data is corrupted").
// We name the corrupted members when a majority of the cluster agrees on one hash at the same compact revision
// (the members outside that majority; etcd 3.6 does the same), and member 0 otherwise.
//
// Cost: a check hashes the whole key bucket on every member. Bounded: the next periodic check waits at least
// ten times as long as the last one took, so checking never takes more than about a tenth of one core.
//
// While CORRUPT is active the applier refuses Put and DeleteRange with "etcdserver: corrupt cluster" (etcd
// applierV3Corrupt; see Applier.alarmGate).

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadApi } from '../../api/proto';
import type { MvccStore } from '../../mvcc';
import type { TlsMaterial } from '../tls';
import { idToHex } from '../membership';
import type { MaintenanceClock } from './clock';
import type { MaintenanceCounters } from './counters';

/** The default period of the periodic check (etcd: 0, off). */
export const DEFAULT_CORRUPT_CHECK_TIME_MS = 60 * 1000;
/** A check may use at most 1/COST_FACTOR of the time: the next one waits at least this many times its duration. */
const COST_FACTOR = 10;

export interface PeerInfo {
  id: bigint;
  clientUrls: string[];
}

export interface PeerHashKv {
  id: bigint;
  endpoints: string[];
  resp?: { memberId: bigint; revision: number; compactRevision: number; hash: number };
  err?: string;
}

export interface CorruptCheckDeps {
  memberId: bigint;
  logger: Logger;
  store: Pick<MvccStore, 'hashByRev'>;
  /** Every member but this one, with its client URLs. */
  peers(): PeerInfo[];
  /** The number of voting members (for the majority that names a corrupted member). */
  clusterSize(): number;
  isLeader(): boolean;
  linearizableReadNotify(): Promise<void>;
  /** Propose Alarm ACTIVATE CORRUPT for `memberId` (0n: unknown member). */
  raiseCorrupt(memberId: bigint): Promise<void>;
  requestTimeoutMs: number;
  clientTls: TlsMaterial | undefined;
  clock: MaintenanceClock;
  counters: MaintenanceCounters;
}

const ERR_FUTURE_REV = 'etcdserver: mvcc: required revision is a future revision';
const ERR_COMPACTED = 'etcdserver: mvcc: required revision has been compacted';

export class CorruptionChecker {
  private readonly clients = new Map<string, grpc.Client & Record<string, any>>();
  /** HashKV calls in flight, cancelled by stop(). */
  private readonly calls = new Set<grpc.ClientUnaryCall>();
  private stopSignal: Promise<void>;
  private resolveStop!: () => void;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: CorruptCheckDeps) {
    this.stopSignal = new Promise((r) => (this.resolveStop = r));
  }

  /** etcd CheckInitialHashKV. Throws when a peer has a different hash at the same compact revision. */
  async checkInitialHashKV(): Promise<void> {
    const { logger, memberId } = this.deps;
    const id = idToHex(memberId);
    logger.info({ 'local-member-id': id, timeout: `${this.deps.requestTimeoutMs}ms` }, 'starting initial corruption check');
    this.deps.counters.corruptChecks++;
    let local;
    try {
      local = await this.deps.store.hashByRev(0);
    } catch (err) {
      throw new Error(`${id} failed to fetch hash (${err instanceof Error ? err.message : String(err)})`);
    }
    const { hash: h, rev, compactRev: crev } = local;
    const peers = await this.getPeerHashKVs(rev);
    let mismatch = 0;
    for (const p of peers) {
      if (p.resp) {
        this.deps.counters.corruptCheckPeersChecked++;
        const fields = {
          'local-member-id': id,
          'local-member-revision': rev,
          'local-member-compact-revision': crev,
          'local-member-hash': h,
          'remote-peer-id': idToHex(p.resp.memberId),
          'remote-peer-endpoints': p.endpoints,
          'remote-peer-revision': p.resp.revision,
          'remote-peer-compact-revision': p.resp.compactRevision,
          'remote-peer-hash': p.resp.hash,
        };
        if (h !== p.resp.hash) {
          if (crev === p.resp.compactRevision) {
            logger.warn(fields, 'found different hash values from remote peer');
            mismatch++;
          } else logger.warn(fields, 'found different compact revision values from remote peer');
        }
        continue;
      }
      const base = { 'local-member-id': id, 'local-member-revision': rev, 'local-member-compact-revision': crev, 'local-member-hash': h, 'remote-peer-id': idToHex(p.id), 'remote-peer-endpoints': p.endpoints, error: p.err };
      if (p.err === ERR_FUTURE_REV) logger.warn(base, 'cannot fetch hash from slow remote peer');
      else if (p.err === ERR_COMPACTED) logger.warn(base, 'cannot fetch hash from remote peer; local member is behind');
    }
    if (mismatch > 0) {
      this.deps.counters.corruptCheckFailures++;
      throw new Error(`${id} found data inconsistency with peers`);
    }
    logger.info({ 'local-member-id': id }, 'initial corruption checking passed; no corruption');
  }

  /** etcd monitorKVHash: every `periodMs`, on the leader only. */
  start(periodMs: number): void {
    if (periodMs <= 0 || this.loop) return;
    this.deps.logger.info({ 'local-member-id': idToHex(this.deps.memberId), interval: `${periodMs}ms` }, 'enabled corruption checking');
    this.loop = (async () => {
      let wait = periodMs;
      for (;;) {
        if ((await this.deps.clock.sleep(wait, this.stopSignal)) === 'stopped') return;
        wait = periodMs;
        if (!this.deps.isLeader()) continue;
        const started = this.deps.clock.now();
        try {
          await this.checkHashKV();
        } catch (err) {
          if (this.stopped) return;
          this.deps.logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'failed to check hash KV');
        }
        const took = this.deps.clock.now() - started;
        if (took * COST_FACTOR > periodMs) {
          wait = took * COST_FACTOR;
          this.deps.logger.info({ took: `${Math.round(took)}ms`, 'next-check-in': `${Math.round(wait)}ms` }, 'corruption check is slow; spacing out the next one');
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resolveStop();
    for (const c of this.calls) c.cancel();
    await this.loop;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** etcd checkHashKV. Resolves to the member IDs it raised CORRUPT for (0n: unknown), empty when consistent. */
  async checkHashKV(): Promise<bigint[]> {
    const { logger, store, memberId } = this.deps;
    this.deps.counters.corruptChecks++;
    const first = await store.hashByRev(0);
    const { hash: h, rev, compactRev: crev } = first;
    const peers = await this.getPeerHashKVs(rev);
    await withTimeout(this.deps.linearizableReadNotify(), this.deps.requestTimeoutMs);
    const second = await store.hashByRev(0);
    const { hash: h2, rev: rev2, compactRev: crev2 } = second;

    const suspects = new Set<bigint>();
    if (h2 !== h && rev2 === rev && crev === crev2) {
      logger.warn({ 'revision-1': rev, 'compact-revision-1': crev, 'hash-1': h, 'revision-2': rev2, 'compact-revision-2': crev2, 'hash-2': h2 }, 'found hash mismatch');
      suspects.add(memberId);
    }
    // Hashes at the leader's first compact revision, by member: the vote that names the corrupted members.
    const votes = new Map<bigint, number>([[memberId, h]]);
    let checked = 0;
    for (const p of peers) {
      if (!p.resp) continue;
      checked++;
      const pid = idToHex(p.id);
      // The leader expects a follower's latest revision to be at most its own.
      if (p.resp.revision > rev2) {
        logger.warn({ 'leader-revision': rev2, 'follower-revision': p.resp.revision, 'follower-peer-id': pid }, "revision from follower must be less than or equal to leader's");
        suspects.add(p.id);
      }
      if (p.resp.compactRevision > crev2) {
        logger.warn({ 'leader-compact-revision': crev2, 'follower-compact-revision': p.resp.compactRevision, 'follower-peer-id': pid }, "compact revision from follower must be less than or equal to leader's");
        suspects.add(p.id);
      }
      if (p.resp.compactRevision === crev) {
        votes.set(p.id, p.resp.hash);
        if (p.resp.hash !== h) {
          logger.warn({ 'leader-compact-revision': crev2, 'leader-hash': h, 'follower-compact-revision': p.resp.compactRevision, 'follower-hash': p.resp.hash, 'follower-peer-id': pid }, 'same compact revision then hashes must match');
          suspects.add(p.id);
        }
      }
    }
    this.deps.counters.corruptCheckPeersChecked += checked;
    logger.info({ 'number-of-peers-checked': checked }, 'finished peer corruption check');
    if (suspects.size === 0) return [];

    this.deps.counters.corruptCheckFailures++;
    const blamed = this.blame(votes, suspects);
    for (const id of blamed) {
      logger.warn({ 'local-member-id': idToHex(memberId), 'corrupted-member-id': idToHex(id) }, 'raising CORRUPT alarm');
      this.deps.counters.corruptAlarmsRaised++;
      await this.deps.raiseCorrupt(id);
    }
    return blamed;
  }

  /**
   * The members to name in the alarm: those whose hash differs from a hash held by a majority of the cluster,
   * when such a majority exists; otherwise member 0 (etcd 3.4.23: it isn't clear which member is corrupted).
   */
  private blame(votes: Map<bigint, number>, suspects: Set<bigint>): bigint[] {
    const quorum = Math.floor(this.deps.clusterSize() / 2) + 1;
    const byHash = new Map<number, bigint[]>();
    for (const [id, hash] of votes) byHash.set(hash, [...(byHash.get(hash) ?? []), id]);
    for (const ids of byHash.values()) {
      if (ids.length < quorum) continue;
      const majority = new Set(ids);
      const minority = [...votes.keys()].filter((id) => !majority.has(id));
      for (const s of suspects) if (!majority.has(s) && !minority.includes(s)) minority.push(s);
      if (minority.length > 0) return minority.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    return [0n];
  }

  /** etcd getPeerHashKVs: every peer in turn, each of its endpoints until one answers. */
  async getPeerHashKVs(rev: number): Promise<PeerHashKv[]> {
    const peers = this.deps.peers().filter((p) => p.clientUrls.length > 0);
    return Promise.all(
      peers.map(async (p): Promise<PeerHashKv> => {
        let lastErr = '';
        for (const ep of p.clientUrls) {
          try {
            const r = await this.hashKv(ep, rev);
            return { id: p.id, endpoints: p.clientUrls, resp: r };
          } catch (err) {
            const e = err as { details?: string; message?: string };
            lastErr = e.details ?? e.message ?? String(err);
            this.deps.logger.warn({ 'local-member-id': idToHex(this.deps.memberId), 'requested-revision': rev, 'remote-peer-endpoint': ep, error: lastErr }, 'failed hash kv request');
          }
        }
        return { id: p.id, endpoints: p.clientUrls, err: lastErr };
      }),
    );
  }

  private hashKv(url: string, rev: number): Promise<NonNullable<PeerHashKv['resp']>> {
    const c = this.client(url);
    if (this.stopped) return Promise.reject(new Error('corruption checker stopped'));
    return new Promise((resolve, reject) => {
      const call: grpc.ClientUnaryCall = c.HashKV({ revision: rev }, { deadline: Date.now() + this.deps.requestTimeoutMs }, (err: grpc.ServiceError | null, res: any) => {
        this.calls.delete(call);
        if (err) return reject(err);
        resolve({ memberId: BigInt(res.header.member_id), revision: Number(res.header.revision), compactRevision: Number(res.compact_revision), hash: Number(res.hash) });
      });
      this.calls.add(call);
    });
  }

  private client(url: string): grpc.Client & Record<string, any> {
    let c = this.clients.get(url);
    if (c === undefined) {
      const u = new URL(url);
      const secure = u.protocol === 'https:' || u.protocol === 'unixs:';
      const tls = this.deps.clientTls;
      const creds = secure
        ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.clientKey ?? null, tls?.clientCert ?? null, tls?.selfSigned ? { checkServerIdentity: () => undefined } : undefined)
        : grpc.credentials.createInsecure();
      const address = u.protocol.startsWith('unix') ? `unix:${u.host}${u.pathname}` : u.host;
      const api = loadApi().grpcObject as any;
      c = new api.etcdserverpb.Maintenance(address, creds) as grpc.Client & Record<string, any>;
      this.clients.set(url, c);
    }
    return c;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('context deadline exceeded')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
