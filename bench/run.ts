/**
 * The benchmark suite (`make bench`, `make bench-quick`):
 *   1. one netns testbed, client <-> lb <-> backend1, baton's XDP program on
 *      the LB's interfaces for every variant, nginx serving fixed bodies on
 *      the back end;
 *   2. every variant started side by side on the LB and checked to serve the
 *      right bytes: plain routing, HAProxy http, HAProxy tcp+splice, nginx
 *      proxy_pass, baton splice;
 *   3. the load matrix (throughput.ts), then the handoff microbenchmark
 *      (the dispatcher's splices over the local handoff channel and over REST);
 *   4. the handoff API microbenchmark (handoff-api.ts, its own testbed and daemon);
 *   5. migrate mode (migrate.ts, its own routed bed: replies bypass the LB):
 *      plain routing, HAProxy and baton migrate to one app, migration
 *      latency and rate;
 *   6. the datapath microbenchmark (its own namespace);
 *   7. the share of connections spliced per client TCP profile, with and
 *      without profile legs (profile-share.ts, its own testbeds);
 *   8. several LBs (cluster.ts, its own testbed): owner-header cost, detour
 *      vs direct throughput, owner-directory propagation;
 *   9. results.json, results.md and the SVG charts.
 *
 *   node --import tsx bench/run.ts [--quick] [--out DIR] [--baton dispatcher|e2e]
 * --baton picks the baton variant's front end: the daemon + dispatcher users
 * run (default), or the e2e tests' front end with an in-process Splicer.
 * Full runs write bench/results/<YYYY-MM-DD>/; quick runs write
 * build/bench/<YYYY-MM-DD>-quick/ (smoke runs, not for committing).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import { type NginxBackend, startNginx } from '../lab/launch/nginx.js';
import { BPF_DIR, ROOT } from '../lab/paths.js';
import { canRunPrivileged, createTestbed, starTopology, type Testbed } from '../lab/testbed/index.js';
import { runClusterBench } from './cluster.js';
import { cpuSince, sampleCpu } from './cpu.js';
import { runDatapathBench } from './datapath.js';
import { runHandoffBench, runHandoffPaths, runSustainedRss } from './handoff.js';
import { runHandoffApiBench } from './handoff-api.js';
import { machineInfo } from './machine.js';
import { runMigrateBench } from './migrate.js';
import { BACKEND_PORT, BODIES, type Profile, profileFromArgs, WORKLOADS } from './profile.js';
import { runProfileShareBench } from './profile-share.js';
import { writeRendered } from './render.js';
import { isoDate, RESULTS_SCHEMA, type Results } from './results.js';
import { runThroughput } from './throughput.js';
import { type BatonVariant, startBaton } from './variants/baton.js';
import { startBatonDaemon } from './variants/baton-daemon.js';
import { startHaproxy } from './variants/haproxy.js';
import { startNginxProxy } from './variants/nginx.js';
import { plainRouting } from './variants/plain.js';
import type { Variant } from './variants/variant.js';

const TESTBED_DESCRIPTION =
  'client <-> lb <-> backend1 in network namespaces, veth pairs, MTU 1500, TX checksum offload off on every veth, xdp_pass on the client and back-end ends, baton XDP on both LB ends for every variant';
const REQUIRED_COMMANDS = ['haproxy', 'nginx', 'wrk', 'curl'] as const;
const t0 = performance.now();
const log = (line: string) =>
  process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function missingPrerequisite(): string | undefined {
  const priv = canRunPrivileged();
  if (!priv.ok) return priv.reason;
  const bpf = bpfUnavailableReason(BPF_DIR);
  if (bpf) return bpf;
  const missing = REQUIRED_COMMANDS.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length)
    return `missing commands: ${missing.join(', ')} (run bench/setup as root, or make bench, which does)`;
  return undefined;
}

/** A variant that serves other bytes than the back end is not measuring what it claims to. */
async function verifyVariant(tb: Testbed, v: Variant, sha256: Record<string, string>): Promise<void> {
  const path = '/k64.bin';
  const r = await tb.exec('client', 'sh', ['-c', `curl -sS --max-time 10 '${v.url(path)}' | sha256sum`]);
  const got = r.stdout.split(' ')[0];
  if (got !== sha256[path])
    throw new Error(
      `${v.title}: ${v.url(path)} served other bytes than the back end (sha256 ${got} vs ${sha256[path]})`,
    );
}

