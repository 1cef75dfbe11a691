/**
 * baton demo (README's first command): builds a netns testbed
 * (client <-> lb <-> back ends), loads and attaches baton's XDP datapath on
 * the LB, runs a small L7 front end on the VIP whose client connections baton
 * splices to nginx back ends after the first request, pushes real curl
 * traffic through it, prints what happened and the datapath counters read
 * back through the binding, and tears everything down.
 */
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import { BPF_DIR } from '../test/lib/env.js';
import { canRunPrivileged, createTestbed, starTopology, VIP4 } from '../test/lib/testbed.js';
import { Splicer } from '../control/splice/splicer.js';
import { createSocketOps } from '../control/tcp/socket-ops.js';
import { takeSocket } from '../control/tcp/pidfd.js';
import { startFrontend } from '../test/lib/frontend-driver.js';
import { startNginx } from '../test/lib/nginx.js';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const priv = canRunPrivileged();
  const missing = bpfUnavailableReason(BPF_DIR) ?? (priv.ok ? undefined : priv.reason);
  if (missing) {
    say(`baton demo cannot run here: ${missing}`);
    return 2;
  }
  say('baton demo: building testbed client <-> lb <-> backend1, backend2 (198.18.0.0/15)');
  const tb = await createTestbed(starTopology({ backends: 2, vip: true }), { passXdp: (node) => node !== 'lb' });
  let dp: Datapath | undefined;
  try {
    dp = await Datapath.load({ flowsCapacity: 4096 });
    const lb = tb.node('lb');
    const d = dp;
    withNetns(lb.ns, () => lb.ifaces.forEach((i) => d.attach(i.ifindex)));
    say(`loaded build/bpf/xdp_baton.o, attached to ${lb.ifaces.map((i) => `${i.name}(ifindex ${i.ifindex})`).join(', ')} in ${lb.ns}`);

    const backends = await Promise.all(['backend1', 'backend2'].map((b) => startNginx(tb, b, 8080, { 'hello.txt': `hello from ${b}\n`, 'big.bin': 8 * 1024 * 1024 })));
    const splicer = new Splicer(d, createSocketOps());
    const fe = await startFrontend(tb, splicer, takeSocket, { ip: VIP4, port: 80 }, ['backend1', 'backend2'].map((b) => `${tb.node(b).v4}:8080`));
    say(`front end listening on VIP ${VIP4}:80 in the lb namespace; back ends: nginx on backend1, backend2`);
    try {
      for (let c = 1; c <= 2; c++) {
        // One keep-alive connection, five requests: the front end reads the
        // first, baton splices the connection, the rest never touch userspace.
        const urls = Array.from({ length: 5 }, (_, i) => `http://${VIP4}/hello.txt?req=${i + 1}`);
        const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', ...urls]);
        say(`client connection ${c}: ${r.stdout.trim().split('\n').length} responses on one connection: ${[...new Set(r.stdout.trim().split('\n'))].join(', ')}`);
      }
      const big = await tb.exec('client', 'curl', ['-sS', '--max-time', '30', '-o', '/dev/null', '-w', '%{size_download} bytes in %{time_total} s', `http://${VIP4}/big.bin`]);
      say(`client download through a spliced connection: ${big.stdout}`);
      const ms = fe.splices.map((x) => x.timings.totalMs).sort((a, b) => a - b);
      say(`splices: ${fe.splices.length} (refused: ${fe.failures.length}); handoff time p50 ${ms[Math.floor(ms.length / 2)]?.toFixed(2)} ms, max ${ms.at(-1)?.toFixed(2)} ms`);
      const left = await tb.exec('lb', 'ss', ['-tanH', 'state', 'established']);
      say(`established sockets left on the lb: ${left.stdout.trim().split('\n').filter(Boolean).length}`);
    } finally {
      fe.stop();
      await Promise.all(backends.map((b) => b.stop()));
    }

    say('\ndatapath counters (summed over CPUs):');
    say(`  ${'action'.padEnd(10)} ${'reason'.padEnd(16)} ${'packets'.padStart(10)} ${'bytes'.padStart(12)}`);
    for (const r of dp.readCounters()) {
      if (r.packets === 0n) continue;
      say(`  ${r.action.padEnd(10)} ${r.reason.padEnd(16)} ${String(r.packets).padStart(10)} ${String(r.bytes).padStart(12)}`);
    }
    return 0;
  } finally {
    dp?.close();
    await tb.destroy();
    say('\ntestbed removed');
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`baton demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
