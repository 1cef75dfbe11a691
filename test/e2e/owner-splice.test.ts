/**
 * A spliced connection survives a next-hop change (source document 004 on
 * top of 000): the ECMP testbed with three LBs, each with baton's datapath,
 * a Splicer and the test front end on the VIP; nginx on the back end, which
 * every LB reaches. curl downloads a file through the LB the router picked,
 * whose front end splices the connection to the back end. Mid-download the
 * other LBs get an OWNER entry for the client's flow (by hand: the owner
 * directory's job, later) and the splicing LB leaves the ECMP set: the
 * client's ACKs now land on another LB, go to the owner in the owner
 * header, are removed from it there and rewritten by the splice entry as if
 * they had come directly. The download completes byte-exact (SHA-256) and
 * the counters show the detour. Bounded: one 16 MiB download, 60 s.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyHostSettingsUnrecorded } from '../../control/daemon/host-settings.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { Splicer } from '../../control/splice/splicer.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type FrontendDriver, startFrontend } from '../lib/frontend-driver.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { canRunPrivileged, EcmpBed, VIP4 } from '../lib/testbed.js';

const priv = canRunPrivileged();
const skip = priv.ok ? skipUnlessBpf : priv.reason;
const SIZE = 16 * 1024 * 1024;
const PORT = 8080;

const counter = (dp: Datapath, reason: string): bigint =>
  dp
    .readCounters()
    .filter((c) => c.reason === reason)
    .reduce((a, c) => a + c.packets, 0n);

describe('owner forwarding of a spliced connection across a next-hop change', { skip, timeout: 180_000 }, () => {
  let bed: EcmpBed;
  let nginx: NginxBackend;
  const lbs = new Map<string, { dp: Datapath; splicer: Splicer; fe: FrontendDriver }>();

  before(async () => {
    bed = await EcmpBed.create({ clients: 1, lbs: 3, backends: 1 }, { passXdp: (_n, _i, role) => role !== 'lb' });
    // A small client receive buffer keeps the download in flight (not parked in the client's
    // kernel) while curl reads at its rate limit, so the route change happens mid-transfer.
    await bed.tb.exec('client1', 'sysctl', ['-qw', 'net.ipv4.tcp_rmem=4096 65536 262144']);
    nginx = await startNginx(bed.tb, 'backend1', PORT, { 'big.bin': SIZE });
    const backend = `${bed.tb.node('backend1').v4}:${PORT}`;
    for (const lb of bed.lbs) {
      const dp = await Datapath.load({ flowsCapacity: 1024 });
      const node = bed.tb.node(lb);
      withNetns(node.ns, () => {
        for (const i of node.ifaces) dp.attach(i.ifindex);
        applyHostSettingsUnrecorded(node.ifaces.map((i) => i.name));
      });
      dp.owner.settings.configure({ local4: bed.lbAddress(lb, 4), local6: bed.lbAddress(lb, 6) });
      for (const [i, p] of bed.lbs.filter((x) => x !== lb).entries()) dp.owner.peers.add(bed.lbAddress(p, 4), i + 1);
      dp.owner.vips.add(VIP4);
      const splicer = new Splicer(dp, createSocketOps());
      const fe = await startFrontend(bed.tb, splicer, takeSocket, { ip: VIP4, port: 80 }, [backend], { node: lb });
      lbs.set(lb, { dp, splicer, fe });
      const router = bed.tb.iface(lb, 'router').peer.v4;
      await bed.tb.exec(lb, 'ping', ['-4', '-c', '1', '-W', '1', router], { timeoutMs: 5000 });
    }
  });

  after(async () => {
    for (const { fe, dp } of lbs.values()) {
      fe.stop();
      dp.close();
    }
    await nginx?.stop();
    await bed?.destroy();
  });

  test('mid-download, the splicing LB leaves the ECMP set: the download completes byte-exact via the owner header', async (t) => {
    const out = join(tmpdir(), `baton-owner-splice-${process.pid}`);
    try {
      // ~4 s at 4 MB/s: long enough to change the route in the middle.
      const curl = bed.tb.exec(
        'client1',
        'curl',
        [
          '-sS',
          '--max-time',
          '60',
          '--limit-rate',
          '4M',
          '-o',
          out,
          '-w',
          '%{http_code} %{size_download}',
          `http://${VIP4}/big.bin`,
        ],
        { timeoutMs: 70_000 },
      );
      // Wait for the splice (bounded: 10 s).
      let owner: string | undefined;
      for (let i = 0; i < 200 && !owner; i++) {
        owner = [...lbs].find(([, v]) => v.fe.splices.length > 0)?.[0];
        if (!owner) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(owner, 'one of the LBs spliced the connection');
      const rec = lbs.get(owner)?.fe.splices[0];
      assert.ok(rec);
      const others = bed.lbs.filter((lb) => lb !== owner);
      for (const lb of others)
        lbs.get(lb)?.dp.table.insertOwner(rec.clientKey, { owner: bed.lbAddress(owner, 4), ownerPort: 80 });
      const before = others.map((lb) => counter(lbs.get(lb)?.dp as Datapath, 'to_owner'));
      await new Promise((r) => setTimeout(r, 500));
      const ownerDp = lbs.get(owner)?.dp as Datapath;
      const toBackend = (): bigint =>
        ownerDp
          .readCountersByDirection()
          .filter((c) => c.reason === 'redirect' && c.direction === 'to_backend')
          .reduce((a, c) => a + c.packets, 0n);
      const ownerBefore = toBackend();
      await bed.removeNextHop(owner);
      const r = await curl;
      assert.equal(r.stdout, `200 ${SIZE}`);
      const sha = createHash('sha256').update(readFileSync(out)).digest('hex');
      assert.equal(sha, nginx.sha256['/big.bin'], 'SHA-256 of the download');
      const forwarded = others.map((lb, i) => counter(lbs.get(lb)?.dp as Datapath, 'to_owner') - (before[i] ?? 0n));
      const detour = forwarded.reduce((a, n) => a + n, 0n);
      const reached = toBackend() - ownerBefore;
      t.diagnostic(
        `owner ${owner}; after the change: ${detour} client segments via the owner header (${forwarded}), ${reached} spliced on at the owner`,
      );
      // Several MB still to come when the route changed: hundreds of client ACKs at least.
      assert.ok(detour >= 100n, `the client's segments took the owner header (to_owner: ${forwarded})`);
      // Every client segment the owner spliced on after the change came through the header
      // (a few may have been in flight on the old path at the switch).
      assert.ok(
        reached >= detour && reached <= detour + 5n,
        `owner spliced ${reached} client segments after the change, ${detour} arrived in the header`,
      );
    } finally {
      rmSync(out, { force: true });
    }
  });
});
