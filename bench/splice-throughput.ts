/**
 * Keep-alive 1 KiB requests/s over spliced connections against plain routing
 * through the same LB namespace, in one run (a benchmark, not a test).
 * Run: node --import tsx bench/splice-throughput.ts [--duration S] [--connections N]
 */
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { Splicer } from '../control/splice/splicer.js';
import { createSocketOps } from '../control/tcp/socket-ops.js';
import { takeSocket } from '../control/tcp/pidfd.js';
import { startFrontend } from '../test/lib/frontend-driver.js';
import { startNginx } from '../test/lib/nginx.js';
import { createTestbed, starTopology, VIP4 } from '../test/lib/testbed.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DURATION = arg('duration', 5);
const CONNS = arg('connections', 8);

function parseWrk(out: string): { rps: number; p50: string; p99: string } {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = /\s50%\s+(\S+)/.exec(out)?.[1] ?? '?';
  const p99 = /\s99%\s+(\S+)/.exec(out)?.[1] ?? '?';
  return { rps, p50, p99 };
}

async function main(): Promise<void> {
  const tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (n) => n !== 'lb' });
  const dp = await Datapath.load({ flowsCapacity: 65536 });
  try {
    const lb = tb.node('lb');
    withNetns(lb.ns, () => lb.ifaces.forEach((i) => dp.attach(i.ifindex)));
    const nginx = await startNginx(tb, 'backend1', 8080, { 'k1.bin': 1024 });
    const fe = await startFrontend(tb, new Splicer(dp, createSocketOps()), takeSocket, { ip: VIP4, port: 80 }, [`${tb.node('backend1').v4}:8080`]);
    const wrk = async (url: string) =>
      parseWrk((await tb.exec('client', 'wrk', ['-t', '1', '-c', String(CONNS), '-d', `${DURATION}s`, '--latency', url], { timeoutMs: (DURATION + 30) * 1000 })).stdout);
    const plain = await wrk(nginx.url('/k1.bin'));
    const spliced = await wrk(`http://${VIP4}/k1.bin`);
    console.log(`keep-alive 1 KiB GET, wrk -t1 -c${CONNS} -d${DURATION}s, same testbed and LB namespace`);
    console.log(`${'variant'.padEnd(34)} ${'req/s'.padStart(10)} ${'p50'.padStart(9)} ${'p99'.padStart(9)}  ratio`);
    console.log(`${'plain routing through lb'.padEnd(34)} ${plain.rps.toFixed(0).padStart(10)} ${plain.p50.padStart(9)} ${plain.p99.padStart(9)}  1.00x`);
    console.log(`${'baton splice (XDP)'.padEnd(34)} ${spliced.rps.toFixed(0).padStart(10)} ${spliced.p50.padStart(9)} ${spliced.p99.padStart(9)}  ${(spliced.rps / plain.rps).toFixed(2)}x`);
    console.log(`splices: ${fe.splices.length}, refused: ${fe.failures.length}, handoff p50 ${median(fe.splices.map((s) => s.timings.totalMs)).toFixed(2)} ms`);
    fe.stop();
    await nginx.stop();
  } finally {
    dp.close();
    await tb.destroy();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor(s.length / 2)] as number) : NaN;
}

void main();
