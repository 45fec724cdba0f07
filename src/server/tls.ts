// TLS material for the client and peer listeners: certificate files or an auto-generated self-signed certificate
// (etcd --auto-tls/--peer-auto-tls), client-certificate authentication, CRL and allowed-CN/hostname checks.
//
// Mirrors etcd client/pkg/transport (listener.go SelfCert, TLSInfo.ServerConfig/baseConfig; listener_tls.go checkCRL,
// checkCertSAN) and embed.Config.ClientSelfCert/PeerSelfCert.
//
// Node's TLS stack cannot run etcd's in-handshake checks (VerifyPeerCertificate) nor etcd's CRL semantics, so they
// run after the handshake: call verifyTlsSocket() on every accepted TLS socket (or use grpcServerCredentials(),
// which checks each call) and drop the connection when it returns a reason. In particular never hand `crl` to
// Node's tls options: OpenSSL then rejects every client once the CRL's nextUpdate has passed (etcd's own test CRL
// expired in 2021), where etcd only looks for revoked serial numbers.

import crypto, { X509Certificate } from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { generate } from 'selfsigned';
import { CIPHER_SUITES_GO_TO_OPENSSL, splitHostPort, urlHostPort, type ServerConfig, type TlsConfig } from './config';
import type { Logger } from './logger';

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  /** Trusted CAs for client certificates (--trusted-ca-file); undefined = Node's default roots. */
  ca?: Buffer;
  /** etcd requires and verifies a client certificate when --client-cert-auth or --trusted-ca-file is set. */
  requestCert: boolean;
  rejectUnauthorized: boolean;
  /** The raw CRL file. Do NOT pass it to Node's tls (see the header comment); use revokedSerials. */
  crl?: Buffer;

  kind: 'client' | 'peer';
  certFile: string;
  keyFile: string;
  /** What this member presents when it dials out (peer): --[peer-]client-cert-file, else the server cert. */
  clientCert: Buffer;
  clientKey: Buffer;
  /** Auto-TLS: dialers skip server verification of this certificate, as etcd does (InsecureSkipVerify). */
  selfSigned: boolean;
  /** Accepted client-certificate CNs / SAN hostnames; empty = any (checked by checkPeerCertificate). */
  allowedCn: string[];
  allowedHostname: string[];
  /** Serial numbers (uppercase hex, no leading zeros) revoked by the CRL file. */
  revokedSerials: ReadonlySet<string>;
  /** Peer listeners check a client certificate's SANs against the remote address unless this is set. */
  skipClientSanVerify: boolean;
  /** OpenSSL cipher list for --cipher-suites (TLS 1.3 suites stay enabled, as in Go); undefined = Node's default. */
  ciphers?: string;
  minVersion: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

export interface ResolveTlsOptions {
  dataDir: string;
  kind: 'client' | 'peer';
  /** Hosts for the auto-TLS certificate's SANs: "host:port" (URL hosts, as etcd passes them) or bare hosts. */
  hosts: string[];
  /** Auto-TLS certificate validity in years (--self-signed-cert-validity); default 1. */
  validityYears?: number;
  logger: Logger;
  cipherSuites?: string[];
  tlsMinVersion?: string;
  tlsMaxVersion?: string;
}

function tlsVersion(v: string | undefined): tls.SecureVersion | undefined {
  if (v === 'TLS1.2') return 'TLSv1.2';
  if (v === 'TLS1.3') return 'TLSv1.3';
  return undefined;
}

const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** Go cipher-suite names → an OpenSSL cipher list; TLS 1.3 suites are kept (Go does not let you configure them). */
export function opensslCiphers(goNames: readonly string[]): string | undefined {
  if (goNames.length === 0) return undefined;
  const names = goNames.map((n) => {
    const o = CIPHER_SUITES_GO_TO_OPENSSL[n];
    if (o === undefined) throw new Error(`unexpected TLS cipher suite ${JSON.stringify(n)}`);
    return o;
  });
  return [TLS13_SUITES, ...names].join(':');
}

/** Go's os.ReadFile error text. */
async function readFileGo(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new Error(`open ${file}: ${why}`);
  }
}

