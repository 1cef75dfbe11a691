/**
 * Describing a testbed: nodes (one network namespace each), the veth links
 * between them, extra addresses and routes; the star topology most runs use;
 * validation; and loading a description from the CLI's argument.
 */
import { readFileSync } from 'node:fs';

/** An extra address on a node, e.g. a VIP on `lo`. Must lie in 198.18.0.0/15 or 2001:db8::/32. */
export interface AddressSpec {
  /** address with prefix length, e.g. '198.19.0.1/32' or '2001:db8:ffff::1/128' */
  cidr: string;
  /** interface inside the node; default 'lo' */
  dev?: string;
}

export interface RouteSpec {
  /** destination prefix ('198.19.0.0/16', '2001:db8:ffff::/48') or 'default' (both families if via is a node) */
  to: string;
  /** next hop: the name of a directly linked node (its address on the shared link is used) or a literal address */
  via: string;
}

export interface NodeSpec {
  name: string;
  /** free-form; 'lb' and 'router' make the node forward by default */
  role?: string;
  /** ip_forward (v4 and v6); default: role is lb/router or the node has more than one link */
  forward?: boolean;
  /** extra addresses; a plain string means { cidr, dev: 'lo' } */
  addresses?: (string | AddressSpec)[];
  /** extra routes, added after the automatic ones (with `ip route replace`, so they can override) */
  routes?: RouteSpec[];
  /** attach xdp_pass to this node's veth ends (default true); TestbedOptions.passXdp overrides */
  passXdp?: boolean;
}

export interface LinkSpec {
  a: string;
  b: string;
  /** interface names on a's and b's side; default `to-<peer>` (or `eth<n>` if that is too long or taken) */
  ifA?: string;
  ifB?: string;
  /**
   * Both ends. Native XDP on a veth (xdp_pass included) needs the frame to fit
   * one page, i.e. MTU up to about 3500; larger only on interfaces without XDP.
   */
  mtu?: number;
}

export interface Topology {
  name: string;
  nodes: NodeSpec[];
  links: LinkSpec[];
}

/** Suggested VIPs: outside every link subnet, inside the benchmarking ranges. */
export const VIP4 = '198.19.0.1';
export const VIP6 = '2001:db8:ffff::1';

/**
 * client ⟷ lb ⟷ backend1..N, each back end on its own veth to lb.
 * Link numbering: client–lb is link 1 (client 198.18.1.1, lb 198.18.1.2),
 * lb–backend i is link i+1 (lb 198.18.(i+1).1, backend i 198.18.(i+1).2).
 */
export function starTopology(opts: { backends: number; name?: string; vip?: boolean }): Topology {
  const n = opts.backends;
  if (!Number.isInteger(n) || n < 1 || n > 200)
    throw new Error(`starTopology: backends must be an integer 1..200, got ${n}`);
  const nodes: NodeSpec[] = [
    { name: 'client', role: 'client' },
    { name: 'lb', role: 'lb' },
  ];
  // The VIP, when asked for, lives on the LB's loopback; routes to it come from autoRoutes.
  if (opts.vip) nodes[1]!.addresses = [`${VIP4}/32`, `${VIP6}/128`];
  const links: LinkSpec[] = [{ a: 'client', b: 'lb' }];
  for (let i = 1; i <= n; i++) {
    nodes.push({ name: `backend${i}`, role: 'backend' });
    links.push({ a: 'lb', b: `backend${i}` });
  }
  return { name: opts.name ?? `star${n}`, nodes, links };
}

const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const IFACE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/;

/** Checks a topology and throws an Error naming the first problem. Returns it unchanged. */
export function validateTopology(t: Topology): Topology {
  if (!t || typeof t !== 'object') throw new Error('topology must be an object { name, nodes, links }');
  if (!Array.isArray(t.nodes) || t.nodes.length === 0) throw new Error('topology.nodes must be a non-empty array');
  if (!Array.isArray(t.links)) throw new Error('topology.links must be an array');
  if (t.links.length > 254) throw new Error('at most 254 links (one 198.18.k.0/24 each)');
  const names = new Set<string>();
  for (const n of t.nodes) {
    if (!NODE_RE.test(n?.name ?? ''))
      throw new Error(`bad node name ${JSON.stringify(n?.name)} (letters, digits, _ -, max 32)`);
    if (names.has(n.name)) throw new Error(`duplicate node ${n.name}`);
    names.add(n.name);
  }
  for (const [i, l] of t.links.entries()) {
    if (!names.has(l?.a) || !names.has(l?.b)) throw new Error(`link ${i + 1}: unknown node in ${JSON.stringify(l)}`);
    if (l.a === l.b) throw new Error(`link ${i + 1}: a node cannot link to itself (${l.a})`);
    for (const f of [l.ifA, l.ifB]) {
      if (f !== undefined && (!IFACE_RE.test(f) || f === 'lo'))
        throw new Error(`link ${i + 1}: bad interface name ${JSON.stringify(f)}`);
    }
    if (l.mtu !== undefined && (!Number.isInteger(l.mtu) || l.mtu < 68 || l.mtu > 65535))
      throw new Error(`link ${i + 1}: bad mtu ${l.mtu}`);
  }
  return t;
}

/** 'star', 'star:N', a path to a JSON file, or inline JSON. */
export function loadTopology(arg: string): Topology {
  const star = /^star(?::(\d+))?$/.exec(arg);
  if (star) return starTopology({ backends: Number(star[1] ?? 2) });
  const text = arg.trimStart().startsWith('{') ? arg : readFileSync(arg, 'utf8');
  return validateTopology(JSON.parse(text) as Topology);
}
