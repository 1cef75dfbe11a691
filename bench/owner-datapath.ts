/**
 * Owner-forwarding microbenchmark (a benchmark, not a test): ns per packet
 * of putting a packet in the owner header (LB A, an OWNER entry) and of
 * taking it out again (LB B, the owner), through BPF_PROG_TEST_RUN, next to
 * the cheapest path (an unknown flow passed) measured the same way.
 *
 * Why not `repeat`: the kernel runs every repetition on the same buffer, and
 * an encapsulated packet is no longer one to encapsulate (nor a
 * decapsulated one to decapsulate), so only the first repetition would do
 * the work. Each sample is therefore one run (repeat 1), timed by the
 * kernel around the program; the median of many is reported. The kernel's
 * timing of a single run includes a clock read (tens of ns): the baseline
 * row carries the same, so the difference is the work itself.
 *
 *   node --import tsx bench/owner-datapath.ts [--samples N]
 */
import { testRun, xdpActionName } from '../control/bpf/index.js';
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { FixtureNetns } from '../test/lib/fixture.js';
import { buildPacket, type PacketSpec } from '../test/lib/packet.js';

const LB_A = { v4: '198.18.5.1', v6: '2001:db8:5::1' };
const LB_B = { v4: '198.18.5.2', v6: '2001:db8:5::2' };

export interface OwnerBenchRow {
  path: string;
  verdict: string;
  reason: string;
  p50Ns: number;
  p90Ns: number;
}

function samplesFromArgs(argv: string[]): number {
  const i = argv.indexOf('--samples');
  const n = i >= 0 ? Number(argv[i + 1]) : 20000;
  if (!Number.isInteger(n) || n < 100 || n > 1_000_000)
    throw new RangeError(`--samples must be 100..1000000, got ${n}`);
  return n;
}

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export async function runOwnerBench(samples: number, log: (l: string) => void = () => {}): Promise<OwnerBenchRow[]> {
  const ns = await FixtureNetns.create();
  const a = await Datapath.load();
  const b = await Datapath.load();
  try {
    a.owner.settings.configure({ local4: LB_A.v4, local6: LB_A.v6 });
    b.owner.settings.configure({ local4: LB_B.v4, local6: LB_B.v6 });
    a.owner.peers.add(LB_B.v4, 1);
    a.owner.peers.add(LB_B.v6, 2);
    b.owner.peers.add(LB_A.v4, 1);
    b.owner.peers.add(LB_A.v6, 2);
    // As the daemon does: each peer's index is its stats slot, and OWNER entries carry it.
    a.owner.peerStats.reset(1);
    a.owner.peerStats.reset(2);
    const flows: Array<[string, PacketSpec]> = [
      [
        'IPv4 TCP',
        {
          ip: { version: 4, src: '198.18.0.10', dst: '198.18.1.1' },
          tcp: { sport: 40000, dport: 80, seq: 1, ack: 1, flags: 'PA' },
          payload: Buffer.alloc(100, 1),
        },
      ],
      [
        'IPv6 TCP',
        {
          ip: { version: 6, src: '2001:db8::10', dst: '2001:db8:1::1' },
          tcp: { sport: 40000, dport: 80, seq: 1, ack: 1, flags: 'PA' },
          payload: Buffer.alloc(100, 1),
        },
      ],
    ];
    const measure = (dp: Datapath, path: string, packet: Buffer): OwnerBenchRow => {
      const prog = dp.object.program('baton_xdp');
      const before = dp.readCounters().map((c) => c.packets);
      const ns0: number[] = [];
      let verdict = '';
      let out: Buffer = packet;
      withNetns(ns.name, () => {
        for (let i = 0; i < samples; i++) {
          const r = testRun(prog, { packet });
          ns0.push(r.durationNs);
          verdict = xdpActionName(r.retval);
          out = r.packet;
        }
      });
      const moved = dp
        .readCounters()
        .filter((c, i) => c.packets !== before[i])
        .map((c) => c.reason);
      ns0.sort((x, y) => x - y);
      const row = { path, verdict, reason: moved.join(','), p50Ns: quantile(ns0, 0.5), p90Ns: quantile(ns0, 0.9) };
      log(`${path.padEnd(50)} ${verdict.padEnd(9)} ${row.reason.padEnd(12)} p50 ${row.p50Ns} ns  p90 ${row.p90Ns} ns`);
      lastOut = out;
      return row;
    };
    let lastOut: Buffer = Buffer.alloc(0);
    const rows: OwnerBenchRow[] = [];
    for (const [name, spec] of flows) {
      const direct = buildPacket(spec);
      const k = {
        src: spec.ip.src,
        dst: spec.ip.dst,
        sport: spec.tcp?.sport ?? 0,
        dport: spec.tcp?.dport ?? 0,
      };
      const owner = spec.ip.version === 4 ? LB_B.v4 : LB_B.v6;
      const stray = buildPacket({ ...spec, tcp: { sport: 1, dport: 80, seq: 1, ack: 1, flags: 'PA' } });
      rows.push(measure(a, `${name}: unknown flow (baseline)`, stray));
      // The same segment once its address is a VIP: VIP lookup + socket lookup (no socket here), then no_owner.
      a.owner.vips.add(spec.ip.dst);
      rows.push(measure(a, `${name}: unknown flow for a VIP (socket lookup)`, stray));
      a.owner.vips.remove(spec.ip.dst);
      a.table.insertOwner(k, { owner, ownerPort: 80, slot: spec.ip.version === 4 ? 1 : 2 });
      rows.push(measure(a, `${name}: encapsulate toward owner`, direct));
      const encapsulated = Buffer.from(lastOut);
      // As it arrives at B: addressed to B's MAC (any: the program checks addresses, not MACs).
      rows.push(measure(b, `${name}: remove header at owner`, encapsulated));
    }
    return rows;
  } finally {
    a.close();
    b.close();
    await ns.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const samples = samplesFromArgs(process.argv.slice(2));
  console.log(`owner forwarding datapath, BPF_PROG_TEST_RUN, ${samples} single runs per row (kernel-timed)`);
  await runOwnerBench(samples, (l) => console.log(l));
}