type LoadFigures = Pick<Results, 'variants' | 'throughput' | 'batonStats' | 'batonRefusals' | 'handoff'>;

type BatonFrontEnd = Results['batonFrontEnd'];

function startBatonVariant(tb: Testbed, frontEnd: BatonFrontEnd): Promise<BatonVariant & { rest?: BatonVariant }> {
  return frontEnd === 'dispatcher' ? startBatonDaemon(tb) : startBaton(tb);
}

/** Steps 1-3: the testbed, the variants, the loads; everything torn down before it returns. */
async function runLoads(profile: Profile, frontEnd: BatonFrontEnd): Promise<LoadFigures> {
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: 'bench' }), {
    passXdp: (node) => node !== 'lb',
  });
  const variants: Variant[] = [];
  let backend: NginxBackend | undefined;
  try {
    const files = Object.fromEntries(Object.entries(BODIES).map(([path, size]) => [path.slice(1), size]));
    backend = await startNginx(tb, 'backend1', BACKEND_PORT, files);
    // baton first: it attaches the XDP program every variant then runs over.
    const baton = await startBatonVariant(tb, frontEnd);
    variants.push(
      plainRouting(tb),
      await startHaproxy(tb, 'http'),
      await startHaproxy(tb, 'tcp'),
      await startNginxProxy(tb),
      baton,
    );
    log(
      `testbed ${tb.prefix}: client ${tb.node('client').v4} <-> lb (baton XDP on ${tb
        .node('lb')
        .ifaces.map((i) => i.name)
        .join(', ')}) <-> backend1 ${tb.node('backend1').v4}`,
    );
    for (const v of variants) {
      await verifyVariant(tb, v, backend.sha256);
      await v.afterRun?.();
      log(`  ${v.title.padEnd(20)} ${v.describe}`);
    }
    log(`load matrix: ${WORKLOADS.length} workloads x ${variants.length} variants x ${profile.rounds} round(s)`);
    const throughput = await runThroughput(tb, variants, profile, log);
    log('control plane: handoffs');
    // The dispatcher's two paths to the daemon side by side: the local handoff channel, and REST.
    const handoff = baton.rest
      ? await runHandoffPaths(
          tb,
          [
            { path: 'channel', variant: baton },
            { path: 'rest', variant: baton.rest },
          ],
          profile,
          log,
        )
      : await runHandoffBench(tb, baton, profile, log);
    log(`control plane: sustained splicing, the daemon's RSS at ${profile.rssMarks.join(' and ')} connections`);
    const handoffRss = await runSustainedRss(tb, baton, profile, log);
    return {
      variants: variants.map((v) => ({ id: v.id, title: v.title, describe: v.describe })),
      throughput,
      batonStats: baton.stats?.() ?? {},
      batonRefusals: baton.refusals(),
      handoff,
      ...(handoffRss ? { handoffRss } : {}),
    };
  } finally {
    for (const v of variants.reverse()) await v.stop().catch(() => {});
    await backend?.stop().catch(() => {});
    await tb.destroy();
  }
}

