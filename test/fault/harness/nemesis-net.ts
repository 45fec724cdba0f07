// Network nemeses beyond peer blackholes (faults.md §6.5):
//
// - flaky-network (F12): on a random subset of the six directed peer links, the peer proxies (peer-proxy.ts) drop
//   30–50 % of the Raft messages, delay them 75 ± 50 ms, duplicate and reorder some and now and then reset a
//   connection; the window's detail ends with the proxies' counters over the window, which prove it happened.
// - isolate-leader (F10): the leader's host-side veth goes down, so clients lose it too (partition-leader only
//   cuts peers). Established connections stall rather than fail; clients' deadlines fire. The detail says which
//   member the majority followed when the link came back.
// - blackhole-until-snapshot (F9): a follower is cut from its peers until the leader has compacted its Raft log
//   past everything the follower can have, so that healing needs a snapshot (members run with a small
//   --snapshot-count for this). The detail says whether one was sent and installed (the members' /metrics).
// - snapshot-crash (F4 at the snapshot points): the same cut, then the follower panics at a failpoint while it saves
//   or installs the snapshot it receives once healed; or a member panics while taking a snapshot of its own. It is
//   restarted after the hold and must catch up.

import http from 'node:http';
import fsp from 'node:fs/promises';
import { sleep } from './cluster';
import type { Nemesis, NemesisContext } from './nemesis';

const others = (i: number) => [0, 1, 2].filter((j) => j !== i);
const pct = (p: number) => `${Math.round(p * 100)}%`;

export const flakyNetwork: Nemesis = {
  name: 'flaky-network',
  matrix: 'F12',
  peerProxy: true,
  holdMs: [1000, 5000],
  async inject(ctx) {
    const { cluster, rng } = ctx;
    const all = [0, 1, 2].flatMap((from) => others(from).map((to) => ({ from, to })));
    let links = all.filter(() => rng.next() < 0.5);
    if (links.length === 0) links = [rng.pick(all)];
    const rules = links.map((l) => ({ ...l, drop: 0.3 + 0.2 * rng.next(), delayMs: 75, jitterMs: 50, duplicate: 0.1, reorder: 0.1, reset: 0.002 }));
    const before = await cluster.proxyStats();
    await cluster.setLinkRules(rules);
    const name = (i: number) => cluster.names[i]!;
    return {
      detail: `proxies on ${rules.map((r) => `${name(r.from)}->${name(r.to)} drop ${pct(r.drop)}`).join(', ')}; all: delay 75±50 ms, duplicate 10%, reorder 10%, reset 0.2%`,
      heal: async () => {
        await cluster.setLinkRules([]);
        const after = await cluster.proxyStats();
        const counts = links.map(({ from, to }) => {
          const k = `${name(from)}->${name(to)}`;
          const a = after[k];
          const b = before[k];
          const d = (x: keyof NonNullable<typeof a>) => (a?.[x] ?? 0) - (b?.[x] ?? 0);
          return `${k} forwarded ${d('forwarded')} dropped ${d('dropped')} delayed ${d('delayed')} duplicated ${d('duplicated')} reordered ${d('reordered')} resets ${d('resets')}`;
        });
        return `proxy counters over the window: ${counts.join('; ')}`;
      },
    };
  },
};

export const isolateLeader: Nemesis = {
  name: 'isolate-leader',
  matrix: 'F10',
  needsNetns: true,
  async inject(ctx) {
    const { cluster } = ctx;
    const l0 = await cluster.leader(3000);
    const l = l0 >= 0 ? l0 : ctx.rng.int(0, 2);
    const cutIso = new Date().toISOString();
    await cluster.net!.linkDown(l);
    return {
      detail: `link down: ${cluster.names[l]}${l0 >= 0 ? ' (the leader)' : ' (no leader known)'} cut from peers and clients`,
      heal: async () => {
        // Before the link comes back: whom do the other two follow?
        const leaders = await Promise.all(others(l).map((i) => cluster.status(i, 1000).then((s) => String(s.leader), () => undefined)));
        // CheckQuorum: a leader that hears from no quorum steps down within one to two election timeouts.
        const stepDown = (await logEntries(ctx, l)).find((e) => e.ts >= cutIso && String(e.msg).includes('stepped down to follower since quorum is not active'));
        const heldMs = Date.now() - Date.parse(cutIso);
        await cluster.net!.heal();
        const named = leaders.map((id) => (id === undefined ? 'no answer' : id === '0' ? 'no leader' : cluster.names[cluster.memberIds.indexOf(id)] ?? id));
        const old = stepDown ? `stepped down (quorum not active) ${Date.parse(stepDown.ts) - Date.parse(cutIso)} ms after the cut` : `had not stepped down after ${heldMs} ms`;
        return `at heal ${others(l).map((i, k) => `${cluster.names[i]} followed ${named[k]}`).join(', ')}; ${cluster.names[l]} ${old}`;
      },
    };
  },
};

