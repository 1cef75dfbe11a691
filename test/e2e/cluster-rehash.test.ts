/**
 * Issue 12's end-to-end test: a cluster of three `baton lb` daemons (real
 * daemons, joined through a real redis-server in the router's namespace)
 * behind an ECMP router, a dispatcher on each LB splicing to two nginx back
 * ends that every LB reaches, three clients. 200 keep-alive connections
 * (a third of them IPv6) are spliced, spread over the LBs by the router's
 * hash; three 64 MiB downloads
 * run while, in turn, one next hop is removed, added back and the weights
 * change. Every change moves connections to LBs that do not hold them; the
 * owner directory has told those LBs who does, so they forward the
 * segments in the owner header. Every answer and every download must be
 * byte-exact (SHA-256), no client may see a RST, and the counters must show
 * the forwarded packets. Last, connections established less than 10 ms
 * before a hash change (not yet spliced, so in no directory) survive
 * through the second chance; then every connection closes (FIN through
 * the detours), is reclaimed by its owner and withdrawn from the directory.
 *
 *   client1..3 ── router (ECMP, redis) ──┬── lb1 ──┬── backend1
 *                                        ├── lb2 ──┤
 *                                        └── lb3 ──┴── backend2
 *
 * Bounded: 200 connections, 3 downloads at a limited rate, 4 late
 * connections; every wait has a deadline.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { ROOT } from '../../lab/paths.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { canRunPrivileged, EcmpBed, multipathRouteArgs, VIP4, VIP6 } from '../lib/testbed.js';

const priv = canRunPrivileged();
const skip = priv.ok ? skipUnlessBpf : priv.reason;
const CONNECTIONS = 200;
const BIG = 64 * 1024 * 1024;
const SMALL = 'baton cluster keep-alive answer\n'.repeat(32);
const REDIS_PORT = 6393;
const METRICS_PORT = 9311;
const BACKEND_PORT = 8080;
const LATE = 4;
/** The dispatchers route this Host to the back ends' IPv6 addresses (a splice keeps one family). */
const V6_HOST = 'v6.cluster.test';

type Spliced = Extract<DispatchEvent, { event: 'spliced' }>;
interface Reply {
  event: string;
  ok?: number;
  errors?: string[];
  port?: number;
  at?: number;
}

/** One cluster-clients.ts process in a client namespace. */
class Clients {
  private readonly replies: Reply[] = [];
  private waiter: (() => void) | undefined;
  readonly proc: ChildProcess;
  constructor(bed: EcmpBed, node: string, sha: string, family: 4 | 6 = 4) {
    const [vip, host] = family === 4 ? [VIP4, 'cluster.test'] : [VIP6, V6_HOST];
    this.proc = bed.tb.spawn(
      node,
      process.execPath,
      ['--import', 'tsx', resolve(ROOT, 'test/e2e/programs/cluster-clients.ts'), vip, '80', '/small.txt', sha, host],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      this.replies.push(JSON.parse(l) as Reply);
      this.waiter?.();
    });
  }
  async send(cmd: string, ms = 30_000): Promise<Reply> {
    const n = this.replies.length;
    this.proc.stdin?.write(`${cmd}\n`);
    const deadline = Date.now() + ms;
    while (this.replies.length === n) {
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`no answer to "${cmd}" in ${ms} ms`);
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 100);
      });
    }
    const reply = this.replies[n] as Reply;
    if (reply.event === 'error') throw new Error(`clients: ${JSON.stringify(reply)}`);
    return reply;
  }
}

