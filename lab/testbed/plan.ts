/**
 * Turning a topology into a plan, without running any command: link
 * numbering and addresses (link k gets 198.18.k.0/24 and 2001:db8:k::/64),
 * MACs, interface names, which nodes forward, extra addresses and routes.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { assertTestRange, type Cidr, parseCidr } from './addresses.js';
import { computeAutoRoutes } from './routes.js';
import { type NodeSpec, type Topology, validateTopology } from './topology.js';

export interface PlannedIface {
  node: string;
  name: string;
  mac: string;
  v4Cidr: string;
  v6Cidr: string;
  link: number;
  peerNode: string;
  peerIface: string;
  mtu: number | undefined;
}

export interface PlannedRoute {
  node: string;
  family: 4 | 6;
  to: string;
  via: string;
  dev: string | undefined;
}

export interface Plan {
  nodes: NodeSpec[];
  ifaces: PlannedIface[];
  /** per node: which interfaces, in link order */
  byNode: Map<string, PlannedIface[]>;
  forward: Map<string, boolean>;
  extra: Map<string, { cidr: Cidr; dev: string }[]>;
  routes: PlannedRoute[];
}

export function planTopology(t: Topology, autoRoutes: boolean): Plan {
  validateTopology(t);
  const byNode = new Map<string, PlannedIface[]>(t.nodes.map((n) => [n.name, []]));
  const ifaces: PlannedIface[] = [];
  // Default interface names: `to-<peer>` reads well in `ip link` and tcpdump;
  // fall back to eth<n> when it would exceed IFNAMSIZ or repeat (two links
  // between the same pair). Explicit names are reserved first.
  const taken = new Map<string, Set<string>>(t.nodes.map((n) => [n.name, new Set<string>()]));
  for (const l of t.links) {
    for (const [node, name] of [
      [l.a, l.ifA],
      [l.b, l.ifB],
    ] as const) {
      if (name === undefined) continue;
      if (taken.get(node)!.has(name)) throw new Error(`node ${node}: interface name ${name} used twice`);
      taken.get(node)!.add(name);
    }
  }
  const pick = (node: string, peer: string, explicit: string | undefined): string => {
    if (explicit) return explicit;
    const set = taken.get(node)!;
    let name = `to-${peer}`;
    if (name.length > 15 || set.has(name)) {
      let i = 0;
      while (set.has(`eth${i}`)) i++;
      name = `eth${i}`;
    }
    set.add(name);
    return name;
  };
  t.links.forEach((l, i) => {
    const k = i + 1;
    const ia = pick(l.a, l.b, l.ifA);
    const ib = pick(l.b, l.a, l.ifB);
    // Locally administered MACs 02:00:c6:12:<k>:<side>: c6:12 is 198.18, so a
    // MAC in a capture says which link and side it belongs to.
    const mac = (side: number) => `02:00:c6:12:${k.toString(16).padStart(2, '0')}:0${side}`;
    const mk = (node: string, name: string, side: 1 | 2, peerNode: string, peerIface: string): PlannedIface => ({
      node,
      name,
      mac: mac(side),
      v4Cidr: `198.18.${k}.${side}/24`,
      v6Cidr: `2001:db8:${k}::${side}/64`,
      link: k,
      peerNode,
      peerIface,
      mtu: l.mtu,
    });
    const a = mk(l.a, ia, 1, l.b, ib);
    const b = mk(l.b, ib, 2, l.a, ia);
    ifaces.push(a, b);
    byNode.get(l.a)!.push(a);
    byNode.get(l.b)!.push(b);
  });

  const forward = new Map<string, boolean>();
  const extra = new Map<string, { cidr: Cidr; dev: string }[]>();
  for (const n of t.nodes) {
    forward.set(n.name, n.forward ?? (n.role === 'lb' || n.role === 'router' || byNode.get(n.name)!.length > 1));
    const list = (n.addresses ?? []).map((a) => {
      const spec = typeof a === 'string' ? { cidr: a } : a;
      const c = parseCidr(spec.cidr);
      assertTestRange(c, `node ${n.name} address`);
      const dev = spec.dev ?? 'lo';
      if (dev !== 'lo' && !byNode.get(n.name)!.some((f) => f.name === dev))
        throw new Error(`node ${n.name}: address ${spec.cidr} on unknown interface ${dev}`);
      return { cidr: c, dev };
    });
    extra.set(n.name, list);
  }

  const routes: PlannedRoute[] = autoRoutes ? computeAutoRoutes(t, byNode, forward, extra) : [];
  // Explicit routes last, so `ip route replace` lets them override automatic ones.
  for (const n of t.nodes) {
    for (const r of n.routes ?? []) {
      const neighbour = byNode.get(n.name)!.find((f) => f.peerNode === r.via);
      const families: (4 | 6)[] =
        r.to === 'default' ? (neighbour ? [4, 6] : [isIPv4(r.via) ? 4 : 6]) : [parseCidr(r.to).family];
      for (const family of families) {
        const to = r.to === 'default' ? 'default' : parseCidr(r.to).network;
        if (neighbour) {
          const peer = ifaces.find((f) => f.node === r.via && f.name === neighbour.peerIface)!;
          const via = (family === 4 ? peer.v4Cidr : peer.v6Cidr).split('/')[0]!;
          routes.push({ node: n.name, family, to, via, dev: neighbour.name });
        } else if (isIPv4(r.via) || isIPv6(r.via)) {
          routes.push({ node: n.name, family, to, via: r.via, dev: undefined });
        } else {
          throw new Error(`node ${n.name}: route via ${JSON.stringify(r.via)} is neither a linked node nor an address`);
        }
      }
    }
  }
  return { nodes: t.nodes, ifaces, byNode, forward, extra, routes };
}
