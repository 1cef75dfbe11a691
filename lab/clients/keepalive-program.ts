/**
 * One keep-alive HTTP/1.1 connection driven line by line, for callers that
 * act between requests (a handoff at a request boundary). Run in the client
 * namespace by keepalive-client.ts:
 *
 *   keepalive-program.ts <ip> <port>
 *   stdin:  GET <path>          one request; the answer is one stdout line
 *           QUIT | RESET        close with a FIN | abort with a RST
 *   stdout: READY <local port> | {"status":200,"length":N,"sha256":"..","body":"<first 64 bytes>","ms":T}
 *           | {"event":"end"} (the server closed) | {"event":"error","code":".."}
 */
import { createHash, type Hash } from 'node:crypto';
import net from 'node:net';
import readline from 'node:readline';

const [ip, port] = process.argv.slice(2);
const sock = net.connect({ host: ip, port: Number(port) }, () => process.stdout.write(`READY ${sock.localPort}\n`));
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
sock.on('end', () => say({ event: 'end' }));
sock.on('error', (e: NodeJS.ErrnoException) => say({ event: 'error', code: e.code }));

// Bodies are hashed as they stream (large downloads: no buffer of the whole body); `ms` is request sent -> last byte.
let buf: Buffer = Buffer.alloc(0);
let sentAt = 0;
let cur: { status: number; left: number; length: number; hash: Hash; first: Buffer[]; firstLen: number } | undefined;
const finish = () => {
  const c = cur as NonNullable<typeof cur>;
  cur = undefined;
  say({
    status: c.status,
    length: c.length,
    sha256: c.hash.digest('hex'),
    body: Buffer.concat(c.first).subarray(0, 64).toString(),
    ms: +(performance.now() - sentAt).toFixed(3),
  });
};
sock.on('data', (d: Buffer) => {
  let rest: Buffer = buf.length ? Buffer.concat([buf, d]) : d;
  buf = Buffer.alloc(0);
  while (rest.length > 0 || (cur && cur.left === 0)) {
    if (!cur) {
      const end = rest.indexOf('\r\n\r\n');
      if (end < 0) {
        buf = rest;
        return;
      }
      const head = rest.subarray(0, end).toString();
      const m = /content-length:\s*(\d+)/i.exec(head);
      const length = m ? Number(m[1]) : 0;
      cur = {
        status: Number(head.split(' ')[1]),
        left: length,
        length,
        hash: createHash('sha256'),
        first: [],
        firstLen: 0,
      };
      rest = rest.subarray(end + 4);
    }
    const take = rest.subarray(0, cur.left);
    cur.hash.update(take);
    if (cur.firstLen < 64) {
      cur.first.push(take.subarray(0, 64));
      cur.firstLen += take.length;
    }
    cur.left -= take.length;
    rest = rest.subarray(take.length);
    if (cur.left === 0) finish();
  }
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, path] = line.split(' ');
  if (verb === 'GET' && path) {
    sentAt = performance.now();
    sock.write(`GET ${path} HTTP/1.1\r\nHost: baton.test\r\n\r\n`);
  }
  if (verb === 'QUIT') sock.end();
  if (verb === 'RESET') sock.resetAndDestroy();
});
