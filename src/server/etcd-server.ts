// The member's core (etcd's EtcdServer): it owns the Raft node loop and with it all of Raft's I/O, the apply
// pipeline, proposals and their waiters, linearizable reads, and lease expiry on the leader.
//
// Node loop, for each Ready (style.md; etcd raftNode.start):
//   1. (leader) send messages — none yet with a single member;
//   2. persist hard state and entries to the WAL (one write + fdatasync for everything in the Ready: the
//      group commit, since every proposal that arrived while the previous fsync ran is in this Ready);
//   3. append them to the in-memory stable log;
//   4. hand committed entries to the apply worker (applies run in order, pipelined with the next persist);
//   5. answer read states; advance.
// Every await is a suspension point: state is changed synchronously and preconditions re-checked after.

import path from 'node:path';
import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import { Wal } from '../wal';
import { MvccStore } from '../mvcc';
import { RawNode, MemoryStorage, StateType, type Ready, type Entry, ProposalDroppedError } from '../raft';
import { Xoshiro128 } from '../util/prng';
import { isDomainError } from '../util/errors';
import { assert } from '../util/assert';
import { Lessor } from '../lease/lessor';
import { Applier, type ApplyResult, decodeLease } from './apply';
import { decodeRequest, encodeRequest, IdGenerator, type InternalRequest } from './request';
import { computeClusterId, computeMemberId, parseInitialCluster, idToHex, type Member } from './membership';
import { deferred, type Deferred, IndexWaiter } from './wait';
import { ErrNoLeader, ErrRequestTooLarge, ErrStopped, ErrTimeout, ErrTooManyRequests, serverError } from './errors';
import type { ResponseHeader } from '../api/types';
import { SERVER_VERSION, CLUSTER_VERSION } from './version';

/** etcd: maxGapBetweenApplyAndCommitIndex. */
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** etcd: leaseRevokeRate = 1000 per second, checked every 500 ms. */
const LEASE_REVOKE_PER_ROUND = 500;
const LEASE_CHECK_INTERVAL_MS = 500;
/** etcd: watchable store's syncWatchersLoop and syncVictimsLoop run every 100 ms. */
const WATCH_SYNC_INTERVAL_MS = 100;
const DB_SIZE_REFRESH_MS = 1000;
/** etcd: DefaultQuotaBytes, used when --quota-backend-bytes is 0. */
const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd: grpcOverheadBytes, added on top of --max-request-bytes for the gRPC receive limit. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** Bytes of the files directly in dir (the level database): etcd's dbSize is the physical size. */
async function directorySize(dir: string): Promise<number> {
  let total = 0;
  for (const name of await fs.readdir(dir)) {
    try {
      total += (await fs.stat(path.join(dir, name))).size;
    } catch {
      // removed by a concurrent level compaction
    }
  }
  return total;
}

export interface EtcdServerConfig {
  name: string;
  dataDir: string;
  walDir?: string;
  initialCluster: string;
  initialClusterToken: string;
  initialAdvertisePeerUrls: string[];
  advertiseClientUrls: string[];
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  quotaBackendBytes: number;
}

