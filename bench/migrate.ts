/**
 * The migrate benchmark (issue 11), a part of `make bench`, on its own
 * routed bed (lab/testbed/routed.ts: client - router - lb / backend1 /
 * backend2), so a migrated connection's replies leave the back end straight
 * toward the client and never pass the LB:
 *
 *   1. one Node http.Server app on backend1 (in this process, behind the
 *      SDK: connectAgent + attach; also listening on backend1's own
 *      address), three ways to reach it, side by side, rounds interleaved:
 *      plain routing (client -> the app's own address through the router, no
 *      LB), baton migrate (dispatcher on the VIP with a migrate pool of
 *      backend1, baton lb --agent, baton agent), HAProxy mode http on the LB
 *      (VIP:8001 -> the app's address; its replies come back through it);
 *   2. the rows: new connection per request at 1 KiB, 64 KiB and 1 MiB (wrk,
 *      bounded in time) and the 64 MiB download (curl);
 *   3. migration latency and rate: new connections of one request each from
 *      a client program that stamps its request on CLOCK_MONOTONIC, which
 *      this process compares with the moment its app gets the socket; the
 *      dispatcher's `migrated` events give the front end's and the daemon's
 *      views (phasesUs); sequential, then with some connections at once.
 *
 *   node --import tsx bench/migrate.ts [--quick] [--latency-only]
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import readline from 'node:readline';
import type { HandoffPath } from '../control/dispatcher/config.js';
import type { DispatchEvent } from '../control/dispatcher/dispatcher.js';
import type { MigratedSocket } from '../control/sdk/agent.js';
import { parseExposition, sumSamples } from '../control/sdk/metrics.js';
import { type MigrateStack, startMigrateStack } from '../lab/launch/migrate-stack.js';
import { ROOT } from '../lab/paths.js';
import { createTestbed, ROUTED_BACKENDS, routedTopology, type Testbed, VIP4 } from '../lab/testbed/index.js';
import {
  type LatencyRun,
  MIGRATE_TARGETS,
  type MigrateBenchResults,
  type MigrationSample,
  summarizeLatency,
} from './migrate-results.js';
import { BODIES, type Profile, profileFromArgs, WORKLOADS } from './profile.js';
import { runThroughput } from './throughput.js';
import { startHaproxy } from './variants/haproxy.js';
import type { Variant } from './variants/variant.js';

const APP_PORT = 80;
/** The tiny answer of the latency runs. */
const TINY_PATH = '/t';
const ROWS = ['close-1k', 'close-64k', 'close-1m', 'download-64m'] as const;
/** How the front end asks for migrations in the latency runs, in order: the dispatcher's default first. */
const LATENCY_PATHS: readonly HandoffPath[] = ['channel', 'rest'];
/** Untimed migrations through each fresh dispatcher before its timed runs. */
const WARMUP_CONNECTIONS = 200;
/** Timed runs per path and concurrency, alternating the paths A B B A. */
const LATENCY_ROUNDS = 2;
const FIRST_BYTE_PROGRAM = resolve(ROOT, 'bench/load/first-byte-program.ts');
const BACKEND = ROUTED_BACKENDS[0];
const TESTBED =
  "Routed bed (lab/testbed/routed.ts): client - router - {lb, backend1, backend2} in network namespaces, veth pairs, MTU 1500; the VIP on the LB's and the back ends' lo, the router sends it to the LB; a migrated connection's replies go from backend1 through the router straight to the client. One Node http.Server app (in the benchmark process, behind the SDK) serves every variant on backend1.";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const portOf = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));

interface ClientLine {
  port?: number;
  sentNs?: string;
  firstNs?: string;
  ok?: boolean;
  event?: string;
  wallNs?: string;
}

/** Runs first-byte-program.ts in the client node; resolves with its lines once it exits. */
async function firstByteClient(
  tb: Testbed,
  ip: string,
  n: number,
  concurrency: number,
): Promise<{ lines: ClientLine[]; seconds: number }> {
  const proc = tb.spawn(
    'client',
    process.execPath,
    ['--import', 'tsx', FIRST_BYTE_PROGRAM, ip, String(APP_PORT), TINY_PATH, String(n), String(concurrency)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: ClientLine[] = [];
  const errs: string[] = [];
  proc.stderr?.on('data', (d: Buffer) => errs.push(d.toString()));
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l) as ClientLine));
  const code = await new Promise<number | null>((r) => {
    const t = setTimeout(
      () => {
        process.kill(-(proc.pid as number), 'SIGKILL');
        r(null);
      },
      60_000 + n * 20,
    );
    proc.once('exit', (c) => {
      clearTimeout(t);
      r(c);
    });
  });
  const done = lines.find((l) => l.event === 'done');
  if (code !== 0 || !done) throw new Error(`the first-byte client (${ip}) failed (exit ${code}): ${errs.join('')}`);
  return { lines: lines.filter((l) => l.port !== undefined), seconds: Number(done.wallNs) / 1e9 };
}

