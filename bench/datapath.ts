/**
 * Datapath microbenchmark (a benchmark, not a test): ns per packet through
 * BPF_PROG_TEST_RUN for each path, with 1k, 100k and 1M spliced connections
 * in the table, and the kernel memory the connection table takes.
 * Part of `make bench`; alone: node --import tsx bench/datapath.ts [--quick]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type TestRunResult, testRun, xdpActionName } from '../control/bpf/index.js';
import { type Flow, FlowKind, FlowState, type Leg } from '../control/datapath/abi.js';
import { FidState, flowIdOfPorts, flowIdPorts } from '../control/datapath/abi-migrate.js';
import { AgentDatapath } from '../control/datapath/agent-datapath.js';
import { Datapath } from '../control/datapath/datapath.js';
import { planFidMapping, planMigratedEntry } from '../control/datapath/flow-id.js';
import { withNetns } from '../control/net/netns.js';
import { FixtureNetns } from '../test/lib/fixture.js';
import { buildPacket } from '../test/lib/packet.js';
import { type Profile, profileFromArgs } from './profile.js';

export const DATAPATH_PATHS = [
  'unknown flow (passed)',
  'rewrite, no options',
  'rewrite + timestamps + SACK(3)',
  'blocked (dropped)',
] as const;
export type DatapathPath = (typeof DATAPATH_PATHS)[number];
/** Axis labels for charts. */
export const DATAPATH_PATH_SHORT: Record<DatapathPath, string> = {
  'unknown flow (passed)': 'unknown flow',
  'rewrite, no options': 'rewrite',
  'rewrite + timestamps + SACK(3)': 'rewrite + TS + SACK',
  'blocked (dropped)': 'blocked',
};

export interface DatapathRow {
  connections: number;
  path: DatapathPath;
  verdict: string;
  /** counter reasons that moved during the run: proves which path ran */
  reasons: string;
  nsPerPacket: number;
}

export interface TableMemory {
  /** table capacity the memory was read at (the largest size benchmarked) */
  capacity: number;
  entriesFilled: number;
  keyBytes: number;
  valueBytes: number;
  /** the kernel's own accounting of the map (fdinfo `memlock`), bytes */
  mapBytes: number;
  bytesPerEntry: number;
  /** the leg-list map (not preallocated) with no list in it: its bucket array, shared by all connections */
  legListMapBytes?: number;
  /** a spliced connection holds a client entry and one back-end entry per handoff, and its share of the leg-list map's buckets */
  bytesPerConnection: number;
  /** what a connection handed off again adds: its leg list (measured over LEG_LIST_SAMPLE appended legs) */
  legListBytesPerHandedOff?: number;
  /** growth of the kernel's vmalloc + slab + per-CPU memory (/proc/meminfo) over load and fill: a cross-check from outside the map's own accounting */
  kernelGrowthBytes: number;
  /** for comparison: slab object sizes a userspace proxy pays per connection (two TCP sockets) */
  proxySocketBytes: { tcpSock: number; sockInode: number; perConnection: number } | null;
}

export interface DatapathResults {
  repeat: number;
  /** each cell is the median of this many runs of repeat / runsPerCell repetitions (absent: one run, before 2026-12-04's last run) */
  runsPerCell?: number;
  rows: DatapathRow[];
  memory: TableMemory;
}

const xlate = (i: number) => ({
  out: { src: '198.18.2.1', dst: '198.18.3.10', sport: 10000 + (i % 50000), dport: 8080 },
  seqDelta: 1000 + i,
  ackDelta: 2000 + i,
  tsvalDelta: 77,
  tsecrDelta: 99,
  wscaleIn: 7,
  wscaleOut: 9,
  timestamps: true,
});
const flow = (i: number, state: number = FlowState.FORWARD): Flow => ({
  connId: BigInt(i),
  state: state as Flow['state'],
  kind: FlowKind.CLIENT,
  legs: [{ seqStart: 0, ackFloor: 0, x: xlate(i) }],
});
const key = (i: number): { src: string; dst: string; sport: number; dport: number } => ({
  src: `198.18.${100 + ((i >> 16) & 0x3f)}.${(i >> 8) & 0xff}`,
  dst: '198.19.0.1',
  sport: 1024 + (i & 0xff) * 200 + ((i >> 14) & 0x3),
  dport: 80,
});

