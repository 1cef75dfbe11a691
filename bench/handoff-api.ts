/**
 * Leg API microbenchmark: how fast the daemon's REST API turns a front
 * end's {pid, fd} pairs into splices, one request at a time, several at
 * once, and in batches, with nothing else in the way (no wrk, no new
 * connections opening while the API is timed).
 *
 * On a starTopology testbed (client <-> lb <-> backend1, nginx on the back
 * end, `baton lb` in the LB node with its API on a unix socket):
 *   - bench/load/pair-clients.ts in the client node opens N connections to
 *     the VIP and sends one GET on each;
 *   - bench/load/pairs.ts in the LB node accepts them, reads each request
 *     (the prefix), opens one back-end connection per client connection and
 *     prints the pairs (pid, client fd, back-end fd, prefix); it never reads
 *     them again;
 *   - this process then calls the API itself (control/sdk/client.ts over the
 *     unix socket) for every pair, each phase on fresh pairs:
 *       single      POST /v1/splices, one call at a time;
 *       concurrent  POST /v1/splices, `handoffApiInFlight` calls in flight;
 *       batch B     POST /v1/splices:batch with B items, one call at a time.
 *     Each call is timed around the HTTP request; the daemon's own
 *     `durationUs` (block entries to sockets released) comes from each answer.
 *   - afterwards every spliced connection must get the answer to its first
 *     request (the prefix, delivered by the splice) and a sample sends a
 *     second request that travels through the datapath alone; then the
 *     splices are deleted and the sockets closed.
 * The phases' handoffs/s count successful splices over the phase's wall time.
 *
 * Part of `make bench`; alone: node --import tsx bench/handoff-api.ts [--quick]
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { type BatonClient, createClient } from '../control/sdk/client.js';
import { BatonApiError } from '../control/sdk/errors.js';
import type { SpliceByFd } from '../control/sdk/types.js';
import { BATCH_CONCURRENCY } from '../control/service/limits.js';
import { type DaemonProc, startDaemon } from '../lab/launch/daemon.js';
import { type NginxBackend, startNginx } from '../lab/launch/nginx.js';
import { ROOT } from '../lab/paths.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lab/testbed/index.js';
import {
  type ApiPhase,
  type CallTiming,
  HANDOFF_API_TARGETS,
  type HandoffApiResults,
  summarizePhase,
  targetVerdicts,
} from './handoff-api-results.js';
import { percentile } from './load/result.js';
import { BACKEND_PORT, BATON_FLOWS_CAPACITY, BODIES, type Profile, profileFromArgs } from './profile.js';

/** Where the pairs helper listens (the VIP; no other listener runs in this testbed). */
const PAIRS_PORT = 80;
const PATH = '/k1.bin';
/** Unmeasured splices before the first phase: the daemon loads its socket probe and warms its JIT on these. */
const WARMUP_PAIRS = 32;
/** How long a spliced connection may take to answer a request in the check (ms). */
const CHECK_TIMEOUT_MS = 3000;
/** Bound on any one exchange with a helper program, beyond the per-pair allowance below (ms). */
const HELPER_TIMEOUT_MS = 15_000;
const PER_PAIR_TIMEOUT_MS = 10;
/** DELETE calls in flight while emptying the table between phases. */
const DELETE_IN_FLIGHT = 8;

/** One front-end pair as pairs.ts prints it. */
export interface Pair {
  pid: number;
  client: number;
  backend: number;
  clientPort: number;
  prefix: string;
}

type ItemOutcome = { ok: true; durationUs: number | null; pair: Pair } | { ok: false; why: string; pair: Pair };

// ------------------------------------------------------------ helper programs