/** `latencyOnly`: skip the load rows (the migration latency and rate alone, for profiling). */
export async function runMigrateBench(
  profile: Profile,
  log: (l: string) => void,
  { latencyOnly = false }: { latencyOnly?: boolean } = {},
): Promise<MigrateBenchResults> {
  const bodies = new Map<string, Buffer>(Object.entries(BODIES).map(([path, size]) => [path, randomBytes(size)]));
  const sha = (path: string) =>
    createHash('sha256')
      .update(bodies.get(path) as Buffer)
      .digest('hex');
  /** CLOCK_MONOTONIC ns at which the app got each migrated socket, by the client's port. */
  /** When the app got each migrated socket, by client port: in order, as a port may serve several connections of a run. */
  const held = new Map<number, bigint[]>();
  const serve = (): http.RequestListener => (req, res) => {
    const body = bodies.get(req.url ?? '');
    if (body) return void res.writeHead(200, { 'content-length': body.length }).end(body);
    if (req.url === TINY_PATH) return void res.writeHead(200, { 'content-length': 3 }).end('ok\n');
    res.writeHead(404).end();
  };

  const tb = await createTestbed(routedTopology('benchmig'), {
    passXdp: (node) => node === 'client' || node === 'router',
  });
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-migrate-'));
  let stack: MigrateStack | undefined;
  let haproxy: Variant | undefined;
  try {
    stack = await startMigrateStack(tb, dir, { port: APP_PORT, serve, pool: [BACKEND.node] });
    const s = stack;
    for (const app of s.apps.values())
      app.on('connection', (sock: MigratedSocket) => {
        if (sock.baton) {
          const at = process.hrtime.bigint();
          const list = held.get(sock.baton.client.port);
          if (list) list.push(at);
          else held.set(sock.baton.client.port, [at]);
        }
      });
    haproxy = await startHaproxy(tb, 'http', { backend: `${BACKEND.ip}:${APP_PORT}` });
    const variants: Variant[] = [
      {
        id: 'plain',
        title: 'plain routing',
        describe: `client -> the app's own address ${BACKEND.ip}:${APP_PORT} through the router; no LB in the path`,
        url: (path) => `http://${BACKEND.ip}:${APP_PORT}${path}`,
        stop: async () => {},
      },
      haproxy,
      {
        id: 'baton-migrate',
        title: 'baton migrate',
        describe: `client -> ${VIP4}:${APP_PORT}: the dispatcher reads the request and migrates the connection (baton lb --agent, baton agent on ${BACKEND.node}) to the app; replies bypass the LB`,
        url: (path) => `http://${VIP4}:${APP_PORT}${path}`,
        stop: async () => {},
      },
    ];
    for (const v of variants) {
      const r = await tb.exec('client', 'sh', ['-c', `curl -sS --max-time 10 '${v.url('/k64.bin')}' | sha256sum`]);
      if (r.stdout.split(' ')[0] !== sha('/k64.bin'))
        throw new Error(`${v.title}: ${v.url('/k64.bin')} served other bytes than the app`);
      log(`  ${v.title.padEnd(14)} ${v.describe}`);
    }
    const events = (): DispatchEvent[] => s.dispatcher.events;
    // Why the connections since event `from` were relayed or rejected, as the dispatcher said (counted, one detail each).
    const logRelayReasons = (from: number): void => {
      const why = new Map<string, { n: number; detail: string }>();
      for (const e of events().slice(from))
        if (e.event === 'relayed' || e.event === 'rejected') {
          const k =
            e.event === 'relayed'
              ? `relayed: ${e.code}${e.reason ? ` ${e.reason}` : ''}`
              : `rejected: ${e.status} ${e.why}`;
          why.set(k, { n: (why.get(k)?.n ?? 0) + 1, detail: e.event === 'relayed' ? e.detail : '' });
        }
      for (const [k, { n, detail }] of why) log(`             ${n} ${k}${detail ? ` (${detail})` : ''}`);
    };
    const outcomes = (from: number) => {
      const o = { migrated: 0, relayed: 0, rejected: 0 };
      for (const e of events().slice(from))
        if (e.event === 'migrated' || e.event === 'relayed' || e.event === 'rejected') o[e.event]++;
      return o;
    };

    // Client segments dropped while a migration was under way: by the LB in BLOCK, by the agent in HOLD.
    const scrapedPackets = async (node: string, url: string, family: string, reason: string): Promise<number> => {
      const r = await tb.exec(node, 'curl', ['-sS', '--max-time', '5', url], { check: false });
      const f = parseExposition(r.stdout).find((x) => x.name === family);
      return f ? sumSamples(f, { reason }) : Number.NaN;
    };
    const blockedDrops = () =>
      scrapedPackets('lb', 'http://127.0.0.1:9300/metrics', 'baton_datapath_packets_total', 'blocked');
    const heldDrops = () =>
      scrapedPackets(
        BACKEND.node,
        'http://127.0.0.1:9400/metrics',
        'baton_agent_datapath_packets_total',
        'flow_id_held',
      );
    const dropsBefore = await blockedDrops();
    const heldBefore = await heldDrops();
    const loadFrom = events().length;
    const workloads = WORKLOADS.filter((w) => (ROWS as readonly string[]).includes(w.id));
    const loadProfile: Profile = {
      ...profile,
      rounds: profile.migrateRounds,
      wrkSeconds: profile.migrateWrkSeconds,
      downloadsPerRound: profile.migrateDownloads,
    };
    log(`  loads: ${workloads.length} rows x ${variants.length} variants x ${loadProfile.rounds} round(s)`);
    const throughput = latencyOnly
      ? []
      : await runThroughput(tb, variants, loadProfile, (l) => log(`  ${l}`), workloads);
    await sleep(200);
    const loadOutcomes = {
      ...outcomes(loadFrom),
      lbBlockedDrops: (await blockedDrops()) - dropsBefore,
      agentHeldDrops: (await heldDrops()) - heldBefore,
    };
    log(
      `  migrate variant's load connections: ${loadOutcomes.migrated} migrated, ${loadOutcomes.relayed} relayed, ${loadOutcomes.rejected} rejected; ` +
        `client segments dropped by the LB in BLOCK: ${loadOutcomes.lbBlockedDrops}, by the agent in HOLD: ${loadOutcomes.agentHeldDrops}`,
    );
    logRelayReasons(loadFrom);

    // The agent's restore histogram on backend1, before and after the sequential run.
    const restoreTotals = async (): Promise<{ sum: number; count: number }> => {
      const r = await tb.exec(BACKEND.node, 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9400/metrics']);
      const f = parseExposition(r.stdout).find((x) => x.name === 'baton_agent_restore_duration_seconds');
      const v = (suffix: string) => f?.samples.find((x) => x.name.endsWith(suffix))?.value ?? 0;
      return { sum: v('_sum'), count: v('_count') };
    };

    const n = profile.migrateLatencyConnections;
    const plain = await firstByteClient(tb, BACKEND.ip, n, 1);
    const plainUs = plain.lines
      .filter((l) => l.ok)
      .map((l) => Number(BigInt(l.firstNs as string) - BigInt(l.sentNs as string)) / 1000)
      .sort((a, b) => a - b);
    const plainFirstByte = {
      connections: plain.lines.length,
      p50Us: Math.round(plainUs[Math.floor((plainUs.length - 1) / 2)] ?? Number.NaN),
      p99Us: Math.round(plainUs[Math.ceil(plainUs.length * 0.99) - 1] ?? Number.NaN),
    };
    log(`  first byte from the app's own address, ${n} sequential connections: p50 ${plainFirstByte.p50Us} µs`);

    const latency: LatencyRun[] = [];
    let agentRestore = { count: 0, meanUs: Number.NaN };
    // Both ways a front end asks, side by side: the local handoff channel (the dispatcher's default, what the
    // loads above used) and REST (POST /v1/migrations), each with a dispatcher of its own.
    // Both ways a front end asks, side by side: the local handoff channel (the dispatcher's default, what the
    // loads above used) and REST (POST /v1/migrations), each with a dispatcher of its own. They share the daemon,
    // the agent and the machine, so the runs alternate A B B A per concurrency (measured: run one after the
    // other, whichever came second won by ~20%), and each fresh dispatcher gets untimed connections first.
    let current: HandoffPath = LATENCY_PATHS[0] as HandoffPath;
    const useDispatcher = async (via: HandoffPath, first = false): Promise<void> => {
      if (via === current && !first) return;
      if (via !== current) await s.restartDispatcher(via);
      current = via;
      await firstByteClient(tb, VIP4, Math.min(n, WARMUP_CONNECTIONS), 4);
    };
    await useDispatcher(current, true);
    /** One timed run of `count` connections, `c` at once, through the current dispatcher. */
    const measure = async (c: number, count: number) => {
      const from = events().length;
      held.clear();
      const run = await firstByteClient(tb, VIP4, count, c);
      // The dispatcher's event lines may trail the client's last answer a little.
      for (let i = 0; i < 200 && outcomes(from).migrated + outcomes(from).relayed < run.lines.length; i++)
        await sleep(10);
      // A client port can come back within a run (the app closes first, so the client keeps no TIME_WAIT):
      // each connection is matched with the first hand-off and dispatcher event of its port after its request.
      const byPort = new Map<number, Array<Extract<DispatchEvent, { event: 'migrated' }>>>();
      for (const e of events().slice(from))
        if (e.event === 'migrated') byPort.set(portOf(e.client), [...(byPort.get(portOf(e.client)) ?? []), e]);
      const samples: MigrationSample[] = [];
      const ordered = [...run.lines].sort((a, b) => (BigInt(a.sentNs ?? '0') < BigInt(b.sentNs ?? '0') ? -1 : 1));
      let reused = 0;
      const seenPorts = new Set<number>();
      for (const l of ordered) {
        const port = l.port as number;
        if (seenPorts.has(port)) reused++;
        seenPorts.add(port);
        if (!l.ok || l.sentNs === undefined) continue;
        const sent = BigInt(l.sentNs);
        const hs = held.get(port) ?? [];
        const hi = hs.findIndex((t) => t >= sent);
        const h = hi >= 0 ? hs.splice(hi, 1)[0] : undefined;
        const e = byPort.get(port)?.shift();
        if (!e || h === undefined) continue;
        samples.push({
          heldUs: Number(h - sent) / 1000,
          firstByteUs: Number(BigInt(l.firstNs as string) - sent) / 1000,
          frontEndUs: e.ms * 1000,
          phasesUs: e.phasesUs,
        });
      }
      if (reused > 0)
        log(`             ${reused} connection(s) reused a client port of the same run (matched in order)`);
      // Why the relayed ones were not migrated, as the dispatcher said (code and reason, counted).
      logRelayReasons(from);
      return {
        samples,
        connections: run.lines.length,
        relayed: outcomes(from).relayed,
        failed: run.lines.filter((l) => !l.ok).length,
        seconds: run.seconds,
      };
    };
    for (const c of profile.migrateConcurrency) {
      const acc = new Map<HandoffPath, Awaited<ReturnType<typeof measure>>>();
      for (let round = 0; round < LATENCY_ROUNDS; round++) {
        // The path already running first, then the other: A B, B A, A B ... with one restart per switch.
        const order = [current, ...LATENCY_PATHS.filter((v) => v !== current)];
        for (const via of order) {
          await useDispatcher(via);
          const before = c === 1 && via === 'channel' && !acc.has(via) ? await restoreTotals() : undefined;
          const m = await measure(c, Math.ceil(n / LATENCY_ROUNDS));
          if (before) {
            const after = await restoreTotals();
            const count = after.count - before.count;
            agentRestore = {
              count,
              meanUs: count > 0 ? Math.round(((after.sum - before.sum) / count) * 1e6) : Number.NaN,
            };
          }
          const a = acc.get(via);
          acc.set(
            via,
            a
              ? {
                  samples: [...a.samples, ...m.samples],
                  connections: a.connections + m.connections,
                  relayed: a.relayed + m.relayed,
                  failed: a.failed + m.failed,
                  seconds: a.seconds + m.seconds,
                }
              : m,
          );
        }
      }
      for (const via of LATENCY_PATHS) {
        const a = acc.get(via);
        if (!a) continue;
        const r = summarizeLatency(
          {
            title: c === 1 ? 'sequential' : `${c} at once`,
            via,
            concurrency: c,
            connections: a.connections,
            relayed: a.relayed,
            failed: a.failed,
            seconds: a.seconds,
          },
          a.samples,
        );
        latency.push(r);
        log(
          `  ${via.padEnd(7)} ${r.title.padEnd(10)} ${r.migrated}/${r.connections} migrated, ${r.migrationsPerS.toFixed(0)}/s; held p50 ${r.heldP50Us} p99 ${r.heldP99Us} µs; ` +
            `front end p50 ${r.frontEndP50Us} µs; daemon p50 ${r.daemonP50Us} µs (${Object.entries(r.phasesP50Us)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})`,
        );
      }
    }
    log(`  agent restore + hand-off (sequential run): mean ${agentRestore.meanUs} µs over ${agentRestore.count}`);
    return {
      testbed: TESTBED,
      variants: variants.map((v) => ({ id: v.id, title: v.title, describe: v.describe })),
      workloads: [...ROWS],
      throughput,
      loadOutcomes,
      plainFirstByte,
      latency,
      agentRestore,
      targets: MIGRATE_TARGETS,
    };
  } finally {
    await haproxy?.stop().catch(() => {});
    await stack?.close().catch(() => {});
    await tb.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  runMigrateBench(profileFromArgs(argv), (l) => process.stdout.write(`${l}\n`), {
    latencyOnly: argv.includes('--latency-only'),
  }).then(
    (r) => {
      process.stdout.write(`${JSON.stringify({ latency: r.latency, agentRestore: r.agentRestore }, null, 2)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`migrate bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
