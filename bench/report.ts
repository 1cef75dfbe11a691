/**
 * results.md from results.json: the machine, the figures, the ratios against
 * plain routing and against HAProxy, the targets, the datapath and
 * control-plane microbenchmarks. Pure function of the results, so a report
 * can be rendered again (`bench/render.ts`) without rerunning anything.
 */
import { clusterLines, clusterTargetRows } from './cluster-results.js';
import { HANDOFF_BUCKETS_MS } from './handoff.js';
import { targetVerdicts } from './handoff-api-results.js';
import { migrateLines, migrateTargetRows } from './migrate-results.js';
import {
  PROFILE_SHARE_TARGET,
  profileShareLines,
  profileShareTable,
  profileShareTotals,
  shareOf,
} from './profile-share-results.js';
import { cell, type Results, ratio } from './results.js';
import { VARIANT_ORDER, type VariantId } from './variants/variant.js';

export const CHART_FILES = {
  throughput: 'throughput.svg',
  latency: 'latency.svg',
  cpu: 'cpu.svg',
  datapath: 'datapath.svg',
  handoff: 'handoff.svg',
} as const;

/** The reference every "vs HAProxy" ratio is taken against: the L7 proxy baton's front end replaces. */
export const HAPROXY_REF: VariantId = 'haproxy-http';

/** Targets from the benchmark issue, reported (never asserted). */
export const TARGETS = {
  keepaliveVsPlain: 1.0,
  keepaliveVsHaproxy: 1.6,
  close64kVsHaproxy: 1.0,
  rewriteNsPerPacket: 100,
} as const;

const num = (x: number, digits = 0): string =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–';
const ms = (us: number): string =>
  Number.isFinite(us) ? (us / 1000 >= 100 ? num(us / 1000, 0) : (us / 1000).toPrecision(3)) : '–';
const x = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(2)}x` : '–');
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
const align = (n: number, first = '---'): string => row([first, ...new Array<string>(n).fill('---:')]);

function variantsOf(r: Results): Array<{ id: VariantId; title: string }> {
  return VARIANT_ORDER.flatMap((id) => r.variants.filter((v) => v.id === id));
}

export function machineLines(r: Results): string[] {
  const m = r.machine;
  const v = m.versions;
  return [
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB (${m.virtualization}); kernel ${m.kernel}`,
    `- versions: node ${v.node}, haproxy ${v.haproxy}, nginx ${v.nginx}, clang ${v.clang}, libbpf ${v.libbpf}, wrk ${v.wrk}, curl ${v.curl}; baton ${m.baton.commit}${m.baton.dirty ? ' (uncommitted changes)' : ''}`,
    `- run: ${r.mode} mode, ${r.startedAt}, ${num(r.durationS)} s; baton front end: ${r.batonFrontEnd === 'dispatcher' ? 'baton lb daemon + dispatcher' : 'e2e front end with an in-process Splicer'}; ${r.profile.rounds} round(s) of ${r.profile.wrkSeconds} s per wrk run, wrk -t1 -c${r.profile.wrkConnections}; ` +
      `background load before the run: ${num(r.idleUtilisation * 100, 1)}% of all cores`,
  ];
}

export function ratioTable(r: Results, ref: VariantId): string[] {
  const vs = variantsOf(r).filter((v) => v.id !== ref);
  const lines = [row(['workload', ...vs.map((v) => v.title)]), align(vs.length)];
  for (const w of r.workloads) lines.push(row([w.title, ...vs.map((v) => x(ratio(r, w.id, v.id, ref)))]));
  return lines;
}

export function resultsTable(r: Results): string[] {
  const lines = [
    row(['workload', 'variant', 'req/s', 'MB/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU µs/MB', 'errors']),
    align(8),
  ];
  for (const w of r.workloads) {
    for (const v of variantsOf(r)) {
      const s = cell(r, w.id, v.id)?.summary;
      if (!s) continue;
      lines.push(
        row([
          w.title,
          v.title,
          num(s.requestsPerS),
          num(s.mbPerS, 1),
          ms(s.p50Us),
          ms(s.p99Us),
          num(s.cpuUsPerRequest, s.cpuUsPerRequest < 100 ? 1 : 0),
          num(s.cpuUsPerMB),
          num(s.errors),
        ]),
      );
    }
  }
  return lines;
}

