// The member's core (etcd's EtcdServer): it owns the Raft node loop and with it all of Raft's I/O (WAL, peer
// transport), the apply pipeline, proposals and their waiters, linearizable reads, membership changes, and
// lease expiry on the leader.
//
// Node loop, for each Ready (src/raft/raw-node.ts Ready; etcd raftNode.start):
//   1. the leader sends its messages right away, in parallel with its disk write;
//   2. persist the snapshot (if any), hard state and entries to the WAL: one write + fdatasync for everything
//      in the Ready, which is the group commit (every proposal that arrived during the previous fsync is here);
//   3. make them visible to Raft (MemoryStorage);
//   4. a follower sends its messages only now: they may promise what was just persisted (a vote, an append);
//   5. hand committed entries to the apply worker (applies run in order, pipelined with the next persist; a
//      ConfChange makes the loop wait for its apply, so Raft's configuration is current for the next Ready);
//   6. answer read states; advance.
// Every await is a suspension point: state is changed synchronously and preconditions re-checked after.

import path from 'node:path';
import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import { Wal, ErrWalSnapshotNotFound } from '../wal';
import { MvccStore } from '../mvcc';
import {
  RawNode,
  MemoryStorage,
  StateType,
  type Ready,
  type Entry,
  type Message,
  type HardState,
  type ConfChange,
  type ConfState,
  type Snapshot,
  ConfChangeType,
  EntryType,
  MessageType,
  ProposalDroppedError,
  SnapshotStatus,
  encodeConfChange,
  decodeConfChange,
  type Logger as RaftLogger,
} from '../raft';
import { Xoshiro128 } from '../util/prng';
import { isDomainError } from '../util/errors';
import { assert } from '../util/assert';
import { Lessor } from '../lease/lessor';
import { Applier, type ApplyResult, decodeLease } from './apply';
import { decodeRequest, encodeRequest, IdGenerator, type InternalRequest } from './request';
import { computeClusterId, computeMemberId, parseInitialCluster, idToHex, type Member } from './membership';
import { RaftCluster, type ConfChangeContext, type MembershipChange, memberFromJson, memberToJson, type MemberJson } from './cluster';
import { deferred, type Deferred, IndexWaiter } from './wait';
import {
  ErrNoLeader,
  ErrNotLeader,
  ErrRequestTooLarge,
  ErrStopped,
  ErrTimeout,
  ErrTooManyRequests,
  serverError,
} from './errors';
import type { ResponseHeader } from '../api/types';
import { SERVER_VERSION, CLUSTER_VERSION } from './version';
import { PeerTransport } from './transport';
import { encodeMessage, decodeMessage } from './raft-codec';
import { resolveTls, type TlsMaterial } from './tls';
import type { TlsConfig } from './config';
import { LeaderClient } from './leader-client';
import { Snapshotter, type SnapMarker } from './snap';
import { fsyncDir } from '../util/fsync';
import { failpoint } from '../util/failpoints';
import { Maintenance, compactionPacing, type MaintenanceConfig } from './maintenance';

/** TEST ONLY (issue #7's proof that the fault harness can fail): see linearizableReadNotify. Read once. */
const UNSAFE_LOCAL_READS = process.env.TSETCD_UNSAFE_LOCAL_READS === '1';
/** etcd: maxGapBetweenApplyAndCommitIndex. */
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** etcd: leaseRevokeRate = 1000 per second, checked every 500 ms. */
const LEASE_REVOKE_PER_ROUND = 500;
const LEASE_CHECK_INTERVAL_MS = 500;
/** etcd: watchable store's syncWatchersLoop and syncVictimsLoop run every 100 ms. */
const WATCH_SYNC_INTERVAL_MS = 100;
/** etcd: grpcOverheadBytes, added on top of --max-request-bytes for the gRPC receive limit. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** etcd: maxSizePerMsg and maxInflightMsgs (4096 / 8) for the Raft replication window. */
const MAX_SIZE_PER_MSG = 1024 * 1024;
const MAX_INFLIGHT_MSGS = 512;
/** etcd 3.5 readIndexRetryTime. */
const READ_INDEX_RETRY_MS = 500;
/** etcd HealthInterval: a peer must have been connected this long to count as healthy for reconfiguration. */
const HEALTH_INTERVAL_MS = 5000;
/** etcd readyPercent: a learner is promotable once its match index reaches 90% of the leader's. */
const LEARNER_READY_PERCENT = 0.9;
/** Defaults of --snapshot-count (etcd 3.6's), --experimental-snapshot-catchup-entries and --max-snapshots. */
const DEFAULT_SNAPSHOT_COUNT = 10000;
const DEFAULT_SNAPSHOT_CATCHUP_ENTRIES = 5000;
const DEFAULT_MAX_SNAPSHOTS = 5;
/** etcd's default --experimental-lease-checkpoint-interval. */
const DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;

export interface EtcdServerConfig extends MaintenanceConfig {
  name: string;
  dataDir: string;
  walDir?: string;
  initialCluster: string;
  initialClusterToken: string;
  initialClusterState?: 'new' | 'existing';
  initialAdvertisePeerUrls: string[];
  advertiseClientUrls: string[];
  listenPeerUrls?: string[];
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  quotaBackendBytes: number;
  strictReconfigCheck?: boolean;
  preVote?: boolean;
  peerTls?: TlsConfig;
  clientTls?: TlsConfig;
  selfSignedCertValidity?: number;
  /** Checkpoint remaining lease TTLs through the log (etcd --experimental-enable-lease-checkpoint; on here). */
  experimentalEnableLeaseCheckpoint?: boolean;
  experimentalLeaseCheckpointIntervalMs?: number;
  /** Restart as a one-member cluster from this member's data (etcd --force-new-cluster). */
  forceNewCluster?: boolean;
  /** Applied entries between snapshots (etcd --snapshot-count; 0 = the default). */
  snapshotCount?: number;
  /** Entries kept in the in-memory Raft log behind a snapshot for slow followers (etcd default 5000). */
  snapshotCatchupEntries?: number;
  /** Snapshot markers kept (etcd --max-snapshots; 0 = unlimited). */
  maxSnapshots?: number;
}

/** An item of the apply pipeline: a committed entry, or a snapshot received from the leader to install. */
type ApplyItem = Entry | { kind: 'snapshot'; snapshot: Snapshot };

interface WalMetadata {
  memberId: string;
  clusterId: string;
}

/** Bytes of the files directly in dir (the level database): etcd's dbSize is the physical size. */
async function directorySize(dir: string): Promise<number> {
  let total = 0;
  for (const name of await fs.readdir(dir)) {
    // LevelDB's own text log (LOG, LOG.old) is not data.
    if (name === 'LOG' || name === 'LOG.old') continue;
    try {
      total += (await fs.stat(path.join(dir, name))).size;
    } catch {
      // removed by a concurrent level compaction
    }
  }
  return total;
}

