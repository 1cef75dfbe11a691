/**
 * Owner forwarding on real kernels (source document 004): the ECMP testbed
 * (router + three LBs, lab/testbed/ecmp.ts), baton's datapath attached on
 * every LB, owner forwarding configured on each (its router-link address as
 * the outer source, the other two as peers, the VIP). A client holds a TCP
 * connection to a server on the LB the router sent it to (the owner); then
 * that LB is taken out of the ECMP set, so the client's packets land on
 * another LB, whose kernel has no socket for them and would answer with a
 * RST. With an OWNER entry installed by hand (the owner directory's job,
 * later) the packets go to the owner in the owner header and the
 * connection carries on byte-exact; with no entry but a second-chance
 * bucket pointing at the owner, the same. Counters prove the path.
 * Bounded: 50 echoes per connection, 20 s per phase.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { skipUnlessBpf } from '../lib/env.js';
import { canRunPrivileged, EcmpBed, VIP4, VIP6 } from '../lib/testbed.js';

const priv = canRunPrivileged();
const skip = priv.ok ? skipUnlessBpf : priv.reason;
const ECHOES = 50;

/** A server on VIP:80 in the LB: says its name, then echoes. */
async function echoServer(bed: EcmpBed, lb: string): Promise<ChildProcess> {
  const child = bed.tb.spawn(lb, process.execPath, [
    '-e',
    `require('net').createServer((s) => { s.write(${JSON.stringify(`${lb}\n`)}); s.pipe(s); s.on('error', () => {}); }).listen(80, '::', () => console.log('listening'))`,
  ]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${lb} did not start within 10 s`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server in ${lb} exited early (${code})`)));
  });
  return child;
}

/**
 * A client connection driven over stdin/stdout: prints `connected <lb> <local port>`, then on
 * `go` sends ECHOES numbered lines one by one, each awaited, and prints `done <n>` or `error <msg>`.
 */
