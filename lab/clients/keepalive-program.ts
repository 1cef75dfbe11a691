/**
 * One keep-alive HTTP/1.1 connection driven line by line, for callers that
 * act between requests (a handoff at a request boundary). Run in the client
 * namespace by keepalive-client.ts:
 *
 *   keepalive-program.ts <ip> <port>
 *   stdin:  GET <path>          one request; the answer is one stdout line
 *           QUIT | RESET        close with a FIN | abort with a RST
 *   stdout: READY <local port> | {"status":200,"length":N,"sha256":"..","body":"<first 64 bytes>"}
 *           | {"event":"end"} (the server closed) | {"event":"error","code":".."}
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import readline from 'node:readline';

const [ip, port] = process.argv.slice(2);
const sock = net.connect({ host: ip, port: Number(port) }, () => process.stdout.write(`READY ${sock.localPort}\n`));
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
sock.on('end', () => say({ event: 'end' }));
sock.on('error', (e: NodeJS.ErrnoException) => say({ event: 'error', code: e.code }));

let buf = Buffer.alloc(0);
let want: { head: number; length: number } | undefined;
sock.on('data', (d: Buffer) => {
  buf = Buffer.concat([buf, d]);
  for (;;) {
    if (!want) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      const m = /content-length:\s*(\d+)/i.exec(head);
      want = { head: end + 4, length: m ? Number(m[1]) : 0 };
    }
    if (buf.length < want.head + want.length) return;
    const head = buf.subarray(0, want.head).toString();
    const body = buf.subarray(want.head, want.head + want.length);
    buf = buf.subarray(want.head + want.length);
    want = undefined;
    say({
      status: Number(head.split(' ')[1]),
      length: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      body: body.subarray(0, 64).toString(),
    });
  }
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, path] = line.split(' ');
  if (verb === 'GET' && path) sock.write(`GET ${path} HTTP/1.1\r\nHost: baton.test\r\n\r\n`);
  if (verb === 'QUIT') sock.end();
  if (verb === 'RESET') sock.resetAndDestroy();
});