/** A member started with --initial-cluster-state existing and no data: find its identity from its peers. */
async function fetchClusterFromPeers(
  cfg: EtcdServerConfig,
  initial: Map<string, string[]>,
  peerTls: TlsMaterial | undefined,
  logger: Logger,
): Promise<{ clusterId: bigint; memberId: bigint; members: Member[] }> {
  const urls = [...initial].filter(([name]) => name !== cfg.name).flatMap(([, u]) => u);
  const own = [...cfg.initialAdvertisePeerUrls].sort().join(',');
  let lastError: unknown = new Error('no peer URLs in --initial-cluster besides this member');
  for (const url of urls) {
    try {
      const info = JSON.parse((await PeerTransport.fetchMembers(url, peerTls, 2000)).toString()) as { clusterId: string; members: MemberJson[] };
      const members = info.members.map(memberFromJson);
      const me = members.find((m) => [...m.peerUrls].sort().join(',') === own);
      if (!me) throw new Error(`error validating peerURLs: no member of the existing cluster has peer URLs ${own} (add it with MemberAdd first)`);
      return { clusterId: BigInt('0x' + info.clusterId), memberId: me.id, members };
    } catch (err) {
      lastError = err;
      logger.warn({ 'remote-peer-url': url, error: String(err) }, 'failed to get cluster members from remote peer');
    }
  }
  throw new Error(`cannot fetch cluster info from peer urls: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}

/**
 * etcd restartAsStandaloneNode (--force-new-cluster): drop the uncommitted tail of the log, then append, already
 * committed, one RemoveNode entry for every other member known at the commit index (the backend's membership plus
 * the conf changes after its applied index). Applying them leaves this member the only voter, with every write that
 * was committed before.
 */
function forceNewClusterLog(
  log: { marker: SnapMarker | null; hardState: HardState; entries: Entry[] },
  cluster: RaftCluster,
  self: bigint,
  applied: number,
): { hardState: HardState; entries: Entry[]; appended: Entry[]; removed: bigint[] } {
  const commit = Math.max(log.hardState.commit, log.marker?.index ?? 0);
  const entries = log.entries.filter((e) => e.index <= commit);
  const ids = new Set(cluster.members.keys());
  for (const e of entries) {
    if (e.index <= applied || e.type !== EntryType.ConfChange) continue;
    const cc = decodeConfChange(e.data);
    if (cc.type === ConfChangeType.RemoveNode) ids.delete(cc.nodeId);
    else if (cc.type === ConfChangeType.AddNode || cc.type === ConfChangeType.AddLearnerNode) ids.add(cc.nodeId);
  }
  const term = log.hardState.term;
  let index = entries.length > 0 ? entries[entries.length - 1]!.index : commit;
  const removed = [...ids].filter((id) => id !== self).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const appended: Entry[] = removed.map((id) => ({
    term,
    index: ++index,
    type: EntryType.ConfChange,
    data: encodeConfChange({ id: 0n, type: ConfChangeType.RemoveNode, nodeId: id, context: Buffer.alloc(0) }),
  }));
  const hardState = { term, vote: log.hardState.vote, commit: index };
  return { hardState, entries: [...entries, ...appended], appended, removed };
}

/**
 * Opens the WAL at the newest snapshot marker that has its WAL record (etcd restartNode + ValidSnapshotEntries):
 * the marker is written first, so a crash before the record leaves a marker to skip (it is deleted).
 */
async function openWalAtSnapshot(
  walDir: string,
  snapshotter: Snapshotter,
  walLogger: Logger,
  logger: Logger,
): Promise<{ marker: SnapMarker | null; opened: Awaited<ReturnType<typeof Wal.open>> }> {
  for (const candidate of await snapshotter.list()) {
    const marker = await snapshotter.load(candidate);
    try {
      const opened = await Wal.open(walDir, { logger: walLogger, snapshot: marker });
      logger.info({ 'snapshot-index': marker.index, 'snapshot-term': marker.term }, 'recovered from snapshot; replaying the WAL after it');
      return { marker, opened };
    } catch (err) {
      if (!isDomainError(err, ErrWalSnapshotNotFound)) throw err;
      logger.warn({ 'snapshot-index': marker.index, 'snapshot-term': marker.term }, 'snapshot marker has no WAL record (a crash fell between the two); removing it');
      await snapshotter.remove(marker);
    }
  }
  return { marker: null, opened: await Wal.open(walDir, { logger: walLogger }) };
}

/**
 * Replaces the backend with the database received for the snapshot at `index` (member/snap/<index>.snap.db), in
 * place: the old directory is moved aside, the received one renamed to the backend's, the directory synced, the old
 * one removed. A crash at any point leaves either the old backend with the received database still waiting (done
 * again at start) or the new backend.
 */
async function swapInSnapshotDatabase(store: MvccStore, lessor: Lessor, snapshotter: Snapshotter, dbDir: string, index: number): Promise<void> {
  const received = snapshotter.dbPath(index);
  try {
    await fs.access(received);
  } catch {
    throw new Error(
      `the backend ${dbDir} holds applied index ${store.consistentIndex()}, behind the snapshot at ${index} that the WAL replays from, ` +
        `and no received snapshot database ${received} exists: the backend was lost or damaged; ` +
        `rebuild this member (remove it, delete its data dir, add it again)`,
    );
  }
  const aside = `${dbDir}.old`;
  await store.replaceDatabase(async () => {
    lessor.clear();
    await fs.rm(aside, { recursive: true, force: true });
    await fs.rename(dbDir, aside).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await fs.rename(received, dbDir);
    await fsyncDir(snapshotter.dir);
    await fs.rm(aside, { recursive: true, force: true });
  });
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function raftLogger(logger: Logger): RaftLogger {
  const l = logger.child({ component: 'raft' });
  return { debug: (m) => l.debug(m), info: (m) => l.info(m), warn: (m) => l.warn(m), error: (m) => l.error(m) };
}

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly cluster: RaftCluster;
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly applier: Applier;
  readonly applied: IndexWaiter;
  clusterVersion = '';
  /** Resolves once this member's attributes are published through the log (etcd ReadyNotify). */
  readonly ready = deferred<void>();
  /** Resolves when the server stopped by itself (e.g. it was removed from the cluster). */
  readonly done = deferred<string>();
  /** Auto-compaction, quota and NOSPACE recovery, defragmentation, corruption checks, health (maintenance/). */
  readonly maintenance: Maintenance;
  /** Resolves once start() has finished and the node loop runs (a self-stop waits for it). */
  private readonly running = deferred<void>();

  private readonly raft: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: Wal;
  private readonly transport: PeerTransport | undefined;
  private readonly leaderClient: LeaderClient;
  private readonly idGen: IdGenerator;
  private readonly waiters = new Map<number, Deferred<ApplyResult>>();
  private readonly confWaiters = new Map<string, Deferred<void>>();
  readonly requestTimeoutMs: number;
  private stopped = false;
  private readonly stopSignal = deferred<void>();
  private wake: Deferred<void> | null = null;
  private wakePending = false;
  private loopDone: Promise<void> | undefined;
  private applyQueue: ApplyItem[] = [];
  /** Work that must run in the apply worker between two entries (e.g. copying the backend for a snapshot). */
  private applyTasks: Array<{ run: () => Promise<void>; fail: (err: unknown) => void }> = [];
  private applyHead = 0;
  private applying: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private isLeader = false;
  private leaderId = 0n;
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
  private leaseCheckpointTimer: NodeJS.Timeout | undefined;
  // Snapshots (etcd triggerSnapshot / createMergedSnapshotMessage / applySnapshot).
  private readonly snapshotter: Snapshotter;
  /** The index of the newest snapshot marker this member took or installed. */
  private snapshotIndex: number;
  /** Raft's configuration as of the applied index (what a snapshot taken now must record). */
  private confState: ConfState;
  /** Snapshots received one at a time, so that two streams never write the same database directory. */
  private receiving: Promise<void> = Promise.resolve();
  /** Counters for tests and metrics: how followers were caught up, and the snapshots taken. */
  readonly snapshotStats = { taken: 0, sent: 0, sendFailures: 0, received: 0, applied: 0 };
  /** Per peer (hex ID): snapshots sent, failed to send, received (etcd_network_snapshot_* by To/From). */
  readonly snapshotPeers = { sent: new Map<string, number>(), sendFailures: new Map<string, number>(), received: new Map<string, number>() };
  /** Leader changes seen by this member (etcd_server_leader_changes_seen_total). */
  leaderChanges = 0;

  private constructor(
    readonly cfg: EtcdServerConfig,
    readonly logger: Logger,
    parts: {
      memberId: bigint;
      clusterId: bigint;
      cluster: RaftCluster;
      store: MvccStore;
      lessor: Lessor;
      wal: Wal;
      storage: MemoryStorage;
      raft: RawNode;
      peerTls: TlsMaterial | undefined;
      clientTls: TlsMaterial | undefined;
      bootstrapPeers: Map<bigint, string[]>;
      snapshotter: Snapshotter;
      snapshotIndex: number;
      confState: ConfState;
    },
  ) {
    this.snapshotter = parts.snapshotter;
    this.snapshotIndex = parts.snapshotIndex;
    this.confState = parts.confState;
    this.memberId = parts.memberId;
    this.clusterId = parts.clusterId;
    this.cluster = parts.cluster;
    this.store = parts.store;
    this.lessor = parts.lessor;
    this.wal = parts.wal;
    this.storage = parts.storage;
    this.raft = parts.raft;
    this.idGen = new IdGenerator(this.memberId, Date.now());
    this.applied = new IndexWaiter(this.store.consistentIndex());
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.leaderClient = new LeaderClient(parts.clientTls);
    this.applier = new Applier(this.store, this.lessor, {
      header: (rev) => this.header(rev),
      onClusterVersion: (ver) => {
        if (this.clusterVersion === '') this.logger.info({ 'cluster-version': ver }, 'set initial cluster version');
        this.clusterVersion = ver;
        this.logCapabilities();
      },
      onMemberAttributes: (tw, id, name, clientUrls) => this.cluster.setAttributes(tw, id, name, clientUrls),
      onAlarmChange: (change, m) => this.logger.warn({ alarm: ['NONE', 'NOSPACE', 'CORRUPT'][m.alarm] ?? m.alarm, from: idToHex(BigInt(m.memberID)) }, change === 'raised' ? 'alarm raised' : 'alarm disarmed'),
    });
    this.maintenance = new Maintenance(
      {
        memberId: this.memberId,
        name: cfg.name,
        logger,
        store: this.store,
        applier: this.applier,
        cluster: this.cluster,
        requestTimeoutMs: this.requestTimeoutMs,
        clientTls: parts.clientTls,
        measureDbSize: () => this.store.dbSize(),
        isLeader: () => this.isLeader,
        leader: () => this.leader(),
        propose: (body) => this.propose(body),
        linearizableReadNotify: () => this.linearizableReadNotify(),
      },
      cfg,
    );
    if (cfg.listenPeerUrls && cfg.listenPeerUrls.length > 0) {
      this.transport = new PeerTransport({
        memberId: this.memberId,
        clusterId: this.clusterId,
        listenUrls: cfg.listenPeerUrls,
        tls: parts.peerTls,
        logger: logger.child({ component: 'rafthttp' }),
        onMessage: (_from, payload) => this.onPeerMessage(payload),
        onSnapshot: (from, meta, data) => this.receiveSnapshot(from, meta, data),
        onPeerUnreachable: (id) => this.raft.reportUnreachable(id),
        onCriticalError: (err) => {
          this.logger.warn({ error: err.message }, 'the member has been permanently removed from the cluster');
          void this.stopSelf('removed');
        },
        // etcd's stream readers redial every 100 ms: a member that started before its peers must not sit in
        // a long backoff while the cluster forms (messages to an inactive peer are dropped).
        reconnectBackoffMinMs: 100,
        reconnectBackoffMaxMs: 100,
        membersInfo: () =>
          Buffer.from(JSON.stringify({ clusterId: idToHex(this.clusterId), members: [...this.cluster.members.values()].map(memberToJson) })),
        isPeerAllowed: (id) => (this.cluster.removed.has(id) ? 'removed' : this.cluster.members.has(id) || parts.bootstrapPeers.has(id) ? 'ok' : 'unknown'),
      });
      for (const [id, urls] of parts.bootstrapPeers) if (id !== this.memberId) this.transport.addPeer(id, urls);
    }
  }

  static async start(cfg: EtcdServerConfig, logger: Logger): Promise<EtcdServer> {
    const memberDir = path.join(cfg.dataDir, 'member');
    const walDir = cfg.walDir || path.join(memberDir, 'wal');
    const snapDir = path.join(memberDir, 'snap');
    const dbDir = path.join(snapDir, 'db');
    await fs.mkdir(snapDir, { recursive: true, mode: 0o700 });
    const snapshotter = new Snapshotter(snapDir);
    const walLogger = logger.child({ component: 'wal' });

    const initial = parseInitialCluster(cfg.initialCluster);
    // Peer TLS first: a joining member dials its peers before anything else (auto-TLS certificates get the
    // listen hosts as SANs once, and are reused after).
    const peerHosts = (cfg.listenPeerUrls ?? []).map((u) => new URL(u).host);
    const peerTls = cfg.peerTls
      ? await resolveTls(cfg.peerTls, { dataDir: cfg.dataDir, kind: 'peer', hosts: peerHosts, validityYears: cfg.selfSignedCertValidity, logger })
      : undefined;
    const storage = new MemoryStorage();
    let wal: Wal;
    let memberId: bigint;
    let clusterId: bigint;
    // Peers to connect to before membership is known from the log (a new cluster's initial members).
    const bootstrapPeers = new Map<bigint, string[]>();
    let bootstrapVoters: bigint[] | undefined;
    // A restarting member's log: the newest snapshot marker, and the WAL replayed from it (etcd restartNode).
    let restarted: { marker: SnapMarker | null; hardState: HardState; entries: Entry[] } | undefined;
    if (await Wal.exists(walDir)) {
      const { marker, opened } = await openWalAtSnapshot(walDir, snapshotter, walLogger, logger);
      const meta = JSON.parse(opened.metadata.toString()) as WalMetadata;
      memberId = BigInt('0x' + meta.memberId);
      clusterId = BigInt('0x' + meta.clusterId);
      wal = opened.wal;
      restarted = { marker, hardState: opened.hardState, entries: opened.entries };
      const last = opened.entries.length > 0 ? opened.entries[opened.entries.length - 1]!.index : marker?.index ?? 0;
      logger.info(
        { 'member-id': meta.memberId, 'cluster-id': meta.clusterId, 'commit-index': opened.hardState.commit, 'last-index': last },
        'restarting local member',
      );
    } else if (cfg.initialClusterState === 'existing') {
      // Joining a running cluster (after MemberAdd): learn the cluster ID and our own member ID from a peer
      // (etcd GetClusterFromRemotePeers + ValidateClusterAndAssignIDs); the log, membership included, then
      // arrives from the leader.
      const joined = await fetchClusterFromPeers(cfg, initial, peerTls, logger);
      memberId = joined.memberId;
      clusterId = joined.clusterId;
      for (const m of joined.members) if (m.id !== memberId) bootstrapPeers.set(m.id, m.peerUrls);
      const meta: WalMetadata = { memberId: idToHex(memberId), clusterId: idToHex(clusterId) };
      wal = await Wal.create(walDir, Buffer.from(JSON.stringify(meta)), { logger: walLogger });
      // No configuration yet: it is neither voter nor learner until the log says so.
      bootstrapVoters = [];
      logger.info({ 'local-member-id': meta.memberId, 'cluster-id': meta.clusterId }, 'joining an existing cluster');
    } else {
      const own = initial.get(cfg.name);
      if (!own) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
      const members: Member[] = [...initial].map(([name, urls]) => ({
        id: computeMemberId(urls, cfg.initialClusterToken),
        name: '',
        peerUrls: urls,
        clientUrls: [],
        isLearner: false,
      }));
      const names = new Map([...initial].map(([name, urls]) => [computeMemberId(urls, cfg.initialClusterToken), name]));
      memberId = computeMemberId(own, cfg.initialClusterToken);
      clusterId = computeClusterId(members.map((m) => m.id));
      members.sort((a, b) => (a.id < b.id ? -1 : 1));
      const meta: WalMetadata = { memberId: idToHex(memberId), clusterId: idToHex(clusterId) };
      wal = await Wal.create(walDir, Buffer.from(JSON.stringify(meta)), { logger: walLogger });
      // etcd's StartNode: the initial members are ConfChange entries 1..N of term 1, already committed, so
      // every member's log starts identical and applying them builds the membership on every member.
      const entries: Entry[] = members.map((m, i) => ({
        term: 1,
        index: i + 1,
        type: EntryType.ConfChange,
        data: encodeConfChange({
          id: 0n,
          type: ConfChangeType.AddNode,
          nodeId: m.id,
          context: Buffer.from(JSON.stringify({ member: memberToJson({ ...m, name: names.get(m.id) ?? '' }), isPromote: false } satisfies ConfChangeContext)),
        }),
      }));
      const hs = { term: 1, vote: 0n, commit: entries.length };
      await wal.save(hs, entries);
      storage.setHardState(hs);
      storage.append(entries);
      bootstrapVoters = members.map((m) => m.id);
      for (const m of members) bootstrapPeers.set(m.id, m.peerUrls);
      logger.info({ 'local-member-id': meta.memberId, 'cluster-id': meta.clusterId, 'initial-cluster': cfg.initialCluster }, 'starting local member');
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
          lessor.restore(l.id, l.ttl, l.remainingTtl);
        }
      },
      sizer: () => directorySize(dbDir),
      ...compactionPacing(cfg),
    });
    // A crash fell between persisting a snapshot received from the leader and installing its database: install
    // it now (etcd recoverSnapshotBackend).
    const marker = restarted?.marker;
    if (marker && store.consistentIndex() < marker.index) {
      logger.warn({ 'snapshot-index': marker.index, 'backend-consistent-index': store.consistentIndex() }, 'backend is behind the snapshot; installing the received snapshot database');
      await swapInSnapshotDatabase(store, lessor, snapshotter, dbDir, marker.index);
      assert(store.consistentIndex() >= marker.index, `snapshot database for index ${marker.index} holds index ${store.consistentIndex()}`);
    }
    const dropped = lessor.finishRestore();
    if (dropped.length > 0) logger.warn({ leases: dropped.map((id) => id.toString(16)) }, 'keys referenced leases with no lease record; detached');

    // Membership as of the backend's consistent index (both are written in one batch), so that Raft can start
    // from that configuration and re-apply only the entries after it.
    const cluster = new RaftCluster(clusterId, memberId);
    cluster.restore(await store.auxGetAll('members'), await store.auxGetAll('members_removed'));
    if (cluster.removed.has(memberId)) {
      await store.close();
      await wal.close();
      throw new Error(`the member has been permanently removed from the cluster (member ${idToHex(memberId)}); start it with a new data dir and add it again`);
    }
    // A volume mounted on the wrong instance: the data dir is another member's (its name, published through the
    // log, differs from --name). Starting it would impersonate that member.
    const stored = cluster.members.get(memberId);
    if (restarted && stored && stored.name !== '' && stored.name !== cfg.name) {
      await store.close();
      await wal.close();
      throw new Error(
        `data dir ${cfg.dataDir} belongs to member "${stored.name}" (${idToHex(memberId)}) of cluster ${idToHex(clusterId)}, not to --name "${cfg.name}": mount this member's own volume`,
      );
    }
    for (const m of cluster.members.values()) if (m.id !== memberId) bootstrapPeers.set(m.id, m.peerUrls);
    if (cfg.forceNewCluster && restarted) {
      const forced = forceNewClusterLog(restarted, cluster, memberId, store.consistentIndex());
      await wal.save(forced.hardState, forced.appended);
      restarted = { ...restarted, hardState: forced.hardState, entries: forced.entries };
      logger.warn(
        { 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'commit-index': forced.hardState.commit, 'removed-member-ids': forced.removed.map(idToHex) },
        'forcing restart member (--force-new-cluster): the other members are removed from the configuration',
      );
    }
    const applied = store.consistentIndex();
    const voters = bootstrapVoters ?? cluster.votingMembers().map((m) => m.id);
    const learners = bootstrapVoters ? [] : [...cluster.members.values()].filter((m) => m.isLearner).map((m) => m.id);
    const confState: ConfState = { voters, learners };
    if (restarted) {
      // Raft starts from the configuration as of the backend's applied index (which is at or after the marker, and
      // the membership buckets are written with it), and re-delivers only the entries after that index.
      const hs = { ...restarted.hardState };
      if (restarted.marker) {
        storage.applySnapshot({ metadata: { index: restarted.marker.index, term: restarted.marker.term, confState } });
        // A snapshot is committed by definition; a crash between its WAL record and the next HardState leaves
        // an older commit index behind it.
        if (hs.commit < restarted.marker.index) hs.commit = restarted.marker.index;
      }
      storage.setHardState(hs);
      storage.append(restarted.entries);
    }
    if (applied > storage.lastIndex()) {
      // Records were lost from the end of the WAL (zeroed or cut off after they were synced): it would look like the
      // end of the log, but the backend applied more. Starting would serve fewer entries than were acknowledged.
      const end = wal.tailPosition;
      await store.close();
      await wal.close();
      throw new Error(`wal: the WAL ends at index ${storage.lastIndex()} (records end in ${end.path} at offset ${end.offset}) but the backend applied index ${applied}: entries were lost from the WAL; refusing to start`);
    }
    const electionTick = Math.max(2, Math.floor(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs));
    const raft = new RawNode({
      id: memberId,
      voters,
      learners,
      electionTick,
      heartbeatTick: 1,
      storage,
      applied,
      rand: new Xoshiro128(Number(memberId & 0xffffffffn) ^ Date.now()),
      checkQuorum: true,
      preVote: cfg.preVote ?? true,
      maxSizePerMsg: MAX_SIZE_PER_MSG,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      logger: raftLogger(logger),
    });
    const clientTls = cfg.clientTls
      ? await resolveTls(cfg.clientTls, { dataDir: cfg.dataDir, kind: 'client', hosts: [], validityYears: cfg.selfSignedCertValidity, logger })
      : undefined;
    const srv = new EtcdServer(cfg, logger, {
      memberId,
      clusterId,
      cluster,
      store,
      lessor,
      wal,
      storage,
      raft,
      peerTls,
      clientTls,
      bootstrapPeers,
      snapshotter,
      snapshotIndex: restarted?.marker?.index ?? 0,
      confState,
    });
    for (const [k] of await store.auxGetAll('alarm')) srv.applier.restoreAlarm(k.toString());
    for (const [k, v] of await store.auxGetAll('meta')) if (k.toString() === 'clusterVersion') srv.clusterVersion = v.toString();
    // A member restarting from its data compares its store with its peers' before it joins (etcd CheckInitialHashKV).
    if (bootstrapVoters === undefined) await srv.maintenance.initialCheck().catch(async (err) => (await srv.close(), Promise.reject(err)));
    if (srv.transport) await srv.transport.start();
    srv.run(voters.length === 1 && voters[0] === memberId);
    return srv;
  }

  private run(singleVoter: boolean): void {
    this.running.resolve();
    // A single voter campaigns on its first tick instead of waiting a full election timeout (etcd advances
    // the ticks of a member that has no peers to hear from).
    if (singleVoter) this.raft.advanceTicksForElection();
    this.timers.push(
      setInterval(() => {
        this.raft.tick();
        this.notify();
      }, this.cfg.heartbeatIntervalMs),
      setInterval(() => this.revokeExpiredLeases(), LEASE_CHECK_INTERVAL_MS),
      setInterval(() => this.kickWatchSync(), WATCH_SYNC_INTERVAL_MS),
    );
    this.maintenance.start();
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

  private onPeerMessage(payload: Buffer): void {
    if (this.stopped) return;
    let m: Message;
    try {
      m = decodeMessage(payload);
    } catch (err) {
      this.logger.warn({ error: String(err) }, 'dropped a malformed raft message');
      return;
    }
    try {
      this.raft.step(m);
    } catch (err) {
      // A message from a peer we no longer track, or a proposal we cannot take: etcd drops those too.
      if (!isDomainError(err)) throw err;
    }
    this.notify();
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
      if (this.isLeader && rd.messages.length > 0) {
        const fp = failpoint('raftBeforeLeaderSend');
        if (fp) await fp;
        this.sendMessages(rd.messages);
      }
      // A snapshot from the leader: its marker and WAL record first (etcd SaveSnap before Save), so that the WAL
      // replays from it; the database was saved when it arrived, and is installed by the apply worker in order.
      if (rd.snapshot) {
        const before = failpoint('raftBeforeSaveSnap');
        if (before) await before;
        await this.persistSnapshot({ index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term });
        const after = failpoint('raftAfterSaveSnap');
        if (after) await after;
      }
      if (rd.hardState || rd.entries.length > 0) {
        const before = failpoint('raftBeforeSave');
        if (before) await before;
        await this.wal.save(rd.hardState ?? null, rd.entries);
        const after = failpoint('raftAfterSave');
        if (after) await after;
      }
      if (rd.hardState) this.storage.setHardState(rd.hardState);
      if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
      this.storage.append(rd.entries);
      if (!this.isLeader && rd.messages.length > 0) {
        const fp = failpoint('raftBeforeFollowerSend');
        if (fp) await fp;
        this.sendMessages(rd.messages);
      }
      if (rd.snapshot) this.applyQueue.push({ kind: 'snapshot', snapshot: rd.snapshot });
      let confChange = false;
      for (const e of rd.committedEntries) {
        this.applyQueue.push(e);
        if (e.type === EntryType.ConfChange) confChange = true;
      }
      if (rd.committedEntries.length > 0 || rd.snapshot) this.kickApply();
      // Raft's configuration must reflect a committed ConfChange before the next Ready (etcd waits too).
      if (confChange) {
        // Stopping ends the apply worker early: never wait past close().
        await Promise.race([this.applied.wait(rd.committedEntries[rd.committedEntries.length - 1]!.index), this.stopSignal.promise]);
        if (this.stopped) break;
      }
      for (const rs of rd.readStates) this.onReadState(rs.index, rs.requestCtx);
      this.raft.advance(rd);
    }
  }

  private sendMessages(msgs: Message[]): void {
    if (!this.transport) return;
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) {
        void this.sendSnapshot(m);
        continue;
      }
      // A false return was already reported to Raft through onPeerUnreachable.
      this.transport.send(m.to, encodeMessage(m));
    }
  }

  private onSoftState(rd: Ready): void {
    const ss = rd.softState!;
    const leader = ss.raftState === StateType.Leader;
    if (ss.lead !== this.leaderId) {
      if (ss.lead === 0n) this.logger.info({ 'local-member-id': idToHex(this.memberId), 'lost-leader-member-id': idToHex(this.leaderId) }, 'raft.node: lost leader');
      else this.logger.info({ 'local-member-id': idToHex(this.memberId), 'elected-leader-member-id': idToHex(ss.lead), term: this.raft.status().term }, this.leaderId === 0n ? 'raft.node: elected leader' : 'raft.node: changed leader');
      if (ss.lead !== 0n) this.leaderChanges++;
      this.leaderId = ss.lead;
      // Forwarded lease requests follow the leader.
      this.leaderClient.close();
    }
    if (leader && !this.isLeader) {
      this.isLeader = true;
      this.lessor.promote(this.cfg.electionTimeoutMs);
      this.scheduleLeaseCheckpoints();
      void this.onBecomeLeader();
    } else if (!leader && this.isLeader) {
      this.isLeader = false;
      this.lessor.demote();
      if (this.leaseCheckpointTimer) clearInterval(this.leaseCheckpointTimer);
      this.leaseCheckpointTimer = undefined;
    }
    if (ss.lead !== 0n && !this.published) void this.publish();
  }

  private published = false;
  private publishing = false;
  private capabilitiesLogged = false;

  /** etcd logs this once the cluster version is known (the e2e suite waits for the line). */
  private logCapabilities(): void {
    if (this.capabilitiesLogged) return;
    this.capabilitiesLogged = true;
    this.logger.info({ 'cluster-version': this.clusterVersion }, 'enabled capabilities for version');
  }

  /** Once a leader exists: set the cluster version (leader only) and publish our attributes through the log. */
  private async onBecomeLeader(): Promise<void> {
    try {
      if (this.clusterVersion === '') await this.propose({ cluster_version_set: { ver: CLUSTER_VERSION } });
    } catch (err) {
      if (!this.stopped) this.logger.warn({ error: String(err) }, 'failed to set the cluster version');
    }
  }

  /** etcd publish: retried until it succeeds, since clients are served only after it. */
  private async publish(): Promise<void> {
    if (this.publishing || this.published) return;
    this.publishing = true;
    try {
      while (!this.stopped && !this.published) {
        try {
          await this.propose({
            cluster_member_attr_set: {
              member_ID: this.memberId.toString(),
              member_attributes: { name: this.cfg.name, client_urls: this.cfg.advertiseClientUrls },
            },
          });
          this.published = true;
        } catch (err) {
          if (this.stopped) return;
          this.logger.warn({ error: String(err) }, 'failed to publish local member to cluster through raft');
          await new Promise((r) => setTimeout(r, this.cfg.heartbeatIntervalMs * 5));
        }
      }
      if (this.clusterVersion !== '') this.logCapabilities();
      this.logger.info(
        {
          'local-member-id': idToHex(this.memberId),
          'local-member-attributes': `{Name:${this.cfg.name} ClientURLs:[${this.cfg.advertiseClientUrls.join(' ')}]}`,
          'cluster-id': idToHex(this.clusterId),
          'request-path': `/0/members/${idToHex(this.memberId)}/attributes`,
          'publish-timeout': `${this.requestTimeoutMs}ms`,
        },
        'published local member to cluster through raft',
      );
      this.ready.resolve();
    } finally {
      this.publishing = false;
    }
  }

  private kickApply(): void {
    if (this.applying) return;
    this.applying = this.applyAll()
      .catch((err) => this.fatal(err, 'apply failed'))
      .finally(() => {
        this.applying = null;
        if ((this.applyHead < this.applyQueue.length || this.applyTasks.length > 0) && !this.stopped) this.kickApply();
      });
  }

  private async applyAll(): Promise<void> {
    while ((this.applyHead < this.applyQueue.length || this.applyTasks.length > 0) && !this.stopped) {
      const task = this.applyTasks.shift();
      if (task) {
        await task.run();
        continue;
      }
      const item = this.applyQueue[this.applyHead++]!;
      if (this.applyHead === this.applyQueue.length) {
        this.applyQueue = [];
        this.applyHead = 0;
      }
      if ('kind' in item) {
        const before = failpoint('raftBeforeApplySnap');
        if (before) await before;
        await this.installSnapshot(item.snapshot);
        const after = failpoint('raftAfterApplySnap');
        if (after) await after;
        continue;
      }
      const before = failpoint('beforeApply');
      if (before) await before;
      if (item.type === EntryType.ConfChange) this.applyConfChange(item);
      else await this.applyEntry(item);
      this.applied.trigger(item.index);
      const after = failpoint('afterApply');
      if (after) await after;
      if (item.index - this.snapshotIndex > (this.cfg.snapshotCount || DEFAULT_SNAPSHOT_COUNT)) await this.takeSnapshot(item.index);
    }
  }

  /** Runs `fn` in the apply worker, between two applies: nothing is applied while it runs. */
  private runInApplyWorker<T>(fn: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(serverError(ErrStopped, 'etcdserver: server stopped'));
    const d = deferred<T>();
    this.applyTasks.push({
      run: async () => {
        try {
          d.resolve(await fn());
        } catch (err) {
          d.reject(err);
        }
      },
      fail: (err) => d.reject(err),
    });
    this.kickApply();
    return d.promise;
  }

  // --- snapshots ---

  /**
   * etcd triggerSnapshot + snapshot: every --snapshot-count applied entries, make the backend durable up to the
   * applied index, record a snapshot marker there (file, then WAL record), keep --experimental-snapshot-catchup-
   * entries of the in-memory log behind it for slow followers, and release the WAL segments before it. Runs in the
   * apply worker.
   */
  private async takeSnapshot(index: number): Promise<void> {
    this.logger.info(
      {
        'local-member-id': idToHex(this.memberId),
        'local-member-applied-index': index,
        'local-member-snapshot-index': this.snapshotIndex,
        'local-member-snapshot-count': this.cfg.snapshotCount || DEFAULT_SNAPSHOT_COUNT,
      },
      'triggering snapshot',
    );
    const before = failpoint('beforeSnapshot');
    if (before) await before;
    await this.store.forceCommit();
    const term = this.storage.term(index);
    await this.persistSnapshot({ index, term });
    const after = failpoint('afterSnapshot');
    if (after) await after;
    this.storage.createSnapshot(index, this.confState);
    this.snapshotIndex = index;
    this.snapshotStats.taken++;
    this.logger.info({ 'snapshot-index': index, 'snapshot-term': term }, 'saved snapshot');
    const compactIndex = index - (this.cfg.snapshotCatchupEntries || DEFAULT_SNAPSHOT_CATCHUP_ENTRIES);
    if (compactIndex > this.storage.firstIndex() - 1) {
      this.storage.compact(compactIndex);
      this.logger.info({ 'compact-index': compactIndex }, 'compacted Raft logs');
    }
    await this.wal.releaseTo(index);
    await this.snapshotter.purge(this.cfg.maxSnapshots ?? DEFAULT_MAX_SNAPSHOTS, this.applied.index);
  }

  /** The snapshot marker, then its WAL record: from then on a restart replays the WAL from `marker`. */
  private async persistSnapshot(marker: SnapMarker): Promise<void> {
    await this.snapshotter.save(marker);
    await this.wal.saveSnapshot(marker);
  }

  /**
   * etcd createMergedSnapshotMessage + sendSnapshot: Raft asks for a snapshot when a follower needs entries that
   * are no longer in the log. What we send is the backend as of the applied index (taken in the apply worker, so the
   * index is exact), with the term and configuration there; Raft's stored snapshot is older, and the follower's
   * acknowledgement of the newer index moves its progress on.
   */
  private async sendSnapshot(m: Message): Promise<void> {
    const t = this.transport;
    if (!t) return;
    let ok = false;
    try {
      const snap = await this.runInApplyWorker(async () => {
        const opened = await this.store.openSnapshot();
        const index = opened.consistentIndex;
        return { chunks: opened.chunks, metadata: { index, term: this.raft.raft.raftLog.term(index), confState: this.confState } };
      });
      const msg: Message = { ...m, snapshot: { metadata: snap.metadata } };
      this.logger.info(
        { 'local-member-id': idToHex(this.memberId), 'remote-peer-id': idToHex(m.to), 'snapshot-index': snap.metadata.index, 'snapshot-term': snap.metadata.term },
        'sending merged snapshot',
      );
      await t.sendSnapshot(m.to, encodeMessage(msg), snap.chunks);
      ok = true;
      this.snapshotStats.sent++;
      bump(this.snapshotPeers.sent, idToHex(m.to));
      this.logger.info({ 'remote-peer-id': idToHex(m.to), 'snapshot-index': snap.metadata.index }, 'sent database snapshot');
    } catch (err) {
      this.snapshotStats.sendFailures++;
      bump(this.snapshotPeers.sendFailures, idToHex(m.to));
      if (!this.stopped) this.logger.warn({ 'remote-peer-id': idToHex(m.to), error: String(err) }, 'failed to send database snapshot');
    }
    if (this.stopped) return;
    this.raft.reportSnapshot(m.to, ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
    this.notify();
  }

  /**
   * A snapshot from the leader (etcd rafthttp snapshotHandler): save its database completely and durably under
   * member/snap/<index>.snap.db, then hand the message to Raft. Received one at a time.
   */
  private receiveSnapshot(from: bigint, meta: Buffer, data: AsyncIterable<Buffer>): Promise<void> {
    const run = this.receiving.then(async () => {
      const m = decodeMessage(meta);
      if (m.type !== MessageType.MsgSnap || !m.snapshot) throw new Error('snapshot connection without a MsgSnap');
      const index = m.snapshot.metadata.index;
      if (this.stopped) throw new Error('server stopped');
      this.logger.info({ 'remote-peer-id': idToHex(from), 'snapshot-index': index }, 'receiving database snapshot');
      if (index > this.raft.raft.raftLog.committed) {
        const final = this.snapshotter.dbPath(index);
        const tmp = `${final}.tmp`;
        await fs.rm(tmp, { recursive: true, force: true });
        const { records } = await MvccStore.restoreSnapshot(tmp, data);
        await fs.rm(final, { recursive: true, force: true });
        await fs.rename(tmp, final);
        await fsyncDir(this.snapshotter.dir);
        this.snapshotStats.received++;
        bump(this.snapshotPeers.received, idToHex(from));
        this.logger.info({ 'remote-peer-id': idToHex(from), 'snapshot-index': index, records }, 'received and saved database snapshot');
      }
      // Raft decides: it installs the snapshot (next Ready) or, if it already has the entries, just answers.
      if (this.stopped) return;
      this.raft.step(m);
      this.notify();
    });
    this.receiving = run.catch(() => {});
    return run;
  }

  /** etcd applySnapshot: replace the backend with the received database, then everything derived from it. */
  private async installSnapshot(snap: Snapshot): Promise<void> {
    const index = snap.metadata.index;
    if (index <= this.applied.index) return;
    this.logger.info({ 'local-member-id': idToHex(this.memberId), 'incoming-leader-snapshot-index': index, 'incoming-leader-snapshot-term': snap.metadata.term, 'local-member-applied-index': this.applied.index }, 'applying snapshot');
    const dbDir = path.join(this.snapshotter.dir, 'db');
    await swapInSnapshotDatabase(this.store, this.lessor, this.snapshotter, dbDir, index);
    assert(this.store.consistentIndex() === index, `snapshot database for index ${index} holds index ${this.store.consistentIndex()}`);
    this.lessor.finishRestore();
    this.applier.alarms.clear();
    for (const [k] of await this.store.auxGetAll('alarm')) this.applier.restoreAlarm(k.toString());
    for (const [k, v] of await this.store.auxGetAll('meta')) if (k.toString() === 'clusterVersion') this.clusterVersion = v.toString();
    const before = new Set(this.cluster.members.keys());
    this.cluster.restore(await this.store.auxGetAll('members'), await this.store.auxGetAll('members_removed'));
    this.confState = snap.metadata.confState;
    const t = this.transport;
    if (t) {
      for (const id of before) if (id !== this.memberId && !this.cluster.members.has(id)) t.removePeer(id);
      for (const mem of this.cluster.members.values()) {
        if (mem.id === this.memberId) continue;
        if (before.has(mem.id)) t.updatePeer(mem.id, mem.peerUrls);
        else t.addPeer(mem.id, mem.peerUrls);
      }
    }
    this.snapshotIndex = index;
    this.snapshotStats.applied++;
    this.applied.trigger(index);
    this.logger.info({ 'local-member-id': idToHex(this.memberId), 'snapshot-index': index, 'current-revision': this.store.currentRev }, 'applied snapshot');
    await this.snapshotter.purge(this.cfg.maxSnapshots ?? DEFAULT_MAX_SNAPSHOTS, index);
    if (this.cluster.removed.has(this.memberId)) {
      this.logger.warn({ 'local-member-id': idToHex(this.memberId) }, 'the member has been permanently removed from the cluster');
      void this.stopSelf('removed');
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
    // etcd quotaApplierV3: whether this member's backend had room, judged before the apply.
    const overQuota = w !== undefined && this.maintenance.overQuota(req);
    try {
      const res = await this.applier.apply(e.index, req);
      if (w) {
        this.waiters.delete(req.ID);
        if (overQuota) void this.maintenance.noSpaceAfterApply().catch((err) => w.reject(err));
        else w.resolve(res);
      }
    } catch (err) {
      if (!isDomainError(err)) throw err;
      if (w) {
        this.waiters.delete(req.ID);
        w.reject(err);
      }
    }
  }

  /**
   * etcd applyConfChange: validate against the membership; an invalid change still goes to Raft, as a no-op
   * (nodeId 0), so every member's Raft configuration moves in step. Membership and the consistent index are
   * written in one backend transaction.
   */
  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const w = this.confWaiters.get(cc.id.toString());
    if (e.index <= this.store.consistentIndex()) {
      // Already in the backend's membership (and in the configuration Raft started from).
      return;
    }
    const tw = this.store.write(e.index);
    let change: MembershipChange;
    try {
      change = this.membershipChange(cc);
      this.cluster.validate(change);
    } catch (err) {
      tw.end();
      this.confState = this.raft.applyConfChange({ ...cc, nodeId: 0n });
      if (w) {
        this.confWaiters.delete(cc.id.toString());
        w.reject(err);
      }
      return;
    }
    this.cluster.apply(tw, change);
    tw.end();
    this.confState = this.raft.applyConfChange(cc);
    this.updatePeers(change);
    if (w) {
      this.confWaiters.delete(cc.id.toString());
      w.resolve();
    }
  }

  private membershipChange(cc: ConfChange): MembershipChange {
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        const ctx = JSON.parse(cc.context.toString()) as ConfChangeContext;
        if (ctx.isPromote) return { type: 'promote', id: cc.nodeId };
        return { type: 'add', member: memberFromJson(ctx.member) };
      }
      case ConfChangeType.RemoveNode:
        return { type: 'remove', id: cc.nodeId };
      case ConfChangeType.UpdateNode: {
        const m = JSON.parse(cc.context.toString()) as MemberJson;
        return { type: 'update', id: cc.nodeId, peerUrls: m.peerURLs };
      }
    }
  }

  private updatePeers(change: MembershipChange): void {
    const t = this.transport;
    switch (change.type) {
      case 'add':
        this.logger.info({ 'cluster-id': idToHex(this.clusterId), 'local-member-id': idToHex(this.memberId), 'added-peer-id': idToHex(change.member.id), 'added-peer-peer-urls': change.member.peerUrls }, 'added member');
        if (t && change.member.id !== this.memberId) t.addPeer(change.member.id, change.member.peerUrls);
        break;
      case 'remove':
        this.logger.info({ 'cluster-id': idToHex(this.clusterId), 'local-member-id': idToHex(this.memberId), 'removed-remote-peer-id': idToHex(change.id) }, 'removed member');
        if (change.id === this.memberId) {
          this.logger.warn({ 'local-member-id': idToHex(this.memberId) }, 'the member has been permanently removed from the cluster');
          void this.stopSelf('removed');
        } else if (t) t.removePeer(change.id);
        break;
      case 'update':
        this.logger.info({ 'cluster-id': idToHex(this.clusterId), 'updated-remote-peer-id': idToHex(change.id), 'updated-remote-peer-urls': change.peerUrls }, 'updated member');
        if (t && change.id !== this.memberId) t.updatePeer(change.id, change.peerUrls);
        break;
      case 'promote':
        this.logger.info({ 'cluster-id': idToHex(this.clusterId), 'promoted-member-id': idToHex(change.id) }, 'promote member');
        break;
    }
  }

  private async stopSelf(reason: string): Promise<void> {
    // Let the apply that triggered this finish before tearing down. A peer's refusal ("removed") can arrive
    // while start() is still reading the backend: closing it then would fail start() on a closed backend.
    await new Promise((r) => setImmediate(r));
    await this.running.promise;
    await this.close();
    this.done.resolve(reason);
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
    if (this.raft.raft.raftLog.committed > this.applied.index + MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw serverError(ErrTooManyRequests, 'etcdserver: too many requests');
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
    // TEST ONLY, deliberately unsafe (issue #7): TSETCD_UNSAFE_LOCAL_READS=1 skips ReadIndex, so a linearizable
    // Range reads this member's local state and a partitioned or lagging member serves stale reads. The fault
    // harness (test/fault/harness) sets it to prove its checker catches stale reads. Never set it otherwise.
    if (UNSAFE_LOCAL_READS) return Promise.resolve();
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
        const d = deferred<number>();
        let key = '';
        const send = (): void => {
          const ctx = Buffer.alloc(8);
          ctx.writeBigUInt64BE(BigInt(++this.readCtx));
          key = ctx.toString('hex');
          this.readWaiters.set(key, d);
          this.raft.readIndex(ctx);
          this.notify();
        };
        send();
        // A ReadIndex request can be lost (a follower forwards it to a leader it cannot reach yet, or a new
        // leader has no entry committed in its term): ask again every 500 ms (etcd readIndexRetryTime), each
        // time with a new context, and forget the old one: an answer to an earlier attempt may come from a
        // leader that was paused meanwhile and is no longer current (etcd #20418, fixed by never reusing a
        // ReadIndex context in retries).
        const retry = setInterval(() => {
          if (!this.readWaiters.has(key) || this.stopped) return;
          this.logger.warn({ 'sent-request-id': key }, 'waiting for ReadIndex response took too long, retrying');
          this.readWaiters.delete(key);
          send();
        }, READ_INDEX_RETRY_MS);
        const timer = setTimeout(() => {
          if (this.readWaiters.delete(key)) d.reject(serverError(ErrTimeout, 'etcdserver: request timed out'));
        }, this.requestTimeoutMs);
        let index: number;
        try {
          index = await d.promise;
        } finally {
          clearTimeout(timer);
          clearInterval(retry);
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

  // --- status ---

  header(rev: number): ResponseHeader {
    return {
      cluster_id: this.clusterId.toString(),
      member_id: this.memberId.toString(),
      revision: rev === 0 ? this.store.currentRev : rev,
      // Read the field: status() copies the leader's progress map, too costly for every response header.
      raft_term: this.raft.raft.term,
    };
  }

  /** Proposals waiting for their apply (etcd_server_proposals_pending). */
  get pendingProposals(): number {
    return this.waiters.size + this.confWaiters.size;
  }

  raftStatus(): ReturnType<RawNode['status']> {
    return this.raft.status();
  }

  leader(): bigint {
    return this.raft.raft.lead;
  }

  version(): string {
    return SERVER_VERSION;
  }

  // --- membership (etcd server.go AddMember/RemoveMember/UpdateMember/PromoteMember) ---

  /** Propose a ConfChange and wait for it to be applied (etcd configure). */
  private async configure(cc: Omit<ConfChange, 'id'>): Promise<void> {
    if (this.stopped) throw serverError(ErrStopped, 'etcdserver: server stopped');
    const id = BigInt(this.idGen.next());
    const d = deferred<void>();
    this.confWaiters.set(id.toString(), d);
    try {
      this.raft.proposeConfChange({ ...cc, id });
    } catch (err) {
      this.confWaiters.delete(id.toString());
      if (err instanceof ProposalDroppedError) throw serverError(ErrNoLeader, 'etcdserver: no leader');
      throw err;
    }
    this.notify();
    const timer = setTimeout(() => {
      if (this.confWaiters.get(id.toString()) === d) {
        this.confWaiters.delete(id.toString());
        d.reject(serverError(ErrTimeout, 'etcdserver: request timed out'));
      }
    }, this.requestTimeoutMs);
    try {
      await d.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  async addMember(peerUrls: string[], isLearner: boolean): Promise<Member> {
    // etcd NewMember for a runtime addition: the ID also hashes the current time.
    const m: Member = { id: computeMemberId(peerUrls, '', Math.floor(Date.now() / 1000)), name: '', peerUrls, clientUrls: [], isLearner };
    if (this.cfg.strictReconfigCheck !== false) {
      if (!isLearner && !this.isReadyToAddVotingMember()) {
        this.logger.warn({ 'requested-member-add': JSON.stringify(memberToJson(m)) }, 'rejecting member add request; not enough healthy members');
        throw serverError('ErrNotEnoughStartedMembers', 'etcdserver: re-configuration failed due to not enough started members');
      }
      if (!this.isConnectedToQuorumSince(Date.now() - HEALTH_INTERVAL_MS, this.cluster.votingMembers(), true)) {
        this.logger.warn({}, 'rejecting member add request; local member has not been connected to all peers, reconfigure breaks active quorum');
        throw serverError('ErrUnhealthy', 'etcdserver: unhealthy cluster');
      }
    }
    const ctx: ConfChangeContext = { member: memberToJson(m), isPromote: false };
    await this.configure({ type: isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: m.id, context: Buffer.from(JSON.stringify(ctx)) });
    return m;
  }

  async removeMember(id: bigint): Promise<void> {
    if (this.cfg.strictReconfigCheck !== false) {
      const m = this.cluster.members.get(id);
      if (m && !m.isLearner) {
        if (!this.isReadyToRemoveVotingMember(id)) {
          throw serverError('ErrNotEnoughStartedMembers', 'etcdserver: re-configuration failed due to not enough started members');
        }
        // A member that is down is safe to remove: it is not part of the active quorum.
        const down = id !== this.memberId && this.transport?.activeSince(id) === undefined;
        if (!down) {
          const voters = this.cluster.votingMembers();
          const active = this.numConnectedSince(Date.now() - HEALTH_INTERVAL_MS, voters);
          if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw serverError('ErrUnhealthy', 'etcdserver: unhealthy cluster');
        }
      }
    }
    await this.configure({ type: ConfChangeType.RemoveNode, nodeId: id, context: Buffer.alloc(0) });
  }

  async updateMember(id: bigint, peerUrls: string[]): Promise<void> {
    const m = this.cluster.members.get(id);
    const json: MemberJson = { id: idToHex(id), name: m?.name ?? '', peerURLs: peerUrls, clientURLs: m?.clientUrls ?? [], isLearner: m?.isLearner ?? false };
    await this.configure({ type: ConfChangeType.UpdateNode, nodeId: id, context: Buffer.from(JSON.stringify(json)) });
  }

  /** Promote a learner: only the leader knows whether it is in sync, so a follower forwards (etcd too). */
  async promoteMember(id: bigint): Promise<void> {
    if (!this.isLeader) {
      const lead = this.cluster.members.get(this.leaderId);
      if (!lead) throw serverError(ErrNoLeader, 'etcdserver: no leader');
      // A gRPC error from the leader reaches our client unchanged (v3rpc/errors.ts passes statuses through).
      await this.leaderClient.unary(lead.clientUrls, 'cluster', 'MemberPromote', { ID: id.toString() }, this.requestTimeoutMs);
      // Answer with the membership after the promotion, as etcd does with the leader's: catch up with the leader's
      // commit index (which includes the applied promotion) before reading our own.
      await this.linearizableReadNotify();
      return;
    }
    const m = this.cluster.members.get(id);
    if (m && m.isLearner) {
      const pr = this.raft.status().progress?.get(id);
      const leaderMatch = this.raft.status().progress?.get(this.memberId)?.match ?? 0;
      if (!pr || pr.match < leaderMatch * LEARNER_READY_PERCENT || leaderMatch === 0) {
        throw serverError('ErrLearnerNotReady', 'etcdserver: can only promote a learner member which is in sync with leader');
      }
      if (this.cfg.strictReconfigCheck !== false && !this.isReadyToPromote()) {
        throw serverError('ErrNotEnoughStartedMembers', 'etcdserver: re-configuration failed due to not enough started members');
      }
    }
    const ctx: ConfChangeContext = { member: m ? memberToJson(m) : { id: idToHex(id), name: '', peerURLs: [], clientURLs: [], isLearner: false }, isPromote: true };
    await this.configure({ type: ConfChangeType.AddNode, nodeId: id, context: Buffer.from(JSON.stringify(ctx)) });
  }

  /** etcd IsReadyToAddVotingMember: after the add, a quorum of voters must have started. */
  private isReadyToAddVotingMember(): boolean {
    const voters = this.cluster.votingMembers();
    const nmembers = voters.length + 1;
    const nstarted = voters.filter((m) => RaftCluster.isStarted(m)).length;
    // Adding a second member to a one-member cluster (to restore it) is allowed.
    if (nstarted === 1 && nmembers === 2) return true;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  /** etcd IsReadyToRemoveVotingMember: after the removal, a quorum of the rest must have started. */
  private isReadyToRemoveVotingMember(id: bigint): boolean {
    const voters = this.cluster.votingMembers();
    const nmembers = voters.length - 1;
    const nstarted = voters.filter((m) => m.id !== id && RaftCluster.isStarted(m)).length;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  private isReadyToPromote(): boolean {
    const voters = this.cluster.votingMembers();
    const nmembers = voters.length + 1;
    const nstarted = voters.filter((m) => RaftCluster.isStarted(m)).length + 1;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  private numConnectedSince(sinceMs: number, members: Member[]): number {
    let n = 0;
    for (const m of members) {
      if (m.id === this.memberId) n++;
      else {
        const t = this.transport?.activeSince(m.id);
        if (t !== undefined && t <= sinceMs) n++;
      }
    }
    return n;
  }

  /** etcd isConnectedFullySince / isConnectedToQuorumSince. */
  private isConnectedToQuorumSince(sinceMs: number, members: Member[], fully: boolean): boolean {
    const n = this.numConnectedSince(sinceMs, members);
    return fully ? n === members.length : n >= Math.floor(members.length / 2) + 1;
  }

  /** Maintenance.MoveLeader: transfer leadership to `target` and wait for it (etcd MoveLeader). */
  async moveLeader(target: bigint): Promise<void> {
    if (!this.isLeader) throw serverError(ErrNotLeader, 'etcdserver: not leader');
    const m = this.cluster.members.get(target);
    if (!m || m.isLearner) throw serverError('ErrBadLeaderTransferee', 'etcdserver: bad leader transferee');
    if (target === this.memberId) return;
    this.logger.info({ 'local-member-id': idToHex(this.memberId), 'current-leader-member-id': idToHex(this.memberId), 'transferee-member-id': idToHex(target) }, 'leadership transfer starting');
    this.raft.transferLeader(target);
    this.notify();
    const deadline = Date.now() + this.requestTimeoutMs;
    while (this.leaderId !== target) {
      if (Date.now() > deadline) throw serverError(ErrTimeout, 'etcdserver: request timed out, leader transfer took too long');
      await new Promise((r) => setTimeout(r, this.cfg.heartbeatIntervalMs));
    }
    this.logger.info({ 'local-member-id': idToHex(this.memberId), 'old-leader-member-id': idToHex(this.memberId), 'new-leader-member-id': idToHex(target) }, 'leadership transfer finished');
  }

  // --- leases on followers: forwarded to the leader ---

  /** LeaseKeepAlive: renewed by the leader only; a follower forwards. Returns the TTL (0: not found). */
  async renewLease(id: bigint): Promise<number> {
    if (this.isLeader) {
      const l = this.lessor.lookup(id);
      if (!l || l.expiry <= this.lessor.now()) return 0;
      // A checkpoint recorded before this renewal must not outlive it: if leadership moved, the new leader
      // would restart the lease from the older, shorter remaining TTL (etcd clears it through the log too).
      if (l.remainingTtl > 0 && this.cfg.experimentalEnableLeaseCheckpoint !== false) {
        await this.propose({ lease_checkpoint: { checkpoints: [{ ID: id.toString(), remaining_TTL: 0 }] } });
      }
      return this.lessor.renew(id);
    }
    const lead = this.cluster.members.get(this.leaderId);
    if (!lead) throw serverError(ErrNoLeader, 'etcdserver: no leader');
    return this.leaderClient.renew(lead.clientUrls, id);
  }

  /**
   * LeaseTimeToLive: only the leader knows the remaining TTL; a follower forwards. A member without a leader waits
   * for one, up to the request timeout, and then fails with ErrNoLeader (etcd waitLeader): its own lessor may lack a
   * grant or revoke the cluster has committed, so answering from it could call a live lease gone (found by the
   * fault run mixed seed 62: a peer-partitioned follower answered TTL -1 for a lease renewed 2 s before).
   */
  async leaseTimeToLive(id: bigint, keys: boolean): Promise<{ TTL: number; grantedTTL: number; keys: Buffer[] }> {
    const deadline = performance.now() + this.requestTimeoutMs;
    while (!this.isLeader && this.leaderId === 0n) {
      if (this.stopped || performance.now() >= deadline) throw serverError(ErrNoLeader, 'etcdserver: no leader');
      await new Promise((r) => setTimeout(r, this.cfg.heartbeatIntervalMs));
    }
    if (this.isLeader) {
      const l = this.lessor.lookup(id);
      if (!l || l.ttl === 0) return { TTL: -1, grantedTTL: 0, keys: [] };
      return { TTL: l.remainingSeconds(this.lessor.now()), grantedTTL: l.ttl, keys: keys ? [...l.keys].map((k) => Buffer.from(k, 'latin1')) : [] };
    }
    const lead = this.cluster.members.get(this.leaderId);
    if (!lead) throw serverError(ErrNoLeader, 'etcdserver: no leader');
    const r = await this.leaderClient.unary<{ TTL: string; grantedTTL: string; keys: Buffer[] }>(lead.clientUrls, 'lease', 'LeaseTimeToLive', { ID: id.toString(), keys }, this.requestTimeoutMs);
    return { TTL: Number(r.TTL), grantedTTL: Number(r.grantedTTL), keys: r.keys };
  }

  /**
   * Lease checkpointing (etcd lessor checkpointScheduledLeases, on by default here): the leader records the
   * remaining TTL of long leases through the log, so that a new leader restarts them from what was left rather
   * than from their full TTL.
   */
  private scheduleLeaseCheckpoints(): void {
    if (this.cfg.experimentalEnableLeaseCheckpoint === false) return;
    const interval = this.cfg.experimentalLeaseCheckpointIntervalMs || DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS;
    if (this.leaseCheckpointTimer) clearInterval(this.leaseCheckpointTimer);
    this.leaseCheckpointTimer = setInterval(() => {
      if (!this.isLeader || this.stopped) return;
      const checkpoints = this.lessor.checkpointsDue(interval);
      if (checkpoints.length === 0) return;
      this.propose({ lease_checkpoint: { checkpoints: checkpoints.map((c) => ({ ID: c.id.toString(), remaining_TTL: c.remainingTtl })) } }).catch((err) => {
        if (!this.stopped) this.logger.warn({ error: String(err) }, 'failed to checkpoint leases');
      });
    }, interval);
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    await this.transferLeadershipOnStop();
    this.stopped = true;
    this.stopSignal.resolve();
    for (const t of this.timers) clearInterval(t);
    if (this.leaseCheckpointTimer) clearInterval(this.leaseCheckpointTimer);
    this.notify();
    await this.loopDone;
    await this.applying;
    const stopped = serverError(ErrStopped, 'etcdserver: server stopped');
    for (const w of this.waiters.values()) w.reject(stopped);
    this.waiters.clear();
    for (const w of this.confWaiters.values()) w.reject(stopped);
    this.confWaiters.clear();
    for (const d of this.readWaiters.values()) d.reject(stopped);
    this.readWaiters.clear();
    this.nextRead?.reject(stopped);
    for (const task of this.applyTasks.splice(0)) task.fail(stopped);
    this.applied.rejectAll(stopped);
    await this.maintenance.stop();
    this.ready.reject(stopped);
    this.ready.promise.catch(() => {});
    this.leaderClient.close();
    await this.transport?.stop();
    await this.store.close();
    await this.wal.close();
  }

  /**
   * A leader that stops gracefully hands leadership to the most caught-up connected voter first (etcd
   * TransferLeadership on Stop), so clients see a leader change instead of an election timeout.
   */
  private async transferLeadershipOnStop(): Promise<void> {
    if (!this.isLeader || !this.transport) return;
    const candidates = this.cluster.votingMembers().filter((m) => m.id !== this.memberId && this.transport!.isActive(m.id));
    if (candidates.length === 0) return;
    const progress = this.raft.status().progress;
    candidates.sort((a, b) => (progress?.get(b.id)?.match ?? 0) - (progress?.get(a.id)?.match ?? 0));
    try {
      await this.moveLeader(candidates[0]!.id);
    } catch (err) {
      this.logger.warn({ error: String(err) }, 'failed to transfer leadership before stopping');
    }
  }
}
