// gofail's run-time endpoint (GOFAIL_HTTP=host:port): tests set and clear failpoints in a running member.
//   PUT /<name>     body: a term ("panic", "sleep(100)", "1*panic", ...)   → 204
//   GET /<name>     the term                                              → 200, or 404 if not set
//   DELETE /<name>  clears it                                             → 204
//   GET /           "name=term" lines of every enabled failpoint
// Loopback only in tests; it is never started unless GOFAIL_HTTP is set.

import http from 'node:http';
import { clearFailpoint, listFailpoints, setFailpoint } from '../util/failpoints';
import type { Logger } from './logger';
import { splitHostPort } from './config';

export function startFailpointHttp(hostPort: string, logger: Logger): http.Server {
  const { host, port } = splitHostPort(hostPort);
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0]!);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      try {
        if (name === '') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end([...listFailpoints()].map(([n, t]) => `${n}=${t}\n`).join(''));
        } else if (req.method === 'PUT') {
          setFailpoint(name, body);
          logger.info({ failpoint: name, term: body }, 'failpoint set');
          res.writeHead(204).end();
        } else if (req.method === 'DELETE') {
          clearFailpoint(name);
          res.writeHead(204).end();
        } else if (req.method === 'GET') {
          const term = listFailpoints().get(name);
          if (term === undefined) res.writeHead(404).end('failpoint not set\n');
          else res.writeHead(200, { 'content-type': 'text/plain' }).end(term);
        } else res.writeHead(405).end();
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      }
    });
  });
  server.listen(Number(port), host);
  server.unref();
  logger.info({ address: hostPort }, 'failpoint HTTP endpoint listening');
  return server;
}
