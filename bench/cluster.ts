/**
 * The cluster benchmark (issue 12, owner forwarding), a part of `make bench`:
 *
 *   1. cost per forwarded packet: putting a packet in the owner header and
 *      taking it out, BPF_PROG_TEST_RUN (bench/owner-datapath.ts);
 *   2. the detour: one keep-alive connection spliced by its LB downloads a
 *      file with the router sending its packets to that LB (direct), then
 *      with that LB out of the ECMP set, so every client segment lands on
 *      the other LB and is forwarded in the owner header (detour); rounds
 *      alternate on the same connection, so both see the same conditions;
 *   3. directory propagation: new connections spread over both LBs, each
 *      splice published to Redis and installed as an owner entry on the
 *      other LB; p50/p99 from the installing LBs'
 *      baton_owner_directory_propagation_seconds histograms (publish ->
 *      installed; one machine, so one clock), interpolated in its buckets.
 *
 * Its own testbed: 1 client, an ECMP router with Redis, 2 LBs (baton lb
 * --store + a dispatcher each), 1 nginx back end.
 *
 *   node --import tsx bench/cluster.ts [--quick]
 */
import type { MetricFamily } from '../control/sdk/metrics.js';
import { histogramQuantile } from '../control/sdk/metrics.js';
import { KeepAliveClient } from '../lab/clients/keepalive-client.js';
import { startClusterStack } from '../lab/launch/cluster-stack.js';
import { startNginx } from '../lab/launch/nginx.js';
import { EcmpBed, VIP4 } from '../lab/testbed/index.js';
import type { ClusterBenchResults, DetourRound } from './cluster-results.js';
import { runOwnerBench } from './owner-datapath.js';
import { type Profile, profileFromArgs } from './profile.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : Number.NaN;
};

/** Both LBs' propagation histograms as one family (their buckets summed by histogramQuantile). */
function merged(families: MetricFamily[][]): MetricFamily | undefined {
  const fs = families.map((f) => f.find((x) => x.name === 'baton_owner_directory_propagation_seconds'));
  const first = fs.find(Boolean);
  return first ? { ...first, samples: fs.flatMap((f) => f?.samples ?? []) } : undefined;
}

export async function runClusterBench(profile: Profile, log: (l: string) => void): Promise<ClusterBenchResults> {
  log(`  owner header: ${profile.clusterPacketSamples} runs per row (BPF_PROG_TEST_RUN, one run each)`);
  const ownerDatapath = await runOwnerBench(profile.clusterPacketSamples, (l) => log(`    ${l}`));

  const bed = await EcmpBed.create(
    { clients: 1, lbs: 2, backends: 1, name: 'benchcluster' },
    { passXdp: (_n, _i, role) => role !== 'lb' },
  );
  const tb = bed.tb;
  const size = profile.clusterDownloadMiB * 1024 * 1024;
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': size, 'small.txt': 'small\n' });
    stops.push(() => nginx.stop());
    const cluster = await startClusterStack(bed, [`${tb.node('backend1').v4}:8080`]);
    stops.unshift(() => cluster.close());
    const client = bed.clients[0] as string;

    // 2. The detour, on one keep-alive connection.
    const ka = await KeepAliveClient.start(tb, VIP4, 80, client);
    stops.unshift(async () => ka.send('QUIT'));
    const warm = await ka.get('/small.txt');
    if (warm.status !== 200) throw new Error(`the first request failed: ${JSON.stringify(warm)}`);
    let owner: string | undefined;
    for (let i = 0; i < 200 && !owner; i++) {
      owner = [...cluster.dispatchers].find(([, d]) => d.events.some((e) => e.event === 'spliced'))?.[0];
      if (!owner) await sleep(10);
    }
    if (!owner) throw new Error('no LB spliced the connection');
    const other = bed.lbs.find((lb) => lb !== owner) as string;
    for (let i = 0; i < 200; i++) {
      if ((await cluster.metric(other, 'baton_owner_connections', { kind: 'forwarded' })) >= 1) break;
      await sleep(10);
    }
    const hops = bed.nextHops();
    const toOwner = () => cluster.metric(other, 'baton_datapath_packets_total', { reason: 'to_owner' });
    const download = async (path: DetourRound['path']): Promise<DetourRound> => {
      const before = await toOwner();
      const a = await ka.get('/big.bin', 120_000);
      if (a.status !== 200 || a.length !== size || a.sha256 !== nginx.sha256['/big.bin'])
        throw new Error(`the ${path} download was not byte-exact: ${JSON.stringify(a)}`);
      const ms = a.ms as number;
      const r = { path, mbPerS: +(size / 1e6 / (ms / 1000)).toFixed(1), forwarded: (await toOwner()) - before };
      log(
        `    ${path.padEnd(6)} ${profile.clusterDownloadMiB} MiB in ${ms.toFixed(0)} ms: ${r.mbPerS} MB/s, ${r.forwarded} segments in the owner header`,
      );
      return r;
    };
    log(
      `  detour: one connection spliced by ${owner}; ${profile.clusterRounds} rounds of ${profile.clusterDownloadMiB} MiB direct, then with ${owner} out of the ECMP set`,
    );
    const rounds: DetourRound[] = [];
    for (let i = 0; i < profile.clusterRounds; i++) {
      rounds.push(await download('direct'));
      await bed.removeNextHop(owner);
      rounds.push(await download('detour'));
      await bed.setNextHops(hops); // the same order: the connection hashes to its owner again
    }
    const direct = median(rounds.filter((r) => r.path === 'direct').map((r) => r.mbPerS));
    const detour = median(rounds.filter((r) => r.path === 'detour').map((r) => r.mbPerS));

    // 3. Propagation: new connections over both LBs, each installed at the other.
    const n = profile.clusterConnections;
    log(`  propagation: ${n} new connections, spread over ${bed.lbs.join(' and ')}`);
    for (let i = 0; i < n; i++)
      await tb.exec(client, 'curl', ['-s', '-o', '/dev/null', '--max-time', '5', `http://${VIP4}/small.txt`]);
    await sleep(200);
    const fam = merged(await Promise.all(bed.lbs.map((lb) => cluster.scrape(lb))));
    const installed = fam ? fam.samples.filter((s) => s.name.endsWith('_count')).reduce((a, s) => a + s.value, 0) : 0;
    const q = (x: number) => {
      const v = fam && histogramQuantile(fam, x);
      return v === undefined ? Number.NaN : +(v * 1000).toFixed(2);
    };
    const propagation = { connections: n, installed, p50Ms: q(0.5), p99Ms: q(0.99) };
    log(`    ${installed} owner entries installed; p50 ${propagation.p50Ms} ms, p99 ${propagation.p99Ms} ms`);
    return {
      ownerDatapath,
      detour: {
        sizeMiB: profile.clusterDownloadMiB,
        rounds,
        directMBps: direct,
        detourMBps: detour,
        ratio: detour / direct,
      },
      propagation,
    };
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    await bed.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runClusterBench(profileFromArgs(process.argv.slice(2)), (l) => process.stdout.write(`${l}\n`)).then(
    (r) => process.stdout.write(`${JSON.stringify({ detour: r.detour, propagation: r.propagation }, null, 2)}\n`),
    (e: unknown) => {
      process.stderr.write(`cluster bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
