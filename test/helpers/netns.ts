// Network namespaces for fault tests (../shared/docs/faults.md §6.2, option A): one namespace per member, each
// with a veth whose host end is on a bridge of our own, so that every member has its own address on a private
// /24 and the host (where the test and its clients run) reaches all of them through the bridge. Faults are
// blackhole routes inside the namespaces: `isolate(i)` cuts member i off from its peers in both directions while
// clients on the host still reach it; `cut(i, j)` cuts one pair only (a bridge partition); `linkDown(i)` takes
// member i's host-side veth down, cutting it off from everyone, clients included; `heal()` undoes all of them.
//
//   host (test, clients): 10.77.X.254 on bridge tsb<id>
//     ├── veth tsv<id>a ── eth0 10.77.X.1 in namespace tsetcd-<id>-0
//     ├── veth tsv<id>b ── eth0 10.77.X.2 in namespace tsetcd-<id>-1
//     └── ...
//
// Every name carries a random id, and X is chosen among /24s no interface or route on this machine uses yet, so
// that parallel tests (and other engineers' runs) never share a namespace, a link or a subnet. Needs root (or
// CAP_NET_ADMIN) and iproute2; netnsUnavailable() says why not, so that a test can skip with that reason instead
// of passing without having done anything. destroy() removes everything created so far, and is safe to call
// twice or after a failed create.
//
// Blackhole routes act on established TCP connections immediately, and a new connect() to a blackholed address
// fails at once (EINVAL), so a cut is seen by the peer transport within one heartbeat; after heal() traffic
// resumes within about a second (TCP retransmit backoff).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Runs `ip ...args`; rejects with its stderr. */
export function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** Why namespaces cannot be used here (not root, no iproute2), or undefined if they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root (ip netns add)';
  try {
    await ip(['netns', 'list']);
  } catch (err) {
    return `iproute2 is not usable: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

export interface NetnsTopology {
  /** The random id in every name. */
  readonly id: string;
  readonly bridge: string;
  /** The host's address on the bridge: where the test's clients connect from. */
  readonly hostAddress: string;
  /** Namespace names, one per member. */
  readonly namespaces: readonly string[];
  /** Each member's address (namespace i has addresses[i]). */
  readonly addresses: readonly string[];
  /** Drop everything namespace `from` sends to member `to` (one direction). */
  blackhole(from: number, to: number): Promise<void>;
  /** Cut the pair i ↔ j in both directions. */
  cut(i: number, j: number): Promise<void>;
  /** Cut member i off from every other member in both directions; the host still reaches it. */
  isolate(i: number): Promise<void>;
  /** Take member i's host-side veth down: it reaches no one and no one reaches it. Established TCP connections
   * stall rather than fail (retransmits), so only deadlines and heartbeats notice. */
  linkDown(i: number): Promise<void>;
  /** Remove every blackhole route added so far and bring every downed link back up. */
  heal(): Promise<void>;
  /** Kill nothing: delete the namespaces and the bridge. Stop the processes inside first. */
  destroy(): Promise<void>;
}

async function usedSubnets(): Promise<Set<number>> {
  const used = new Set<number>();
  const text = (await ip(['-o', '-4', 'addr', 'show'])) + (await ip(['-4', 'route', 'show', 'table', 'all']).catch(() => ''));
  for (const m of text.matchAll(/\b10\.77\.(\d+)\./g)) used.add(Number(m[1]));
  return used;
}

/**
 * Creates `n` namespaces on a new bridge, addresses 10.77.X.1..n (X chosen free, in 100..249), the host at
 * 10.77.X.254. On failure, removes whatever it had created and rethrows.
 */
export async function createNetns(n: number): Promise<NetnsTopology> {
  if (n < 1 || n > 26) throw new RangeError(`createNetns: 1..26 namespaces, not ${n}`);
  const id = randomBytes(3).toString('hex');
  const used = await usedSubnets();
  const free = Array.from({ length: 150 }, (_, i) => 100 + i).filter((x) => !used.has(x));
  if (free.length === 0) throw new Error('no free 10.77.X.0/24 subnet');
  const x = free[randomBytes(2).readUInt16BE(0) % free.length]!;
  const bridge = `tsb${id}`;
  const namespaces = Array.from({ length: n }, (_, i) => `tsetcd-${id}-${i}`);
  const hostVeths = Array.from({ length: n }, (_, i) => `tsv${id}${String.fromCharCode(97 + i)}`);
  const addresses = Array.from({ length: n }, (_, i) => `10.77.${x}.${i + 1}`);
  const hostAddress = `10.77.${x}.254`;
  const created = { bridge: false, namespaces: [] as string[] };
  const routes = new Set<string>(); // "from to"
  const downed = new Set<number>();

  const destroy = async (): Promise<void> => {
    // Deleting a namespace deletes its end of the veth, and with it the host end.
    for (const ns of created.namespaces.splice(0)) await ip(['netns', 'del', ns]).catch(() => {});
    for (const v of hostVeths) await ip(['link', 'del', v]).catch(() => {});
    if (created.bridge) {
      created.bridge = false;
      await ip(['link', 'del', bridge]).catch(() => {});
    }
    routes.clear();
    downed.clear();
  };

  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    created.bridge = true;
    await ip(['addr', 'add', `${hostAddress}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    for (let i = 0; i < n; i++) {
      const ns = namespaces[i]!;
      await ip(['netns', 'add', ns]);
      created.namespaces.push(ns);
      await ip(['link', 'add', hostVeths[i]!, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['link', 'set', hostVeths[i]!, 'master', bridge, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${addresses[i]}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const check = (i: number) => {
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`no member ${i} in a topology of ${n}`);
  };
  const blackhole = async (from: number, to: number): Promise<void> => {
    check(from);
    check(to);
    if (from === to) throw new RangeError('a member cannot be cut from itself');
    const key = `${from} ${to}`;
    if (routes.has(key)) return;
    await ip(['-n', namespaces[from]!, 'route', 'add', 'blackhole', `${addresses[to]}/32`]);
    routes.add(key);
  };
  return {
    id,
    bridge,
    hostAddress,
    namespaces,
    addresses,
    blackhole,
    async cut(i, j) {
      await blackhole(i, j);
      await blackhole(j, i);
    },
    async isolate(i) {
      check(i);
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        await blackhole(i, j);
        await blackhole(j, i);
      }
    },
    async linkDown(i) {
      check(i);
      await ip(['link', 'set', hostVeths[i]!, 'down']);
      downed.add(i);
    },
    async heal() {
      for (const i of [...downed]) {
        await ip(['link', 'set', hostVeths[i]!, 'up']);
        downed.delete(i);
      }
      for (const key of [...routes]) {
        const [from, to] = key.split(' ').map(Number) as [number, number];
        await ip(['-n', namespaces[from]!, 'route', 'del', 'blackhole', `${addresses[to]}/32`]);
        routes.delete(key);
      }
    },
    destroy,
  };
}
