/**
 * The ECMP testbed (lab/testbed/ecmp.ts): a router with a multipath route
 * for the VIP spreads client flows over three LBs (L4 hash, IPv4 and IPv6),
 * and the helpers really change that mid-test: a removed next hop gets no
 * new flow, an added one gets flows again, a heavy weight takes most.
 * Each LB answers on VIP:80 with its own name, so every connection says
 * where the router sent it. Real kernels, real TCP; bounded in count and
 * time (FLOWS connections per client per round, 5 s per connection).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { canRunPrivileged, EcmpBed, VIP4, VIP6 } from '../lib/testbed.js';

const priv = canRunPrivileged();
const skip = priv.ok ? false : priv.reason;
const FLOWS = 40;

/** A server on VIP:80 in the LB that writes its name and closes. */
async function nameServer(bed: EcmpBed, lb: string): Promise<ChildProcess> {
  const child = bed.tb.spawn(lb, process.execPath, [
    '-e',
    `require('net').createServer((s) => s.end(${JSON.stringify(lb)})).listen(80, '::', () => console.log('listening'))`,
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

/** `n` connections from a client to the VIP, one after another (new source port each): which LB answered, counted. */
async function spread(bed: EcmpBed, client: string, vip: string, n: number): Promise<Record<string, number>> {
  const script = `
const net = require('net');
const counts = {};
(async () => {
  for (let i = 0; i < ${n}; i++) {
    const name = await new Promise((res, rej) => {
      const s = net.connect({ host: ${JSON.stringify(vip)}, port: 80 });
      let got = '';
      s.setTimeout(5000, () => { s.destroy(); rej(new Error('timeout')); });
      s.on('data', (d) => (got += d));
      s.on('end', () => res(got));
      s.on('error', rej);
    });
    counts[name] = (counts[name] || 0) + 1;
  }
  console.log(JSON.stringify(counts));
})().catch((e) => { console.error(e.message); process.exit(1); });`;
  const r = await bed.tb.exec(client, process.execPath, ['-e', script], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as Record<string, number>;
}

async function round(bed: EcmpBed, vip: string): Promise<Record<string, number>> {
  const all = await Promise.all(bed.clients.map((c) => spread(bed, c, vip, FLOWS)));
  const total: Record<string, number> = {};
  for (const counts of all) for (const [k, v] of Object.entries(counts)) total[k] = (total[k] ?? 0) + v;
  return total;
}

describe('ECMP testbed: router, three LBs, L4 multipath', { skip, timeout: 180_000 }, () => {
  let bed: EcmpBed;
  const servers: ChildProcess[] = [];
  before(async () => {
    bed = await EcmpBed.create({ clients: 3, lbs: 3, backends: 2 });
    for (const lb of bed.lbs) servers.push(await nameServer(bed, lb));
  });
  after(async () => {
    for (const s of servers) s.kill();
    await bed?.destroy();
  });

  test('the route is one multipath route over all LBs, L4 hash on', async () => {
    for (const family of [4, 6] as const) {
      const hops = await bed.routeInKernel(family);
      assert.deepEqual(
        hops.map((h) => h.via).sort(),
        bed.lbs.map((lb) => bed.lbAddress(lb, family)).sort(),
        `IPv${family} next hops`,
      );
    }
    const r = await bed.tb.exec('router', 'sysctl', [
      '-n',
      'net.ipv4.fib_multipath_hash_policy',
      'net.ipv6.fib_multipath_hash_policy',
    ]);
    assert.deepEqual(r.stdout.trim().split('\n'), ['1', '1']);
  });

  for (const [family, vip] of [
    [4, VIP4],
    [6, VIP6],
  ] as const) {
    test(`IPv${family}: flows spread over every LB, and the helpers move them`, async () => {
      const n = bed.clients.length * FLOWS;
      const all = await round(bed, vip);
      assert.deepEqual(Object.keys(all).sort(), [...bed.lbs].sort(), `every LB got flows: ${JSON.stringify(all)}`);
      for (const lb of bed.lbs)
        assert.ok((all[lb] ?? 0) < n * 0.7, `${lb} did not take nearly all: ${JSON.stringify(all)}`);

      await bed.removeNextHop('lb3');
      const without = await round(bed, vip);
      assert.equal(without.lb3, undefined, `no flow reaches a removed next hop: ${JSON.stringify(without)}`);
      assert.deepEqual(Object.keys(without).sort(), ['lb1', 'lb2']);

      await bed.addNextHop('lb3');
      const back = await round(bed, vip);
      assert.ok((back.lb3 ?? 0) > 0, `an added next hop gets flows again: ${JSON.stringify(back)}`);

      await bed.setWeight('lb1', 20);
      const heavy = await round(bed, vip);
      // Expected share 20/22 (~91%); 70% leaves room for the hash's variance over 120 flows.
      assert.ok((heavy.lb1 ?? 0) > n * 0.7, `weight 20 takes most flows: ${JSON.stringify(heavy)}`);
      assert.deepEqual(
        (await bed.routeInKernel(family)).map((h) => h.weight).sort((a, b) => a - b),
        [1, 1, 20],
      );
      await bed.setNextHops(bed.lbs.map((lb) => ({ lb })));
    });
  }
});