export function datapathTable(r: Results): string[] {
  const d = r.datapath;
  const paths = [...new Set(d.rows.map((x) => x.path))];
  const sizes = [...new Set(d.rows.map((x) => x.connections))];
  const lines = [row(['connections in table', ...paths]), align(paths.length)];
  for (const n of sizes)
    lines.push(
      row([
        num(n),
        ...paths.map((p) => num(d.rows.find((x) => x.connections === n && x.path === p)?.nsPerPacket ?? Number.NaN)),
      ]),
    );
  return lines;
}

/** Results before the leg lists moved out of line (2026-12-04 and older) have no leg-list map. */
const legListBuckets = (m: Results['datapath']['memory']): string =>
  m.legListMapBytes === undefined
    ? ''
    : ` plus the leg-list map's buckets (${num(m.legListMapBytes / 2 ** 20, 1)} MiB, not preallocated)`;

export function memoryLines(r: Results): string[] {
  const m = r.datapath.memory;
  const proxy = m.proxySocketBytes;
  return [
    `- connection table (BPF hash, preallocated): ${num(m.mapBytes / 2 ** 20, 1)} MiB for ${num(m.capacity)} entries = ${num(m.bytesPerEntry)} B per entry ` +
      `(key ${m.keyBytes} B, value ${m.valueBytes} B)${legListBuckets(m)}, so ${num(m.bytesPerConnection)} B of kernel memory per spliced connection (client entry + back-end entry), ` +
      `reserved at load for the whole capacity (cross-check: the kernel's vmalloc + slab + per-CPU memory grew by ${num(m.kernelGrowthBytes / 2 ** 20, 1)} MiB over load and fill)`,
    ...(Number.isFinite(m.legListBytesPerHandedOff ?? Number.NaN)
      ? [
          `- a connection handed off again (a second back-end leg) adds its leg list out of line: ${num(m.legListBytesPerHandedOff ?? Number.NaN)} B, allocated when the second leg is appended`,
        ]
      : []),
    proxy
      ? `- for comparison, a userspace proxy holds two TCP sockets per connection: 2 × (${proxy.tcpSock} B tcp_sock + ${proxy.sockInode} B socket inode) = ${num(proxy.perConnection)} B of slab before any buffered data`
      : '- (slab sizes of TCP sockets unavailable: /proc/slabinfo not readable)',
  ];
}

export function handoffTable(r: Results): string[] {
  // Results with the dispatcher's two paths (channel, REST) get a column saying which row is which.
  const paths = r.handoff.some((h) => h.path !== undefined);
  const lines = [
    row([
      'client connections at once',
      ...(paths ? ['front end → daemon'] : []),
      'handoffs',
      'handoffs/s',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
      'quiesce p50 ms',
      'front end p50 ms',
      'front end p99 ms',
      'refused',
    ]),
    align(paths ? 11 : 10),
  ];
  for (const h of r.handoff) {
    lines.push(
      row([
        h.concurrency === 1 ? '1 (sequential)' : String(h.concurrency),
        ...(paths ? [h.path === 'rest' ? 'REST' : h.path === 'channel' ? 'handoff channel' : '-'] : []),
        num(h.handoffs),
        num(h.handoffsPerS),
        num(h.p50Ms, 2),
        num(h.p90Ms, 2),
        num(h.p99Ms, 2),
        num(h.maxMs, 2),
        num(h.quiesceP50Ms ?? Number.NaN, 2),
        num(h.frontEndP50Ms ?? Number.NaN, 2),
        num(h.frontEndP99Ms ?? Number.NaN, 2),
        num(h.refused),
      ]),
    );
  }
  return lines;
}

/** The API alone on pre-made pairs: one row per phase (single, concurrent, batches). */
export function handoffApiTable(r: Results): string[] {
  const a = r.handoffApi;
  if (!a) return [];
  const lines = [
    row([
      'phase',
      'items per call',
      'calls in flight',
      'calls',
      'spliced',
      'refused',
      'handoffs/s',
      'call p50 µs',
      'call p99 µs',
      'per splice p50 µs',
      'per splice p99 µs',
      'daemon p50 µs',
      'daemon p99 µs',
      'first answers',
      'second requests',
    ]),
    align(14),
  ];
  for (const p of a.phases) {
    lines.push(
      row([
        p.title,
        num(p.itemsPerCall),
        num(p.inFlight),
        num(p.calls),
        `${num(p.handoffs)}/${num(p.requested)}`,
        num(p.refused),
        num(p.handoffsPerS),
        num(p.callP50Us),
        num(p.callP99Us),
        num(p.itemP50Us),
        num(p.itemP99Us),
        num(p.daemonP50Us),
        num(p.daemonP99Us),
        `${num(p.firstAnswered.ok)}/${num(p.firstAnswered.of)}`,
        `${num(p.secondAnswered.ok)}/${num(p.secondAnswered.of)}`,
      ]),
    );
  }
  return lines;
}