interface WalMetadata {
  memberId: string;
  clusterId: string;
}

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly members = new Map<bigint, Member>();
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly applier: Applier;
  readonly applied: IndexWaiter;
  clusterVersion = '';
  /** Resolves once this member's attributes are published through the log (etcd ReadyNotify). */
  readonly ready = deferred<void>();

  private readonly raft: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: Wal;
  private readonly idGen: IdGenerator;
  private readonly waiters = new Map<number, Deferred<ApplyResult>>();
  private readonly requestTimeoutMs: number;
  private stopped = false;
  private wake: Deferred<void> | null = null;
  private wakePending = false;
  private loopDone: Promise<void> | undefined;
  private applyQueue: Entry[] = [];
  private applying: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private isLeader = false;
  private revoking = new Set<bigint>();
  // Linearizable reads (etcd linearizableReadLoop): callers that arrive while a ReadIndex round is in flight
  // share the next round, never the current one (it may predate their request).
  private nextRead: Deferred<void> | null = null;
  private readInFlight = false;
  private readCtx = 0;
  private readWaiters = new Map<string, Deferred<number>>();
  // Watch catch-up: MVCC syncs unsynced watchers and retries victims when asked (etcd: every 100 ms).
  private watchSyncing = false;
  private watchSyncAgain = false;
  private readonly watchSyncListeners: Array<() => void> = [];
  // The backend size, refreshed in the background so the quota check costs nothing per request.
  private dbSizeBytes = 0;

  private constructor(
    readonly cfg: EtcdServerConfig,
    readonly logger: Logger,
    parts: {
      memberId: bigint;
      clusterId: bigint;
      store: MvccStore;
      lessor: Lessor;
      wal: Wal;
      storage: MemoryStorage;
      raft: RawNode;
    },
  ) {
    this.memberId = parts.memberId;
    this.clusterId = parts.clusterId;
    this.store = parts.store;
    this.lessor = parts.lessor;
    this.wal = parts.wal;
    this.storage = parts.storage;
    this.raft = parts.raft;
    this.idGen = new IdGenerator(this.memberId, Date.now());
    this.applied = new IndexWaiter(this.store.consistentIndex());
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.applier = new Applier(this.store, this.lessor, {
      header: (rev) => this.header(rev),
      onClusterVersion: (ver) => {
        if (this.clusterVersion === '') this.logger.info({ 'cluster-version': ver }, 'set initial cluster version');
        this.clusterVersion = ver;
        this.logger.info({ 'cluster-version': ver }, 'enabled capabilities for version');
      },
      onMemberAttributes: (id, name, clientUrls) => {
        const m = this.members.get(id);
        if (m) {
          m.name = name;
          m.clientUrls = clientUrls;
        }
      },
    });
  }

  static async start(cfg: EtcdServerConfig, logger: Logger): Promise<EtcdServer> {
    const memberDir = path.join(cfg.dataDir, 'member');
    const walDir = cfg.walDir || path.join(memberDir, 'wal');
    const dbDir = path.join(memberDir, 'snap', 'db');
    await fs.mkdir(path.join(memberDir, 'snap'), { recursive: true, mode: 0o700 });
    const walLogger = logger.child({ component: 'wal' });

    const cluster = parseInitialCluster(cfg.initialCluster);
    const storage = new MemoryStorage();
    let wal: Wal;
    let memberId: bigint;
    let clusterId: bigint;
    if (await Wal.exists(walDir)) {
      const opened = await Wal.open(walDir, { logger: walLogger });
      const meta = JSON.parse(opened.metadata.toString()) as WalMetadata;
      memberId = BigInt('0x' + meta.memberId);
      clusterId = BigInt('0x' + meta.clusterId);
      wal = opened.wal;
      storage.hardState = opened.hardState;
      storage.append(opened.entries);
      logger.info(
        { 'member-id': meta.memberId, 'cluster-id': meta.clusterId, 'commit-index': opened.hardState.commit, 'last-index': storage.lastIndex() },
        'restarting local member',
      );
    } else {
      const own = cluster.get(cfg.name);
      if (!own) {
        throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
      }
      const ids = [...cluster.values()].map((urls) => computeMemberId(urls, cfg.initialClusterToken));
      memberId = computeMemberId(own, cfg.initialClusterToken);
      clusterId = computeClusterId(ids);
      if (cluster.size !== 1) {
        throw new Error(`a cluster of ${cluster.size} members needs Raft peers, which this build does not support yet (issue #3); start a single member`);
      }
      const meta: WalMetadata = { memberId: idToHex(memberId), clusterId: idToHex(clusterId) };
      wal = await Wal.create(walDir, Buffer.from(JSON.stringify(meta)), { logger: walLogger });
      logger.info({ 'member-id': meta.memberId, 'cluster-id': meta.clusterId, 'initial-cluster': cfg.initialCluster }, 'starting local member');
    }

    const lessor = new Lessor({
      minTtlSeconds: Math.ceil((((3 * Math.floor(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs)) / 2) * cfg.heartbeatIntervalMs) / 1000),
      clock: { now: () => performance.now() },
    });
    const store = await MvccStore.open({
      dir: dbDir,
      lessor,
      logger: logger.child({ component: 'mvcc' }),
      // etcd recovers the lessor before the key index, so that restored keys re-attach to their leases.
      beforeRestore: async (aux) => {
        for (const [k, v] of await aux.auxGetAll('lease')) {
          const l = decodeLease(k, v);
          lessor.restore(l.id, l.ttl);
        }
      },
      sizer: () => directorySize(dbDir),
    });
    const dropped = lessor.finishRestore();
    if (dropped.length > 0) logger.warn({ leases: dropped.map((id) => id.toString(16)) }, 'keys referenced leases with no lease record; detached');
    const applied = store.consistentIndex();
    assert(applied <= Math.max(storage.hardState.commit, storage.lastIndex()), `backend applied index ${applied} is beyond the WAL (last index ${storage.lastIndex()}): the WAL lost entries`);
    const raft = new RawNode({
      id: memberId,
      voters: [memberId],
      electionTick: Math.max(2, Math.floor(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs)),
      heartbeatTick: 1,
      storage,
      applied,
      rand: new Xoshiro128(Number(memberId & 0xffffffffn) ^ Date.now()),
    });
    const srv = new EtcdServer(cfg, logger, { memberId, clusterId, store, lessor, wal, storage, raft });
    for (const [name, urls] of cluster) {
      const id = computeMemberId(urls, cfg.initialClusterToken);
      if (id === memberId) srv.members.set(id, { id, name, peerUrls: urls, clientUrls: [], isLearner: false });
    }
    if (!srv.members.has(memberId)) {
      srv.members.set(memberId, { id: memberId, name: cfg.name, peerUrls: cfg.initialAdvertisePeerUrls, clientUrls: [], isLearner: false });
    }
    for (const [k] of await store.auxGetAll('alarm')) srv.applier.restoreAlarm(k.toString());
    for (const [k, v] of await store.auxGetAll('meta')) if (k.toString() === 'clusterVersion') srv.clusterVersion = v.toString();
    srv.run();
    return srv;
  }

  private run(): void {
    // A fresh single member campaigns on its first tick instead of waiting a full election timeout.
    this.raft.advanceTicksForElection();
    this.timers.push(
      setInterval(() => {
        this.raft.tick();
        this.notify();
      }, this.cfg.heartbeatIntervalMs),
      setInterval(() => this.revokeExpiredLeases(), LEASE_CHECK_INTERVAL_MS),
      setInterval(() => this.kickWatchSync(), WATCH_SYNC_INTERVAL_MS),
      setInterval(() => void this.refreshDbSize(), DB_SIZE_REFRESH_MS),
    );
    void this.refreshDbSize();
    this.loopDone = this.loop().catch((err) => this.fatal(err, 'raft node loop failed'));
  }

  // --- the node loop ---

  private notify(): void {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w.resolve();
    } else this.wakePending = true;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (!this.raft.hasReady()) {
        if (this.wakePending) {
          this.wakePending = false;
          continue;
        }
        this.wake = deferred<void>();
        await this.wake.promise;
        continue;
      }
      this.wakePending = false;
      const rd = this.raft.ready();
      if (rd.softState) this.onSoftState(rd);
      if (rd.hardState || rd.entries.length > 0) await this.wal.save(rd.hardState ?? null, rd.entries);
      this.storage.append(rd.entries);
      if (rd.hardState) this.storage.hardState = rd.hardState;
      if (rd.committedEntries.length > 0) {
        for (const e of rd.committedEntries) this.applyQueue.push(e);
        this.kickApply();
      }
      for (const rs of rd.readStates) this.onReadState(rs.index, rs.requestCtx);
      this.raft.advance(rd);
    }
  }

  private onSoftState(rd: Ready): void {
    const ss = rd.softState!;
    const leader = ss.raftState === StateType.Leader;
    if (ss.lead !== 0n) this.logger.info({ 'local-member-id': idToHex(this.memberId), 'elected-leader-member-id': idToHex(ss.lead), term: this.raft.status().term }, 'raft.node: elected leader');
    if (leader && !this.isLeader) {
      this.isLeader = true;
      this.lessor.promote();
      void this.onBecomeLeader();
    } else if (!leader && this.isLeader) {
      this.isLeader = false;
      this.lessor.demote();
    }
  }

  private async onBecomeLeader(): Promise<void> {
    try {
      if (this.clusterVersion === '') await this.propose({ cluster_version_set: { ver: CLUSTER_VERSION } });
      else this.logger.info({ 'cluster-version': this.clusterVersion }, 'enabled capabilities for version');
      const me = this.members.get(this.memberId)!;
      await this.propose({
        cluster_member_attr_set: {
          member_ID: this.memberId.toString(),
          member_attributes: { name: this.cfg.name, client_urls: this.cfg.advertiseClientUrls },
        },
      });
      me.name = this.cfg.name;
      me.clientUrls = this.cfg.advertiseClientUrls;
      this.logger.info(
        { 'local-member-id': idToHex(this.memberId), 'local-member-attributes': `{Name:${this.cfg.name} ClientURLs:[${this.cfg.advertiseClientUrls.join(' ')}]}`, 'cluster-id': idToHex(this.clusterId), 'request-path': `/0/members/${idToHex(this.memberId)}/attributes`, 'publish-timeout': `${this.requestTimeoutMs}ms` },
        'published local member to cluster through raft',
      );
      this.ready.resolve();
    } catch (err) {
      if (!this.stopped) this.logger.warn({ error: String(err) }, 'failed to publish local member to cluster through raft');
    }
  }

  private kickApply(): void {
    if (this.applying) return;
    this.applying = this.applyAll()
      .catch((err) => this.fatal(err, 'apply failed'))
      .finally(() => {
        this.applying = null;
        if (this.applyQueue.length > 0 && !this.stopped) this.kickApply();
      });
  }

  private async applyAll(): Promise<void> {
    while (this.applyQueue.length > 0 && !this.stopped) {
      const e = this.applyQueue.shift()!;
      await this.applyEntry(e);
      this.applied.trigger(e.index);
    }
  }

  private async applyEntry(e: Entry): Promise<void> {
    if (e.index <= this.store.consistentIndex()) return; // applied before a restart: apply is idempotent
    if (e.data.length === 0) {
      // A new leader's empty entry: nothing to apply, but the consistent index moves.
      this.store.write(e.index).end();
      return;
    }
    const req = decodeRequest(e.data);
    const w = this.waiters.get(req.ID);
    try {
      const res = await this.applier.apply(e.index, req);
      if (w) {
        this.waiters.delete(req.ID);
        w.resolve(res);
      }
    } catch (err) {
      if (!isDomainError(err)) throw err;
      if (w) {
        this.waiters.delete(req.ID);
        w.reject(err);
      }
    }
  }

  private fatal(err: unknown, msg: string): void {
    this.logger.fatal({ error: err instanceof Error ? err.stack : String(err) }, msg);
    // A failed WAL write or apply leaves state that can't be trusted: stop, let the supervisor restart us
    // (the WAL replay is idempotent).
    process.exit(1);
  }

  // --- proposals ---

  /** Propose a request through the log and wait for its apply result. */
  async propose(body: Omit<InternalRequest, 'ID'>): Promise<ApplyResult> {
    if (this.stopped) throw serverError(ErrStopped, 'etcdserver: server stopped');
    const st = this.raft.status();
    if (st.commit > this.applied.index + MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw serverError(ErrTooManyRequests, 'etcdserver: too many requests');
    const req = { ID: this.idGen.next(), ...body } as InternalRequest;
    const data = encodeRequest(req);
    if (data.length > this.cfg.maxRequestBytes) throw serverError(ErrRequestTooLarge, 'etcdserver: request is too large');
    const d = deferred<ApplyResult>();
    this.waiters.set(req.ID, d);
    try {
      this.raft.propose(data);
    } catch (err) {
      this.waiters.delete(req.ID);
      if (err instanceof ProposalDroppedError) throw serverError(ErrNoLeader, 'etcdserver: no leader');
      throw err;
    }
    this.notify();
    const timer = setTimeout(() => {
      if (this.waiters.get(req.ID) === d) {
        this.waiters.delete(req.ID);
        d.reject(serverError(ErrTimeout, 'etcdserver: request timed out'));
      }
    }, this.requestTimeoutMs);
    try {
      return await d.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Proposes a lease ID generated like a request ID (positive, below 2^53). */
  nextLeaseId(): bigint {
    return BigInt(this.idGen.next());
  }

  // --- linearizable reads ---

  /** Resolves once this member has applied everything committed before the call (ReadIndex). */
  linearizableReadNotify(): Promise<void> {
    if (this.stopped) return Promise.reject(serverError(ErrStopped, 'etcdserver: server stopped'));
    if (!this.nextRead) this.nextRead = deferred<void>();
    const p = this.nextRead.promise;
    if (!this.readInFlight) void this.readRound();
    return p;
  }

  private async readRound(): Promise<void> {
    while (this.nextRead && !this.stopped) {
      const round = this.nextRead;
      this.nextRead = null;
      this.readInFlight = true;
      try {
        const ctx = Buffer.alloc(8);
        ctx.writeBigUInt64BE(BigInt(++this.readCtx));
        const key = ctx.toString('hex');
        const d = deferred<number>();
        this.readWaiters.set(key, d);
        this.raft.readIndex(ctx);
        this.notify();
        const timer = setTimeout(() => {
          if (this.readWaiters.delete(key)) d.reject(serverError(ErrTimeout, 'etcdserver: request timed out'));
        }, this.requestTimeoutMs);
        let index: number;
        try {
          index = await d.promise;
        } finally {
          clearTimeout(timer);
        }
        await this.applied.wait(index);
        round.resolve();
      } catch (err) {
        round.reject(err);
      } finally {
        this.readInFlight = false;
      }
    }
  }

  private onReadState(index: number, ctx: Buffer): void {
    const key = ctx.toString('hex');
    const d = this.readWaiters.get(key);
    if (d) {
      this.readWaiters.delete(key);
      d.resolve(index);
    }
  }

  // --- leases ---

  private revokeExpiredLeases(): void {
    if (!this.isLeader || this.stopped) return;
    for (const id of this.lessor.expired(LEASE_REVOKE_PER_ROUND)) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.propose({ lease_revoke: { ID: id.toString() } })
        .catch((err) => {
          if (!isDomainError(err, 'ErrLeaseNotFound')) this.logger.warn({ 'lease-id': id.toString(16), error: String(err) }, 'failed to revoke lease');
        })
        .finally(() => this.revoking.delete(id));
    }
  }

  // --- watch sync ---

  /** Run MVCC's watcher sync soon (coalesced; never concurrently with itself). */
  kickWatchSync(): void {
    if (this.stopped) return;
    if (this.watchSyncing) {
      this.watchSyncAgain = true;
      return;
    }
    this.watchSyncing = true;
    setImmediate(() => {
      void this.store
        .syncWatchers()
        .catch((err) => this.logger.warn({ error: String(err) }, 'failed to sync watchers'))
        .finally(() => {
          this.watchSyncing = false;
          for (const l of this.watchSyncListeners) l();
          if (this.watchSyncAgain) {
            this.watchSyncAgain = false;
            this.kickWatchSync();
          }
        });
    });
  }

  onWatchSync(listener: () => void): void {
    this.watchSyncListeners.push(listener);
  }

  // --- quota ---

  private async refreshDbSize(): Promise<void> {
    if (this.stopped) return;
    try {
      this.dbSizeBytes = await this.store.dbSize();
    } catch (err) {
      this.logger.warn({ error: String(err) }, 'failed to read backend size');
    }
  }

  /** etcd backendQuota.Available, with the size sampled in the background. */
  quotaExceeded(): boolean {
    if (this.cfg.quotaBackendBytes < 0) return false;
    const quota = this.cfg.quotaBackendBytes > 0 ? this.cfg.quotaBackendBytes : DEFAULT_QUOTA_BYTES;
    return this.dbSizeBytes > quota;
  }

  // --- status ---

  header(rev: number): ResponseHeader {
    return {
      cluster_id: this.clusterId.toString(),
      member_id: this.memberId.toString(),
      revision: rev === 0 ? this.store.currentRev : rev,
      raft_term: this.raft.status().term,
    };
  }

  raftStatus(): ReturnType<RawNode['status']> {
    return this.raft.status();
  }

  leader(): bigint {
    return this.raft.status().lead;
  }

  version(): string {
    return SERVER_VERSION;
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.notify();
    await this.loopDone;
    await this.applying;
    const stopped = serverError(ErrStopped, 'etcdserver: server stopped');
    for (const w of this.waiters.values()) w.reject(stopped);
    this.waiters.clear();
    for (const d of this.readWaiters.values()) d.reject(stopped);
    this.readWaiters.clear();
    this.nextRead?.reject(stopped);
    this.applied.rejectAll(stopped);
    this.ready.reject(stopped);
    this.ready.promise.catch(() => {});
    await this.store.close();
    await this.wal.close();
  }
}
