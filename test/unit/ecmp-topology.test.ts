/** The ECMP testbed's pure parts (lab/testbed/ecmp.ts): topology shape and link numbering, multipath route arguments. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ecmpTopology, multipathRouteArgs } from '../../lab/testbed/ecmp.js';
import { VIP4, VIP6, validateTopology } from '../../lab/testbed/topology.js';

test('ecmpTopology: clients, router, LBs with the VIP, every back end linked to every LB, in documented order', () => {
  const t = validateTopology(ecmpTopology({ clients: 2, lbs: 3, backends: 2 }));
  assert.deepEqual(
    t.nodes.map((n) => n.name),
    ['client1', 'client2', 'router', 'lb1', 'lb2', 'lb3', 'backend1', 'backend2'],
  );
  for (const lb of t.nodes.filter((n) => n.role === 'lb'))
    assert.deepEqual(lb.addresses, [`${VIP4}/32`, `${VIP6}/128`]);
  // link k (1-based): clients first, then router–lb j, then lb j–backend k.
  assert.deepEqual(t.links[0], { a: 'client1', b: 'router' });
  assert.deepEqual(t.links[2], { a: 'router', b: 'lb1' });
  assert.deepEqual(t.links[4], { a: 'router', b: 'lb3' });
  assert.deepEqual(t.links[5], { a: 'lb1', b: 'backend1' });
  assert.deepEqual(t.links.at(-1), { a: 'lb3', b: 'backend2' });
  assert.equal(t.links.length, 2 + 3 + 6);
});

test('ecmpTopology refuses sizes outside its ranges', () => {
  assert.throws(() => ecmpTopology({ lbs: 1 }), /lbs must be an integer 2\.\.3/);
  assert.throws(() => ecmpTopology({ clients: 0 }), /clients/);
  assert.throws(() => ecmpTopology({ backends: 1.5 }), /backends/);
});

test('multipathRouteArgs: one nexthop clause per LB, both families, weights checked', () => {
  assert.deepEqual(
    multipathRouteArgs(4, VIP4, [
      { via: '198.18.4.2', dev: 'to-lb1', weight: 1 },
      { via: '198.18.5.2', dev: 'to-lb2', weight: 20 },
    ]),
    [
      'route',
      'replace',
      `${VIP4}/32`,
      'nexthop',
      'via',
      '198.18.4.2',
      'dev',
      'to-lb1',
      'weight',
      '1',
      'nexthop',
      'via',
      '198.18.5.2',
      'dev',
      'to-lb2',
      'weight',
      '20',
    ],
  );
  assert.deepEqual(multipathRouteArgs(6, VIP6, [{ via: '2001:db8:4::2', dev: 'to-lb1', weight: 1 }]).slice(0, 4), [
    '-6',
    'route',
    'replace',
    `${VIP6}/128`,
  ]);
  assert.throws(() => multipathRouteArgs(4, VIP4, []), /at least one next hop/);
  assert.throws(
    () => multipathRouteArgs(4, VIP4, [{ via: '198.18.4.2', dev: 'x', weight: 0 }]),
    /weight must be 1\.\.256/,
  );
});