/** A program that talks in JSON lines: commands on stdin, events on stdout. */
export class LineProgram {
  private readonly lines: unknown[] = [];
  private waiter: (() => void) | undefined;
  private readonly errs: string[] = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l));
      } catch {
        this.errs.push(l);
      }
      this.waiter?.();
    });
    proc.stderr?.on('data', (d: Buffer) => this.errs.push(d.toString()));
    proc.once('exit', () => this.waiter?.());
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  /** Removes and returns the lines for which `take` says yes, once `done` says enough; bounded by `ms`. */
  async collect<T>(take: (o: unknown) => o is T, done: (got: T[]) => boolean, ms: number, what: string): Promise<T[]> {
    const got: T[] = [];
    const deadline = performance.now() + ms;
    for (;;) {
      for (let i = 0; i < this.lines.length; ) {
        const o = this.lines[i];
        if (take(o)) {
          got.push(o);
          this.lines.splice(i, 1);
        } else i++;
      }
      if (done(got)) return got;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null)
        throw new Error(`${this.name} exited while waiting for ${what}: ${this.errs.join('').slice(-2000)}`);
      const left = deadline - performance.now();
      if (left <= 0)
        throw new Error(
          `${this.name}: no ${what} within ${ms} ms (got ${got.length}); stderr: ${this.errs.join('').slice(-2000)}`,
        );
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = undefined;
    }
  }

  /** The next line with `event` = name. */
  async event<T extends { event: string }>(name: string, ms = HELPER_TIMEOUT_MS): Promise<T> {
    const [e] = await this.collect(
      (o): o is T => (o as { event?: string } | null)?.event === name,
      (g) => g.length > 0,
      ms,
      `"${name}" event`,
    );
    return e as T;
  }

  stop(): void {
    this.proc.stdin?.end();
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      try {
        process.kill(-this.proc.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  }
}

export function spawnProgram(tb: Testbed, node: string, file: string, args: string[]): LineProgram {
  const proc = tb.spawn(node, process.execPath, ['--import', 'tsx', resolve(ROOT, file), ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new LineProgram(file, proc);
}

interface Harness {
  api: BatonClient;
  clients: LineProgram;
  frontEnd: LineProgram;
}

/** Opens `n` client connections and waits until the front end holds a pair for each. */
export async function makePairs(h: Pick<Harness, 'clients' | 'frontEnd'>, n: number): Promise<Pair[]> {
  const ms = HELPER_TIMEOUT_MS + n * PER_PAIR_TIMEOUT_MS;
  h.clients.send(`OPEN ${n}`);
  const opened = await h.clients.event<{ event: 'opened'; ports: number[]; failed: number; errors: string[] }>(
    'opened',
    ms,
  );
  if (opened.failed > 0)
    throw new Error(`${opened.failed} of ${n} client connections to the VIP failed: ${opened.errors.join('; ')}`);
  const isPair = (o: unknown): o is { pair: Pair } => typeof (o as { pair?: unknown } | null)?.pair === 'object';
  const isError = (o: unknown): o is { event: 'error'; detail: string } =>
    (o as { event?: string } | null)?.event === 'error';
  const got = await h.frontEnd.collect(
    (o): o is { pair: Pair } | { event: 'error'; detail: string } => isPair(o) || isError(o),
    (g) => g.length >= n,
    ms,
    `${n} pairs`,
  );
  const errors = got.filter(isError);
  if (errors.length)
    throw new Error(
      `the front end could not pair ${errors.length} connection(s): ${errors
        .slice(0, 3)
        .map((e) => e.detail)
        .join('; ')}`,
    );
  return got.filter(isPair).map((p) => p.pair);
}

// ------------------------------------------------------------ one phase

const requestOf = (p: Pair): SpliceByFd => ({
  client: { pid: p.pid, fd: p.client },
  backend: { pid: p.pid, fd: p.backend },
  prefix: p.prefix,
});

const whyOf = (code: string, reason: string | undefined): string => `${code}${reason ? ` (${reason})` : ''}`;

/** One API call for `pairs`: a single POST for one pair, a batch for several. */
async function call(api: BatonClient, pairs: Pair[], batch: boolean): Promise<ItemOutcome[]> {
  if (!batch) {
    const pair = pairs[0] as Pair;
    try {
      const s = await api.createSplice(requestOf(pair));
      return [{ ok: true, durationUs: s.durationUs, pair }];
    } catch (e) {
      const why = e instanceof BatonApiError ? whyOf(e.code, e.reason) : String(e);
      return [{ ok: false, why, pair }];
    }
  }
  try {
    const results = await api.batchSplices(pairs.map(requestOf));
    return results.map((r, i) => {
      const pair = pairs[i] as Pair;
      return 'splice' in r
        ? { ok: true, durationUs: r.splice.durationUs, pair }
        : { ok: false, why: whyOf(r.error.code, r.error.reason), pair };
    });
  } catch (e) {
    const why = e instanceof BatonApiError ? whyOf(e.code, e.reason) : String(e);
    return pairs.map((pair) => ({ ok: false, why, pair }));
  }
}

/** Every pair through the API, `itemsPerCall` per call, `inFlight` calls at once. */
async function drive(api: BatonClient, pairs: Pair[], itemsPerCall: number, inFlight: number, batch: boolean) {
  const chunks: Pair[][] = [];
  for (let i = 0; i < pairs.length; i += itemsPerCall) chunks.push(pairs.slice(i, i + itemsPerCall));
  const outcomes: ItemOutcome[] = [];
  const calls: CallTiming[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++] as Pair[];
      const start = performance.now();
      const out = await call(api, chunk, batch);
      calls.push({ us: (performance.now() - start) * 1000, items: chunk.length });
      outcomes.push(...out);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, chunks.length) }, worker));
  return { outcomes, calls, seconds: (performance.now() - t0) / 1000 };
}

