// TLS material: auto-TLS certificate generation and reuse, certificate files, client-certificate auth, CRL and
// allowed CN/hostname checks, cipher suites — each checked with a real TLS handshake — and the gRPC credentials.

import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { generate } from 'selfsigned';
import { emptyTlsConfig, type TlsConfig } from '../../src/server/config';
import { createLogger } from '../../src/server/logger';
import {
  checkCertSan,
  checkPeerCertificate,
  grpcServerCredentials,
  opensslCiphers,
  parseCrlRevokedSerials,
  resolveTls,
  tlsClientOptions,
  tlsServerOptions,
  verifyTlsSocket,
  type TlsMaterial,
} from '../../src/server/tls';

const FIXTURES = '/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures';
const haveFixtures = fs.existsSync(path.join(FIXTURES, 'ca.crt'));
const fx = (name: string): string => path.join(FIXTURES, name);
const read = (name: string): Buffer => fs.readFileSync(fx(name));

function capture(): { logger: ReturnType<typeof createLogger>; messages: () => string[] } {
  const out: string[] = [];
  const logger = createLogger({ logLevel: 'debug', logger: 'zap', logOutputs: ['stderr'] }, { stream: { write: (s: string) => void out.push(s) } });
  return {
    logger,
    messages: () =>
      out
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
  };
}

function tlsCfg(over: Partial<TlsConfig>): TlsConfig {
  return { ...emptyTlsConfig(), ...over };
}

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface HandshakeResult {
  ok: boolean;
  error?: string;
  /** What verifyTlsSocket said about the client, on the server side. */
  serverCheck?: string | undefined;
}

/** A TLS server built from the material; the client connects, and we see whether the server's greeting arrives. */
async function handshake(m: TlsMaterial, client: tls.ConnectionOptions): Promise<HandshakeResult> {
  let serverCheck: Promise<string | undefined> | undefined;
  const server = tls.createServer(tlsServerOptions(m), (sock) => {
    serverCheck = verifyTlsSocket(m, sock);
    sock.on('error', () => undefined);
    sock.end('hello');
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as AddressInfo;
  try {
    const result = await new Promise<HandshakeResult>((resolve) => {
      const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...client });
      let got = '';
      sock.on('data', (d: Buffer) => {
        got += d.toString();
      });
      sock.on('error', (err) => resolve({ ok: false, error: err.message }));
      sock.on('close', () => resolve(got === 'hello' ? { ok: true } : { ok: false, error: 'closed' }));
    });
    if (result.ok && serverCheck !== undefined) result.serverCheck = await serverCheck;
    return result;
  } finally {
    server.close();
  }
}

t.test('no TLS configured', async (t) => {
  const { logger } = capture();
  t.equal(await resolveTls(emptyTlsConfig(), { dataDir: '/nonexistent', kind: 'client', hosts: [], logger }), undefined);
  t.equal(grpcServerCredentials(undefined)._isSecure(), false);
});

t.test('auto-TLS: generated once under <data-dir>/fixtures, then reused', async (t) => {
  const dataDir = tmpdir(t);
  const { logger, messages } = capture();
  const m = await resolveTls(tlsCfg({ autoTls: true, clientCertAuth: true, trustedCaFile: '/ignored' }), {
    dataDir,
    kind: 'client',
    hosts: ['localhost:2379', '127.0.0.1:2379', '[::1]:2379'],
    validityYears: 2,
    logger,
  });
  t.ok(m);
  if (m === undefined) return;
  const certFile = path.join(dataDir, 'fixtures', 'client', 'cert.pem');
  const keyFile = path.join(dataDir, 'fixtures', 'client', 'key.pem');
  t.equal(m.certFile, certFile);
  t.equal(m.keyFile, keyFile);
  t.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  t.equal(m.selfSigned, true);
  // Auto-TLS replaces the configuration, as etcd's SelfCert does: no client-certificate auth, no CA.
  t.equal(m.requestCert, false);
  t.equal(m.ca, undefined);
  const cert = new X509Certificate(m.cert);
  t.match(cert.subjectAltName, /DNS:localhost/);
  t.match(cert.subjectAltName, /IP Address:127\.0\.0\.1/);
  t.match(cert.subjectAltName, /IP Address:0:0:0:0:0:0:0:1/);
  t.match(cert.subject, /O=etcd/);
  t.equal(cert.publicKey.asymmetricKeyType, 'ec');
  t.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365 * 24 * 3600 * 1000);
  t.ok(years > 1.99 && years < 2.01, `valid for ${years} years`);
  t.same(messages(), ['automatically generate certificates', 'created cert file', 'created key file']);

  // The handshake works for a client that trusts it (or skips verification, as etcd's own dialers do).
  t.match(await handshake(m, { ca: m.cert }), { ok: true });
  t.match(await handshake(m, { rejectUnauthorized: false }), { ok: true });
  t.match(await handshake(m, {}), { ok: false });
  t.match(await handshake(m, tlsClientOptions(m)), { ok: true });

  // Second start: the files are reused as they are.
  const again = await resolveTls(tlsCfg({ autoTls: true }), { dataDir, kind: 'client', hosts: ['localhost:2379'], logger });
  t.same(again?.cert, m.cert);
  t.same(again?.key, m.key);
  t.same(messages().length, 3, 'nothing generated the second time');

  // Peer material lives next to it.
  const peer = await resolveTls(tlsCfg({ autoTls: true }), { dataDir, kind: 'peer', hosts: ['127.0.0.1:2380'], logger });
  t.ok(fs.existsSync(path.join(dataDir, 'fixtures', 'peer', 'cert.pem')));
  t.notSame(peer?.cert, m.cert);

  // Given certificates win over auto-TLS, with etcd's warning.
  if (haveFixtures) {
    const given = await resolveTls(tlsCfg({ autoTls: true, certFile: fx('server.crt'), keyFile: fx('server.key.insecure') }), { dataDir, kind: 'client', hosts: [], logger });
    t.equal(given?.selfSigned, false);
    t.ok(messages().includes('ignoring client auto TLS since certs given'));
  }
});

