/**
 * The migrate part of the demo (`make demo`, or alone: `make demo-migrate`),
 * on its own netns testbed (lab/testbed/routed.ts):
 *
 *   client ── router ──┬── lb        (baton lb --agent ..., dispatcher: migrate pool on the VIP)
 *                      ├── backend1  (baton agent + a Node app behind the SDK)
 *                      └── backend2  (baton agent + a Node app behind the SDK)
 *
 * curl asks the VIP; the dispatcher reads the request and asks baton to
 * migrate the connection: the back end's agent restores the socket, its app
 * reads the request from it and answers the client directly (the router
 * sends the reply to the client, never to the LB). A download shows the
 * reply bytes bypassing the LB: its datapath forwards only the client's
 * packets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import type { MigratedSocket } from '../control/sdk/agent.js';
import { histogramQuantile, parseExposition, sumSamples } from '../control/sdk/metrics.js';
import { batonIn } from '../lab/launch/baton-cli.js';
import { startMigrateStack } from '../lab/launch/migrate-stack.js';
import { BPF_DIR } from '../lab/paths.js';
import { canRunPrivileged, createTestbed, routedTopology, VIP4 } from '../lab/testbed/index.js';

const METRICS = '127.0.0.1:9300';
const BIG = randomBytes(16 * 1024 * 1024);

/** Runs the migrate demo, printing with `say`; 0 when every connection was migrated and answered. */
export async function migrateDemo(say: (line?: string) => void): Promise<number> {
  const priv = canRunPrivileged();
  const missing = bpfUnavailableReason(BPF_DIR) ?? (priv.ok ? undefined : priv.reason);
  if (missing) {
    say(`baton migrate demo cannot run here: ${missing}`);
    return 2;
  }
  const t0 = Date.now();
  say('baton migrate: client <-> router <-> lb, backend1, backend2 (replies bypass the LB)');
  const tb = await createTestbed(routedTopology('demomig'), {
    passXdp: (node) => node === 'client' || node === 'router',
  });
  const dir = mkdtempSync(join(tmpdir(), 'baton-demo-migrate-'));
  let stack: Awaited<ReturnType<typeof startMigrateStack>> | undefined;
  try {
    stack = await startMigrateStack(tb, dir, {
      serve: (b) => (req, res) => {
        if (req.url === '/big.bin') return void res.writeHead(200, { 'content-length': BIG.length }).end(BIG);
        const m = (req.socket as MigratedSocket).baton;
        res.end(
          m
            ? `hello from ${b}: migration ${m.migrationId}, the request was in the socket when the app got it\n`
            : `hello from ${b} (relayed)\n`,
        );
      },
    });
    say('lb: baton lb --agent 198.18.3.2:7400 --agent 198.18.4.2:7400; dispatcher pool "mode": "migrate"');
    say('backend1, backend2: baton agent; a Node http.Server attached with connectAgent().attach(server, { vip })');
    let ok = true;
    for (const path of ['/hello', '/hello']) {
      const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}${path}`]);
      say(`  curl http://${VIP4}${path} -> ${r.stdout.trim() || r.stderr.trim()}`);
      ok &&= r.stdout.includes('migration');
    }
    const out = join(dir, 'big.bin');
    const started = Date.now();
    const d = await tb.exec('client', 'curl', ['-sS', '--max-time', '30', '-o', out, `http://${VIP4}/big.bin`]);
    const exact =
      d.code === 0 &&
      createHash('sha256').update(readFileSync(out)).digest('hex') === createHash('sha256').update(BIG).digest('hex');
    ok &&= exact;
    say(
      `  curl http://${VIP4}/big.bin -> 16 MiB ${exact ? 'SHA-256 exact' : 'WRONG'} in ${Date.now() - started} ms, over a migrated connection`,
    );
    for (const e of stack.dispatcher.events)
      if (e.event === 'migrated')
        say(
          `  dispatcher: ${e.client} migrated to ${e.agent} (flow id ${e.flowId}) in ${e.ms} ms; daemon µs: ${Object.entries(
            e.phasesUs ?? {},
          )
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
      else if (e.event === 'relayed') say(`  dispatcher: ${e.client} relayed: ${e.code} ${e.detail}`);

    const families = parseExposition((await tb.exec('lb', 'curl', ['-sS', `http://${METRICS}/metrics`])).stdout);
    const fam = (name: string) => families.find((f) => f.name === name);
    const total = fam('baton_handoffs_total');
    const hist = fam('baton_handoff_duration_seconds');
    const n = total ? sumSamples(total, { mode: 'migrate', outcome: 'ok' }) : 0;
    const p50 = (hist && histogramQuantile(hist, 0.5, { mode: 'migrate' })) ?? Number.NaN;
    say(
      `migrations (from /metrics): ${n} ok; daemon time p50 ${Number.isNaN(p50) ? 'n/a' : `${Math.round(p50 * 1e6)} µs`}`,
    );
    const packets = fam('baton_datapath_packets_total');
    if (packets) {
      const by = (direction: string) =>
        packets.samples
          .filter((s) => s.labels.direction === direction && s.labels.action === 'forwarded')
          .reduce((a, s) => a + s.value, 0);
      say(
        `lb datapath: ${by('to_backend')} client packets forwarded to the back ends, ${by('to_client')} reply packets (replies go back end -> router -> client)`,
      );
    }
    const left = await tb.exec('lb', 'ss', ['-tanH', 'state', 'established', '( sport = :80 )']);
    say(`client-side sockets left on the lb: ${left.stdout.trim().split('\n').filter(Boolean).length}`);
    say(`migrate demo ${ok ? 'OK' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return ok ? 0 : 1;
  } finally {
    await stack?.close();
    const down = await batonIn(tb, 'lb', ['down']);
    if (down.code !== 0) say(`baton down failed: ${down.stderr.trim()}`);
    await tb.destroy();
    rmSync(dir, { recursive: true, force: true });
    say('testbed removed');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  migrateDemo((l = '') => process.stdout.write(`${l}\n`)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`baton migrate demo failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
