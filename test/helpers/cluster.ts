// An in-process cluster of members on loopback for tests: free ports for peers and clients, one temp data
// dir each, started together (a member serves clients only once a leader exists and it has published itself).

import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './process';
import { startTestMember, tempDir, type TestMember } from './member';
import type { ServerConfig } from '../../src/server/config';

export interface TestCluster {
  members: TestMember[];
  names: string[];
  configs: Array<Partial<ServerConfig>>;
  dataDirs: string[];
  root: string;
  /** Restart member i from its data dir (after stop). */
  restart(i: number): Promise<TestMember>;
  stop(i: number): Promise<void>;
  destroy(): Promise<void>;
}

export async function startTestCluster(n: number, overrides: Partial<ServerConfig> = {}): Promise<TestCluster> {
  const root = await tempDir('tsetcd-cluster-');
  const names = Array.from({ length: n }, (_, i) => `m${i}`);
  const peerPorts = await Promise.all(names.map(() => freePort()));
  const clientPorts = await Promise.all(names.map(() => freePort()));
  const peerUrls = peerPorts.map((p) => `http://127.0.0.1:${p}`);
  const initialCluster = names.map((name, i) => `${name}=${peerUrls[i]}`).join(',');
  const dataDirs = names.map((name) => path.join(root, name));
  const configs = names.map((name, i): Partial<ServerConfig> => ({
    name,
    listenPeerUrls: [peerUrls[i]!],
    initialAdvertisePeerUrls: [peerUrls[i]!],
    listenClientUrls: [`http://127.0.0.1:${clientPorts[i]}`],
    advertiseClientUrls: [`http://127.0.0.1:${clientPorts[i]}`],
    initialCluster,
    initialClusterToken: 'test-cluster',
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
    ...overrides,
  }));
  for (const d of dataDirs) await fs.mkdir(d, { recursive: true });
  const members = await Promise.all(configs.map((c, i) => startTestMember(c, dataDirs[i])));
  const cluster: TestCluster = {
    members,
    names,
    configs,
    dataDirs,
    root,
    async restart(i) {
      const m = await startTestMember({ ...configs[i], initialClusterState: 'existing' }, dataDirs[i]);
      members[i] = m;
      return m;
    },
    async stop(i) {
      await members[i]!.close();
    },
    async destroy() {
      await Promise.allSettled(members.map((m) => m.close()));
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