t.test('certificate files and client-certificate auth', { skip: !haveFixtures && 'etcd fixtures not installed' }, async (t) => {
  const { logger } = capture();
  const opts = { dataDir: '/nonexistent', kind: 'client' as const, hosts: [], logger };
  const m = await resolveTls(tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true }), opts);
  t.ok(m);
  if (m === undefined) return;
  t.equal(m.requestCert, true);
  t.equal(m.rejectUnauthorized, true);
  t.same(m.ca, read('ca.crt'));
  t.equal(m.minVersion, 'TLSv1.2');

  const ca = read('ca.crt');
  const client2 = { ca, cert: read('server2.crt'), key: read('server2.key.insecure') };
  t.match(await handshake(m, client2), { ok: true, serverCheck: undefined });
  // No client certificate: refused.
  t.match(await handshake(m, { ca }), { ok: false });
  // A client certificate from another CA: refused.
  const otherCa = await generate([{ name: 'commonName', value: 'other-ca' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, cRLSign: true },
    ],
  });
  const stranger = await generate([{ name: 'commonName', value: 'stranger' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: otherCa.private, cert: otherCa.cert },
    extensions: [
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  t.match(await handshake(m, { ca, cert: stranger.cert, key: stranger.private }), { ok: false });

  // A trusted CA alone also makes etcd require a client certificate.
  const caOnly = await resolveTls(tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt') }), opts);
  t.equal(caOnly?.requestCert, true);
  // Neither: server authentication only.
  const plain = await resolveTls(tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure') }), opts);
  t.equal(plain?.requestCert, false);
  if (plain !== undefined) t.match(await handshake(plain, { ca }), { ok: true });

  // Explicit client certificate for dialing out.
  const withClient = await resolveTls(
    tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), clientCertFile: fx('server2.crt'), clientKeyFile: fx('server2.key.insecure') }),
    opts,
  );
  t.same(withClient?.clientCert, read('server2.crt'));

  // Bad files.
  await t.rejects(resolveTls(tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server2.key.insecure') }), opts), { message: 'tls: private key does not match public key' });
  await t.rejects(resolveTls(tlsCfg({ certFile: '/nope.crt', keyFile: fx('server.key.insecure') }), opts), { message: 'open /nope.crt: no such file or directory' });
  await t.rejects(resolveTls(tlsCfg({ certFile: fx('server.crt') }), opts), { message: 'KeyFile and CertFile must both be present[key: , cert: ' + fx('server.crt') + ']' });
});

t.test('CRL: revoked serial numbers, whatever the CRL dates', { skip: !haveFixtures && 'etcd fixtures not installed' }, async (t) => {
  const { logger } = capture();
  const serials = parseCrlRevokedSerials(read('revoke.crl'));
  t.same([...serials], [new X509Certificate(read('server-revoked.crt')).serialNumber]);

  const m = await resolveTls(
    tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, crlFile: fx('revoke.crl') }),
    { dataDir: '/nonexistent', kind: 'client', hosts: [], logger },
  );
  t.ok(m);
  if (m === undefined) return;
  t.ok(m.crl);
  const ca = read('ca.crt');
  // This CRL expired in 2021: OpenSSL would refuse everyone; etcd (and we) only look at the serials.
  t.match(await handshake(m, { ca, cert: read('server2.crt'), key: read('server2.key.insecure') }), { ok: true, serverCheck: undefined });
  const revoked = await handshake(m, { ca, cert: read('server-revoked.crt'), key: read('server-revoked.key.insecure') });
  t.match(revoked, { ok: true, serverCheck: 'transport: certificate serial 4a3cf9f9dcc21a01b4a0efaef7546aaee8fbd194 revoked' });
  t.equal(checkPeerCertificate(m, read('server-revoked.crt')), 'transport: certificate serial 4a3cf9f9dcc21a01b4a0efaef7546aaee8fbd194 revoked');
  t.equal(checkPeerCertificate(m, read('server.crt')), undefined);
  t.equal(checkPeerCertificate(m, undefined), undefined);
});