/** etcd tlsutil.NewCert + tls.X509KeyPair checks: the key must match the certificate. */
function checkKeyPair(certPem: Buffer, keyPem: Buffer, certFile: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error(`tls: failed to find any PEM data in certificate input (${certFile})`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(keyPem);
  } catch {
    throw new Error(`tls: failed to find any PEM data in key input (${certFile})`);
  }
  if (!cert.checkPrivateKey(key)) throw new Error('tls: private key does not match public key');
}

function sanHosts(hosts: readonly string[]): string[] {
  const out: string[] = [];
  for (const h of hosts) {
    let host = h;
    try {
      host = splitHostPort(h).host;
    } catch {
      // a bare host
    }
    if (host !== '' && !out.includes(host)) out.push(host);
  }
  return out;
}

/**
 * etcd transport.SelfCert: reuses <dir>/cert.pem and <dir>/key.pem when both exist, else generates a self-signed
 * ECDSA P-256 certificate (etcd v3.5 uses P-521) for `hosts` (IP SANs for IPs, DNS SANs otherwise), O=etcd,
 * server and client auth, valid `validityYears` years.
 */
export async function selfCert(dir: string, hosts: readonly string[], validityYears: number, logger: Logger): Promise<{ certFile: string; keyFile: string }> {
  if (!(validityYears > 0)) throw new Error('selfSignedCertValidity is invalid,it should be greater than 0');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = path.resolve(dir, 'cert.pem');
  const keyFile = path.resolve(dir, 'key.pem');
  const exists = async (f: string): Promise<boolean> =>
    fs.stat(f).then(
      () => true,
      () => false,
    );
  if ((await exists(certFile)) && (await exists(keyFile))) return { certFile, keyFile };

  const notBefore = new Date();
  const notAfter = new Date(notBefore.getTime() + validityYears * 365 * 24 * 3600 * 1000);
  logger.warn({ 'certificate-validity-bound-not-after': notAfter.toISOString() }, 'automatically generate certificates');
  const altNames = sanHosts(hosts).map((h) => (net.isIP(h) !== 0 ? { type: 7 as const, ip: h } : { type: 2 as const, value: h }));
  const pems = await generate([{ name: 'organizationName', value: 'etcd' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      ...(altNames.length > 0 ? [{ name: 'subjectAltName' as const, altNames }] : []),
    ],
  });
  await fs.writeFile(certFile, pems.cert);
  logger.info({ path: certFile }, 'created cert file');
  await fs.writeFile(keyFile, pems.private, { mode: 0o600 });
  logger.info({ path: keyFile }, 'created key file');
  return { certFile, keyFile };
}

/**
 * The TLS material for one listener kind, or undefined when it has no TLS (no cert/key and no auto-TLS).
 * Auto-TLS replaces the whole configuration, as etcd's SelfCert does: no CA, no client-certificate auth, no CRL.
 * Throws (etcd's texts) when a file cannot be read or the key does not match the certificate.
 */
