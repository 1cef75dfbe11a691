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
import { skipUnlessBpf } from '../lib/env.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { VIP4 } from '../lib/testbed.js';

describe('forwarding when the neighbour is unresolved', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;
  let client: KeepAliveClient;

  before(async () => {
    bed = await startSpliceBed({ backends: 1, files: { 'small.txt': 'hello' } });
    client = await KeepAliveClient.start(bed.tb, VIP4);
  });

  after(async () => {
    client?.proc.kill();
    await bed?.destroy();
  });

  test('neighbours flushed on the LB mid-connection: requests still answered, via the stack', async () => {
    assert.equal((await client.get('/small.txt')).body, 'hello');
    const { tb, dp, fe } = bed;
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