/**
 * After a phase: the front end lets go of its descriptors (a real one closes
 * them as soon as the splice answered); the client checks the spliced
 * connections; then they are closed and every splice deleted, so the next
 * phase starts from an empty table.
 */
async function checkAndClear(h: Harness, outcomes: ItemOutcome[], sample: number) {
  const spliced = outcomes.filter((o) => o.ok).map((o) => o.pair);
  h.frontEnd.send(`CLOSE ${spliced.map((p) => p.client).join(',')}`);
  await h.frontEnd.event('closed');
  h.clients.send(`CHECK ${CHECK_TIMEOUT_MS} ${sample} ${spliced.map((p) => p.clientPort).join(',')}`);
  const checked = await h.clients.event<{
    event: 'checked';
    first: ApiPhase['firstAnswered'];
    second: ApiPhase['secondAnswered'];
    failures: string[];
  }>('checked', 2 * CHECK_TIMEOUT_MS + HELPER_TIMEOUT_MS);
  h.clients.send(`CLOSE ${outcomes.map((o) => o.pair.clientPort).join(',')}`);
  await h.clients.event('closed');
  h.frontEnd.send(
    `CLOSE ${outcomes
      .filter((o) => !o.ok)
      .map((o) => o.pair.client)
      .join(',')}`,
  );
  await h.frontEnd.event('closed');
  await deleteAll(h.api);
  return { firstAnswered: checked.first, secondAnswered: checked.second, checkFailures: checked.failures };
}

async function deleteAll(api: BatonClient): Promise<void> {
  const ids = (await api.allSplices()).map((s) => s.id);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) await api.deleteSplice(ids[next++] as string).catch(() => {}); // a connection the sweeper reclaimed meanwhile is already gone
  };
  await Promise.all(Array.from({ length: DELETE_IN_FLIGHT }, worker));
}

/** The HTTP round trip alone (same client, same socket, a route that does nothing): the floor under every call. */
async function apiFloor(api: BatonClient, calls: number): Promise<HandoffApiResults['floor']> {
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await api.health();
    times.push((performance.now() - start) * 1000);
  }
  times.sort((a, b) => a - b);
  return { p50Us: percentile(times, 50), p99Us: percentile(times, 99) };
}

// ------------------------------------------------------------ the benchmark

type PhaseSpec = Pick<ApiPhase, 'kind' | 'title' | 'itemsPerCall' | 'inFlight'>;

export function phaseSpecs(profile: Profile): PhaseSpec[] {
  return [
    { kind: 'single', title: 'single', itemsPerCall: 1, inFlight: 1 },
    {
      kind: 'concurrent',
      title: `${profile.handoffApiInFlight} in flight`,
      itemsPerCall: 1,
      inFlight: profile.handoffApiInFlight,
    },
    ...profile.handoffApiBatchSizes.map(
      (b): PhaseSpec => ({ kind: 'batch', title: `batch of ${b}`, itemsPerCall: b, inFlight: 1 }),
    ),
  ];
}

