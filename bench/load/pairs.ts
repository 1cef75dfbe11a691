/**
 * The front end's half of the handoff-API microbenchmark (bench/handoff-api.ts),
 * run in the LB namespace. It does what a front end does before it asks
 * baton to splice, and nothing else, so the benchmark can time the API alone:
 * accept a client connection on the VIP, read its first request (the
 * prefix), open one back-end connection for it, and stop reading both.
 *
 *   pairs.ts <listen ip:port> <backend ip:port>
 *   stdout: {"event":"listening"}, then one line per established pair:
 *           {"pair":{"pid":..,"client":<fd>,"backend":<fd>,"clientPort":<port>,"prefix":"<base64>"}}
 *           and {"event":"error","detail":".."} for a pair that could not be made
 *   stdin:  CLOSE <clientFd>,<clientFd>,...   destroys those pairs (after a splice
 *           the sockets are released, so closing them sends nothing)
 *           -> {"event":"closed","count":n}
 *           PORTS <local-ip> <port>,<port>,...  the next back-end connections bind
 *           these local ports, in order (ports of baton's leg range, chosen by
 *           Splicer.legPort: such a leg holds no socket once spliced)
 *           -> {"event":"ports","count":n}
 *
 * Kernel reads stop as soon as the request head is in: bytes Node read ahead
 * would be acknowledged by the kernel but invisible to baton (see
 * control/sdk/splice.ts). A real front end would close its descriptors once
 * the splice answered; here the benchmark says when, after each phase.
 */
import net from 'node:net';
import readline from 'node:readline';

const [listen, backend] = process.argv.slice(2);
const [listenIp, listenPort] = splitEndpoint(listen, 'listen');
const [backendIp, backendPort] = splitEndpoint(backend, 'backend');
/** Longest request head accepted (the benchmark sends a small GET). */
const MAX_HEAD_BYTES = 16 * 1024;

const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const pairs = new Map<number, { client: net.Socket; backend: net.Socket }>();

function splitEndpoint(text: string | undefined, what: string): [string, number] {
  const m = /^(.+):(\d+)$/.exec(text ?? '');
  if (!m) throw new Error(`pairs.ts: ${what} must be ip:port, got ${JSON.stringify(text)}`);
  return [m[1] as string, Number(m[2])];
}

interface TcpHandle {
  fd: number;
  reading: boolean;
  readStop(): number;
}

function handleOf(s: net.Socket): TcpHandle {
  return (s as unknown as { _handle: TcpHandle })._handle;
}

/** No byte may reach Node from here on: kernel reads stopped, and Node kept from restarting them. */
function stopReading(s: net.Socket): void {
  s.pause();
  const h = handleOf(s);
  if (h.reading) {
    h.reading = false;
    h.readStop();
  }
  (s as unknown as { _read: () => void })._read = () => {};
}

/** Local endpoints for the next back-end connections (PORTS); empty: the kernel chooses. */
const legPorts: { ip: string; port: number }[] = [];

function pairUp(client: net.Socket, prefix: Buffer): void {
  const local = legPorts.shift();
  const up = net.connect({
    host: backendIp,
    port: backendPort,
    ...(local ? { localAddress: local.ip, localPort: local.port } : {}),
  });
  up.on('error', (e) => {
    say({ event: 'error', detail: `back-end connection for client port ${client.remotePort}: ${e.message}` });
    client.destroy();
  });
  up.once('connect', () => {
    stopReading(up);
    const fd = handleOf(client).fd;
    pairs.set(fd, { client, backend: up });
    say({
      pair: {
        pid: process.pid,
        client: fd,
        backend: handleOf(up).fd,
        clientPort: client.remotePort,
        prefix: prefix.toString('base64'),
      },
    });
  });
}

const server = net.createServer((client) => {
  client.on('error', () => {}); // a refused pair's client may reset; nothing to do
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    if (head.indexOf('\r\n\r\n') >= 0) {
      client.off('data', onData);
      stopReading(client);
      pairUp(client, head);
    } else if (head.length > MAX_HEAD_BYTES) {
      say({
        event: 'error',
        detail: `client port ${client.remotePort} sent ${head.length} bytes without a request head`,
      });
      client.destroy();
    }
  };
  client.on('data', onData);
});
server.on('error', (e) => {
  process.stderr.write(`pairs.ts: ${e.message}\n`);
  process.exit(1);
});
server.listen({ host: listenIp, port: listenPort, backlog: 4096 }, () => say({ event: 'listening' }));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, list, more] = line.trim().split(/\s+/);
  if (verb === 'PORTS') {
    const ports = (more ?? '').split(',').filter(Boolean).map(Number);
    for (const port of ports) legPorts.push({ ip: list as string, port });
    say({ event: 'ports', count: ports.length });
    return;
  }
  if (verb !== 'CLOSE') return;
  let count = 0;
  for (const fd of (list ?? '').split(',').filter(Boolean).map(Number)) {
    const p = pairs.get(fd);
    if (!p) continue;
    pairs.delete(fd);
    p.client.destroy();
    p.backend.destroy();
    count++;
  }
  say({ event: 'closed', count });
});
// The benchmark going away (stdin closed) ends this helper too.
process.stdin.on('end', () => process.exit(0));
