/**
 * baton demo (README's first command): builds a netns testbed
 * (client <-> lb <-> back ends), loads and attaches baton's XDP datapath on
 * the LB, pushes real HTTP traffic through it, prints the datapath counters
 * read back through the binding, and tears everything down.
 */
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { bpfUnavailableReason } from '../control/bpf/probe.js';
import { BPF_DIR } from '../test/lib/env.js';
import { canRunPrivileged, createTestbed, starTopology } from '../test/lib/testbed.js';

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
  const tb = await createTestbed(starTopology({ backends: 2 }), { passXdp: (node) => node !== 'lb' });
  let dp: Datapath | undefined;
  try {
    dp = await Datapath.load({ flowsCapacity: 4096 });
    const lb = tb.node('lb');
    const d = dp;
    withNetns(lb.ns, () => lb.ifaces.forEach((i) => d.attach(i.ifindex)));
    say(`loaded build/bpf/xdp_baton.o, attached to ${lb.ifaces.map((i) => `${i.name}(ifindex ${i.ifindex})`).join(', ')} in ${lb.ns}`);

    const servers = ['backend1', 'backend2'].map((b) =>
      tb.spawn(b, process.execPath, ['-e', `require('http').createServer((q,s)=>s.end('hello from ${b} '+q.url+'\\n')).listen(8080,'${tb.node(b).v4}')`], { stdio: 'ignore' }),
    );
    try {
      for (const b of ['backend1', 'backend2']) {
        const url = `http://${tb.node(b).v4}:8080/demo`;
        let out = '';
        for (let i = 0; i < 50 && !out; i++) {
          const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '3', url], { check: false });
          if (r.code === 0) out = r.stdout.trim();
          else await new Promise((res) => setTimeout(res, 100));
        }
        say(`client -> ${url}: ${out || '(no answer)'}`);
      }
      // A little more load: 200 requests in 4 parallel curl runs.
      const runs = Array.from({ length: 4 }, (_, i) =>
        tb.exec('client', 'curl', ['-sS', '--max-time', '10', '-o', '/dev/null', ...Array.from({ length: 50 }, () => `http://${tb.node(`backend${(i % 2) + 1}`).v4}:8080/x`)], { check: false }),
      );
      await Promise.all(runs);
    } finally {
      servers.forEach((s) => s.kill());
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
