/**
 * Datapath microbenchmark (a benchmark, not a test): ns per packet through
 * BPF_PROG_TEST_RUN for each path, with 1k, 100k and 1M spliced connections
 * in the table. Run: node --import tsx bench/datapath.ts [--quick]
 */
import { Datapath } from '../control/datapath/datapath.js';
import { encodeFlow, encodeFlowKey, type Flow, FlowKind, FlowState } from '../control/datapath/abi.js';
import { testRun, xdpActionName } from '../control/bpf/index.js';
import { withNetns } from '../control/net/netns.js';
import { FixtureNetns } from '../test/lib/fixture.js';
import { buildPacket } from '../test/lib/packet.js';

const quick = process.argv.includes('--quick');
const SIZES = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000];
const REPEAT = quick ? 200_000 : 1_000_000;

const xlate = (i: number) => ({
  out: { src: '198.18.2.1', dst: '198.18.3.10', sport: 10000 + (i % 50000), dport: 8080 },
  seqDelta: 1000 + i, ackDelta: 2000 + i, tsvalDelta: 77, tsecrDelta: 99, wscaleIn: 7, wscaleOut: 9, timestamps: true,
});
const flow = (i: number, state: number = FlowState.FORWARD): Flow => ({ connId: BigInt(i), state: state as Flow['state'], kind: FlowKind.CLIENT, handoffs: [{ seqStart: 0, ackFloor: 0, x: xlate(i) }] });
const key = (i: number): { src: string; dst: string; sport: number; dport: number } => ({ src: `198.18.${100 + ((i >> 16) & 0x3f)}.${(i >> 8) & 0xff}`, dst: '198.19.0.1', sport: 1024 + (i & 0xff) * 200 + ((i >> 14) & 0x3), dport: 80 });

function packets() {
  const base = { ip: { version: 4 as const, src: '198.18.100.0', dst: '198.19.0.1' }, payload: Buffer.alloc(100, 1) };
  const k0 = key(0);
  const tcp = { sport: k0.sport, dport: 80, seq: 5000, ack: 7000, flags: 'PA', window: 512 };
  return {
    'unknown flow (passed)': buildPacket({ ...base, ip: { ...base.ip, src: '198.18.250.1' }, tcp }),
    'rewrite, no options': buildPacket({ ...base, tcp }),
    'rewrite + timestamps + SACK(3)': buildPacket({
      ...base,
      tcp: { ...tcp, options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 123456, tsecr: 654321 }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [[7100, 7200], [7300, 7400], [7500, 7600]] }] },
    }),
  };
}

async function main(): Promise<void> {
  const ns = await FixtureNetns.create();
  const max = Math.max(...SIZES);
  const dp = await Datapath.load({ flowsCapacity: max + 16 });
  try {
    const pk = packets();
    const blockedKey = { src: '198.18.251.1', dst: '198.19.0.1', sport: 1, dport: 80 };
    dp.flows.update(encodeFlowKey(blockedKey), encodeFlow(flow(0, FlowState.BLOCK)));
    const blockedPkt = buildPacket({ ip: { version: 4, src: blockedKey.src, dst: blockedKey.dst }, tcp: { sport: 1, dport: 80, seq: 1, ack: 1, flags: 'PA' }, payload: Buffer.alloc(100) });
    // BPF_PROG_TEST_RUN repeats the program on the same buffer, so a
    // rewritten packet is what the next repetition sees. A mirror entry keyed
    // by the rewritten tuple translates it back: every repetition is a real
    // rewrite, alternating between the two entries.
    const x0 = xlate(0);
    const mirrorKey = { src: x0.out.src, dst: x0.out.dst, sport: x0.out.sport, dport: x0.out.dport };
    const k0 = key(0);
    dp.flows.update(encodeFlowKey(mirrorKey), encodeFlow({
      connId: 0n, state: FlowState.FORWARD, kind: FlowKind.CLIENT,
      handoffs: [{ seqStart: 0, ackFloor: 0, x: { ...x0, out: k0, seqDelta: -x0.seqDelta >>> 0, ackDelta: -x0.ackDelta >>> 0, tsvalDelta: -x0.tsvalDelta >>> 0, tsecrDelta: -x0.tsecrDelta >>> 0, wscaleIn: x0.wscaleOut, wscaleOut: x0.wscaleIn } }],
    }));
    let filled = 0;
    console.log(`baton datapath: ns/packet via BPF_PROG_TEST_RUN, ${REPEAT} runs each, kernel ${process.platform} ${(await import('node:os')).release()}`);
    console.log(`${'connections'.padStart(12)}  ${'path'.padEnd(34)} ${'verdict'.padEnd(9)} ns/packet`);
    for (const n of SIZES) {
      const t0 = performance.now();
      for (; filled < n; filled++) dp.flows.update(encodeFlowKey(key(filled)), encodeFlow(flow(filled)), 'NOEXIST');
      const fillMs = performance.now() - t0;
      const cases: Array<[string, Buffer]> = [...Object.entries(pk), ['blocked (dropped)', blockedPkt]];
      for (const [name, p] of cases) {
        const before = dp.readCounters();
        const r = withNetns(ns.name, () => testRun(dp.object.program('baton_xdp'), { packet: p, repeat: REPEAT }));
        const after = dp.readCounters();
        const why = after.filter((a, i) => a.packets !== before[i]!.packets).map((a) => `${a.action}/${a.reason}`).join(',');
        console.log(`${String(n).padStart(12)}  ${name.padEnd(34)} ${xdpActionName(r.retval).padEnd(9)} ${String(r.durationNs).padStart(9)}  ${why}`);
      }
      console.log(`${''.padStart(12)}  (table filled to ${n} in ${fillMs.toFixed(0)} ms)`);
    }
  } finally {
    dp.close();
    await ns.destroy();
  }
}

void main();