/** What the handoff API table's figures are, and why any splice was refused or any check failed. */
export function handoffApiNotes(r: Results): string[] {
  const a = r.handoffApi;
  if (!a) return [];
  return [
    `${num(a.pairs)} fresh pairs per phase (a client connection to the VIP whose first request the front end has read, and a connection to the back end), ` +
      "made before the phase starts; the phase is only the API calls, from the benchmark process over the daemon's unix socket (control/sdk client). " +
      `"call" is one HTTP call as the caller saw it; "per splice" divides each call's time by its items; "daemon" is each splice's own \`durationUs\` ` +
      `(block entries to sockets released; in a batch, items overlap, ${a.batchConcurrency} at a time); handoffs/s is successful splices over the phase's wall time. ` +
      `The HTTP round trip alone (GET /healthz, same client): p50 ${num(a.floor.p50Us)} µs, p99 ${num(a.floor.p99Us)} µs. ` +
      '"first answers": spliced connections whose first request (delivered by the splice) was answered 200; "second requests": a sample that sent another request through the datapath alone.',
    ...a.phases.flatMap((p) => Object.entries(p.refusals).map(([why, n]) => `- ${p.title}: refused ${num(n)}x ${why}`)),
    ...a.phases.flatMap((p) => p.checkFailures.map((f) => `- ${p.title}: check failed, ${f}`)),
  ];
}

function handoffApiTargetRows(r: Results, check: (ok: boolean) => string): string[] {
  if (!r.handoffApi) return [];
  return targetVerdicts(r.handoffApi).map((v) =>
    row([v.what, v.goal, v.unit === 'µs' ? `${num(v.measured)} µs` : num(v.measured), check(v.met)]),
  );
}

/** Issue 14's goals: a splice in tens of microseconds, short connections faster than HAProxy, ≤ 100 ns and ≤ 256 B per connection. */
export const SPLICE_COST_TARGETS = {
  daemonP50Us: 50,
  frontEndP50Us: 100,
  splicesPerS: 10_000,
  close1kVsHaproxy: 1.0,
  rewriteFlatMaxOverMin: 1.1,
  kernelBytesPerConnection: 256,
  rssGrowthMax: 1.1,
} as const;

function spliceCostTargetRows(r: Results, check: (ok: boolean) => string): string[] {
  const t = SPLICE_COST_TARGETS;
  // One at a time over the front end's default path (the channel), else the only path of older results.
  const seq =
    r.handoff.find((h) => h.concurrency === 1 && h.path === 'channel') ?? r.handoff.find((h) => h.concurrency === 1);
  const daemonUs = (seq?.p50Ms ?? Number.NaN) * 1000;
  const frontUs = (seq?.frontEndP50Ms ?? Number.NaN) * 1000;
  const rates = r.handoff.map((h) => h.handoffsPerS).filter(Number.isFinite);
  const rate = rates.length > 0 ? Math.max(...rates) : Number.NaN;
  const c1 = ratio(r, 'close-1k', 'baton', HAPROXY_REF);
  const opts = r.datapath.rows.filter((x) => x.path === 'rewrite + timestamps + SACK(3)').map((x) => x.nsPerPacket);
  const flat = opts.length > 0 ? Math.max(...opts) / Math.min(...opts) : Number.NaN;
  const bytes = r.datapath.memory.bytesPerConnection;
  return [
    row([
      'splice p50, one at a time, in the daemon (block to release) (issue 14)',
      `≤ ${t.daemonP50Us} µs`,
      `${num(daemonUs)} µs`,
      check(daemonUs <= t.daemonP50Us),
    ]),
    row([
      'splice p50, one at a time, as the front end sees it (issue 14)',
      `≤ ${t.frontEndP50Us} µs`,
      `${num(frontUs)} µs`,
      check(frontUs <= t.frontEndP50Us),
    ]),
    row([
      'splices per second through the front end (wrk, a new connection per request), best row (issue 14)',
      `≥ ${num(t.splicesPerS)}`,
      num(rate),
      check(rate >= t.splicesPerS),
    ]),
    row([
      'new connection per request, 1 KiB, baton vs HAProxy (issue 14)',
      `≥ ${t.close1kVsHaproxy.toFixed(1)}x`,
      x(c1),
      check(c1 >= t.close1kVsHaproxy),
    ]),
    row([
      'rewrite + timestamps + SACK, flat from 1k to 1M connections (max/min) (issue 14)',
      `≤ ${t.rewriteFlatMaxOverMin.toFixed(1)}`,
      flat.toFixed(2),
      check(flat <= t.rewriteFlatMaxOverMin),
    ]),
    row([
      "kernel memory per spliced connection (table entries; legs in baton's port range hold no socket) (issue 14)",
      `≤ ${t.kernelBytesPerConnection} B`,
      `${num(bytes)} B`,
      check(bytes <= t.kernelBytesPerConnection),
    ]),
    rssRow(r, check),
  ];
}

