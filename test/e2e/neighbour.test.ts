/**
 * A spliced connection whose next hop is not in the neighbour table (its
 * entry expired, or was flushed): the datapath cannot fill in the MACs, so it
 * hands the rewritten frame to the LB's stack, which resolves the neighbour
 * and forwards it (counted as forwarded/via_stack). The connection must not
 * notice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { Splicer } from '../../control/splice/splicer.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type FrontendDriver, startFrontend } from '../lib/frontend-driver.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

describe('forwarding when the neighbour is unresolved', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let dp: Datapath;
  let nginx: NginxBackend;
  let fe: FrontendDriver;
  let client: KeepAliveClient;

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    dp = await Datapath.load({ flowsCapacity: 1024 });
    const lb = tb.node('lb');
    withNetns(lb.ns, () => lb.ifaces.forEach((i) => dp.attach(i.ifindex)));
    nginx = await startNginx(tb, 'backend1', 8080, { 'small.txt': 'hello' });
    fe = await startFrontend(tb, new Splicer(dp, createSocketOps()), takeSocket, { ip: VIP4, port: 80 }, [`${tb.node('backend1').v4}:8080`]);
    client = await KeepAliveClient.start(tb, VIP4);
  });

  after(async () => {
    client?.proc.kill();
    fe?.stop();
    await nginx?.stop();
    dp?.close();
    await tb?.destroy();
  });

  test('neighbours flushed on the LB mid-connection: requests still answered, via the stack', async () => {
    assert.equal((await client.get('/small.txt')).body, 'hello');
    assert.equal(fe.splices.length, 1, fe.failures.join('; '));
    const viaStack = () => dp.readCounters().find((r) => r.reason === 'via_stack')!.packets;
    const before = viaStack();
    for (let round = 0; round < 3; round++) {
      await tb.exec('lb', 'ip', ['neigh', 'flush', 'all']);
      await sleep(600); // past the entry's next-hop cache lifetime (BATON_NEXTHOP_TTL_NS)
      for (let i = 0; i < 5; i++) assert.equal((await client.get(`/small.txt?${round}-${i}`)).body, 'hello');
    }
    assert.ok(viaStack() > before, 'some frames went through the stack while neighbours were resolved');
    assert.deepEqual(client.events, [], 'the client connection never broke');
  });
});
