/**
 * The cluster part of the demo (`make demo`, or alone: `make demo-cluster`),
 * on its own netns testbed:
 *
 *   client ── router (ECMP over lb1, lb2; redis-server) ──┬── lb1 ──┬── backend1 (nginx)
 *                                                         └── lb2 ──┘
 *
 * Two `baton lb --store redis://...` daemons join a cluster through a real
 * Redis, a dispatcher on each splices to the back end. curl downloads a file
 * through whichever LB the router's hash picks; mid-download that LB's next
 * hop is removed, so the client's packets land on the other LB, which holds
 * an owner entry for the connection (from the owner directory) and forwards
 * them in the owner header. The download completes byte-exact (SHA-256).
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import type { DispatchEvent } from '../control/dispatcher/dispatcher.js';
import { startClusterStack } from '../lab/launch/cluster-stack.js';
import { startNginx } from '../lab/launch/nginx.js';
import { BPF_DIR } from '../lab/paths.js';
import { canRunPrivileged, EcmpBed, VIP4 } from '../lab/testbed/index.js';

const SIZE = 24 * 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the cluster demo, printing with `say`; 0 when the rehash was survived. */
export async function clusterDemo(say: (line?: string) => void): Promise<number> {
  const priv = canRunPrivileged();
  const missing = bpfUnavailableReason(BPF_DIR) ?? (priv.ok ? undefined : priv.reason);
  if (missing) {
    say(`baton cluster demo cannot run here: ${missing}`);
    return 2;
  }
  const t0 = Date.now();
  say('baton cluster: client <-> router (ECMP, L4 hash; Redis) <-> lb1, lb2 <-> backend1');
  const bed = await EcmpBed.create(
    { clients: 1, lbs: 2, backends: 1, name: 'democluster' },
    { passXdp: (_n, _i, role) => role !== 'lb' },
  );
  const tb = bed.tb;
  const stops: Array<() => Promise<unknown>> = [];
  const out = join(tmpdir(), `baton-demo-cluster-${process.pid}`);
  try {
    // A small client receive buffer keeps the download in flight while the route changes.
    await tb.exec('client1', 'sysctl', ['-qw', 'net.ipv4.tcp_rmem=4096 65536 262144']);
    const nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': SIZE });
    stops.push(() => nginx.stop());
    const cluster = await startClusterStack(bed, [`${tb.node('backend1').v4}:8080`]);
    stops.unshift(() => cluster.close());
    const { store, dispatchers } = cluster;
    say(
      `  ${bed.lbs.map((lb) => `baton lb --store ${store} --cluster-id ${lb} --cluster-address ${bed.lbAddress(lb, 4)} --vip ${VIP4}`).join('\n  ')}`,
    );
    say(`  a dispatcher on each LB (${VIP4}:80) splices to backend1`);

    const curl = tb.exec(
      'client1',
      'curl',
      [
        '-sS',
        '--max-time',
        '30',
        '--limit-rate',
        '8M',
        '-o',
        out,
        '-w',
        '%{http_code} %{size_download}',
        `http://${VIP4}/big.bin`,
      ],
      { timeoutMs: 40_000 },
    );
    let owner: string | undefined;
    for (let i = 0; i < 200 && !owner; i++) {
      owner = [...dispatchers].find(([, d]) => d.events.some((e: DispatchEvent) => e.event === 'spliced'))?.[0];
      if (!owner) await sleep(25);
    }
    if (!owner) throw new Error('no LB spliced the download');
    const other = bed.lbs.find((lb) => lb !== owner) as string;
    for (let i = 0; i < 100; i++) {
      if ((await cluster.metric(other, 'baton_owner_connections', { kind: 'forwarded' })) === 1) break;
      await sleep(20);
    }
    say(`GET /big.bin (${SIZE >> 20} MiB, 8 MB/s): the router sent it to ${owner}, which spliced it;`);
    say(`  the owner directory (Redis) told ${other}: 1 connection forwarded to ${owner}`);
    await sleep(1000);
    await bed.removeNextHop(owner);
    say(`  mid-download, ${owner} leaves the ECMP set (ip route replace ... nexthop via ${bed.lbAddress(other, 4)})`);
    const r = await curl;
    const sha = createHash('sha256').update(readFileSync(out)).digest('hex');
    const exact = r.stdout === `200 ${SIZE}` && sha === nginx.sha256['/big.bin'];
    const forwarded = await cluster.metric(other, 'baton_datapath_packets_total', { reason: 'to_owner' });
    say(
      `  download: HTTP ${r.stdout.split(' ')[0]}, ${r.stdout.split(' ')[1]} bytes, SHA-256 ${exact ? 'matches' : 'DIFFERS'}; ${other} forwarded ${forwarded} client segments to ${owner} in the owner header`,
    );
    say(
      `cluster demo: ${exact && forwarded > 0 ? 'the rehash was survived' : 'FAILED'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
    return exact && forwarded > 0 ? 0 : 1;
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    rmSync(out, { force: true });
    await bed.destroy();
    say('cluster testbed removed (dispatchers and daemons stopped, baton down on each LB, Redis stopped)');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  clusterDemo((line = '') => process.stdout.write(`${line}\n`)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`baton cluster demo failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
