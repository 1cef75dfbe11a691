/**
 * Migrate mode's routed testbed, shared by the end-to-end tests, the demo
 * and the benchmarks.
 */
import { type Topology, VIP4, VIP6 } from './topology.js';

/**
 * The routed bed of issue 11's "Done when": a router between the client, the
 * LB and two back ends, so the return path bypasses the LB:
 *
 *   client ──link1── router ──link2── lb
 *                      ├────link3──── backend1
 *                      └────link4──── backend2
 *
 * The client reaches the VIP through the router, which routes it to the LB
 * (the VIP is on the LB's and both back ends' lo: the route is explicit).
 * The LB sends a migrated connection's segments back out to the router
 * (XDP_TX) with the back end's address; the back ends answer from the VIP
 * by their default route, through the router, straight to the client.
 */
export function routedTopology(name: string): Topology {
  return {
    name,
    nodes: [
      { name: 'client', role: 'client' },
      {
        name: 'router',
        role: 'router',
        routes: [
          { to: `${VIP4}/32`, via: 'lb' },
          { to: `${VIP6}/128`, via: 'lb' },
        ],
      },
      { name: 'lb', role: 'lb', addresses: [`${VIP4}/32`, `${VIP6}/128`] },
      { name: 'backend1', role: 'backend', addresses: [`${VIP4}/32`, `${VIP6}/128`] },
      { name: 'backend2', role: 'backend', addresses: [`${VIP4}/32`, `${VIP6}/128`] },
    ],
    links: [
      { a: 'client', b: 'router' },
      { a: 'router', b: 'lb' },
      { a: 'router', b: 'backend1' },
      { a: 'router', b: 'backend2' },
    ],
  };
}

/** routedTopology's addresses: the LB on link2, back end i on link i+2 (side b of each). */
export const ROUTED_LB_ADDR = '198.18.2.2';
export const ROUTED_BACKENDS = [
  { node: 'backend1', ip: '198.18.3.2', ip6: '2001:db8:3::2' },
  { node: 'backend2', ip: '198.18.4.2', ip6: '2001:db8:4::2' },
] as const;