export async function runHandoffApiBench(profile: Profile, log: (line: string) => void): Promise<HandoffApiResults> {
  const n = profile.handoffApiPairs;
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: 'hapi' }), {
    passXdp: (node) => node !== 'lb',
  });
  let nginx: NginxBackend | undefined;
  let daemon: DaemonProc | undefined;
  let api: BatonClient | undefined;
  const programs: LineProgram[] = [];
  try {
    // Every pair of a phase holds a connection to nginx, and spliced ones stay open until the phase ends.
    nginx = await startNginx(
      tb,
      'backend1',
      BACKEND_PORT,
      { [PATH.slice(1)]: BODIES[PATH] },
      { workerConnections: 2 * n + 256 },
    );
    const lb = tb.node('lb');
    daemon = await startDaemon(
      tb,
      'lb',
      lb.ifaces.map((i) => i.name),
      ['--table-capacity', String(BATON_FLOWS_CAPACITY), '--rate-limit', '0', '--metrics', 'off'],
    );
    api = createClient({ socketPath: daemon.socketPath, timeoutMs: 30_000 });
    const frontEnd = spawnProgram(tb, 'lb', 'bench/load/pairs.ts', [
      `${VIP4}:${PAIRS_PORT}`,
      `${tb.node('backend1').v4}:${BACKEND_PORT}`,
    ]);
    programs.push(frontEnd);
    await frontEnd.event('listening');
    const clients = spawnProgram(tb, 'client', 'bench/load/pair-clients.ts', [VIP4, String(PAIRS_PORT), PATH]);
    programs.push(clients);
    await clients.event('ready');
    const h: Harness = { api, clients, frontEnd };
    log(
      `  testbed ${tb.prefix}: ${n} pairs per phase (client connection to ${VIP4}:${PAIRS_PORT} + back-end connection to nginx), daemon API on a unix socket`,
    );

    // Warm-up, unmeasured: both routes (fastify compiles a route's response serializer on its first answer).
    const warmPairs = await makePairs(h, WARMUP_PAIRS);
    const warmSingle = await drive(api, warmPairs.slice(0, WARMUP_PAIRS / 2), 1, 1, false);
    const warmBatch = await drive(api, warmPairs.slice(WARMUP_PAIRS / 2), WARMUP_PAIRS / 2, 1, true);
    await checkAndClear(h, [...warmSingle.outcomes, ...warmBatch.outcomes], 0);
    const floor = await apiFloor(api, n);
    log(
      `  API round trip without a splice (GET /healthz, ${n} calls, one at a time): p50 ${us(floor.p50Us)} µs, p99 ${us(floor.p99Us)} µs`,
    );

    const phases: ApiPhase[] = [];
    for (const spec of phaseSpecs(profile)) {
      const pairs = await makePairs(h, n);
      const run = await drive(api, pairs, spec.itemsPerCall, spec.inFlight, spec.kind === 'batch');
      const summary = summarizePhase(spec, run.calls, run.outcomes, run.seconds);
      const checked = await checkAndClear(h, run.outcomes, profile.handoffApiVerifySample);
      const phase: ApiPhase = { ...summary, ...checked };
      phases.push(phase);
      log(phaseLine(phase));
    }
    return { pairs: n, targets: HANDOFF_API_TARGETS, batchConcurrency: BATCH_CONCURRENCY, floor, phases };
  } finally {
    for (const p of programs) p.stop();
    api?.close();
    await daemon?.stop().catch(() => {});
    await nginx?.stop().catch(() => {});
    await tb.destroy();
  }
}

const us = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');

export function phaseLine(p: ApiPhase): string {
  const refusals = Object.entries(p.refusals)
    .map(([why, k]) => `${k}x ${why}`)
    .join(', ');
  return (
    `  ${p.title.padEnd(13)} ${p.handoffs}/${p.requested} spliced in ${p.calls} call(s), ${p.seconds.toFixed(2)} s = ${p.handoffsPerS.toFixed(0)}/s; ` +
    `call p50 ${us(p.callP50Us)} µs p99 ${us(p.callP99Us)} µs; per splice p50 ${us(p.itemP50Us)} µs p99 ${us(p.itemP99Us)} µs; ` +
    `daemon p50 ${us(p.daemonP50Us)} µs p99 ${us(p.daemonP99Us)} µs; ` +
    `first answers ${p.firstAnswered.ok}/${p.firstAnswered.of}, second requests ${p.secondAnswered.ok}/${p.secondAnswered.of}` +
    (refusals ? `; refused: ${refusals}` : '') +
    (p.checkFailures.length ? `; check failures: ${p.checkFailures.join('; ')}` : '')
  );
}

async function main(): Promise<void> {
  const profile = profileFromArgs(process.argv.slice(2));
  // Every wait is bounded on its own; this bounds the whole (the testbed's exit handlers remove the namespaces).
  const budgetS = profile.budgetSeconds;
  setTimeout(() => {
    process.stderr.write(`handoff-api: over its ${budgetS} s budget, stopping\n`);
    process.exit(1);
  }, budgetS * 1000).unref();
  console.log(
    `baton handoff API (${profile.mode}): ${profile.handoffApiPairs} pairs per phase, single POST /v1/splices, ${profile.handoffApiInFlight} in flight, batches of ${profile.handoffApiBatchSizes.join(' and ')}`,
  );
  const r = await runHandoffApiBench(profile, (l) => console.log(l));
  for (const v of targetVerdicts(r))
    console.log(
      `target ${v.what}: ${v.goal}, measured ${us(v.measured)}${v.unit === 'µs' ? ' µs' : '/s'} (${v.met ? 'met' : 'not met'})`,
    );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`handoff-api failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