/** The members' snapshot settings for blackhole-until-snapshot: a snapshot every 100 entries, keeping 50. */
const SNAPSHOT_COUNT = 100;
const SNAPSHOT_CATCHUP_ENTRIES = 50;
/** Entries the leader may have beyond its commit index (proposals in flight) when the follower is cut. */
const IN_FLIGHT_MARGIN = 50;

/** GET /metrics on a member's client URL; the samples of `name` as label text → value. */
async function metric(endpoint: string, name: string): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${endpoint}/metrics`, { timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('/metrics: timeout')));
    req.on('error', reject);
  });
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

/** Sum over members of a metric's sample (e.g. the snapshots sent To one member); unreachable members count 0. */
async function sumMetric(ctx: NemesisContext, name: string, labels: string): Promise<number> {
  const values = await Promise.all(ctx.cluster.endpoints.map((e) => metric(e, name).then((m) => m.get(labels) ?? 0, () => 0)));
  return values.reduce((a, b) => a + b, 0);
}

/** Member i's log entries (JSON lines of its log file), oldest first. */
async function logEntries(ctx: NemesisContext, i: number): Promise<any[]> {
  const text = await fsp.readFile(ctx.cluster.logFile(i), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/** What member i logged: its last compact index ("compacted Raft logs", 0 if none) and whether it declared
 * `peerHex` inactive (its stream to that peer closed) since `sinceIso`. */
async function leaderLog(ctx: NemesisContext, i: number, sinceIso: string, peerHex: string): Promise<{ compactIndex: number; peerInactive: boolean }> {
  const out = { compactIndex: 0, peerInactive: false };
  for (const e of await logEntries(ctx, i)) {
    if (e.msg === 'compacted Raft logs') out.compactIndex = e['compact-index'];
    else if (e.ts >= sinceIso && e['peer-id'] === peerHex && String(e.msg).startsWith('peer became inactive')) out.peerInactive = true;
  }
  return out;
}

/** The leader and a random follower, or undefined if there is no leader. */
async function leaderAndFollower(ctx: NemesisContext): Promise<{ l: number; f: number } | undefined> {
  const l = await ctx.cluster.leader(3000);
  return l < 0 ? undefined : { l, f: ctx.rng.pick(others(l)) };
}

/**
 * Cuts follower f off from its peers until healing it needs a snapshot: leader l has compacted its Raft log past
 * everything f can hold, and its stream to f has closed. f stays cut off (the caller heals). Returns the detail.
 */
async function cutUntilSnapshotNeeded(ctx: NemesisContext, l: number, f: number): Promise<string> {
  const { cluster } = ctx;
  const peerHex = BigInt(cluster.memberIds[f]!).toString(16);
  const cutIso = new Date().toISOString();
  await cluster.net!.isolate(f);
  // The follower cannot hold an entry the leader did not have when the cut came, except what the leader's socket
  // still holds for retransmission: a blackhole route drops packets, not the connection, and TCP delivers that
  // backlog after the heal. Hence also wait until the leader's stream to the follower has closed (its read
  // timeout), which discards the backlog and puts the follower back to probing from its own last index.
  const leaderIndex = Number((await cluster.status(l)).raftIndex);
  const past = leaderIndex + IN_FLIGHT_MARGIN;
  const started = Date.now();
  let seen = await leaderLog(ctx, l, cutIso, peerHex);
  while ((seen.compactIndex < past || !seen.peerInactive) && Date.now() - started < 20_000) {
    await sleep(200);
    seen = await leaderLog(ctx, l, cutIso, peerHex);
  }
  const waited = ((Date.now() - started) / 1000).toFixed(1);
  return `blackhole ${cluster.names[f]} <-> peers until ${cluster.names[l]} compacted its Raft log past index ${past} and dropped its stream: compact index ${seen.compactIndex}, stream ${seen.peerInactive ? 'closed' : 'still open'} after ${waited} s`;
}

const snapshotArgs = ['--snapshot-count', String(SNAPSHOT_COUNT), '--experimental-snapshot-catchup-entries', String(SNAPSHOT_CATCHUP_ENTRIES)];

export const blackholeUntilSnapshot: Nemesis = {
  name: 'blackhole-until-snapshot',
  matrix: 'F9',
  needsNetns: true,
  memberArgs: snapshotArgs,
  async inject(ctx) {
    const { cluster } = ctx;
    const lf = await leaderAndFollower(ctx);
    if (!lf) return { detail: 'no leader: nothing isolated', heal: async () => {} };
    const { f } = lf;
    const fHex = `{To="${BigInt(cluster.memberIds[f]!).toString(16)}"}`;
    const sentBefore = await sumMetric(ctx, 'etcd_network_snapshot_send_success', fHex);
    const appliedBefore = await metric(cluster.endpoints[f]!, 'tsetcd_snapshots_applied_total').then((m) => m.get('') ?? 0, () => 0);
    const detail = await cutUntilSnapshotNeeded(ctx, lf.l, f);
    const name = (i: number) => cluster.names[i]!;
    return {
      detail,
      heal: async () => {
        await cluster.net!.heal();
        const until = Date.now() + 10_000;
        let sent = sentBefore;
        let applied = appliedBefore;
        while (Date.now() < until) {
          sent = await sumMetric(ctx, 'etcd_network_snapshot_send_success', fHex);
          applied = await metric(cluster.endpoints[f]!, 'tsetcd_snapshots_applied_total').then((m) => m.get('') ?? 0, () => applied);
          if (sent > sentBefore && applied > appliedBefore) break;
          await sleep(250);
        }
        return sent > sentBefore
          ? `snapshot sent to ${name(f)} (etcd_network_snapshot_send_success ${sentBefore} -> ${sent}; ${name(f)} installed ${applied - appliedBefore})`
          : `no snapshot sent to ${name(f)} within 10 s of healing`;
      },
    };
  },
};

/** Failpoints around snapshots (src/util/failpoints.ts): receiving one from the leader, and taking one. */
export const SNAPSHOT_CRASH_FAILPOINTS = ['raftBeforeSaveSnap', 'raftAfterSaveSnap', 'raftBeforeApplySnap', 'raftAfterApplySnap', 'beforeSnapshot', 'afterSnapshot'];

/**
 * F4 at the snapshot points: a member panics while it saves or installs a snapshot received from the leader (the
 * follower of blackhole-until-snapshot, with the failpoint set before the heal), or while it takes one of its own
 * (every 100 entries in these runs). Restarted after the hold, it must come up and catch up with the revision the
 * cluster had at the crash; a received snapshot persisted but not installed is installed at start (etcd's
 * "backend is behind the snapshot"), one not persisted is sent again.
 */
export const snapshotCrash: Nemesis = {
  name: 'snapshot-crash',
  matrix: 'F4 + F9 (crash while saving, installing or taking a snapshot)',
  needsNetns: true,
  memberArgs: snapshotArgs,
  async inject(ctx) {
    const { cluster } = ctx;
    const fp = ctx.rng.pick(SNAPSHOT_CRASH_FAILPOINTS);
    const receiving = fp.startsWith('raft');
    let i = ctx.rng.int(0, 2);
    let cutDetail = '';
    if (receiving) {
      const lf = await leaderAndFollower(ctx);
      if (!lf) return { detail: `no leader: nothing injected (${fp})`, heal: async () => {} };
      i = lf.f;
      cutDetail = `${await cutUntilSnapshotNeeded(ctx, lf.l, i)}; `;
    }
    const name = cluster.names[i]!;
    const p = cluster.procs[i];
    if (!p) return { detail: `${cutDetail}${name} is down: nothing injected (${fp})`, heal: async () => {} };
    const from = cluster.logSize(i);
    await cluster.failpoint(i, fp, 'panic');
    if (receiving) await cluster.net!.heal();
    const code = await Promise.race([p.exited, sleep(10_000).then(() => 'alive' as const)]);
    if (code === 'alive') await cluster.failpoint(i, fp, undefined).catch(() => {});
    const panicked = code === 2 && (await cluster.logShows(i, `panic: failpoint ${fp}`, from, 1000));
    const anomalies: string[] = [];
    return {
      detail: `${cutDetail}${fp}=panic on ${name}${receiving ? ', then healed' : ''}: ${panicked ? 'it panicked (exit 2)' : code === 'alive' ? 'did not fire within 10 s; cleared' : `exit ${code} without the panic line`}`,
      anomalies,
      heal: async () => {
        if (cluster.isUp(i)) return `${name} was up`;
        const l = await cluster.leader(5000);
        const target = l >= 0 ? Number((await cluster.status(l)).header.revision) : 0;
        const restartedFrom = cluster.logSize(i);
        try {
          await cluster.restart(i);
        } catch (err: any) {
          anomalies.push(`${name} did not restart after ${fp}: ${err?.message ?? err}`);
          return `${name} did not restart`;
        }
        const deadline = Date.now() + 15_000;
        let now = 0;
        while (now < target && Date.now() < deadline) {
          now = await cluster.status(i).then((x) => Number(x.header.revision), () => now);
          if (now < target) await sleep(200);
        }
        if (now < target) anomalies.push(`${name} stayed at revision ${now} after its restart, below the ${target} the cluster had`);
        const atStart = await cluster.logShows(i, 'installing the received snapshot database', restartedFrom, 0);
        const again = await cluster.logShows(i, '"applied snapshot"', restartedFrom, 0);
        return `restarted${atStart ? ', installed the received snapshot at start' : ''}${again ? ', installed a snapshot from the leader' : ''}, caught up to ${now} (cluster was at ${target})`;
      },
    };
  },
};
