/**
 * New connections, one request each, timed on CLOCK_MONOTONIC
 * (process.hrtime: the same clock in every process and namespace of the
 * machine), for the migrate benchmark (bench/migrate.ts), which compares the
 * moments here with the moment its app holds the socket. Run in the client
 * namespace:
 *
 *   first-byte-program.ts <ip> <port> <path> <count> <concurrency>
 *   stdout: per connection {"port":P,"sentNs":"..","firstNs":"..","doneNs":"..","ok":true}
 *           (sent: the request written once connected; first: its first response byte; done: the server's FIN),
 *           then {"event":"done","wallNs":".."}
 */
import net from 'node:net';

const [ip = '', port = '0', path = '/', countArg = '1', concurrencyArg = '1'] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const request = `GET ${path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`;
/** A connection that has not ended after this long is counted failed (the run goes on); its wait is in the wall time, so kept short. */
const CONNECTION_TIMEOUT_MS = 2000;
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

function one(): Promise<void> {
  return new Promise((resolve) => {
    let sentNs = 0n;
    let firstNs = 0n;
    let status = '';
    const sock = net.connect({ host: ip, port: Number(port) });
    sock.setNoDelay(true);
    const end = (ok: boolean, why?: string) => {
      clearTimeout(timer);
      say({
        port: sock.localPort,
        sentNs: String(sentNs),
        firstNs: String(firstNs),
        doneNs: String(process.hrtime.bigint()),
        ok: ok && status === '200',
        ...(why ? { why } : {}),
      });
      sock.destroy();
      resolve();
    };
    const timer = setTimeout(() => end(false, 'timeout'), CONNECTION_TIMEOUT_MS);
    sock.once('connect', () => {
      sentNs = process.hrtime.bigint();
      sock.write(request);
    });
    sock.on('data', (d: Buffer) => {
      if (firstNs === 0n) {
        firstNs = process.hrtime.bigint();
        status = d.subarray(9, 12).toString();
      }
    });
    sock.once('end', () => end(true));
    sock.once('error', (e: NodeJS.ErrnoException) => end(false, e.code ?? e.message));
  });
}

const t0 = process.hrtime.bigint();
let next = 0;
await Promise.all(
  Array.from({ length: Math.max(1, concurrency) }, async () => {
    while (next < count) {
      next++;
      await one();
    }
  }),
);
say({ event: 'done', wallNs: String(process.hrtime.bigint() - t0) });