function packets(): Record<DatapathPath, Buffer> {
  const base = { ip: { version: 4 as const, src: '198.18.100.0', dst: '198.19.0.1' }, payload: Buffer.alloc(100, 1) };
  const k0 = key(0);
  const tcp = { sport: k0.sport, dport: 80, seq: 5000, ack: 7000, flags: 'PA', window: 512 };
  return {
    'unknown flow (passed)': buildPacket({ ...base, ip: { ...base.ip, src: '198.18.250.1' }, tcp }),
    'rewrite, no options': buildPacket({ ...base, tcp }),
    'rewrite + timestamps + SACK(3)': buildPacket({
      ...base,
      tcp: {
        ...tcp,
        options: [
          { kind: 'nop' },
          { kind: 'nop' },
          { kind: 'timestamp', tsval: 123456, tsecr: 654321 },
          { kind: 'nop' },
          { kind: 'nop' },
          {
            kind: 'sack',
            blocks: [
              [7100, 7200],
              [7300, 7400],
              [7500, 7600],
            ],
          },
        ],
      },
    }),
    'blocked (dropped)': buildPacket({
      ip: { version: 4, src: BLOCKED_KEY.src, dst: BLOCKED_KEY.dst },
      tcp: { sport: 1, dport: 80, seq: 1, ack: 1, flags: 'PA' },
      payload: Buffer.alloc(100),
    }),
  };
}
const BLOCKED_KEY = { src: '198.18.251.1', dst: '198.19.0.1', sport: 1, dport: 80 };

/** Entries besides the benchmarked connections: the blocked flow and the rewrite mirror. */
const EXTRA_ENTRIES = 2;
/** Connections given a second leg after the timed rows, to measure a leg list's memory. */
const LEG_LIST_SAMPLE = 1000;
/** Capacity above the largest size: room for the extra entries with margin. */
const TABLE_SLACK = 16;

export async function runDatapathBench(
  profile: Pick<Profile, 'datapathSizes' | 'datapathRepeat'>,
  log: (line: string) => void = () => {},
): Promise<DatapathResults> {
  const sizes = profile.datapathSizes;
  const repeat = profile.datapathRepeat;
  const ns = await FixtureNetns.create();
  const max = Math.max(...sizes);
  const kernelBefore = kernelAllocated();
  const dp = await Datapath.load({ flowsCapacity: max + TABLE_SLACK });
  try {
    const pk = packets();
    dp.table.insert(BLOCKED_KEY, flow(0, FlowState.BLOCK));
    // BPF_PROG_TEST_RUN repeats the program on the same buffer, so a
    // rewritten packet is what the next repetition sees. A mirror entry keyed
    // by the rewritten tuple translates it back: every repetition is a real
    // rewrite, alternating between the two entries.
    const x0 = xlate(0);
    const mirrorKey = { src: x0.out.src, dst: x0.out.dst, sport: x0.out.sport, dport: x0.out.dport };
    const k0 = key(0);
    dp.table.insert(mirrorKey, {
      connId: 0n,
      state: FlowState.FORWARD,
      kind: FlowKind.CLIENT,
      legs: [
        {
          seqStart: 0,
          ackFloor: 0,
          x: {
            ...x0,
            out: k0,
            seqDelta: -x0.seqDelta >>> 0,
            ackDelta: -x0.ackDelta >>> 0,
            tsvalDelta: -x0.tsvalDelta >>> 0,
            tsecrDelta: -x0.tsecrDelta >>> 0,
            wscaleIn: x0.wscaleOut,
            wscaleOut: x0.wscaleIn,
          },
        },
      ],
    });
    const rows: DatapathRow[] = [];
    let filled = 0;
    for (const n of sizes) {
      const t0 = performance.now();
      for (; filled < n; filled++) dp.table.insert(key(filled), flow(filled));
      log(`  table filled to ${n} connections in ${(performance.now() - t0).toFixed(0)} ms`);
      for (const path of DATAPATH_PATHS) {
        const before = dp.readCounters();
        const r = timedRuns(repeat, (n) =>
          withNetns(ns.name, () => testRun(dp.object.program('baton_xdp'), { packet: pk[path], repeat: n })),
        );
        const after = dp.readCounters();
        const reasons = after
          .filter((a, i) => a.packets !== before[i]!.packets)
          .map((a) => `${a.action}/${a.reason}`)
          .join(',');
        const row: DatapathRow = {
          connections: n,
          path,
          verdict: xdpActionName(r.retval),
          reasons,
          nsPerPacket: r.durationNs,
        };
        rows.push(row);
        log(
          `  ${String(n).padStart(9)}  ${path.padEnd(32)} ${row.verdict.padEnd(9)} ${String(row.nsPerPacket).padStart(5)} ns  ${reasons}`,
        );
      }
    }
    const { fd, keyBytes, valueBytes, legListsFd } = dp.table.layout;
    const capacity = dp.table.capacity;
    const mapBytes = mapMemlock(fd);
    const legListMapBytes = mapMemlock(legListsFd);
    // A second leg on some connections: what their out-of-line lists cost.
    const sample = Math.min(LEG_LIST_SAMPLE, filled - 1);
    for (let i = 1; i <= sample; i++) dp.table.appendLeg(key(i), flow(i).legs[0] as Leg, FlowState.FORWARD);
    const legListBytesPerHandedOff = sample > 0 ? (mapMemlock(legListsFd) - legListMapBytes) / sample : Number.NaN;
    const memory: TableMemory = {
      capacity,
      entriesFilled: filled + EXTRA_ENTRIES,
      keyBytes,
      valueBytes,
      mapBytes,
      bytesPerEntry: mapBytes / capacity,
      legListMapBytes,
      bytesPerConnection: (2 * (mapBytes + legListMapBytes)) / capacity,
      legListBytesPerHandedOff,
      kernelGrowthBytes: kernelAllocated() - kernelBefore,
      proxySocketBytes: proxySocketBytes(),
    };
    return { repeat, runsPerCell: RUNS_PER_CELL, rows, memory };
  } finally {
    dp.close();
    await ns.destroy();
  }
}

