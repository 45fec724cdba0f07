// Peer URLs → where to listen and what to dial, and Go's wording for TLS failures.
//
// A peer URL is etcd's: http://host:port, https://host:port, unix://host:port or unixs://host:port, without a
// path. For unix and unixs, etcd (pkg/transport listener.go newListener, transport.go NewTransport) uses the URL's
// host:port as the socket path, relative to the working directory: "unix://etcd.unix:1" listens on and dials the
// file "etcd.unix:1", and "unix://localhost:2380" the file "localhost:2380". We do the same, so that the same
// --listen-peer-urls work for both servers.

import net from 'node:net';
import { splitHostPort, urlHostPort, urlScheme } from '../config';

export type PeerScheme = 'http' | 'https' | 'unix' | 'unixs';

export type Endpoint =
  | { url: string; scheme: PeerScheme; secure: boolean; kind: 'tcp'; host: string; port: number }
  | { url: string; scheme: PeerScheme; secure: boolean; kind: 'unix'; path: string; host: string };

/** Parses a peer URL; throws etcd's or Go's message when it is not one. */
export function parseEndpoint(url: string): Endpoint {
  const scheme = urlScheme(url);
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'unix' && scheme !== 'unixs') {
    throw new Error(`URL scheme must be http, https, unix, or unixs: ${url}`);
  }
  const hostPort = urlHostPort(url);
  const secure = scheme === 'https' || scheme === 'unixs';
  if (scheme === 'unix' || scheme === 'unixs') {
    if (hostPort === '') throw new Error(`URL address does not have the form "host:port": ${url}`);
    let host = hostPort;
    try {
      host = splitHostPort(hostPort).host;
    } catch {
      // etcd accepts any socket name here; the host part only matters for TLS server-name checks.
    }
    return { url, scheme, secure, kind: 'unix', path: hostPort, host };
  }
  let parts: { host: string; port: string };
  try {
    parts = splitHostPort(hostPort);
  } catch {
    throw new Error(`URL address does not have the form "host:port": ${url}`);
  }
  const port = Number(parts.port);
  if (!/^[0-9]+$/.test(parts.port) || port > 65535) throw new Error(`invalid port in ${url}`);
  return { url, scheme, secure, kind: 'tcp', host: parts.host, port };
}

/** The URL of a listener bound to `port` (the actual port when the URL asked for 0). */
export function boundUrl(e: Endpoint, port: number | undefined): string {
  if (e.kind === 'unix' || port === undefined) return e.url;
  const host = net.isIPv6(e.host) ? `[${e.host}]` : e.host;
  return `${e.scheme}://${host}:${port}`;
}

/** Go's text for a failed dial: "dial tcp 127.0.0.1:2380: connect: connection refused". */
export function goDialErrorText(e: Endpoint, err: Error & { code?: string }): string {
  const target = e.kind === 'unix' ? `unix ${e.path}` : `tcp ${net.isIPv6(e.host) ? `[${e.host}]` : e.host}:${e.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `dial ${target}: connect: connection refused`;
    case 'ENOENT':
      return `dial ${target}: connect: no such file or directory`;
    case 'ETIMEDOUT':
      return `dial ${target}: i/o timeout`;
    case 'ECONNRESET':
      return `read ${target}: connection reset by peer`;
    default:
      return goTlsErrorText(err);
  }
}

/**
 * Go's server-side text for a client certificate that failed chain verification (Node's authorizationError
 * codes), or undefined when the chain verified.
 */
export function goClientCertErrorText(socket: { authorized: boolean; authorizationError?: Error | string; getPeerX509Certificate(): unknown }): string | undefined {
  if (socket.authorized) return undefined;
  if (socket.getPeerX509Certificate() === undefined) return "tls: client didn't provide a certificate";
  const code = String(socket.authorizationError ?? '');
  switch (code) {
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return "tls: failed to verify client's certificate: x509: certificate has expired or is not yet valid";
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return "tls: failed to verify client's certificate: x509: certificate signed by unknown authority";
    default:
      return `tls: failed to verify client's certificate: ${code}`;
  }
}

/**
 * Go's text for a TLS failure that Node reports with an OpenSSL code, so that our logs read like etcd's (its e2e
 * tests grep for "remote error: tls: bad certificate"). Unknown errors keep Node's message.
 */
export function goTlsErrorText(err: Error & { code?: string }): string {
  switch (err.code) {
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'remote error: tls: bad certificate';
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
      return 'remote error: tls: unknown certificate authority';
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED':
      return 'remote error: tls: expired certificate';
    case 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR':
      return 'remote error: tls: error decrypting message';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return "tls: client didn't provide a certificate";
    case 'ERR_SSL_CERTIFICATE_VERIFY_FAILED':
      return "tls: failed to verify client's certificate: x509: certificate signed by unknown authority";
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'x509: certificate signed by unknown authority';
    case 'CERT_HAS_EXPIRED':
      return 'x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `x509: ${err.message}`;
    default:
      return err.message;
  }
}
