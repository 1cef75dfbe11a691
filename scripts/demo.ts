/**
 * baton demo (README's first command), on a netns testbed it builds itself:
 *
 *   client ──── lb ──┬── backend1 (nginx)
 *                    └── backend2 (nginx)
 *
 * In the lb namespace run what a user deploys: the daemon (`baton lb`: XDP
 * datapath on the LB's interfaces, REST API on a unix socket, metrics) and a
 * content-aware HTTP dispatcher on the VIP (routes by path and Host to
 * back-end pools, keeps pre-connected back-end connections, splices each
 * client connection after its first request). curl sends requests through
 * the VIP; one keep-alive connection is then moved to the other back end at
 * a request boundary (`POST /v1/splices/{id}/handoffs`). The demo prints who
 * served what, the handoff count and latency read from /metrics, and tears
 * everything down (daemon stopped, `baton down`, namespaces removed).
 * Then the migrate block (scripts/demo-migrate.ts, `make demo-migrate`
 * alone): a connection moved to a back end's agent, replies bypassing the
 * LB; and the cluster block (scripts/demo-cluster.ts, `make demo-cluster`
 * alone): two LBs and Redis behind an ECMP router, a rehash survived.
 */
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import { createClient } from '../control/sdk/client.js';
import { histogramQuantile, parseExposition, sumSamples } from '../control/sdk/metrics.js';
import { KeepAliveClient } from '../lab/clients/keepalive-client.js';
import { batonIn } from '../lab/launch/baton-cli.js';
import { startDaemon } from '../lab/launch/daemon.js';
import { startDispatcher } from '../lab/launch/dispatcher.js';
import { startNginx } from '../lab/launch/nginx.js';
import { BPF_DIR } from '../lab/paths.js';
import { canRunPrivileged, createTestbed, starTopology, VIP4 } from '../lab/testbed/index.js';
import { clusterDemo } from './demo-cluster.js';
import { migrateDemo } from './demo-migrate.js';

const METRICS = '127.0.0.1:9300';

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

const fmtUs = (s: number | undefined): string =>
  s === undefined || Number.isNaN(s) ? 'n/a' : `${Math.round(s * 1e6)} µs`;

