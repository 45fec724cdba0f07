#!/usr/bin/env node
'use strict';
// A local three-member cluster on one machine, for trying things out and for pointing a kube-apiserver at:
// three bin/etcd processes (infra1..3, as etcd's Procfile names them) on loopback, each with its own data dir
// and log file. Ctrl-C (or SIGTERM) stops all three gracefully; run it again to restart them from their data.
//
//   npm run cluster                         # client URLs 127.0.0.1:2379, :22379, :32379; data in ./cluster.etcd
//   npm run cluster -- --clean              # start from empty data dirs
//   npm run cluster -- --dir /tmp/c --client-ports 4379,4479,4579 --peer-ports 4380,4480,4580
//   npm run cluster -- -- --log-level debug # flags after a second `--` go to every member
//
// Needs a build (`npm install` runs it; `npm run build` after changes).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const USAGE = `usage: npm run cluster -- [--dir DIR] [--clean] [--host HOST] [--client-ports P1,P2,P3]
                          [--peer-ports P1,P2,P3] [--token TOKEN] [-- ETCD_FLAGS...]
  --dir           data dirs and logs go to DIR/infraN and DIR/infraN.log (default ./cluster.etcd)
  --clean         remove DIR first (a fresh cluster)
  --host          the address every member listens on (default 127.0.0.1)
  --client-ports  default 2379,22379,32379
  --peer-ports    default 2380,22380,32380
  --token         --initial-cluster-token (default tsetcd-local-cluster)
`;

function parseArgs(argv) {
  const o = {
    dir: path.resolve('cluster.etcd'),
    clean: false,
    host: '127.0.0.1',
    clientPorts: [2379, 22379, 32379],
    peerPorts: [2380, 22380, 32380],
    token: 'tsetcd-local-cluster',
    extra: [],
  };
  const ports = (v, flag) => {
    const p = String(v).split(',').map((x) => Number(x));
    if (p.length !== 3 || p.some((x) => !Number.isInteger(x) || x <= 0 || x > 65535)) throw new Error(`${flag} takes three ports, e.g. 2379,22379,32379`);
    return p;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--') {
      o.extra = argv.slice(i + 1);
      break;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a === '--dir') o.dir = path.resolve(value());
    else if (a === '--clean') o.clean = true;
    else if (a === '--host') o.host = value();
    else if (a === '--client-ports') o.clientPorts = ports(value(), a);
    else if (a === '--peer-ports') o.peerPorts = ports(value(), a);
    else if (a === '--token') o.token = value();
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return o;
}

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`cluster: ${err.message}\n`);
    process.exit(2);
  }
  const root = path.join(__dirname, '..');
  const binEtcd = path.join(root, 'bin', 'etcd');
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'server', 'main-etcd.js'))) {
    process.stderr.write('cluster: no build found; run `npm run build` first\n');
    process.exit(2);
  }
  if (o.clean) fs.rmSync(o.dir, { recursive: true, force: true });
  fs.mkdirSync(o.dir, { recursive: true });

  const names = ['infra1', 'infra2', 'infra3'];
  const clientUrls = o.clientPorts.map((p) => `http://${o.host}:${p}`);
  const peerUrls = o.peerPorts.map((p) => `http://${o.host}:${p}`);
  const initialCluster = names.map((n, i) => `${n}=${peerUrls[i]}`).join(',');
  let stopping = false;
  let ready = 0;
  const members = names.map((name, i) => {
    const log = path.join(o.dir, `${name}.log`);
    const out = fs.openSync(log, 'a');
    const args = [
      '--name', name, '--data-dir', path.join(o.dir, name),
      '--listen-client-urls', clientUrls[i], '--advertise-client-urls', clientUrls[i],
      '--listen-peer-urls', peerUrls[i], '--initial-advertise-peer-urls', peerUrls[i],
      '--initial-cluster', initialCluster, '--initial-cluster-token', o.token, '--initial-cluster-state', 'new',
      ...o.extra,
    ];
    // The member's output goes to its log file; a pipe alongside tells us when it is ready.
    const proc = spawn(process.execPath, [binEtcd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const m = { name, log, proc, ready: false, exited: new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal }))) };
    const onData = (d) => {
      fs.writeSync(out, d);
      if (!m.ready && d.toString().includes('ready to serve client requests')) {
        m.ready = true;
        if (++ready === names.length) onReady();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    void m.exited.then(({ code, signal }) => {
      fs.closeSync(out);
      if (stopping) return;
      process.stderr.write(`cluster: ${name} (pid ${proc.pid}) exited unexpectedly (${signal ?? `code ${code}`}); last lines of ${log}:\n`);
      const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
      process.stderr.write(lines.slice(-10).join('\n') + '\n');
      void stop(1);
    });
    return m;
  });

  function onReady() {
    const endpoints = clientUrls.join(',');
    process.stdout.write(
      [
        `cluster is ready: ${names.map((n, i) => `${n}=${clientUrls[i]} (pid ${members[i].proc.pid})`).join(', ')}`,
        `  data and logs: ${o.dir}/{${names.join(',')}}{,.log}`,
        `  etcdctl --endpoints=${endpoints} endpoint status -w table`,
        `  kube-apiserver --etcd-servers=${endpoints} ...`,
        '  Ctrl-C stops all three.',
        '',
      ].join('\n'),
    );
  }

  async function stop(exitCode) {
    if (stopping) return;
    stopping = true;
    const running = members.filter((m) => m.proc.exitCode === null && m.proc.signalCode === null);
    for (const m of running) m.proc.kill('SIGTERM');
    // A member that does not stop within 10 s is killed.
    const timer = setTimeout(() => {
      for (const m of running) if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    }, 10_000);
    await Promise.all(members.map((m) => m.exited));
    clearTimeout(timer);
    process.stdout.write('cluster stopped\n');
    process.exit(exitCode);
  }

  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
}

main();
