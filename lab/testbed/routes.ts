/** The automatic routes of a planned topology: defaults for leaves, shortest-path next hops for the rest. */
import { isIPv4 } from 'node:net';
import type { Cidr } from './addresses.js';
import type { PlannedIface, PlannedRoute } from './plan.js';
import type { Topology } from './topology.js';

/**
 * Routes so that plain routing works between any two nodes:
 *   - a leaf (one link, not forwarding) gets default routes via its neighbour;
 *   - every other node gets, for each link subnet it is not on and for each
 *     extra address owned by exactly one other node, a route via the first
 *     hop of a shortest path (BFS). Extra addresses held by several nodes
 *     (e.g. a VIP on the LB and on back ends for direct return) are ambiguous
 *     and left to explicit routes.
 */
export function computeAutoRoutes(
  t: Topology,
  byNode: Map<string, PlannedIface[]>,
  forward: Map<string, boolean>,
  extra: Map<string, { cidr: Cidr; dev: string }[]>,
): PlannedRoute[] {
  const routes: PlannedRoute[] = [];
  const addr = (f: PlannedIface, family: 4 | 6) => (family === 4 ? f.v4Cidr : f.v6Cidr).split('/')[0]!;
  const peerOf = (f: PlannedIface) => byNode.get(f.peerNode)!.find((p) => p.name === f.peerIface)!;
  // First hop (our interface) from `from` towards any node in `targets`.
  const firstHop = (from: string, targets: Set<string>): PlannedIface | undefined => {
    const seen = new Set([from]);
    let frontier: { node: string; via: PlannedIface | undefined }[] = [{ node: from, via: undefined }];
    while (frontier.length) {
      const next: typeof frontier = [];
      for (const { node, via } of frontier) {
        for (const f of byNode.get(node)!) {
          if (seen.has(f.peerNode)) continue;
          seen.add(f.peerNode);
          const hop = via ?? f;
          if (targets.has(f.peerNode)) return hop;
          next.push({ node: f.peerNode, via: hop });
        }
      }
      frontier = next;
    }
    return undefined;
  };
  const owners = new Map<string, string[]>();
  for (const [node, list] of extra)
    for (const e of list) owners.set(e.cidr.network, [...(owners.get(e.cidr.network) ?? []), node]);

  for (const n of t.nodes) {
    const mine = byNode.get(n.name)!;
    if (mine.length === 1 && !forward.get(n.name)) {
      const f = mine[0]!;
      for (const family of [4, 6] as const)
        routes.push({ node: n.name, family, to: 'default', via: addr(peerOf(f), family), dev: f.name });
      continue;
    }
    const myLinks = new Set(mine.map((f) => f.link));
    const done = new Set<number>();
    for (const f of byNode.values()) {
      for (const other of f) {
        if (myLinks.has(other.link) || done.has(other.link)) continue;
        done.add(other.link);
        const hop = firstHop(n.name, new Set([other.node, other.peerNode]));
        if (!hop) continue; // unreachable: disconnected graph
        const peer = peerOf(hop);
        routes.push({ node: n.name, family: 4, to: `198.18.${other.link}.0/24`, via: addr(peer, 4), dev: hop.name });
        routes.push({ node: n.name, family: 6, to: `2001:db8:${other.link}::/64`, via: addr(peer, 6), dev: hop.name });
      }
    }
    for (const [network, nodes] of owners) {
      if (nodes.length !== 1 || nodes[0] === n.name) continue;
      const hop = firstHop(n.name, new Set(nodes));
      if (!hop) continue;
      const family = isIPv4(network.split('/')[0]!) ? 4 : 6;
      routes.push({ node: n.name, family, to: network, via: addr(peerOf(hop), family), dev: hop.name });
    }
  }
  return routes;
}
