/**
 * Many keep-alive HTTP connections from one client namespace, driven over
 * stdin for the cluster rehash test: every answer is checked byte-exact
 * (SHA-256 of the body) and every reset or unexpected close is reported.
 *
 *   cluster-clients.ts <ip> <port> <path> <body-sha256> [<host>]
 *   stdin:  open <n>   n new connections, one request each (20 at a time)
 *           connect    one new connection, no request yet: prints when it is established
 *           round      one request on every connection, all at once
 *           quit       FIN on every connection, then exit
 *   stdout: one JSON line per command:
 *           {"event":"open","ok":n,"errors":[..]} | {"event":"connected","port":p,"at":ms}
 *           | {"event":"round","ok":n,"errors":[..]} | {"event":"closed"}
 * Bounded: a request not answered within 20 s is an error ("timeout"); the
 * process exits 60 s after its last command at the latest.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import readline from 'node:readline';

const [ip, portArg, path, sha, host = 'cluster.test'] = process.argv.slice(2);
if (!ip || !portArg || !path || !sha) {
  process.stderr.write('usage: cluster-clients.ts <ip> <port> <path> <body-sha256> [<host>]\n');
  process.exit(2);
}
const port = Number(portArg);
const ANSWER_MS = 20_000;

interface Conn {
  s: net.Socket;
  buf: Buffer;
  /** the request waiting for its answer */
  pending?: { resolve: (why: string | undefined) => void; timer: NodeJS.Timeout };
  /** why the connection is broken (reset, closed by the server), once it is */
  broken?: string;
}
const conns: Conn[] = [];
const out = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

function settle(c: Conn, why: string | undefined): void {
  const p = c.pending;
  if (!p) return;
  c.pending = undefined;
  clearTimeout(p.timer);
  p.resolve(why);
}

/** Parses one whole answer off the front of c.buf, if there is one. */
function onData(c: Conn): void {
  const end = c.buf.indexOf('\r\n\r\n');
  if (end < 0) return;
  const head = c.buf.subarray(0, end).toString('latin1');
  const m = /\r\ncontent-length: *(\d+)/i.exec(head);
  const status = Number(head.split(' ')[1]);
  if (!m) {
    settle(c, `answer without content-length: ${head.split('\r\n')[0]}`);
    return;
  }
  const len = Number(m[1]);
  if (c.buf.length < end + 4 + len) return;
  const body = c.buf.subarray(end + 4, end + 4 + len);
  c.buf = c.buf.subarray(end + 4 + len);
  if (status !== 200) {
    settle(c, `status ${status}`);
    return;
  }
  const got = createHash('sha256').update(body).digest('hex');
  settle(c, got === sha ? undefined : `body sha256 ${got}`);
}

function connect(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port });
    const c: Conn = { s, buf: Buffer.alloc(0) };
    s.once('connect', () => resolve(c));
    s.on('data', (d: Buffer) => {
      c.buf = Buffer.concat([c.buf, d]);
      onData(c);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      c.broken ??= e.code ?? e.message;
      settle(c, c.broken);
      reject(e);
    });
    s.on('close', () => {
      c.broken ??= 'closed by the server';
      settle(c, c.broken);
    });
  });
}

function request(c: Conn): Promise<string | undefined> {
  if (c.broken) return Promise.resolve(c.broken);
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle(c, 'timeout'), ANSWER_MS);
    c.pending = { resolve, timer };
    c.s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

async function all(list: Conn[]): Promise<{ ok: number; errors: string[] }> {
  const whys = await Promise.all(list.map((c) => request(c)));
  const errors = whys.flatMap((w, i) => (w ? [`${list[i]?.s.localPort}: ${w}`] : []));
  return { ok: whys.length - errors.length, errors };
}

let watchdog: NodeJS.Timeout | undefined;
const arm = () => {
  clearTimeout(watchdog);
  watchdog = setTimeout(() => process.exit(3), 60_000);
};
arm();

const commands = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
commands.on('line', (line) => {
  arm();
  queue = queue.then(() => run(line.trim())).catch((e: Error) => out({ event: 'error', message: e.message }));
});

async function run(cmd: string): Promise<void> {
  const [verb, arg] = cmd.split(' ');
  if (verb === 'open') {
    const n = Number(arg);
    let ok = 0;
    const errors: string[] = [];
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, n - i) }, () => connect().catch((e: Error) => e)),
      );
      const made = batch.filter((c): c is Conn => !(c instanceof Error));
      for (const e of batch) if (e instanceof Error) errors.push(`connect: ${e.message}`);
      conns.push(...made);
      const r = await all(made);
      ok += r.ok;
      errors.push(...r.errors);
    }
    out({ event: 'open', ok, errors });
  } else if (verb === 'connect') {
    const c = await connect();
    conns.push(c);
    out({ event: 'connected', port: c.s.localPort, at: performance.timeOrigin + performance.now() });
  } else if (verb === 'round') {
    out({ event: 'round', ...(await all(conns)) });
  } else if (verb === 'quit') {
    await Promise.all(conns.map((c) => (c.broken ? undefined : new Promise<void>((r) => c.s.end(r)))));
    out({ event: 'closed' });
    process.exit(0);
  }
}