async function main(): Promise<number> {
  const priv = canRunPrivileged();
  const missing = bpfUnavailableReason(BPF_DIR) ?? (priv.ok ? undefined : priv.reason);
  if (missing) {
    say(`baton demo cannot run here: ${missing}`);
    return 2;
  }
  say('baton demo: testbed client <-> lb <-> backend1, backend2 (network namespaces, 198.18.0.0/15)');
  const tb = await createTestbed(starTopology({ backends: 2, vip: true }), { passXdp: (node) => node !== 'lb' });
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const [b1, b2] = ['backend1', 'backend2'].map((b) => `${tb.node(b).v4}:8080`) as [string, string];
    for (const b of ['backend1', 'backend2']) {
      const n = await startNginx(tb, b, 8080, {
        'hello.txt': `hello from ${b}\n`,
        'api.txt': `api answered by ${b}\n`,
        'img.txt': `static file from ${b}\n`,
        'big.bin': 8 * 1024 * 1024,
      });
      stops.push(() => n.stop());
    }

    const lb = tb.node('lb');
    const daemon = await startDaemon(
      tb,
      'lb',
      lb.ifaces.map((i) => i.name),
      ['--metrics', METRICS],
    );
    stops.unshift(() => daemon.stop());
    say(
      `baton lb: XDP on ${lb.ifaces.map((i) => i.name).join(', ')}; API ${daemon.api}; metrics http://${METRICS}/metrics (lb namespace)`,
    );

    const routes = [{ host: 'static.example', pool: 'static' }, { pathPrefix: '/api', pool: 'api' }, { pool: 'web' }];
    const fe = await startDispatcher(tb, {
      listen: `${VIP4}:80`,
      api: { socketPath: daemon.socketPath },
      pools: { api: { backends: [b1] }, static: { backends: [b2] }, web: { backends: [b1, b2] } },
      routes,
    });
    stops.unshift(() => fe.stop());
    say(
      `dispatcher on ${VIP4}:80: Host static.example -> backend2; /api* -> backend1; anything else -> backend1, backend2 in turn`,
    );
    say();

    // 1. Content-aware routing; each connection spliced after its first request.
    const curl = (args: string[]) => tb.exec('client', 'curl', ['-sS', '--max-time', '10', ...args]);
    const show = async (label: string, args: string[]) => {
      const r = await curl(args);
      const answers = r.stdout.trim().split('\n');
      say(`  ${label.padEnd(44)} ${answers.length} answer(s) on one connection: ${[...new Set(answers)].join(' | ')}`);
    };
    say(
      'curl through the VIP (keep-alive: the first request goes through the dispatcher, the rest straight through the XDP datapath):',
    );
    await show(`GET /api.txt x3`, [`http://${VIP4}/api.txt`, `http://${VIP4}/api.txt?2`, `http://${VIP4}/api.txt?3`]);
    await show(`GET /img.txt x3, Host: static.example`, [
      '-H',
      'Host: static.example',
      `http://${VIP4}/img.txt`,
      `http://${VIP4}/img.txt?2`,
      `http://${VIP4}/img.txt?3`,
    ]);
    await show(`GET /hello.txt x3`, [
      `http://${VIP4}/hello.txt`,
      `http://${VIP4}/hello.txt?2`,
      `http://${VIP4}/hello.txt?3`,
    ]);
    await show(`GET /hello.txt x3 (next connection)`, [
      `http://${VIP4}/hello.txt`,
      `http://${VIP4}/hello.txt?2`,
      `http://${VIP4}/hello.txt?3`,
    ]);
    const big = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{size_download} bytes in %{time_total} s',
      `http://${VIP4}/big.bin`,
    ]);
    say(`  ${'GET /big.bin'.padEnd(44)} ${big.stdout}`);

    // 2. A later handoff: one keep-alive connection moves to the other back end.
    say();
    say('one keep-alive connection moved to another back end at a request boundary:');
    const client = await KeepAliveClient.start(tb, VIP4);
    stops.unshift(async () => client.proc.kill());
    const who = async () => (await client.get(`/hello.txt?${Math.random()}`)).body?.trim() ?? '(no answer)';
    const first = await who();
    const mine = (e: (typeof fe.events)[number]) => e.event === 'spliced' && e.client.endsWith(`:${client.localPort}`);
    for (let i = 0; i < 100 && !fe.events.some(mine); i++) await new Promise((r) => setTimeout(r, 20));
    const spliced = fe.events.find(mine);
    if (spliced?.event !== 'spliced') throw new Error('the dispatcher did not splice the connection');
    say(`  splice ${spliced.id}: ${first}, ${await who()}`);
    const target = spliced.backend === b1 ? b2 : b1;
    const api = createClient({ socketPath: daemon.socketPath });
    try {
      const h = await api.handoff(spliced.id, target);
      say(
        `  POST /v1/splices/${spliced.id}/handoffs {"backend":"${target}"} -> ${h.handoffs.length} handoffs, back end ${h.handoffs.at(-1)?.backend}`,
      );
    } finally {
      api.close();
    }
    say(`  next requests on the same connection: ${await who()}, ${await who()}`);
    say(
      `  the client saw its connection stay open: ${client.events.length === 0 ? 'yes' : JSON.stringify(client.events)}`,
    );

    // 3. What the daemon measured.
    say();
    const families = parseExposition((await tb.exec('lb', 'curl', ['-sS', `http://${METRICS}/metrics`])).stdout);
    const fam = (name: string) => families.find((f) => f.name === name);
    const hist = fam('baton_handoff_duration_seconds');
    const total = fam('baton_handoffs_total');
    for (const mode of ['splice', 'handoff']) {
      const n = total ? sumSamples(total, { mode, outcome: 'ok' }) : 0;
      const p50 = hist && histogramQuantile(hist, 0.5, { mode });
      const p99 = hist && histogramQuantile(hist, 0.99, { mode });
      say(
        `${mode === 'splice' ? 'splices' : 'later handoffs'} (from /metrics): ${n} ok; duration p50 ${n ? fmtUs(p50) : 'n/a'}, p99 ${n ? fmtUs(p99) : 'n/a'}`,
      );
    }
    const packets = fam('baton_datapath_packets_total');
    if (packets) {
      say('datapath packets by direction/action/reason (from /metrics, summed over CPUs):');
      for (const s of packets.samples.filter((x) => x.value > 0))
        say(
          `  ${(s.labels.direction ?? '').padEnd(11)} ${(s.labels.action ?? '').padEnd(10)} ${(s.labels.reason ?? '').padEnd(16)} ${String(s.value).padStart(8)}`,
        );
    }
    const left = await tb.exec('lb', 'ss', ['-tanpH', 'state', 'established', `( sport = :80 )`]);
    say(`client-side sockets left on the lb: ${left.stdout.trim().split('\n').filter(Boolean).length}`);
    return 0;
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    // The daemon never detaches on exit (restarts keep connections flowing); `baton down` does.
    const down = await batonIn(tb, 'lb', ['down']);
    say(down.code === 0 ? 'baton down: datapath detached, pins removed' : `baton down failed: ${down.stderr.trim()}`);
    await tb.destroy();
    say('testbed removed');
  }
}

main()
  .then(async (code) => {
    if (code !== 0) return code;
    say(); // Migrate mode (issue 11): the connection moves to the back end, replies bypass the LB.
    return migrateDemo(say);
  })
  .then(async (code) => {
    if (code !== 0) return code;
    say(); // Several LBs (issue 12): one next hop removed mid-download, the download completes.
    return clusterDemo(say);
  })
  .then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`baton demo failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
