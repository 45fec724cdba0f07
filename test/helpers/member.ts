// Test helpers: start a member in-process on a free loopback port with its own temp data dir, and raw gRPC
// clients built from our proto/ (to check exact status codes and messages, which client libraries hide).

import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { startMember, type Member } from '../../src/server/member';
import { defaultConfig, type ServerConfig } from '../../src/server/config';
import { loadApi } from '../../src/api/proto';

export interface TestMember extends Member {
  dataDir: string;
  endpoint: string;
  /** Stop and delete the data dir. */
  destroy(): Promise<void>;
}

export async function tempDir(prefix = 'tsetcd-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function startTestMember(overrides: Partial<ServerConfig> = {}, dataDir?: string, opts: { logger?: pino.Logger } = {}): Promise<TestMember> {
  const dir = dataDir ?? (await tempDir());
  const cfg: ServerConfig = {
    ...defaultConfig(),
    name: 'test',
    dataDir: dir,
    listenClientUrls: ['http://127.0.0.1:0'],
    // A single member still listens for peers (as etcd does); port 0 keeps parallel tests apart.
    listenPeerUrls: ['http://127.0.0.1:0'],
    advertiseClientUrls: ['http://127.0.0.1:0'],
    initialAdvertisePeerUrls: ['http://127.0.0.1:2380'],
    initialCluster: 'test=http://127.0.0.1:2380',
    heartbeatIntervalMs: 10,
    electionTimeoutMs: 100,
    ...overrides,
  };
  const logger = opts.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const m = await startMember(cfg, { logger });
  const endpoint = m.clientUrls[0]!;
  return {
    ...m,
    dataDir: dir,
    endpoint,
    async destroy() {
      await m.close();
      if (!dataDir) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

/** A raw client for one etcd service, e.g. rawClient(endpoint, 'etcdserverpb', 'KV'). */
export function rawClient(endpoint: string, pkg: string, service: string): grpc.Client & Record<string, any> {
  const api = loadApi().grpcObject as any;
  const Ctor = api[pkg][service] as typeof grpc.Client;
  const target = endpoint.replace(/^https?:\/\//, '');
  return new Ctor(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 }) as any;
}

/** Promise wrapper for a unary call on a raw client. */
export function call<T = any>(client: any, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    (client[method] as Unary).call(client, req, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}