t.test('allowed CN and hostname', { skip: !haveFixtures && 'etcd fixtures not installed' }, async (t) => {
  const { logger } = capture();
  const base = { certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true };
  const opts = { dataDir: '/nonexistent', kind: 'peer' as const, hosts: [], logger };
  const ca = read('ca.crt');
  const one = { ca, cert: read('server.crt'), key: read('server.key.insecure') }; // CN example.com
  const two = { ca, cert: read('server2.crt'), key: read('server2.key.insecure') }; // CN example2.com

  const cn = await resolveTls(tlsCfg({ ...base, allowedCn: ['example2.com'] }), opts);
  if (cn === undefined) return t.fail('no material');
  t.match(await handshake(cn, two), { ok: true, serverCheck: undefined });
  t.match(await handshake(cn, one), { ok: true, serverCheck: 'client certificate authentication failed' });

  const host = await resolveTls(tlsCfg({ ...base, allowedHostname: ['localhost'] }), opts);
  if (host === undefined) return t.fail('no material');
  t.equal(checkPeerCertificate(host, read('server.crt')), undefined);
  const other = await resolveTls(tlsCfg({ ...base, allowedHostname: ['example.org', '10.0.0.1'] }), opts);
  if (other === undefined) return t.fail('no material');
  t.equal(checkPeerCertificate(other, read('server.crt')), 'client certificate authentication failed');
  // Allowed hostnames are SANs only, never the CN (Go's VerifyHostname).
  const byCn = await resolveTls(tlsCfg({ ...base, allowedHostname: ['example.com'] }), opts);
  if (byCn === undefined) return t.fail('no material');
  t.equal(checkPeerCertificate(byCn, read('server.crt')), 'client certificate authentication failed');

  // Peer listeners check a client certificate's SANs against the remote address (etcd checkCertSAN).
  t.equal(await checkCertSan(read('server-ip.crt'), '127.0.0.1'), undefined);
  t.equal(await checkCertSan(read('server-ip.crt'), '::ffff:127.0.0.1'), undefined);
  t.match(await checkCertSan(read('server-ip.crt'), '10.1.2.3'), /10\.1\.2\.3/);
  t.equal(await checkCertSan(read('server.crt'), '127.0.0.1'), undefined);
});

t.test('cipher suites and TLS versions', { skip: !haveFixtures && 'etcd fixtures not installed' }, async (t) => {
  const { logger } = capture();
  t.equal(opensslCiphers([]), undefined);
  t.equal(
    opensslCiphers(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305']),
    'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305',
  );
  t.throws(() => opensslCiphers(['NOPE']), { message: 'unexpected TLS cipher suite "NOPE"' });
  const m = await resolveTls(tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure') }), {
    dataDir: '/nonexistent',
    kind: 'client',
    hosts: [],
    logger,
    cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'],
    tlsMinVersion: 'TLS1.2',
    tlsMaxVersion: 'TLS1.2',
  });
  if (m === undefined) return t.fail('no material');
  t.equal(m.maxVersion, 'TLSv1.2');
  const ca = read('ca.crt');
  t.match(await handshake(m, { ca, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), { ok: true });
  t.match(await handshake(m, { ca, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' }), { ok: false });
  t.match(await handshake(m, { ca, minVersion: 'TLSv1.3' }), { ok: false });
});

t.test('gRPC server credentials', { skip: !haveFixtures && 'etcd fixtures not installed' }, async (t) => {
  const { logger } = capture();
  const m = await resolveTls(
    tlsCfg({ certFile: fx('server.crt'), keyFile: fx('server.key.insecure'), trustedCaFile: fx('ca.crt'), clientCertAuth: true, crlFile: fx('revoke.crl') }),
    { dataDir: '/nonexistent', kind: 'client', hosts: [], logger },
  );
  if (m === undefined) return t.fail('no material');
  const creds = grpcServerCredentials(m);
  t.equal(creds._isSecure(), true);

  const identity = (b: Buffer): Buffer => b;
  const service: grpc.ServiceDefinition = {
    echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  };
  const server = new grpc.Server();
  server.addService(service, { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? rej(err) : res(p))));
  t.teardown(() => server.forceShutdown());
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const call = (cert: string, key: string): Promise<{ ok: boolean; code?: number; details?: string }> => {
    const client = new Client(`localhost:${port}`, grpc.credentials.createSsl(read('ca.crt'), read(key), read(cert)));
    return new Promise((resolve) => {
      (client as unknown as { echo: (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void }).echo(Buffer.from('ping'), (err, res) => {
        client.close();
        resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: res?.toString() === 'ping' });
      });
    });
  };
  t.same(await call('server2.crt', 'server2.key.insecure'), { ok: true });
  t.match(await call('server-revoked.crt', 'server-revoked.key.insecure'), { ok: false, code: grpc.status.UNAVAILABLE, details: /certificate serial 4a3cf9f9dcc21a01b4a0efaef7546aaee8fbd194 revoked/ });
});