/** The sustained run's RSS at its last mark over its first (issue 14: 100,000 vs 10,000 splices). */
function rssRow(r: Results, check: (ok: boolean) => string): string {
  const t = SPLICE_COST_TARGETS;
  const marks = r.handoffRss?.marks ?? [];
  const [lo, hi] = [marks[0], marks.at(-1)];
  const label = (m: { connections: number } | undefined, dflt: number) => num(m?.connections ?? dflt);
  const name = `daemon RSS after ${label(hi, 100_000)} splices within 10% of after ${label(lo, 10_000)} (issue 14)`;
  if (!r.handoffRss || !lo || !hi)
    return row([name, `≤ ${t.rssGrowthMax}x`, 'not measured in this run', '**not measured**']);
  const mib = (b?: number) => (b === undefined ? 'not reached' : `${num(b / 2 ** 20, 1)} MiB`);
  const ratio = lo.rssBytes !== undefined && hi.rssBytes !== undefined ? hi.rssBytes / lo.rssBytes : Number.NaN;
  return row([
    name,
    `≤ ${t.rssGrowthMax}x`,
    `${Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '–'} (${mib(lo.rssBytes)} → ${mib(hi.rssBytes)}${
      lo.sockets !== undefined && hi.sockets !== undefined ? `; sockets ${num(lo.sockets)} → ${num(hi.sockets)}` : ''
    })`,
    Number.isFinite(ratio) ? check(ratio <= t.rssGrowthMax) : '**not reached**',
  ]);
}

function profileShareTargetRows(r: Results, check: (ok: boolean) => string): string[] {
  if (!r.profileShare) return [];
  const s = shareOf(profileShareTotals(r.profileShare).legs);
  return [
    row([
      `client TCP profiles spliced (${r.profileShare.matrix} matrix, IPv4 and IPv6)`,
      `${(100 * PROFILE_SHARE_TARGET).toFixed(0)}%`,
      `${(100 * s).toFixed(0)}%`,
      check(s >= PROFILE_SHARE_TARGET),
    ]),
  ];
}

export function targetLines(r: Results): string[] {
  const rewrite = r.datapath.rows.filter((x) => x.path.startsWith('rewrite'));
  const worst = Math.max(...rewrite.map((x) => x.nsPerPacket));
  const plainRewrite = r.datapath.rows.filter((x) => x.path === 'rewrite, no options').map((x) => x.nsPerPacket);
  const spread = Math.max(...plainRewrite) / Math.min(...plainRewrite);
  const check = (ok: boolean) => (ok ? 'met' : '**not met**');
  const ka = ratio(r, 'keepalive-1k', 'baton', 'plain');
  const kh = ratio(r, 'keepalive-1k', 'baton', HAPROXY_REF);
  const ch = ratio(r, 'close-64k', 'baton', HAPROXY_REF);
  return [
    row(['target', 'goal', 'measured', '']),
    row(['---', '---:', '---:', '---']),
    row([
      'keep-alive 1 KiB, baton vs plain routing',
      `≥ ${TARGETS.keepaliveVsPlain.toFixed(1)}x`,
      x(ka),
      check(ka >= TARGETS.keepaliveVsPlain),
    ]),
    row([
      'keep-alive 1 KiB, baton vs HAProxy',
      `≥ ${TARGETS.keepaliveVsHaproxy.toFixed(1)}x`,
      x(kh),
      check(kh >= TARGETS.keepaliveVsHaproxy),
    ]),
    row([
      'new connection per request, 64 KiB, baton vs HAProxy',
      `≥ ${TARGETS.close64kVsHaproxy.toFixed(1)}x`,
      x(ch),
      check(ch >= TARGETS.close64kVsHaproxy),
    ]),
    row([
      'rewrite path, worst case over table sizes',
      `≤ ${TARGETS.rewriteNsPerPacket} ns`,
      `${num(worst)} ns`,
      check(worst <= TARGETS.rewriteNsPerPacket),
    ]),
    row(['rewrite path flat across table sizes (max/min)', '≈ 1.0', `${spread.toFixed(2)}`, check(spread <= 1.2)]),
    ...handoffApiTargetRows(r, check),
    ...spliceCostTargetRows(r, check),
    ...migrateTargetRows(r.migrate, check),
    ...profileShareTargetRows(r, check),
    ...clusterTargetRows(r.cluster, check),
  ];
}

