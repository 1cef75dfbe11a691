/**
 * A stand-in for the daemon's POST /v1/splices, for SDK tests that check
 * what the SDK does with its sockets around the call (not what baton does):
 * a node:http server on a unix socket answering contract-shaped bodies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StandIn {
  socketPath: string;
  calls: { method: string; url: string; body: unknown }[];
  /** what the next POST /v1/splices does: runs `during` (while the SDK waits), then answers */
  next: { during?: () => Promise<void>; status: number; body: unknown };
  close(): Promise<void>;
}

export function spliceBody(id = '1') {
  const t = { packets: 0, bytes: 0, fin: false, rst: false, lastSeenMs: null };
  return {
    id,
    state: 'forwarding',
    family: 4,
    client: '127.0.0.1:1',
    vip: '127.0.0.1:2',
    createdAt: new Date().toISOString(),
    durationUs: 10,
    recovered: false,
    ownerUid: 0,
    handoffs: [
      {
        index: 0,
        backend: '127.0.0.1:3',
        local: '127.0.0.1:4',
        seqStart: 0,
        seqDelta: 0,
        ackDelta: 0,
        tsvalDelta: 0,
        tsecrDelta: 0,
        wscaleIn: 7,
        wscaleOut: 7,
        timestamps: true,
      },
    ],
    traffic: { toBackend: t, toClient: t },
  };
}

export function problem(status: number, code: string, detail: string, reason?: string) {
  return {
    type: `https://baton.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: code,
    status,
    code,
    detail,
    ...(reason ? { reason } : {}),
  };
}

export async function startStandIn(): Promise<StandIn> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-standin-'));
  const socketPath = join(dir, 'api.sock');
  const s: StandIn = {
    socketPath,
    calls: [],
    next: { status: 201, body: spliceBody() },
    close: () =>
      new Promise((r) =>
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          r();
        }),
      ),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const text = Buffer.concat(chunks).toString();
      s.calls.push({ method: req.method ?? '', url: req.url ?? '', body: text ? JSON.parse(text) : undefined });
      const { during, status, body } = s.next;
      if (during) await during();
      res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return s;
}