/**
 * Runs per cell. On this shared VM one run of a cell moves by ±15% from
 * one second to the next (three back-to-back runs of the same cell: 87, 86,
 * 109 ns), so a single run made the table-size comparison mostly noise: the
 * median of RUNS_PER_CELL runs, of repeat / RUNS_PER_CELL repetitions each
 * (the same total), is reported.
 */
export const RUNS_PER_CELL = 5;

/** `run` RUNS_PER_CELL times; the verdict of the last run, the median of their ns per packet. */
function timedRuns(repeat: number, run: (n: number) => TestRunResult): TestRunResult {
  const n = Math.max(1, Math.floor(repeat / RUNS_PER_CELL));
  const runs = Array.from({ length: RUNS_PER_CELL }, () => run(n));
  const ns = runs.map((r) => r.durationNs).sort((a, b) => a - b);
  return { ...(runs.at(-1) as TestRunResult), durationNs: ns[Math.floor(ns.length / 2)] as number };
}

/** The kernel's accounting of a BPF map's memory (fdinfo `memlock`, the map's mem_usage on kernels since 6.4). */
function mapMemlock(fd: number): number {
  const m = /^memlock:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`no memlock line in /proc/self/fdinfo/${fd}`);
  return Number(m[1]);
}

/**
 * Kernel memory that a BPF map's allocation lands in: vmalloc (large
 * preallocated element areas), slab, per-CPU. Other tenants move these far
 * less than MemAvailable, so the growth around one load is readable.
 */
function kernelAllocated(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? Number.NaN);
  return (kb('VmallocUsed') + kb('Slab') + kb('Percpu')) * 1024;
}

