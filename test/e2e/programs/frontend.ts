/**
 * A minimal L7 front end for the splice tests, run in the LB namespace: it
 * accepts a client connection on the VIP, reads the first request, opens a
 * connection to a back end, and asks the control plane (its parent, over
 * stdout/stdin lines) to splice the two, passing the request bytes it read.
 * On success it drops its sockets (they are in repair mode: silent); on a
 * refusal it falls back to relaying in userspace, losing nothing.
 *
 *   frontend.ts <listen-ip> <listen-port> <backend-ip>:<port>[,<ip>:<port>...]
 *   stdout:  READY | PORT <tag> <backend-ip> <backend-port>
 *            | SPLICE <tag> <pid> <client-fd> <backend-fd> <prefix-base64> | FALLBACK <tag> <why>
 *   stdin:   LEGPORT <tag> <local-ip> <port> | LEGPORT <tag> - 0 | OK <tag> | ERR <tag> <message>
 * Before each back-end connection it asks for a local address and port
 * (Splicer.legPort: the leg then holds no socket once spliced); "- 0" lets
 * the kernel choose. A port some live socket holds on the same tuple
 * (EADDRINUSE, EADDRNOTAVAIL) is asked again, a bounded number of times.
 */
import net from 'node:net';
import readline from 'node:readline';

const [listenIp, listenPort, backendsArg] = process.argv.slice(2);
if (!listenIp || !listenPort || !backendsArg) {
  process.stderr.write('usage: frontend.ts <listen-ip> <listen-port> <backend-ip:port>[,...]\n');
  process.exit(2);
}
const backends = backendsArg.split(',').map((b) => {
  const i = b.lastIndexOf(':');
  return { host: b.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(b.slice(i + 1)) };
});

type Handle = { _handle?: { fd?: number } };
const fdOf = (s: net.Socket): number => (s as unknown as Handle)._handle?.fd ?? -1;

const waiting = new Map<string, (ok: boolean, msg: string) => void>();
const portWaiting = new Map<string, (local: { ip: string; port: number } | undefined) => void>();
/** Tries of a leg port that a live socket already holds on the same tuple. */
const PORT_ATTEMPTS = 5;

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verdict, tag, ...rest] = line.split(' ');
  if (verdict === 'LEGPORT') {
    const got = tag ? portWaiting.get(tag) : undefined;
    if (!got || !tag) return;
    portWaiting.delete(tag);
    got(rest[0] && rest[0] !== '-' ? { ip: rest[0], port: Number(rest[1]) } : undefined);
    return;
  }
  const done = tag ? waiting.get(tag) : undefined;
  if (!done || !tag) return;
  waiting.delete(tag);
  done(verdict === 'OK', rest.join(' '));
});

let seq = 0;
let accepted = 0;
const server = net.createServer((client) => {
  accepted++;
  const tag = `c${++seq}`;
  const backend = backends[(seq - 1) % backends.length]!;
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    if (!head.includes('\r\n\r\n')) return;
    client.off('data', onData);
    client.pause();
    void connectUp(tag, backend, PORT_ATTEMPTS).then(
      (up) => spliceOrRelay(tag, client, up, head),
      () => client.destroy(),
    );
  };
  client.on('data', onData);
  client.on('error', () => {});
});

/** A connection to the back end from the leg port the parent chose. */
function connectUp(tag: string, backend: { host: string; port: number }, attempts: number): Promise<net.Socket> {
  return new Promise((resolveUp, reject) => {
    portWaiting.set(tag, (local) => {
      const up = net.connect({
        host: backend.host,
        port: backend.port,
        ...(local ? { localAddress: local.ip, localPort: local.port } : {}),
      });
      up.once('connect', () => resolveUp(up));
      up.once('error', (e: NodeJS.ErrnoException) => {
        const taken = e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL';
        if (local && taken && attempts > 1) connectUp(tag, backend, attempts - 1).then(resolveUp, reject);
        else reject(e);
      });
    });
    process.stdout.write(`PORT ${tag} ${backend.host} ${backend.port}\n`);
  });
}

function spliceOrRelay(tag: string, client: net.Socket, up: net.Socket, head: Buffer): void {
  up.on('error', () => client.destroy());
  waiting.set(tag, (ok, msg) => {
    if (ok) {
      // Repair mode is on (or baton already released them): destroying closes without FIN or RST.
      client.destroy();
      up.destroy();
      return;
    }
    process.stdout.write(`FALLBACK ${tag} ${msg}\n`);
    up.write(head);
    client.pipe(up).pipe(client);
    client.resume();
  });
  process.stdout.write(`SPLICE ${tag} ${process.pid} ${fdOf(client)} ${fdOf(up)} ${head.toString('base64')}\n`);
}

server.listen(Number(listenPort), listenIp, () => process.stdout.write('READY\n'));
process.on('SIGUSR2', () => process.stdout.write(`ACCEPTED ${accepted}\n`));
