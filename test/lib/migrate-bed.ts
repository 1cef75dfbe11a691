/**
 * What the migrate end-to-end tests share (test/e2e/agent.test.ts with a
 * route change standing in for the datapath, test/e2e/migrate.test.ts with
 * the flow-id datapath): the direct-server-return topology, its addresses
 * and ports, and the keep-alive client program.
 */
import type { Topology } from '../../lab/testbed/index.js';
import { VIP4, VIP6 } from '../../lab/testbed/index.js';

/**
 * client ⟷ lb (link1), client ⟷ backend (link2: the replies, straight to the
 * client), lb ⟷ backend (link3: the migration channel and the client's
 * forwarded segments). The VIP is on both the LB's and the back end's lo.
 */
export function directReturnTopology(name: string): Topology {
  return {
    name,
    nodes: [
      {
        name: 'client',
        role: 'client',
        routes: [
          { to: `${VIP4}/32`, via: 'lb' },
          { to: `${VIP6}/128`, via: 'lb' },
        ],
      },
      { name: 'lb', role: 'lb', addresses: [`${VIP4}/32`, `${VIP6}/128`] },
      {
        name: 'backend',
        role: 'backend',
        addresses: [`${VIP4}/32`, `${VIP6}/128`],
        // Replies go straight to the client (link2), never through the LB.
        routes: [
          { to: '198.18.1.0/24', via: 'client' },
          { to: '2001:db8:1::/64', via: 'client' },
        ],
      },
    ],
    links: [
      { a: 'client', b: 'lb' },
      { a: 'client', b: 'backend' },
      { a: 'lb', b: 'backend' },
    ],
  };
}

export const LB_ADDR = '198.18.3.1'; // lb on link3
export const AGENT_ADDR = '198.18.3.2'; // backend on link3
export const AGENT_ADDR6 = '2001:db8:3::2';
export const AGENT_PORT = 7400;
export const SERVED_PORT = 80; // the app registers for VIP:80
export const UNSERVED_PORT = 81; // no app: the agent refuses

/** argv: VIP, port. GET /r1 at once, GET /r2 on the same connection when a line arrives on stdin; prints what it reads. */
export const KEEPALIVE_CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect(Number(port), host);
const get = (p) => s.write('GET ' + p + ' HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n');
s.on('connect', () => get('/r1'));
s.on('data', (d) => process.stdout.write(d));
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
process.stdin.once('data', () => get('/r2'));
`;

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
