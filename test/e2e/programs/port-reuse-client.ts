/**
 * A client that reuses its source port right after a connection closed, as
 * a client behind a NAT does every day. Run in the client namespace:
 *
 *   port-reuse-client.ts <ip> <port> <local-port> <reuse-after-ms> <keep-ms> <every-ms> <path>
 *
 * 1. From <local-port>: one request with `Connection: close`; the server
 *    answers and closes, the client closes too (it is the passive closer, so
 *    it holds no TIME_WAIT and may reuse the port at once).
 * 2. <reuse-after-ms> after that connection closed, from the same port: a
 *    keep-alive connection carrying one request every <every-ms> for
 *    <keep-ms>, then a FIN.
 * stdout: one JSON line per event: {"conn":1|2,"status":200,"body":".."} per
 * answer, {"conn":n,"event":"closed"}, {"conn":n,"event":"error","code":".."},
 * and {"event":"done","answers":N,"ms":M} at the end. Bounded: at most
 * keep-ms / every-ms + 1 requests, exits after keep-ms + 10 s at the latest.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const [ip, portArg, localArg, reuseArg, keepArg, everyArg, path] = process.argv.slice(2);
if (!ip || !portArg || !localArg || !reuseArg || !keepArg || !everyArg || !path) {
  process.stderr.write(
    'usage: port-reuse-client.ts <ip> <port> <local-port> <reuse-after-ms> <keep-ms> <every-ms> <path>\n',
  );
  process.exit(2);
}
const [port, localPort, reuseMs, keepMs, everyMs] = [portArg, localArg, reuseArg, keepArg, everyArg].map(Number) as [
  number,
  number,
  number,
  number,
  number,
];
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
setTimeout(() => {
  say({ event: 'error', code: 'TIMEOUT' });
  process.exit(1);
}, keepMs + 10_000).unref();

/** Answers on one connection, parsed by Content-Length. */
function answers(sock: net.Socket, conn: number, onAnswer: (status: number, body: string) => void): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const body = buf.subarray(end + 4, end + 4 + len).toString();
      buf = buf.subarray(end + 4 + len);
      const status = Number(head.split(' ')[1]);
      say({ conn, status, body });
      onAnswer(status, body);
    }
  });
  sock.on('error', (e: NodeJS.ErrnoException) => say({ conn, event: 'error', code: e.code }));
  sock.on('close', () => say({ conn, event: 'closed' }));
}

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port, localPort }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

const request = (close: boolean) =>
  `GET ${path} HTTP/1.1\r\nHost: baton.test\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

// 1. One request, the server closes.
const first = await connect();
const closed1 = new Promise<void>((r) => first.on('close', () => r()));
answers(first, 1, () => {});
first.write(request(true));
await closed1;

// 2. Same port again, keep-alive.
await sleep(reuseMs);
const t0 = performance.now();
let answered = 0;
let failed = false;
const second = await connect().catch((e: NodeJS.ErrnoException) => {
  say({ conn: 2, event: 'error', code: e.code });
  process.exit(1);
});
second.on('error', () => (failed = true));
let pending: (() => void) | undefined;
answers(second, 2, () => {
  answered++;
  pending?.();
});
const closed2 = new Promise<void>((r) => second.on('close', () => r()));
while (!failed && performance.now() - t0 < keepMs) {
  const got = new Promise<void>((r) => (pending = r));
  second.write(request(false));
  await Promise.race([got, sleep(5_000)]);
  await sleep(everyMs);
}
second.end();
await Promise.race([closed2, sleep(5_000)]);
say({ event: 'done', answers: answered, ms: Math.round(performance.now() - t0) });
process.exit(0);