class Conn {
  private readonly lines: string[] = [];
  private readonly waiters: Array<() => void> = [];
  readonly child: ChildProcess;
  constructor(bed: EcmpBed, client: string, vip: string) {
    const script = `
const net = require('net');
const rl = require('readline').createInterface({ input: process.stdin });
const s = net.connect({ host: ${JSON.stringify(vip)}, port: 80 });
let buf = '', name, pending;
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (!name) { name = line; console.log('connected ' + name + ' ' + s.localPort); }
    else if (pending) { const p = pending; pending = undefined; p(line); }
  }
});
s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
s.on('close', () => { console.log('closed'); });
rl.on('line', async (cmd) => {
  if (cmd !== 'go') return;
  for (let n = 0; n < ${ECHOES}; n++) {
    const msg = 'echo-' + n + '-' + 'x'.repeat(n * 20);
    const got = await new Promise((res) => { pending = res; s.write(msg + '\\n'); });
    if (got !== msg) { console.log('error mismatch ' + n); process.exit(0); }
  }
  console.log('done ${ECHOES}');
});`;
    this.child = bed.tb.spawn(client, process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out = this.child.stdout;
    if (!out) throw new Error('client has no stdout');
    createInterface({ input: out }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** The first output line matching `re`, within `ms`. */
  async expect(re: RegExp, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.find((l) => re.test(l) || /^error/.test(l));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`client said ${JSON.stringify(this.lines)}, not ${re} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  go(): void {
    this.child.stdin?.write('go\n');
  }
}

const counter = (dp: Datapath, reason: string): bigint =>
  dp
    .readCounters()
    .filter((c) => c.reason === reason)
    .reduce((a, c) => a + c.packets, 0n);

describe('owner forwarding end to end: a connection survives its LB leaving the ECMP set', {
  skip,
  timeout: 180_000,
}, () => {
  let bed: EcmpBed;
  const dps = new Map<string, Datapath>();
  const children: ChildProcess[] = [];

  before(async () => {
    bed = await EcmpBed.create(
      { clients: 2, lbs: 3, backends: 1 },
      { passXdp: (_node, _iface, role) => role !== 'lb' },
    );
    for (const lb of bed.lbs) {
      const dp = await Datapath.load();
      dps.set(lb, dp);
      const node = bed.tb.node(lb);
      withNetns(node.ns, () => {
        for (const i of node.ifaces) dp.attach(i.ifindex);
      });
      dp.owner.settings.configure({ local4: bed.lbAddress(lb, 4), local6: bed.lbAddress(lb, 6) });
      bed.lbs
        .filter((p) => p !== lb)
        .forEach((p, i) => {
          dp.owner.peers.add(bed.lbAddress(p, 4), 2 * i + 1);
          dp.owner.peers.add(bed.lbAddress(p, 6), 2 * i + 2);
        });
      dp.owner.vips.add(VIP4);
      dp.owner.vips.add(VIP6);
      children.push(await echoServer(bed, lb));
      // The router's neighbour entry on the LB side (the owner header's next hop), both families.
      for (const v of ['-4', '-6'])
        await bed.tb.exec(
          lb,
          'ping',
          [
            v,
            '-c',
            '1',
            '-W',
            '1',
            v === '-4' ? bed.tb.iface(lb, 'router').peer.v4 : bed.tb.iface(lb, 'router').peer.v6,
          ],
          {
            timeoutMs: 5000,
          },
        );
    }
  });

  after(async () => {
    for (const c of children) c.kill();
    for (const dp of dps.values()) dp.close();
    await bed?.destroy();
  });

  for (const [family, vip, via] of [
    [4, VIP4, 'owner entry'],
    [6, VIP6, 'owner entry'],
    [4, VIP4, 'second chance'],
  ] as const) {
    test(`IPv${family}, ${via}: the owner leaves the ECMP set mid-connection; every byte still echoes, no RST`, async () => {
      await bed.setNextHops(bed.lbs.map((lb) => ({ lb })));
      const conn = new Conn(bed, bed.clients[0] ?? 'client1', vip);
      children.push(conn.child);
      const hello = await conn.expect(/^connected /, 10_000);
      const [, owner, portText] = hello.split(' ');
      assert.ok(owner && bed.lbs.includes(owner), `connected to an LB: ${hello}`);
      const clientPort = Number(portText);
      const clientAddr = bed.tb.node(bed.clients[0] ?? 'client1')[family === 4 ? 'v4' : 'v6'];
      const others = bed.lbs.filter((lb) => lb !== owner);
      const ownerAddr = bed.lbAddress(owner, family);
      const key = { src: clientAddr, dst: vip, sport: clientPort, dport: 80 };
      for (const lb of others) {
        const dp = dps.get(lb);
        assert.ok(dp);
        if (via === 'owner entry') dp.table.insertOwner(key, { owner: ownerAddr, ownerPort: 80 });
        else dp.owner.secondChance.setAll(ownerAddr);
      }
      const reason = via === 'owner entry' ? 'to_owner' : 'second_chance';
      const before = others.map((lb) => counter(dps.get(lb) as Datapath, reason));
      try {
        await bed.removeNextHop(owner);
        conn.go();
        const end = await conn.expect(/^done /, 20_000);
        assert.equal(end, `done ${ECHOES}`, 'every echo came back byte-exact');
        const forwarded = others.map((lb, i) => counter(dps.get(lb) as Datapath, reason) - (before[i] ?? 0n));
        assert.ok(
          forwarded.some((n) => n >= BigInt(ECHOES)),
          `the LB the router now picks forwarded the client's segments in the owner header (${reason}: ${forwarded})`,
        );
        assert.ok(!conn.child.killed);
      } finally {
        conn.child.kill();
        for (const lb of others) {
          const dp = dps.get(lb) as Datapath;
          if (via === 'owner entry') dp.table.removeOwner(key);
          else dp.owner.secondChance.setAll(undefined);
        }
      }
    });
  }

  test('IPv4, directory late: no entry and no second chance drops the segments (no_owner), never a RST; the entry arriving resumes it', async () => {
    await bed.setNextHops(bed.lbs.map((lb) => ({ lb })));
    const client = bed.clients[1] ?? 'client2';
    const conn = new Conn(bed, client, VIP4);
    children.push(conn.child);
    const hello = await conn.expect(/^connected /, 10_000);
    const [, owner, portText] = hello.split(' ');
    assert.ok(owner && bed.lbs.includes(owner), `connected to an LB: ${hello}`);
    const key = { src: bed.tb.node(client).v4, dst: VIP4, sport: Number(portText), dport: 80 };
    const others = bed.lbs.filter((lb) => lb !== owner);
    const dropsBefore = others.map((lb) => counter(dps.get(lb) as Datapath, 'no_owner'));
    try {
      await bed.removeNextHop(owner);
      conn.go();
      await new Promise((r) => setTimeout(r, 1500));
      const drops = others.map((lb, i) => counter(dps.get(lb) as Datapath, 'no_owner') - (dropsBefore[i] ?? 0n));
      assert.ok(
        drops.some((n) => n > 0n),
        `segments dropped as no_owner while the directory is late (${drops})`,
      );
      await assert.rejects(conn.expect(/^(done|closed)/, 10), /not/, 'no reset, no close: the connection waits');
      for (const lb of others)
        (dps.get(lb) as Datapath).table.insertOwner(key, { owner: bed.lbAddress(owner, 4), ownerPort: 80 });
      assert.equal(
        await conn.expect(/^done /, 20_000),
        `done ${ECHOES}`,
        'the retransmissions reach the owner once the entry is in',
      );
    } finally {
      conn.child.kill();
      for (const lb of others) (dps.get(lb) as Datapath).table.removeOwner(key);
    }
  });
});