describe('a cluster of three LBs behind ECMP survives rehashes (issue 12)', { skip, timeout: 240_000 }, () => {
  let bed: EcmpBed;
  let redis: ChildProcess | undefined;
  let routeBatch: ChildProcess | undefined;
  const daemons = new Map<string, DaemonProc>();
  const dispatchers = new Map<string, DispatcherProc>();
  const nginx: NginxBackend[] = [];
  const clients: Clients[] = [];
  const rsts: string[] = [];
  const children: ChildProcess[] = [];

  const metrics = async (lb: string): Promise<string> =>
    (await bed.tb.exec(lb, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${METRICS_PORT}/metrics`])).stdout;
  const metric = (text: string, name: string, labels = ''): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? 0 : Number(line.split(' ')[1]);
  };
  const packets = (text: string, action: string, reason: string) =>
    metric(text, 'baton_datapath_packets_total', `{direction="none",action="${action}",reason="${reason}"}`);
  /** Per LB: packets sent in the owner header (to_owner, second_chance) and dropped for want of an owner. */
  const detours = async () => {
    const out: Record<string, { toOwner: number; secondChance: number; noOwner: number; hopLimit: number }> = {};
    for (const lb of bed.lbs) {
      const m = await metrics(lb);
      out[lb] = {
        toOwner: packets(m, 'forwarded', 'to_owner'),
        secondChance: packets(m, 'forwarded', 'second_chance'),
        noOwner: packets(m, 'dropped', 'no_owner'),
        hopLimit: packets(m, 'dropped', 'owner_hop_limit'),
      };
    }
    return out;
  };
  const eventually = async (what: string, check: () => Promise<boolean> | boolean, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
      await sleep(50);
    }
  };
  /** The splices so far, each with the LB whose dispatcher made it (in order per LB, not overall; ids are per LB). */
  const spliced = (): Array<Spliced & { lb: string }> =>
    [...dispatchers].flatMap(([lb, d]) =>
      d.events.filter((e): e is Spliced => e.event === 'spliced').map((e) => ({ ...e, lb })),
    );
  const failures = (): string[] =>
    [...dispatchers].flatMap(([lb, d]) =>
      d.events.filter((e) => e.event === 'rejected' || e.event === 'relayed').map((e) => `${lb}: ${JSON.stringify(e)}`),
    );

  before(async () => {
    bed = await EcmpBed.create({ clients: 3, lbs: 3, backends: 2 }, { passXdp: (_n, _i, role) => role !== 'lb' });
    const tb = bed.tb;
    // A small receive buffer keeps each download in flight (not parked in the client's kernel),
    // so the hash changes happen mid-transfer.
    for (const c of bed.clients) await tb.exec(c, 'sysctl', ['-qw', 'net.ipv4.tcp_rmem=4096 65536 262144']);
    for (const b of bed.backends) {
      nginx.push(await startNginx(tb, b, BACKEND_PORT, { 'big.bin': BIG, 'small.txt': SMALL }));
    }
    // The store: a real redis-server in the router's namespace, on its address toward lb1
    // (every LB reaches it through the router).
    const redisAddr = tb.iface(bed.lbs[0] as string, 'router').peer.v4;
    redis = tb.spawn(
      'router',
      'redis-server',
      ['--port', String(REDIS_PORT), '--bind', redisAddr, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      { stdio: 'ignore' },
    );
    await eventually('redis answers', async () => {
      const r = await tb.exec('lb1', 'bash', ['-c', `exec 3<>/dev/tcp/${redisAddr}/${REDIS_PORT}`], { check: false });
      return r.code === 0;
    });
    for (const lb of bed.lbs) {
      const node = tb.node(lb);
      daemons.set(
        lb,
        await startDaemon(
          tb,
          lb,
          node.ifaces.map((i) => i.name),
          [
            '--store',
            `redis://${redisAddr}:${REDIS_PORT}`,
            '--cluster-id',
            lb,
            '--cluster-address',
            bed.lbAddress(lb, 4),
            '--vip',
            VIP4,
            '--vip',
            VIP6,
            '--metrics',
            `127.0.0.1:${METRICS_PORT}`,
          ],
        ),
      );
      // The router's neighbour entry (the owner header's next hop toward the peers).
      await tb.exec(lb, 'ping', ['-4', '-c', '1', '-W', '1', tb.iface(lb, 'router').peer.v4], { timeoutMs: 5000 });
    }
    const backends = bed.backends.map((b) => `${tb.node(b).v4}:${BACKEND_PORT}`);
    const backends6 = bed.backends.map((b) => `[${tb.node(b).v6}]:${BACKEND_PORT}`);
    for (const [lb, d] of daemons) {
      dispatchers.set(
        lb,
        await startDispatcher(
          tb,
          {
            listen: [`${VIP4}:80`, `[${VIP6}]:80`],
            api: { socketPath: d.socketPath },
            pools: { web: { backends }, web6: { backends: backends6 } },
            routes: [{ host: V6_HOST, pool: 'web6' }, { pool: 'web' }],
          },
          { node: lb },
        ),
      );
    }
    for (const c of bed.clients) {
      // tcp[] reads IPv4 only: IPv6 TCP flags at 40 + 13 (no extension headers here).
      const filter = 'tcp[13] & 4 != 0 or (ip6 and ip6[6] == 6 and ip6[53] & 4 != 0)';
      const cap = tb.spawn(c, 'tcpdump', ['-i', 'any', '-nn', '-l', filter], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      children.push(cap);
      cap.stdout?.on('data', (d: Buffer) =>
        rsts.push(
          ...d
            .toString()
            .trim()
            .split('\n')
            .map((l) => `${c}: ${l}`),
        ),
      );
    }
    await eventually('every LB sees its two peers', async () => {
      for (const lb of bed.lbs) if (metric(await metrics(lb), 'baton_cluster_peers') !== 2) return false;
      return true;
    });
    await sleep(500); // tcpdump is listening
  });

  after(async () => {
    for (const c of clients) c.proc.kill();
    for (const c of children) c.kill();
    routeBatch?.kill();
    for (const d of dispatchers.values()) await d.stop();
    for (const d of daemons.values()) await d.stop();
    for (const n of nginx) await n.stop();
    if (redis?.pid) process.kill(-redis.pid, 'SIGTERM');
    await bed?.destroy();
  });

  test(`${CONNECTIONS} keep-alive connections (a third over IPv6) are spliced, spread over the three LBs, and in every directory`, async (t) => {
    const sha = createHash('sha256').update(SMALL).digest('hex');
    const n = bed.clients.length;
    for (const [i, c] of bed.clients.entries()) {
      // The last client's connections are IPv6: forwarded in an IPv4 owner header (the cluster addresses).
      const cl = new Clients(bed, c, sha, i === n - 1 ? 6 : 4);
      clients.push(cl);
      const want = Math.floor(CONNECTIONS / n) + (i < CONNECTIONS % n ? 1 : 0);
      const r = await cl.send(`open ${want}`, 60_000);
      assert.deepEqual(r.errors, [], `${c}: every first answer byte-exact`);
      assert.equal(r.ok, want);
    }
    await eventually(`${CONNECTIONS} spliced`, () => spliced().length === CONNECTIONS);
    assert.deepEqual(failures(), [], 'no rejected or fallback connection');
    const v6 = spliced().filter((s) => s.client.split(':').length > 2).length;
    assert.equal(v6, Math.floor(CONNECTIONS / n), "the last client's connections spliced over IPv6");
    const per = Object.fromEntries(bed.lbs.map((lb) => [lb, spliced().filter((s) => s.lb === lb).length]));
    t.diagnostic(`spliced per LB: ${JSON.stringify(per)}`);
    // The router's L4 hash spreads them: ~67 each expected; 15% leaves room for its variance.
    for (const lb of bed.lbs)
      assert.ok((per[lb] ?? 0) >= CONNECTIONS * 0.15, `${lb} got its share: ${JSON.stringify(per)}`);
    // Every LB owns what it spliced and forwards the rest: the directory is complete everywhere.
    await eventually('owned + forwarded = all, on every LB', async () => {
      for (const lb of bed.lbs) {
        const m = await metrics(lb);
        const owned = metric(m, 'baton_owner_connections', '{kind="owned"}');
        const fwd = metric(m, 'baton_owner_connections', '{kind="forwarded"}');
        if (owned !== per[lb] || fwd !== CONNECTIONS - (per[lb] ?? 0)) return false;
      }
      return true;
    });
  });

  test('a next hop removed, added back, weights changed: 3 downloads and every keep-alive answer byte-exact, no RST, packets forwarded', async (t) => {
    assert.equal(clients.length, 3, 'the connections of the first test');
    const shas = new Set(nginx.map((n) => n.sha256['/big.bin']));
    const before = await detours();
    const splicedBefore = new Set(spliced().map((s) => `${s.lb} ${s.id}`));
    const outs = bed.clients.map((c) => join(tmpdir(), `baton-cluster-${process.pid}-${c}`));
    const done: boolean[] = [];
    try {
      // ~13 s each at 5 MB/s: the three changes below happen within their transfer.
      const downloads = bed.clients.map((c, i) =>
        bed.tb
          .exec(
            c,
            'curl',
            [
              '-sS',
              '--max-time',
              '90',
              '--limit-rate',
              '5M',
              '-o',
              outs[i] as string,
              '-w',
              '%{http_code} %{size_download}',
              `http://${VIP4}/big.bin`,
            ],
            { timeoutMs: 100_000 },
          )
          .finally(() => (done[i] = true)),
      );
      const fresh = () => spliced().filter((s) => !splicedBefore.has(`${s.lb} ${s.id}`));
      await eventually('the downloads are spliced', () => fresh().length === bed.clients.length);
      const owners = fresh().map((s) => s.lb);
      t.diagnostic(`downloads spliced by ${owners.join(', ')}`);
      // Remove the next hop of an LB that holds a download: its segments must take the detour.
      const leaving = owners[0] as string;
      const steps: Array<[string, () => Promise<void>]> = [
        [`${leaving} removed`, () => bed.removeNextHop(leaving)],
        [`${leaving} added back`, () => bed.addNextHop(leaving)],
        ['weights 20/1/1', () => bed.setNextHops(bed.lbs.map((lb, i) => ({ lb, weight: i === 0 ? 20 : 1 })))],
      ];
      for (const [what, change] of steps) {
        await sleep(1500);
        await change();
        await sleep(1000);
        for (const [i, c] of clients.entries()) {
          const r = await c.send('round');
          assert.deepEqual(r.errors, [], `after "${what}": client${i + 1}'s answers`);
        }
        const now = await detours();
        t.diagnostic(`after "${what}": ${JSON.stringify(now)}`);
      }
      assert.ok(
        done.every((d) => !d),
        'every download was still under way at the last change',
      );
      const results = await Promise.all(downloads);
      for (const [i, r] of results.entries()) {
        assert.equal(r.stdout, `200 ${BIG}`, `download ${i + 1}`);
        const sha = createHash('sha256')
          .update(readFileSync(outs[i] as string))
          .digest('hex');
        assert.ok(shas.has(sha), `download ${i + 1}: SHA-256 of the file`);
      }
      const after = await detours();
      const forwarded = bed.lbs.map((lb) => (after[lb]?.toOwner ?? 0) - (before[lb]?.toOwner ?? 0));
      t.diagnostic(`to_owner per LB during the changes: ${forwarded.join(', ')}`);
      assert.ok(
        forwarded.reduce((a, b) => a + b, 0) >= 1000,
        `segments took the owner header (to_owner per LB: ${forwarded})`,
      );
      assert.deepEqual(failures(), [], 'no rejected or fallback connection');
      assert.deepEqual(rsts, [], 'no client saw a RST');
    } finally {
      for (const o of outs) rmSync(o, { force: true });
    }
  });

  test(`${LATE} connections established < 10 ms before a hash change (in no directory yet) survive via the second chance`, async (t) => {
    const tb = bed.tb;
    // The route change must follow the connection within milliseconds: one `ip -batch` process
    // in the router, fed a line per change, answering with the route it then has.
    routeBatch = tb.spawn('router', 'stdbuf', ['-oL', 'ip', '-batch', '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const shown: string[] = [];
    let shownWaiter: (() => void) | undefined;
    readline.createInterface({ input: routeBatch.stdout! }).on('line', (l) => {
      shown.push(l);
      shownWaiter?.();
    });
    const hops = (lbs: string[]) =>
      multipathRouteArgs(
        4,
        VIP4,
        lbs.map((lb) => ({ via: bed.lbAddress(lb, 4), dev: tb.iface('router', lb).name, weight: 1 })),
      ).join(' ');
    const routeTo = async (lbs: string[]): Promise<number> => {
      const n = shown.length;
      routeBatch?.stdin?.write(`${hops(lbs)}\nroute show ${VIP4}/32\n`);
      while (shown.length === n) {
        await new Promise<void>((r) => {
          shownWaiter = r;
          setTimeout(r, 50);
        });
      }
      return performance.timeOrigin + performance.now();
    };
    const [first, ...rest] = bed.lbs as [string, ...string[]];
    const sha = createHash('sha256').update(SMALL).digest('hex');
    const late = new Clients(bed, bed.clients[0] as string, sha);
    clients.push(late);
    const before = await detours();
    const splicedBefore = new Set(spliced().map((s) => `${s.lb} ${s.id}`));
    const fresh = () => spliced().filter((s) => !splicedBefore.has(`${s.lb} ${s.id}`));
    const gaps: number[] = [];
    try {
      for (let i = 0; i < LATE; i++) {
        // Every new flow to lb1; established there, then at once the hash moves it to lb2/lb3.
        let gap = Number.POSITIVE_INFINITY;
        for (let attempt = 0; attempt < 3 && gap >= 10; attempt++) {
          await routeTo([first]);
          await sleep(20);
          const c = await late.send('connect');
          gap = (await routeTo(rest)) - (c.at as number);
        }
        assert.ok(gap < 10, `the hash changed ${gap.toFixed(2)} ms after the connection was established`);
        gaps.push(gap);
      }
      t.diagnostic(`hash changed ${gaps.map((g) => g.toFixed(2)).join(', ')} ms after the connections`);
      const r = await late.send('round');
      assert.deepEqual(r.errors, [], 'every late connection answered byte-exact');
      assert.equal(r.ok, LATE);
      await eventually('the late connections spliced', () => fresh().length === LATE);
      assert.ok(
        fresh().every((s) => s.lb === first),
        `spliced by the LB that accepted them: ${fresh().map((s) => s.lb)}`,
      );
      // And the next answers, through the owner entries the directory now has.
      const again = await late.send('round');
      assert.deepEqual(again.errors, []);
      const now = await detours();
      const second = rest.map((lb) => (now[lb]?.secondChance ?? 0) - (before[lb]?.secondChance ?? 0));
      t.diagnostic(`second_chance at ${rest.join(', ')}: ${second.join(', ')}; ${JSON.stringify(now)}`);
      assert.ok(
        second.reduce((a, b) => a + b, 0) >= LATE,
        'the first segments after the change went to the owner on a second chance',
      );
      for (const c of clients.slice(0, 3)) assert.deepEqual((await c.send('round')).errors, [], 'the others too');
      assert.deepEqual(rsts, [], 'no client saw a RST');
    } finally {
      await bed.setNextHops(bed.lbs.map((lb) => ({ lb })));
    }
  });

  test('every connection closes cleanly across the detours, is reclaimed by its owner and leaves every directory', async () => {
    // Weights 20/1/1 first: most connections close through an LB that does not hold them.
    await bed.setNextHops(bed.lbs.map((lb, i) => ({ lb, weight: i === 0 ? 20 : 1 })));
    for (const c of clients) assert.equal((await c.send('quit')).event, 'closed');
    // The sweeper reclaims a closed connection after its grace (10 s), then the owner withdraws it.
    await eventually(
      'no LB owns or forwards a connection',
      async () => {
        for (const lb of bed.lbs) {
          const m = await metrics(lb);
          if (metric(m, 'baton_owner_connections', '{kind="owned"}') !== 0) return false;
          if (metric(m, 'baton_owner_connections', '{kind="forwarded"}') !== 0) return false;
        }
        return true;
      },
      30_000,
    );
    assert.deepEqual(rsts, [], 'no client saw a RST');
  });
});
