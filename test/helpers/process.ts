// Runs bin/etcd as a real child process (for kill -9 and launcher tests).

import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const BIN_ETCD = path.join(__dirname, '..', '..', '..', 'bin', 'etcd');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface EtcdProcess {
  proc: ChildProcess;
  output: () => string;
  /** Resolves when a line containing `text` has been printed (stdout or stderr). */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export interface RunEtcdOptions {
  /**
   * Run inside this network namespace (test/helpers/netns.ts). `ip netns exec` execs the command in place, so
   * proc.pid is still the server's own PID and kill by PID reaches it.
   */
  netns?: string;
}

export function runEtcd(args: string[], env: NodeJS.ProcessEnv = {}, opts: RunEtcdOptions = {}): EtcdProcess {
  const [file, argv] = opts.netns
    ? ['ip', ['netns', 'exec', opts.netns, process.execPath, BIN_ETCD, ...args]]
    : [process.execPath, [BIN_ETCD, ...args]];
  const proc = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners: Array<() => void> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners.slice()) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc,
    output: () => out,
    exited,
    waitFor(text, timeoutMs = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (out.includes(text)) {
            clearTimeout(timer);
            const i = listeners.indexOf(check);
            if (i >= 0) listeners.splice(i, 1);
            resolve();
          }
        };
        const timer = setTimeout(() => reject(new Error(`etcd did not print ${JSON.stringify(text)} within ${timeoutMs} ms; output:\n${out}`)), timeoutMs);
        listeners.push(check);
        void exited.then((code) => {
          if (!out.includes(text)) {
            clearTimeout(timer);
            reject(new Error(`etcd exited (${code}) before printing ${JSON.stringify(text)}; output:\n${out}`));
          }
        });
        check();
      });
    },
  };
}