async function runSuite(profile: Profile, frontEnd: BatonFrontEnd, startedAt: Date): Promise<Results> {
  const machine = machineInfo();
  log(
    `machine: ${machine.cpu}, ${machine.cores} cores, kernel ${machine.kernel}; ${Object.entries(machine.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  const idleStart = sampleCpu();
  await sleep(profile.idleSeconds * 1000);
  const idle = cpuSince(idleStart);
  log(
    `background load before the run: ${(idle.utilisation * 100).toFixed(1)}% of all cores${idle.utilisation > 0.1 ? ' (the machine is busy: figures will be noisy)' : ''}`,
  );

  const loads = await runLoads(profile, frontEnd);
  log(
    `control plane: the handoff API alone, ${profile.handoffApiPairs} pairs per phase (single, ${profile.handoffApiInFlight} in flight, batches of ${profile.handoffApiBatchSizes.join(' and ')})`,
  );
  const handoffApi = await runHandoffApiBench(profile, log);
  log(
    `migrate mode: plain routing, HAProxy and baton migrate to one app on the routed bed, ${profile.migrateRounds} round(s); latency over ${profile.migrateLatencyConnections} connections (${profile.migrateConcurrency.join(', ')} at once)`,
  );
  const migrate = await runMigrateBench(profile, log);
  log(`datapath: ns/packet via BPF_PROG_TEST_RUN, ${profile.datapathRepeat} runs per cell`);
  const datapath = await runDatapathBench(profile, log);
  log(
    `client profiles: the share spliced per profile (${profile.profileShareMatrix} matrix, IPv4 and IPv6), with and without profile legs`,
  );
  const profileShare = await runProfileShareBench(profile, log);
  log('several LBs: owner header cost, detour vs direct, directory propagation (2 LBs, Redis, ECMP)');
  const cluster = await runClusterBench(profile, log);
  return {
    schema: RESULTS_SCHEMA,
    mode: profile.mode,
    date: isoDate(startedAt),
    startedAt: startedAt.toISOString(),
    durationS: (performance.now() - t0) / 1000,
    profile,
    machine,
    idleUtilisation: idle.utilisation,
    testbed: TESTBED_DESCRIPTION,
    batonFrontEnd: frontEnd,
    workloads: WORKLOADS.map((w) => ({ id: w.id, title: w.title, short: w.short })),
    ...loads,
    handoffApi,
    migrate,
    datapath,
    profileShare,
    cluster,
  };
}

async function main(): Promise<number> {
  const profile = profileFromArgs(process.argv.slice(2));
  const missing = missingPrerequisite();
  if (missing) {
    process.stderr.write(`baton bench cannot run here: ${missing}\n`);
    return 2;
  }
  const frontEnd = (argValue('--baton') ?? 'dispatcher') as BatonFrontEnd;
  if (frontEnd !== 'dispatcher' && frontEnd !== 'e2e') {
    process.stderr.write(
      `--baton: "dispatcher" (baton lb daemon + dispatcher, default) or "e2e" (the e2e front end with an in-process Splicer), got ${JSON.stringify(frontEnd)}\n`,
    );
    return 2;
  }
  const startedAt = new Date();
  const outDir = resolve(
    argValue('--out') ??
      (profile.mode === 'full'
        ? join(ROOT, 'bench/results', isoDate(startedAt))
        : join(ROOT, 'build/bench', `${isoDate(startedAt)}-quick`)),
  );
  // Every load is bounded on its own; this bounds the whole (exit handlers tear the testbed down).
  setTimeout(() => {
    process.stderr.write(`baton bench: over its ${profile.budgetSeconds} s budget, stopping\n`);
    process.exit(1);
  }, profile.budgetSeconds * 1000).unref();
  log(
    `baton bench, ${profile.mode} mode (budget ${profile.budgetSeconds} s), baton front end: ${frontEnd}, results to ${relative(process.cwd(), outDir) || '.'}`,
  );
  const results = await runSuite(profile, frontEnd, startedAt);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const files = await writeRendered(results, outDir);
  log(
    `wrote ${['results.json', ...files].map((f) => relative(process.cwd(), join(outDir, f))).join(', ')} in ${results.durationS.toFixed(0)} s`,
  );
  if (profile.mode === 'full') log(`README block: node --import tsx bench/readme.ts ${relative(ROOT, outDir)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`baton bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
