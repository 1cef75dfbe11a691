/**
 * A front end in its own process for the handoff channel tests
 * (test/api/handoff-channel.test.ts): it makes one loopback TCP connection
 * of its own (both ends are its sockets), asks for a splice of it and
 * prints the outcome as one JSON line.
 *
 *   channel-peer.ts <channel|rest> <socket path> [undumpable]
 *   stdout: {"event":"asking"} once the request is sent, then
 *           {"event":"spliced","splice":{...}} or
 *           {"event":"error","code":"..","reason":"..","detail":".."}
 * `undumpable`: PR_SET_DUMPABLE 0 first (a process its own uid may not ptrace).
 */
import net from 'node:net';
import { createClient } from '../../../control/sdk/client.js';
import { BatonApiError } from '../../../control/sdk/errors.js';
import { openHandoffChannel } from '../../../control/sdk/handoff-channel.js';
import { splice } from '../../../control/sdk/splice.js';
import { bind, koffi } from '../../../control/sys/koffi.js';

const [via, path, flag] = process.argv.slice(2);
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const PR_SET_DUMPABLE = 4;

async function main(): Promise<void> {
  if (flag === 'undumpable') {
    const prctl = bind<[number, number, number, number, number], number>(
      koffi.load('libc.so.6'),
      'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
    );
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) throw new Error('prctl(PR_SET_DUMPABLE) failed');
  }
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const connected = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  await new Promise<void>((r, j) => connected.once('connect', r).once('error', j));
  const client = await accepted;
  try {
    const pending =
      via === 'channel'
        ? (await openHandoffChannel(path)).splice(client, connected, { prefix: Buffer.from('GET / HTTP/1.1\r\n\r\n') })
        : splice(client, connected, { client: createClient({ socketPath: path }), prefix: Buffer.from('x') });
    say({ event: 'asking' });
    say({ event: 'spliced', splice: await pending });
  } catch (e) {
    const err = e instanceof BatonApiError ? e : undefined;
    say({ event: 'error', code: err?.code ?? 'SDK_ERROR', reason: err?.reason, detail: err?.detail ?? String(e) });
  }
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`channel-peer: ${(e as Error).stack}\n`);
  process.exit(1);
});
