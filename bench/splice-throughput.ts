/**
 * One slice of the suite, for a quick look while working on the datapath:
 * keep-alive 1 KiB requests/s over spliced connections against plain routing
 * through the same LB namespace, in one run. `make bench` runs the whole
 * matrix; this uses the same testbed, variants and wrk runner.
 * Run: node --import tsx bench/splice-throughput.ts [--duration S] [--connections N]
 */
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { startNginx } from '../test/lib/nginx.js';
import { createTestbed, starTopology } from '../test/lib/testbed.js';
import { runWrk } from './load/wrk.js';
import { BACKEND_PORT, BATON_FLOWS_CAPACITY, BODIES, PROFILES } from './profile.js';
import { median } from './throughput.js';
import { startBaton } from './variants/baton.js';
import { plainRouting } from './variants/plain.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('duration', 5);
const CONNECTIONS = arg('connections', PROFILES.full.wrkConnections);
const PATH = '/k1.bin';

async function main(): Promise<void> {
  const tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (n) => n !== 'lb' });
  const dp = await Datapath.load({ flowsCapacity: BATON_FLOWS_CAPACITY });
  try {
    const lb = tb.node('lb');
    withNetns(lb.ns, () => lb.ifaces.forEach((i) => dp.attach(i.ifindex)));
    const nginx = await startNginx(tb, 'backend1', BACKEND_PORT, { [PATH.slice(1)]: BODIES[PATH] });
    const baton = await startBaton(tb, dp);
    const plain = plainRouting(tb);
    const first = baton.splices.length;
    console.log(`keep-alive 1 KiB GET, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, same testbed and LB namespace`);
    console.log(`${'variant'.padEnd(20)} ${'req/s'.padStart(10)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)}  ratio`);
    let floor = Number.NaN;
    for (const v of [plain, baton]) {
      const r = await runWrk(tb, v.url(PATH), { seconds: SECONDS, connections: CONNECTIONS, newConnectionPerRequest: false });
      await v.afterRun?.();
      const rps = r.requests / (r.durationUs / 1e6);
      if (v === plain) floor = rps;
      console.log(`${v.title.padEnd(20)} ${rps.toFixed(0).padStart(10)} ${(r.p50Us / 1000).toFixed(2).padStart(9)} ${(r.p99Us / 1000).toFixed(2).padStart(9)}  ${(rps / floor).toFixed(2)}x`);
    }
    const made = baton.splices.slice(first);
    console.log(`splices: ${made.length}, refused: ${baton.failures.length}, handoff p50 ${median(made.map((s) => s.timings.totalMs)).toFixed(2)} ms`);
    for (const [why, n] of Object.entries(baton.refusals())) console.log(`  refused ${n}x: ${why}`);
    await baton.stop();
    await nginx.stop();
  } finally {
    dp.close();
    await tb.destroy();
  }
}

void main();
