/**
 * A minimal L7 front end for the splice tests, run in the LB namespace: it
 * accepts a client connection on the VIP, reads the first request, opens a
 * connection to a back end, and asks the control plane (its parent, over
 * stdout/stdin lines) to splice the two, passing the request bytes it read.
 * On success it drops its sockets (they are in repair mode: silent); on a
 * refusal it falls back to relaying in userspace, losing nothing.
 *
 *   frontend.ts <listen-ip> <listen-port> <backend-ip>:<port>[,<ip>:<port>...]
 *   stdout:  READY | SPLICE <tag> <pid> <client-fd> <backend-fd> <prefix-base64> | FALLBACK <tag> <why>
 *   stdin:   OK <tag> | ERR <tag> <message>
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
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verdict, tag, ...rest] = line.split(' ');
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
    const up = net.connect({ host: backend.host, port: backend.port }, () => {
      waiting.set(tag, (ok, msg) => {
        if (ok) {
          // Repair mode is on: destroying closes without FIN or RST.
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
    });
    up.on('error', () => client.destroy());
  };
  client.on('data', onData);
  client.on('error', () => {});
});
server.listen(Number(listenPort), listenIp, () => process.stdout.write('READY\n'));
process.on('SIGUSR2', () => process.stdout.write(`ACCEPTED ${accepted}\n`));