export async function resolveTls(tlsCfg: TlsConfig, opts: ResolveTlsOptions): Promise<TlsMaterial | undefined> {
  let t: TlsConfig = tlsCfg;
  let selfSigned = false;
  if (t.autoTls) {
    if (t.certFile !== '' || t.keyFile !== '') {
      opts.logger.warn(`ignoring ${opts.kind} auto TLS since certs given`);
    } else {
      const dir = path.join(opts.dataDir, 'fixtures', opts.kind);
      const files = await selfCert(dir, opts.hosts, opts.validityYears ?? 1, opts.logger);
      t = {
        certFile: files.certFile,
        keyFile: files.keyFile,
        clientCertFile: files.certFile,
        clientKeyFile: files.keyFile,
        trustedCaFile: '',
        clientCertAuth: false,
        autoTls: true,
        crlFile: '',
        allowedCn: [],
        allowedHostname: [],
        skipClientSanVerify: tlsCfg.skipClientSanVerify,
      };
      selfSigned = true;
    }
  }
  if (t.certFile === '' && t.keyFile === '') return undefined;
  if (t.certFile === '' || t.keyFile === '') {
    throw new Error(`KeyFile and CertFile must both be present[key: ${t.keyFile}, cert: ${t.certFile}]`);
  }
  const cert = await readFileGo(t.certFile);
  const key = await readFileGo(t.keyFile);
  checkKeyPair(cert, key, t.certFile);
  let clientCert = cert;
  let clientKey = key;
  if (t.clientCertFile !== '' || t.clientKeyFile !== '') {
    if (t.clientCertFile === '' || t.clientKeyFile === '') {
      throw new Error(`ClientKeyFile and ClientCertFile must both be present or both absent: key: ${t.clientKeyFile}, cert: ${t.clientCertFile}]`);
    }
    clientCert = await readFileGo(t.clientCertFile);
    clientKey = await readFileGo(t.clientKeyFile);
    checkKeyPair(clientCert, clientKey, t.clientCertFile);
  }
  const requireClientCert = t.trustedCaFile !== '' || t.clientCertAuth;
  const material: TlsMaterial = {
    key,
    cert,
    requestCert: requireClientCert,
    rejectUnauthorized: requireClientCert,
    kind: opts.kind,
    certFile: t.certFile,
    keyFile: t.keyFile,
    clientCert,
    clientKey,
    selfSigned,
    allowedCn: [...t.allowedCn],
    allowedHostname: [...t.allowedHostname],
    revokedSerials: new Set(),
    skipClientSanVerify: t.skipClientSanVerify,
    minVersion: tlsVersion(opts.tlsMinVersion) ?? 'TLSv1.2',
  };
  if (t.trustedCaFile !== '') material.ca = await readFileGo(t.trustedCaFile);
  if (t.crlFile !== '') {
    material.crl = await readFileGo(t.crlFile);
    material.revokedSerials = parseCrlRevokedSerials(material.crl);
  }
  const ciphers = opensslCiphers(opts.cipherSuites ?? []);
  if (ciphers !== undefined) material.ciphers = ciphers;
  const maxVersion = tlsVersion(opts.tlsMaxVersion);
  if (maxVersion !== undefined) material.maxVersion = maxVersion;
  return material;
}

/** resolveTls for a member: hosts from the listen URLs, validity, cipher suites and TLS versions from `cfg`. */
export async function resolveServerTls(cfg: ServerConfig, kind: 'client' | 'peer', logger: Logger): Promise<TlsMaterial | undefined> {
  const urls = kind === 'peer' ? cfg.listenPeerUrls : [...cfg.listenClientUrls, ...cfg.listenClientHttpUrls];
  return resolveTls(kind === 'peer' ? cfg.peerTls : cfg.clientTls, {
    dataDir: cfg.dataDir,
    kind,
    hosts: urls.map(urlHostPort),
    validityYears: cfg.selfSignedCertValidity,
    logger,
    cipherSuites: cfg.cipherSuites,
    tlsMinVersion: cfg.tlsMinVersion,
    tlsMaxVersion: cfg.tlsMaxVersion,
  });
}

/** Options for tls.createServer / https.createServer / http2.createSecureServer (without `crl`, on purpose). */
export function tlsServerOptions(m: TlsMaterial): tls.TlsOptions {
  return {
    key: m.key,
    cert: m.cert,
    ...(m.ca === undefined ? {} : { ca: m.ca }),
    requestCert: m.requestCert,
    rejectUnauthorized: m.rejectUnauthorized,
    ...(m.ciphers === undefined ? {} : { ciphers: m.ciphers }),
    minVersion: m.minVersion,
    ...(m.maxVersion === undefined ? {} : { maxVersion: m.maxVersion }),
  };
}

/**
 * Options for dialing another member with this material (etcd TLSInfo.ClientConfig): our client certificate, the
 * trusted CA, and no server verification when the material is self-signed (auto-TLS), as etcd does.
 */
