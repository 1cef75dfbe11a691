/**
 * The metrics listener: GET /metrics on its own address (default
 * 127.0.0.1:9300), apart from the API so scrapers need no token and API
 * rate limits never starve them. A plain node:http server: one route.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
/** What the listener serves: a registry's exposition text (baton lb's, the agent's, the dispatcher's). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsServer {
  server: Server;
  /** "host:port" it listens on (the port is the real one when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(
  metrics: MetricsSource,
  listen: { host: string; port: number },
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET /metrics\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('baton metrics are at /metrics\n');
      return;
    }
    metrics.metrics().then(
      (text) =>
        res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (e: unknown) =>
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`collecting metrics failed: ${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
