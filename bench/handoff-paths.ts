/**
 * The handoff microbenchmark (bench/handoff.ts) alone, for the dispatcher's
 * two paths to the daemon side by side in one run: the local handoff
 * channel (descriptors passed with SCM_RIGHTS, binary frames) and REST
 * (POST /v1/splices with {pid, fd}). One testbed (client <-> lb <->
 * backend1, nginx), one `baton lb`, two dispatchers (bench/variants/baton-daemon.ts);
 * wrk with `Connection: close` on a 1 KiB response, so every request is a
 * new connection and a new splice; rows interleaved per concurrency.
 * `make bench` runs the same rows inside the suite (bench/run.ts).
 *
 *   node --import tsx bench/handoff-paths.ts [--quick]
 *
 * BENCH_LEG_PORTS=0 runs the dispatchers with "legPorts": false (every
 * spliced leg keeps a placeholder socket in the daemon), for an A/B with
 * the default.
 */
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import { type NginxBackend, startNginx } from '../lab/launch/nginx.js';
import { BPF_DIR } from '../lab/paths.js';
import { canRunPrivileged, createTestbed, starTopology } from '../lab/testbed/index.js';
import { type HandoffRun, runHandoffPaths } from './handoff.js';
import { BACKEND_PORT, BODIES, profileFromArgs } from './profile.js';
import { type BatonDaemonVariant, startBatonDaemon } from './variants/baton-daemon.js';

const t0 = performance.now();
const log = (line: string) =>
  process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

async function main(): Promise<number> {
  const profile = profileFromArgs(process.argv.slice(2));
  const priv = canRunPrivileged();
  const missing = priv.ok ? bpfUnavailableReason(BPF_DIR) : priv.reason;
  if (missing) {
    process.stderr.write(`handoff-paths cannot run here: ${missing}\n`);
    return 2;
  }
  setTimeout(() => {
    process.stderr.write(`handoff-paths: over its ${profile.budgetSeconds} s budget, stopping\n`);
    process.exit(1);
  }, profile.budgetSeconds * 1000).unref();
  log(
    `baton handoff paths (${profile.mode}): wrk, new connection per 1 KiB request, ${profile.handoffSeconds} s per row, ${profile.handoffConcurrency.join(', ')} client connection(s) at once`,
  );
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: 'hpath' }), {
    passXdp: (node) => node !== 'lb',
  });
  let backend: NginxBackend | undefined;
  let baton: BatonDaemonVariant | undefined;
  let runs: HandoffRun[] = [];
  try {
    const files = Object.fromEntries(Object.entries(BODIES).map(([path, size]) => [path.slice(1), size]));
    backend = await startNginx(tb, 'backend1', BACKEND_PORT, files);
    baton = await startBatonDaemon(tb);
    log(`  channel: ${baton.describe}`);
    log(`  REST:    ${baton.rest.describe}`);
    runs = await runHandoffPaths(
      tb,
      [
        { path: 'channel', variant: baton },
        { path: 'rest', variant: baton.rest },
      ],
      profile,
      log,
    );
    for (const [path, v] of [
      ['channel', baton],
      ['REST', baton.rest],
    ] as const) {
      const refusals = v.refusals();
      if (Object.keys(refusals).length) log(`  refusals (${path}): ${JSON.stringify(refusals)}`);
    }
  } finally {
    await baton?.stop().catch(() => {});
    await backend?.stop().catch(() => {});
    await tb.destroy();
  }
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
  log('summary (ms; daemon = block entries to sockets released, front end = the dispatcher’s call):');
  for (const r of runs)
    log(
      `  ${(r.concurrency === 1 ? 'sequential' : `${r.concurrency} clients`).padEnd(11)} ${(r.path ?? '').padEnd(8)} ` +
        `daemon p50 ${f(r.p50Ms)} p99 ${f(r.p99Ms)}  front end p50 ${f(r.frontEndP50Ms)} p99 ${f(r.frontEndP99Ms)}  ` +
        `${r.handoffs} splices, ${r.handoffsPerS.toFixed(0)}/s${r.refused ? `, ${r.refused} refused` : ''}`,
    );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`handoff-paths failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