/** Slab object sizes of a TCP socket and its inode: what each of a proxy's two sockets per connection costs before any buffer. */
function proxySocketBytes(): TableMemory['proxySocketBytes'] {
  let text: string;
  try {
    text = readFileSync('/proc/slabinfo', 'utf8');
  } catch {
    return null;
  }
  const objsize = (name: string) =>
    Number(new RegExp(`^${name}\\s+\\d+\\s+\\d+\\s+(\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const tcpSock = objsize('TCP');
  const sockInode = objsize('sock_inode_cache');
  if (!Number.isFinite(tcpSock) || !Number.isFinite(sockInode)) return null;
  return { tcpSock, sockInode, perConnection: 2 * (tcpSock + sockInode) };
}

// ---------------------------------------------------------------- migrate: flow id in the ports

export const FLOW_ID_PATHS = [
  'LB: encapsulate (flow id in the ports)',
  'agent: restore (flow id -> tuple)',
  'agent: held (dropped)',
  'agent: unknown (passed)',
] as const;
export type FlowIdPath = (typeof FLOW_ID_PATHS)[number];

export interface FlowIdRow {
  path: FlowIdPath;
  verdict: string;
  reasons: string;
  nsPerPacket: number;
}

/**
 * ns per packet of migrate mode's two rewrites (bpf/lib/flowid.h on the LB,
 * bpf/xdp_agent.c on the back end), 100-byte payload with timestamps, through
 * BPF_PROG_TEST_RUN. The run rewrites the same buffer `repeat` times, so
 * each program holds the flow and its mirror (keyed by the rewritten tuple,
 * rewriting it back): every repetition is a real rewrite.
 */
export async function runFlowIdBench(repeat: number, log: (line: string) => void = () => {}): Promise<FlowIdRow[]> {
  const ns = await FixtureNetns.create();
  const lb = await Datapath.load({ flowsCapacity: 1024 });
  const agent = await AgentDatapath.load({ fidsCapacity: 1024 });
  try {
    const client = { src: '198.18.0.10', dst: '198.18.1.1', sport: 40000, dport: 80 };
    const backend = '198.18.3.10';
    const flowId = 0x0001_002a;
    const ports = flowIdPorts(flowId);
    const onWire = { src: client.src, dst: backend, sport: ports.sport, dport: ports.dport };
    const mirrorId = flowIdOfPorts(client.sport, client.dport);
    const fwd = planMigratedEntry({ connId: 1n, client, backend, flowId });
    const back = planMigratedEntry({ connId: 2n, client: onWire, backend: client.dst, flowId: mirrorId });
    for (const e of [fwd, back]) {
      lb.table.insert(e.key, e.entry);
      lb.table.setState(e.key, FlowState.FORWARD);
    }
    const m = planFidMapping({ connId: 1n, client, backend, flowId });
    const mm = planFidMapping({ connId: 2n, client: onWire, backend: client.dst, flowId: mirrorId });
    for (const e of [m, mm]) {
      agent.fids.insert(e.key, e.mapping);
      agent.fids.setState(e.key, FidState.RESTORE);
    }
    const held = { src: client.src, dst: backend, sport: 7, dport: 7 };
    const h = planFidMapping({ connId: 3n, client: { ...client, sport: 1 }, backend, flowId: flowIdOfPorts(7, 7) });
    agent.fids.insert(h.key, h.mapping);
    const pkt = (t: typeof client) =>
      buildPacket({
        ip: { version: 4, src: t.src, dst: t.dst },
        tcp: {
          sport: t.sport,
          dport: t.dport,
          seq: 5000,
          ack: 7000,
          flags: 'PA',
          window: 512,
          options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 123456, tsecr: 654321 }],
        },
        payload: Buffer.alloc(100, 1),
      });
    const runs: Array<[FlowIdPath, Datapath | AgentDatapath, string, Buffer]> = [
      [FLOW_ID_PATHS[0], lb, 'baton_xdp', pkt(client)],
      [FLOW_ID_PATHS[1], agent, 'baton_agent_xdp', pkt(onWire)],
      [FLOW_ID_PATHS[2], agent, 'baton_agent_xdp', pkt(held)],
      [FLOW_ID_PATHS[3], agent, 'baton_agent_xdp', pkt({ ...onWire, sport: 9, dport: 9 })],
    ];
    const rows: FlowIdRow[] = [];
    for (const [path, dp, prog, packet] of runs) {
      const before = dp.readCounters();
      const r = timedRuns(repeat, (n) =>
        withNetns(ns.name, () => testRun(dp.object.program(prog), { packet, repeat: n })),
      );
      const reasons = dp
        .readCounters()
        .filter((a, i) => a.packets !== before[i]!.packets)
        .map((a) => `${a.action}/${a.reason}`)
        .join(',');
      const row = { path, verdict: xdpActionName(r.retval), reasons, nsPerPacket: r.durationNs };
      rows.push(row);
      log(`  ${path.padEnd(40)} ${row.verdict.padEnd(9)} ${String(row.nsPerPacket).padStart(5)} ns  ${reasons}`);
    }
    return rows;
  } finally {
    agent.close();
    lb.close();
    await ns.destroy();
  }
}

async function main(): Promise<void> {
  const profile = profileFromArgs(process.argv.slice(2));
  console.log(`baton datapath: ns/packet via BPF_PROG_TEST_RUN, ${profile.datapathRepeat} runs each`);
  const r = await runDatapathBench(profile, (l) => console.log(l));
  const m = r.memory;
  console.log(
    `connection table: ${m.mapBytes} bytes for ${m.capacity} entries (preallocated) = ${m.bytesPerEntry.toFixed(0)} B/entry, leg-list buckets ${m.legListMapBytes ?? 0} bytes; ${m.bytesPerConnection.toFixed(0)} B per spliced connection, +${(m.legListBytesPerHandedOff ?? Number.NaN).toFixed(0)} B once handed off again; kernel vmalloc+slab+percpu grew ${m.kernelGrowthBytes} bytes`,
  );
  console.log(`migrate, flow id in the ports: ns/packet via BPF_PROG_TEST_RUN, ${profile.datapathRepeat} runs each`);
  await runFlowIdBench(profile.datapathRepeat, (l) => console.log(l));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
