/**
 * The client half of the handoff-API microbenchmark (bench/handoff-api.ts),
 * run in the client namespace: many keep-alive HTTP/1.1 connections to the
 * VIP, one request each, then checks that spliced ones really reach the
 * back end.
 *
 *   pair-clients.ts <vip> <port> <path>
 *   stdin:  OPEN <n>             opens n connections (a bounded number connecting
 *                                at once) and sends one GET on each
 *                                -> {"event":"opened","ports":[local ports],"failed":k,"errors":[..]}
 *           CHECK <ms> <sample> <port,...>
 *                                for those connections: did the answer to the first
 *                                request arrive (waiting up to <ms>)? then a second
 *                                GET on <sample> of them, evenly spread, each answered
 *                                within <ms>? -> {"event":"checked","first":{"ok","of"},
 *                                "second":{"ok","of"},"failures":[..]}
 *           CLOSE <port,...>     closes those connections (FIN) -> {"event":"closed","count":n}
 *
 * The first request's answer only comes once the splice delivered the request
 * (the front end read it and never forwarded it), so "first ok" counts
 * splices that carried the prefix; the second request goes client -> back
 * end through the datapath alone.
 */
import net from 'node:net';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const [vip, portText, path] = process.argv.slice(2);
if (!vip || !portText || !path) throw new Error('usage: pair-clients.ts <vip> <port> <path>');
const port = Number(portText);
/** Connections in the middle of their handshake at once: keeps the LB's accept queue short. */
const CONNECTING_AT_ONCE = 64;
const CONNECT_TIMEOUT_MS = 5000;
/** Failures listed in a CHECK answer (the rest are counted only). */
const MAX_LISTED = 10;
const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: baton.bench\r\n\r\n`);

const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

interface Conn {
  socket: net.Socket;
  /** status of each complete response, in order */
  statuses: number[];
  buf: Buffer;
  want: { head: number; length: number; status: number } | undefined;
  ended: string | undefined;
  onResponse: (() => void) | undefined;
}

const conns = new Map<number, Conn>();

function parse(c: Conn): void {
  for (;;) {
    if (!c.want) {
      const end = c.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = c.buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      c.want = { head: end + 4, length: m ? Number(m[1]) : 0, status: Number(head.split(' ')[1]) };
    }
    if (c.buf.length < c.want.head + c.want.length) return;
    c.buf = c.buf.subarray(c.want.head + c.want.length);
    c.statuses.push(c.want.status);
    c.want = undefined;
    c.onResponse?.();
  }
}

function open(): Promise<{ port: number } | { error: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: vip, port });
    const timer = setTimeout(
      () => socket.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    socket.once('error', (e) => {
      clearTimeout(timer);
      resolve({ error: e.message });
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      const c: Conn = {
        socket,
        statuses: [],
        buf: Buffer.alloc(0),
        want: undefined,
        ended: undefined,
        onResponse: undefined,
      };
      socket.removeAllListeners('error');
      socket.on('error', (e: NodeJS.ErrnoException) => (c.ended = e.code ?? e.message));
      socket.on('end', () => (c.ended ??= 'closed by the other end'));
      socket.on('data', (d: Buffer) => {
        c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
        parse(c);
      });
      conns.set(socket.localPort as number, c);
      socket.write(request);
      resolve({ port: socket.localPort as number });
    });
  });
}

async function openMany(n: number): Promise<void> {
  const ports: number[] = [];
  const errors = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await open();
      if ('port' in r) ports.push(r.port);
      else errors.set(r.error, (errors.get(r.error) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, CONNECTING_AT_ONCE) }, worker));
  say({ event: 'opened', ports, failed: n - ports.length, errors: [...errors].map(([e, k]) => `${k}x ${e}`) });
}

/** Resolves once `c` holds `count` responses, or false after `ms`. */
function responses(c: Conn, count: number, ms: number): Promise<boolean> {
  if (c.statuses.length >= count) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      c.onResponse = undefined;
      resolve(false);
    }, ms);
    c.onResponse = () => {
      if (c.statuses.length < count) return;
      clearTimeout(timer);
      c.onResponse = undefined;
      resolve(true);
    };
  });
}

async function check(ms: number, sample: number, ports: number[]): Promise<void> {
  const failures: string[] = [];
  const fail = (port: number, what: string) => {
    if (failures.length < MAX_LISTED) failures.push(`client port ${port}: ${what}`);
  };
  const known = ports.map((p) => [p, conns.get(p)] as const);
  // First answers: all connections wait together, so the bound is ms in all.
  const first = await Promise.all(
    known.map(async ([p, c]) => {
      if (!c) {
        fail(p, 'unknown connection');
        return false;
      }
      const ok = (await responses(c, 1, ms)) && c.statuses[0] === 200;
      if (!ok)
        fail(
          p,
          c.statuses.length
            ? `first answer ${c.statuses[0]}`
            : `no answer to the first request${c.ended ? ` (${c.ended})` : ''}`,
        );
      return ok;
    }),
  );
  const step = known.length / Math.max(1, Math.min(sample, known.length));
  const picked = Array.from(
    { length: Math.min(sample, known.length) },
    (_, i) => known[Math.floor(i * step)] as (typeof known)[number],
  );
  const second = await Promise.all(
    picked.map(async ([p, c]) => {
      if (!c || c.ended) {
        fail(p, `closed before the second request${c?.ended ? ` (${c.ended})` : ''}`);
        return false;
      }
      const had = c.statuses.length;
      c.socket.write(request);
      const ok = (await responses(c, had + 1, ms)) && c.statuses[had] === 200;
      if (!ok)
        fail(
          p,
          c.statuses.length > had
            ? `second answer ${c.statuses[had]}`
            : `no answer to the second request${c.ended ? ` (${c.ended})` : ''}`,
        );
      return ok;
    }),
  );
  say({
    event: 'checked',
    first: { ok: first.filter(Boolean).length, of: first.length },
    second: { ok: second.filter(Boolean).length, of: second.length },
    failures,
  });
}

async function close(ports: number[]): Promise<void> {
  let count = 0;
  for (const p of ports) {
    const c = conns.get(p);
    if (!c) continue;
    conns.delete(p);
    c.socket.end();
    c.socket.setTimeout(2000, () => c.socket.destroy());
    count++;
  }
  await sleep(0);
  say({ event: 'closed', count });
}

const list = (text: string | undefined) => (text ?? '').split(',').filter(Boolean).map(Number);

// One command at a time, in order.
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, a, b, c] = line.trim().split(/\s+/);
  queue = queue.then(() => {
    if (verb === 'OPEN') return openMany(Number(a));
    if (verb === 'CHECK') return check(Number(a), Number(b), list(c));
    if (verb === 'CLOSE') return close(list(a));
    say({ event: 'error', detail: `unknown command ${JSON.stringify(line)}` });
    return undefined;
  });
});
process.stdin.on('end', () => process.exit(0));
say({ event: 'ready' });