export function tlsClientOptions(m: TlsMaterial): tls.ConnectionOptions {
  return {
    key: m.clientKey,
    cert: m.clientCert,
    ...(m.ca === undefined ? {} : { ca: m.ca }),
    rejectUnauthorized: !m.selfSigned,
    ...(m.ciphers === undefined ? {} : { ciphers: m.ciphers }),
    minVersion: m.minVersion,
    ...(m.maxVersion === undefined ? {} : { maxVersion: m.maxVersion }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Post-handshake checks

function normalizeSerial(hex: string): string {
  const s = hex.replace(/[^0-9a-fA-F]/g, '').toUpperCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

function toX509(cert: tls.PeerCertificate | X509Certificate | Buffer | undefined | null): X509Certificate | undefined {
  if (cert === undefined || cert === null) return undefined;
  if (cert instanceof X509Certificate) return cert;
  if (Buffer.isBuffer(cert)) return new X509Certificate(cert);
  if (cert.raw === undefined || cert.raw.length === 0) return undefined;
  return new X509Certificate(cert.raw);
}

function commonName(cert: X509Certificate): string {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

/** The certificate's SANs: DNS names and IP addresses (Node prints them as "DNS:x, IP Address:y"). */
export function certSans(cert: X509Certificate): { dnsNames: string[]; ips: string[] } {
  const dnsNames: string[] = [];
  const ips: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) dnsNames.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.push(part.slice('IP Address:'.length));
  }
  return { dnsNames, ips };
}

/** Go x509.Certificate.VerifyHostname (SANs only, no CN fallback). */
function verifyHostname(cert: X509Certificate, host: string): boolean {
  if (net.isIP(host) !== 0) return cert.checkIP(host) !== undefined;
  return cert.checkHost(host, { subject: 'never' }) !== undefined;
}

/**
 * The checks etcd makes on a client certificate besides chain verification: the CRL (etcd checkCRL: serial numbers
 * only, whatever the CRL's dates) and the allowed CNs / hostnames (TLSInfo.baseConfig VerifyPeerCertificate).
 * Returns etcd's error text, or undefined when the certificate is accepted (or none was presented).
 */
export function checkPeerCertificate(m: TlsMaterial, certificate: tls.PeerCertificate | X509Certificate | Buffer | undefined | null): string | undefined {
  const cert = toX509(certificate);
  if (cert === undefined) return undefined;
  if (m.revokedSerials.size > 0) {
    const serial = normalizeSerial(cert.serialNumber);
    if (m.revokedSerials.has(serial)) {
      const even = serial.length % 2 === 1 ? `0${serial}` : serial;
      return `transport: certificate serial ${even.toLowerCase()} revoked`;
    }
  }
  if (m.allowedCn.length > 0 && !m.allowedCn.includes(commonName(cert))) return 'client certificate authentication failed';
  if (m.allowedHostname.length > 0 && !m.allowedHostname.some((h) => verifyHostname(cert, h))) {
    return 'client certificate authentication failed';
  }
  return undefined;
}

/**
 * etcd checkCertSAN, for peer listeners: a client certificate with SANs must name the remote address, as an IP SAN
 * or as a DNS SAN that resolves to it (or that its reverse lookup gives).
 */
export async function checkCertSan(certificate: tls.PeerCertificate | X509Certificate | Buffer, remoteAddress: string): Promise<string | undefined> {
  const cert = toX509(certificate);
  if (cert === undefined) return undefined;
  const { dnsNames, ips } = certSans(cert);
  if (dnsNames.length === 0 && ips.length === 0) return undefined;
  const host = remoteAddress.startsWith('::ffff:') && net.isIPv4(remoteAddress.slice(7)) ? remoteAddress.slice(7) : remoteAddress;
  if (ips.length > 0) {
    if (verifyHostname(cert, host)) return undefined;
    if (dnsNames.length === 0) return `x509: certificate is valid for ${ips.join(', ')}, not ${host}`;
  }
  const wildcards = dnsNames.filter((d) => d.startsWith('*.')).map((d) => d.slice(1));
  const names = dnsNames.filter((d) => !d.startsWith('*.'));
  let lastErr: string | undefined;
  try {
    for (let name of await dns.promises.reverse(host)) {
      if (name.endsWith('.')) name = name.slice(0, -1);
      if (wildcards.some((w) => name.endsWith(w)) || names.includes(name)) return undefined;
    }
  } catch (err) {
    lastErr = (err as Error).message;
  }
  for (const name of names) {
    try {
      const addrs = await dns.promises.lookup(name, { all: true });
      if (addrs.some((a) => a.address === host)) return undefined;
    } catch (err) {
      lastErr = (err as Error).message;
    }
  }
  return `tls: ${JSON.stringify(host)} does not match any of DNSNames [${dnsNames.map((d) => JSON.stringify(d)).join(' ')}]${lastErr === undefined ? '' : ` (${lastErr})`}`;
}

/**
 * All of etcd's post-handshake checks for an accepted TLS connection: CRL, allowed CN/hostname, and for peer
 * listeners the client certificate's SANs. Returns the reason to close the connection, or undefined.
 */
export async function verifyTlsSocket(m: TlsMaterial, socket: tls.TLSSocket): Promise<string | undefined> {
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return undefined;
  const reason = checkPeerCertificate(m, cert);
  if (reason !== undefined) return reason;
  if (m.kind === 'peer' && !m.skipClientSanVerify && socket.remoteAddress !== undefined) {
    return checkCertSan(cert, socket.remoteAddress);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// gRPC

class MaterialServerCredentials extends grpc.ServerCredentials {
  private readonly interceptors: grpc.ServerInterceptor[];

  constructor(private readonly material: TlsMaterial) {
    super(
      {
        requestCert: material.requestCert,
        rejectUnauthorized: material.rejectUnauthorized,
        ...(material.ciphers === undefined ? {} : { ciphers: material.ciphers }),
        minVersion: material.minVersion,
        ...(material.maxVersion === undefined ? {} : { maxVersion: material.maxVersion }),
      },
      { key: material.key, cert: material.cert, ...(material.ca === undefined ? {} : { ca: material.ca }) },
    );
    const needsCheck = material.revokedSerials.size > 0 || material.allowedCn.length > 0 || material.allowedHostname.length > 0;
    this.interceptors = needsCheck ? [certificateInterceptor(material)] : [];
  }

  override _getInterceptors(): grpc.ServerInterceptor[] {
    return this.interceptors;
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other instanceof MaterialServerCredentials && other.material === this.material;
  }
}

/** Fails every call on a connection whose client certificate checkPeerCertificate rejects. */
function certificateInterceptor(m: TlsMaterial): grpc.ServerInterceptor {
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        const reason = checkPeerCertificate(m, call.getAuthContext().sslPeerCertificate);
        if (reason === undefined) {
          next();
          return;
        }
        call.sendStatus({ code: grpc.status.UNAVAILABLE, details: `connection error: desc = "transport: authentication handshake failed: ${reason}"`, metadata: new grpc.Metadata() });
      },
    });
}

/**
 * gRPC server credentials for a listener: insecure without material, else TLS with this material's key, cert,
 * CA, client-certificate requirement, ciphers and versions; CRL and allowed CN/hostname are checked per call.
 */
export function grpcServerCredentials(m: TlsMaterial | undefined): grpc.ServerCredentials {
  if (m === undefined) return grpc.ServerCredentials.createInsecure();
  return new MaterialServerCredentials(m);
}

// ---------------------------------------------------------------------------------------------------------------
// CRL (RFC 5280 CertificateList), just enough DER to list the revoked serial numbers.

interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

function readTlv(buf: Buffer, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw new Error('x509: malformed crl');
  const tag = buf[off] as number;
  let len = buf[off + 1] as number;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error('x509: malformed crl');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    start += n;
  }
  if (start + len > limit) throw new Error('x509: malformed crl');
  return { tag, start, end: start + len };
}

function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let off = parent.start;
  while (off < parent.end) {
    const t = readTlv(buf, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

/** The revoked serial numbers of a CRL, PEM ("X509 CRL") or DER, as etcd's x509.ParseCRL + checkCRL read it. */
export function parseCrlRevokedSerials(data: Buffer): Set<string> {
  let der = data;
  const text = data.toString('latin1');
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  if (m !== null && m[1] !== undefined) der = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  const top = readTlv(der, 0, der.length);
  const tbs = children(der, top)[0];
  if (top.tag !== 0x30 || tbs === undefined || tbs.tag !== 0x30) throw new Error('x509: malformed crl');
  const fields = children(der, tbs);
  let i = 0;
  if (fields[i]?.tag === 0x02) i++; // version
  i += 3; // signature algorithm, issuer, thisUpdate
  const isTime = (t: Tlv | undefined): boolean => t !== undefined && (t.tag === 0x17 || t.tag === 0x18);
  if (isTime(fields[i])) i++; // nextUpdate
  const serials = new Set<string>();
  const revoked = fields[i];
  if (revoked === undefined || revoked.tag !== 0x30) return serials;
  for (const entry of children(der, revoked)) {
    const serial = children(der, entry)[0];
    if (serial === undefined || serial.tag !== 0x02) throw new Error('x509: malformed crl');
    serials.add(normalizeSerial(der.subarray(serial.start, serial.end).toString('hex')));
  }
  return serials;
}
