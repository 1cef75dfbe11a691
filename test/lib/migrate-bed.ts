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

// The routed bed (router between client, LB and two back ends) is lab's: the demo and the benchmarks use it too.
export { ROUTED_BACKENDS, ROUTED_LB_ADDR, routedTopology } from '../../lab/testbed/routed.js';
