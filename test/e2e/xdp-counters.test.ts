/**
 * The datapath attached for real: baton's XDP program on the LB's
 * interfaces of a netns testbed, real TCP traffic between client and back
 * end routed through the LB, counters read back through the binding.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { skipUnlessBpf } from '../lib/env.js';
import { createTestbed, starTopology, type Testbed } from '../lib/testbed.js';

describe('XDP datapath in the testbed', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let dp: Datapath;

  before(async () => {
    // The LB's interfaces get baton's program, not the pass program.
    tb = await createTestbed(starTopology({ backends: 1 }), { passXdp: (node) => node !== 'lb' });
    dp = await Datapath.load({ flowsCapacity: 1024 });
    const lb = tb.node('lb');
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) dp.attach(i.ifindex);
    });
  });

  after(async () => {
    dp?.close();
    await tb?.destroy();
  });

  test('TCP between client and back end passes through and is counted', async () => {
    const backend = tb.node('backend1');
    const server = tb.spawn('backend1', 'python3', ['-m', 'http.server', '--bind', backend.v4, '8080'], {
      stdio: 'ignore',
    });
    try {
      let body = '';
      for (let attempt = 0; attempt < 50 && !body; attempt++) {
        const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '3', `http://${backend.v4}:8080/`], {
          check: false,
        });
        if (r.code === 0) body = r.stdout;
        else await new Promise((res) => setTimeout(res, 100));
      }
      assert.match(body, /Directory listing/);
    } finally {
      server.kill();
    }
    const rows = dp.readCounters();
    const noFlow = rows.find((r) => r.reason === 'no_flow');
    assert.ok(noFlow && noFlow.packets > 0n, `no_flow packets: ${noFlow?.packets}`);
    assert.ok(noFlow.bytes >= noFlow.packets * 54n, 'bytes counted with the packets');
    const dropped = rows.filter((r) => r.action === 'dropped').reduce((a, r) => a + r.packets, 0n);
    assert.equal(dropped, 0n, 'nothing of an unknown flow is dropped');
  });
});
