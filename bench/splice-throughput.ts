/**
 * One slice of the suite, for a quick look while working on the datapath:
 * keep-alive 1 KiB requests/s over spliced connections against plain routing
 * through the same LB namespace, in one run. `make bench` runs the whole
 * matrix; this uses the same testbed, variants and wrk runner.
 * Run: node --import tsx bench/splice-throughput.ts [--duration S] [--connections N] [--e2e]
 * (--e2e: the e2e front end with an in-process Splicer instead of the daemon + dispatcher)
 */
import { startNginx } from '../lab/launch/nginx.js';
import { createTestbed, starTopology } from '../lab/testbed/index.js';
import { runWrk } from './load/wrk.js';
import { BACKEND_PORT, BODIES, PROFILES } from './profile.js';
import { median } from './throughput.js';
import { type BatonVariant, startBaton } from './variants/baton.js';
import { startBatonDaemon } from './variants/baton-daemon.js';
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
  let baton: BatonVariant | undefined;
  try {
    const nginx = await startNginx(tb, 'backend1', BACKEND_PORT, { [PATH.slice(1)]: BODIES[PATH] });
    baton = process.argv.includes('--e2e') ? await startBaton(tb) : await startBatonDaemon(tb);
    const plain = plainRouting(tb);
    console.log(
      `keep-alive 1 KiB GET, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, same testbed and LB namespace; ${baton.describe}`,
    );
    console.log(
      `${'variant'.padEnd(20)} ${'req/s'.padStart(10)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)}  ratio`,
    );
    const first = baton.handoffs().length;
    let floor = Number.NaN;
    for (const v of [plain, baton]) {
      const r = await runWrk(tb, v.url(PATH), {
        seconds: SECONDS,
        connections: CONNECTIONS,
        newConnectionPerRequest: false,
      });
      await v.afterRun?.();
      const rps = r.requests / (r.durationUs / 1e6);
      if (v === plain) floor = rps;
      console.log(
        `${v.title.padEnd(20)} ${rps.toFixed(0).padStart(10)} ${(r.p50Us / 1000).toFixed(2).padStart(9)} ${(r.p99Us / 1000).toFixed(2).padStart(9)}  ${(rps / floor).toFixed(2)}x`,
      );
    }
    const made = baton.handoffs().slice(first);
    console.log(
      `splices: ${made.length}, refused: ${baton.refusedCount()}, handoff p50 ${median(made.map((s) => s.totalMs)).toFixed(2)} ms`,
    );
    for (const [why, n] of Object.entries(baton.refusals())) console.log(`  refused ${n}x: ${why}`);
    await nginx.stop();
  } finally {
    await baton?.stop();
    await tb.destroy();
  }
}

void main();