export function renderReport(r: Results): string {
  const p = r.profile;
  const stats = Object.entries(r.batonStats)
    .map(([k, v]) => `${k} ${num(v)}`)
    .join(', ');
  return [
    `# baton benchmark results, ${r.date}${r.mode === 'quick' ? ' (quick mode: a smoke run, not figures)' : ''}`,
    '',
    'Produced by `make bench` (bench/run.ts); methodology in docs/benchmarks.md. All variants ran in one testbed, in one run, interleaved.',
    '',
    ...machineLines(r),
    '',
    '## Throughput relative to plain routing',
    '',
    'Requests per second of each variant divided by plain routing through the same LB namespace (the floor: no userspace in the path).',
    '',
    ...ratioTable(r, 'plain'),
    '',
    `![requests/s relative to plain routing](${CHART_FILES.throughput})`,
    '',
    '## Throughput relative to HAProxy (mode http)',
    '',
    ...ratioTable(r, HAPROXY_REF),
    '',
    '## Targets (reported, not asserted)',
    '',
    ...targetLines(r),
    '',
    '## All figures',
    '',
    `Latency is per request (wrk) or per whole download (curl); with ${p.rounds} round(s), p50/p99 are the median over rounds of each round's percentile. ` +
      'CPU is whole-machine busy time (client, LB, back end, kernel) over the run divided by completed requests or by 10^6 response bytes. MB = 10^6 bytes.',
    '',
    ...resultsTable(r),
    '',
    `baton variant at the end of the run: ${stats}.`,
    ...Object.entries(r.batonRefusals ?? {}).map(([m, n]) => `- refused ${num(n)}x: ${m}`),
    ...(Object.keys(r.batonRefusals ?? {}).some((m) => /CLOSE_WAIT|EBADF/.test(m))
      ? [
          '',
          'Refusals on CLOSE_WAIT (or a descriptor already gone) are connections the load generator closed when its run ended, while their splice was still queued; the front end relays (here: closes) those.',
        ]
      : []),
    '',
    `![p99 latency](${CHART_FILES.latency})`,
    '',
    `![CPU per request](${CHART_FILES.cpu})`,
    '',
    '## Datapath: ns per packet (BPF_PROG_TEST_RUN)',
    '',
    `${num(r.datapath.repeat)} repetitions per cell, 100-byte TCP payload, IPv4; the kernel's own average per run` +
      (r.datapath.runsPerCell
        ? `, the median of ${r.datapath.runsPerCell} runs of ${num(r.datapath.repeat / r.datapath.runsPerCell)} repetitions.`
        : '.'),
    '',
    ...datapathTable(r),
    '',
    ...memoryLines(r),
    '',
    `![datapath ns per packet](${CHART_FILES.datapath})`,
    '',
    '## Control plane: handoffs',
    '',
    `wrk with \`Connection: close\` on a 1 KiB response against the baton front end (${r.batonFrontEnd === 'dispatcher' ? 'baton lb daemon + dispatcher' : 'e2e front end, in-process Splicer'}) for ${p.handoffSeconds} s per row: ` +
      "every request is a new client connection and one splice. Durations are the control plane's own, from the block entries to the release; " +
      `"front end" is the same splice as the front end saw it, API call included (histogram buckets ${HANDOFF_BUCKETS_MS.join(', ')} ms, of the control plane's durations).`,
    '',
    ...handoffTable(r),
    '',
    `![handoff latency histogram](${CHART_FILES.handoff})`,
    '',
    ...(r.handoffApi
      ? ['## Control plane: handoff API, single vs batched', '', ...handoffApiNotes(r), '', ...handoffApiTable(r), '']
      : []),
    ...(r.migrate ? ['## Migrate mode (issue 11)', '', ...migrateLines(r.migrate), ''] : []),
    ...(r.profileShare
      ? [
          '## Client TCP profiles: share spliced',
          '',
          ...profileShareLines(r.profileShare),
          '',
          ...profileShareTable(r.profileShare),
          '',
        ]
      : []),
    ...(r.cluster ? ['## Several LBs: owner forwarding', '', ...clusterLines(r.cluster), ''] : []),
  ].join('\n');
}
