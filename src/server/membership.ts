// Members and the cluster's identity, derived exactly as etcd derives them (etcdserver/api/membership), so that
// IDs shown by `etcdctl member list` and in response headers have etcd's shape and stability.

import { createHash } from 'node:crypto';

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/**
 * etcd's NewMember: the first 8 bytes (big-endian) of sha1(sorted peer URLs joined, then the cluster token,
 * then the Unix time in seconds when given, for members added at runtime).
 */
export function computeMemberId(peerUrls: readonly string[], clusterToken: string, nowUnixSeconds?: number): bigint {
  const sorted = [...peerUrls].sort();
  let s = sorted.join('') + clusterToken;
  if (nowUnixSeconds !== undefined) s += String(nowUnixSeconds);
  return createHash('sha1').update(s).digest().readBigUInt64BE(0);
}

/** etcd's RaftCluster.genID: first 8 bytes of sha1 over the sorted member IDs, each 8 bytes big-endian. */
export function computeClusterId(memberIds: readonly bigint[]): bigint {
  const ids = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const b = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => b.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

/** Parse `--initial-cluster` ("name=url,name=url2,other=url3") into name -> peer URLs, in first-seen order. */
export function parseInitialCluster(s: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of s.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`invalid --initial-cluster entry ${JSON.stringify(p)}: want name=peer-url`);
    const name = p.slice(0, eq);
    const url = p.slice(eq + 1);
    const urls = out.get(name) ?? [];
    urls.push(url);
    out.set(name, urls);
  }
  return out;
}

/** IDs are printed as etcd's types.ID: lowercase hex without leading zeros. */
export function idToHex(id: bigint): string {
  return id.toString(16);
}
