/**
 * Network-namespace testbed: builds a small network of "hosts" (one network
 * namespace each) joined by point-to-point veth links, for the e2e tests, the
 * demo and the benchmarks. The CLI in scripts/testbed is a thin wrapper
 * around runCli() at the bottom of this file.
 *
 * Shape of a testbed:
 *   - a node is a namespace named `<prefix>-<node>`, prefix = `bt-<id>`;
 *   - a link is a veth pair; link number k (1-based, in description order)
 *     gets 198.18.k.0/24 and 2001:db8:k::/64 (k written with the same decimal
 *     digits in both, so "link 12" is 198.18.12.x and 2001:db8:12::x), side a
 *     takes .1/::1 and side b .2/::2. 198.19.0.0/16 and 2001:db8:ffff::/48 are
 *     never allocated to links: use them for extra addresses (VIPs).
 *   - every link is dual stack; IPv6 addresses are added `nodad` (and DAD is
 *     off in every namespace) so they are usable at once.
 *   - routes are computed from the graph (see autoRoutes), so plain routing
 *     between any two nodes works; forwarding nodes (role lb/router, or more
 *     than one link) have ip_forward on for both families.
 *
 * Why veth pairs and no bridge: baton's XDP program on the LB redirects frames
 * between interfaces by ifindex (bpf_redirect / devmap). Each back end on its
 * own veth gives every back end its own ifindex and MAC to aim at, per-link
 * XDP attach points on both ends, and no bridge in the path (a Linux bridge
 * has no native XDP, so frames would go through the slow generic path). It
 * also makes "a second LB" or "a router in front" just more nodes and links.
 *
 * Hygiene, all done here so no test has to remember it:
 *   - TX checksum offload off on every veth: a locally sent packet otherwise
 *     leaves with CHECKSUM_PARTIAL, i.e. an incomplete checksum in the packet
 *     bytes, which an XDP program on the receiving veth sees as wrong.
 *   - build/bpf/xdp_pass.o in native mode on every veth end (unless the caller
 *     opts an interface out, e.g. the LB's, which get baton's own program): a
 *     veth only delivers XDP_REDIRECTed frames to a peer that runs XDP.
 *   - rp_filter off everywhere (the LB forwards asymmetric traffic), loopback up.
 *   - cleanup on destroy(), on process exit, SIGINT/SIGTERM/SIGHUP and uncaught
 *     exceptions; namespaces left by a crashed run are found by their
 *     `bt-` prefix and removed when their owner pid (recorded in
 *     /run/baton-testbed/<prefix>/owner.json) is dead.
 */
import { execFile, execFileSync, spawn as cpSpawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ipv4Bytes, ipv6Bytes } from '../../control/net/addr.js';

// ---------------------------------------------------------------------------
// Topology description
// ---------------------------------------------------------------------------

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
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`starTopology: backends must be an integer 1..200, got ${n}`);
  const nodes: NodeSpec[] = [{ name: 'client', role: 'client' }, { name: 'lb', role: 'lb' }];
  // The VIP, when asked for, lives on the LB's loopback; routes to it come from autoRoutes.
  if (opts.vip) nodes[1]!.addresses = [`${VIP4}/32`, `${VIP6}/128`];
  const links: LinkSpec[] = [{ a: 'client', b: 'lb' }];
  for (let i = 1; i <= n; i++) {
    nodes.push({ name: `backend${i}`, role: 'backend' });
    links.push({ a: 'lb', b: `backend${i}` });
  }
  return { name: opts.name ?? `star${n}`, nodes, links };
}

// ---------------------------------------------------------------------------
// What a built testbed exposes
// ---------------------------------------------------------------------------

export interface PeerInfo {
  node: string;
  iface: string;
  ifindex: number;
  mac: string;
  v4: string;
  v6: string;
}

export interface IfaceInfo {
  name: string;
  /** ifindex inside the node's namespace (what bpf_redirect / XDP attach want) */
  ifindex: number;
  mac: string;
  /** address without / with prefix length */
  v4: string;
  v4Cidr: string;
  v6: string;
  v6Cidr: string;
  /** link number k: subnet 198.18.k.0/24, 2001:db8:k::/64 */
  link: number;
  peer: PeerInfo;
  /** whether the testbed attached xdp_pass to it */
  passXdp: boolean;
}

export interface NodeInfo {
  name: string;
  role: string | undefined;
  /** namespace name */
  ns: string;
  forward: boolean;
  ifaces: IfaceInfo[];
  extraAddresses: { cidr: string; dev: string }[];
  /** address of the first interface (handy for leaf nodes such as client and back ends) */
  v4: string;
  v6: string;
}

export interface TestbedOptions {
  /** `bt-<id>`; default `bt-<6 random hex>` */
  prefix?: string;
  /** decide per interface whether xdp_pass is attached (default: NodeSpec.passXdp ?? true) */
  passXdp?: (node: string, iface: string, role: string | undefined) => boolean;
  /** compute routes from the graph (default true) */
  autoRoutes?: boolean;
  /** remove stale namespaces of dead runs first (default true) */
  cleanStale?: boolean;
  /** path of the pass program; default <repo>/build/bpf/xdp_pass.o */
  xdpPassObj?: string;
  /**
   * Survive the creating process: no exit handlers, and the owner marker says
   * "persistent" so stale cleanup leaves it alone. Used by `scripts/testbed up`;
   * remove with `scripts/testbed down <prefix>`.
   */
  persistent?: boolean;
}

export interface ExecOptions {
  /** bind this node's bpffs at /sys/fs/bpf for the command (see bpffsPath) */
  bpffs?: boolean;
  /** default 60 s */
  timeoutMs?: number;
  /** written to stdin */
  input?: string;
  /** throw CommandError on non-zero exit (default true) */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** exit code; -1 if killed by a signal or timeout */
  code: number;
}

export interface NsSpawnOptions extends Omit<SpawnOptions, 'detached'> {
  bpffs?: boolean;
}

/** A command that failed: says which one, how, and what it printed on stderr. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
    how: string,
  ) {
    const err = stderr.trim();
    super(`\`${argv.map(shellQuote).join(' ')}\` ${how}${err ? `: ${err}` : ''}`);
    this.name = 'CommandError';
  }
}

// ---------------------------------------------------------------------------
// Constants and small helpers
// ---------------------------------------------------------------------------

/** All testbed namespaces start with this; stale cleanup only ever looks at these. */
export const NS_PREFIX = 'bt-';
/** Owner markers and per-node bpffs mounts: /run/baton-testbed/<prefix>/{owner.json,bpffs/<node>} */
export const RUN_DIR = '/run/baton-testbed';
/** Where `ip netns add` puts its handles. */
const NETNS_DIR = '/run/netns';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEFAULT_XDP_PASS_OBJ = `${REPO_ROOT}build/bpf/xdp_pass.o`;

const PREFIX_RE = /^bt-[A-Za-z0-9]{1,16}$/;
const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const IFACE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/;
/** `bt-<id>-<node>`: the id has no dash, so the prefix is everything up to the second dash. */
const NS_NAME_RE = /^(bt-[A-Za-z0-9]+)-(.+)$/;

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command (argv, no shell); rejects with CommandError unless check is false. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 60_000, env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr, code: 0 });
        const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        const code = typeof e.code === 'number' ? e.code : -1;
        if (opts.check === false && typeof e.code !== 'string') return resolve({ stdout, stderr, code });
        const how =
          typeof e.code === 'string'
            ? `could not start (${e.code})`
            : e.killed
              ? `timed out after ${opts.timeoutMs ?? 60_000} ms`
              : e.signal
                ? `was killed by ${e.signal}`
                : `failed (exit ${code})`;
        reject(new CommandError(argv, e.code ?? null, stdout, stderr, how));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous variant for exit paths; never throws, returns stdout or null. */
function runSync(argv: readonly string[]): string | null {
  const [file, ...args] = argv;
  try {
    return execFileSync(file!, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Address arithmetic (just enough for validation and route prefixes)
// ---------------------------------------------------------------------------

const v4ToBig = (a: string): bigint => BigInt(`0x${ipv4Bytes(a).toString('hex')}`);
const v6ToBig = (a: string): bigint => BigInt(`0x${ipv6Bytes(a).toString('hex')}`);

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}

function bigToV6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  // Compress the longest run (>= 2) of zero groups, as `ip` prints it.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

interface Cidr {
  family: 4 | 6;
  addr: string;
  len: number;
  /** network prefix with host bits cleared, e.g. 198.19.0.0/16 */
  network: string;
}

function parseCidr(s: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  const addr = m?.[1] ?? s;
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (!family) throw new Error(`not an IP address or prefix: ${JSON.stringify(s)}`);
  const bits = family === 4 ? 32 : 128;
  const len = m ? Number(m[2]) : bits;
  if (len > bits) throw new Error(`prefix length out of range: ${s}`);
  const n = family === 4 ? v4ToBig(addr) : v6ToBig(addr);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  const net = n & mask;
  return { family, addr, len, network: `${family === 4 ? bigToV4(net) : bigToV6(net)}/${len}` };
}

/** Testbeds only use the benchmarking ranges, so they can never shadow a real network. */
function assertTestRange(c: Cidr, what: string): void {
  const ok =
    c.family === 4
      ? c.len >= 15 && v4ToBig(c.addr) >> 17n === v4ToBig('198.18.0.0') >> 17n
      : c.len >= 32 && v6ToBig(c.addr) >> 96n === 0x20010db8n;
  if (!ok) throw new Error(`${what}: ${c.addr}/${c.len} is outside 198.18.0.0/15 and 2001:db8::/32`);
}

// ---------------------------------------------------------------------------
// Topology validation and planning (pure: no commands run here)
// ---------------------------------------------------------------------------

interface PlannedIface {
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

interface PlannedRoute {
  node: string;
  family: 4 | 6;
  to: string;
  via: string;
  dev: string | undefined;
}

interface Plan {
  nodes: NodeSpec[];
  ifaces: PlannedIface[];
  /** per node: which interfaces, in link order */
  byNode: Map<string, PlannedIface[]>;
  forward: Map<string, boolean>;
  extra: Map<string, { cidr: Cidr; dev: string }[]>;
  routes: PlannedRoute[];
}

/** Checks a topology and throws an Error naming the first problem. Returns it unchanged. */
export function validateTopology(t: Topology): Topology {
  if (!t || typeof t !== 'object') throw new Error('topology must be an object { name, nodes, links }');
  if (!Array.isArray(t.nodes) || t.nodes.length === 0) throw new Error('topology.nodes must be a non-empty array');
  if (!Array.isArray(t.links)) throw new Error('topology.links must be an array');
  if (t.links.length > 254) throw new Error('at most 254 links (one 198.18.k.0/24 each)');
  const names = new Set<string>();
  for (const n of t.nodes) {
    if (!NODE_RE.test(n?.name ?? '')) throw new Error(`bad node name ${JSON.stringify(n?.name)} (letters, digits, _ -, max 32)`);
    if (names.has(n.name)) throw new Error(`duplicate node ${n.name}`);
    names.add(n.name);
  }
  for (const [i, l] of t.links.entries()) {
    if (!names.has(l?.a) || !names.has(l?.b)) throw new Error(`link ${i + 1}: unknown node in ${JSON.stringify(l)}`);
    if (l.a === l.b) throw new Error(`link ${i + 1}: a node cannot link to itself (${l.a})`);
    for (const f of [l.ifA, l.ifB]) {
      if (f !== undefined && (!IFACE_RE.test(f) || f === 'lo')) throw new Error(`link ${i + 1}: bad interface name ${JSON.stringify(f)}`);
    }
    if (l.mtu !== undefined && (!Number.isInteger(l.mtu) || l.mtu < 68 || l.mtu > 65535)) throw new Error(`link ${i + 1}: bad mtu ${l.mtu}`);
  }
  return t;
}

function planTopology(t: Topology, autoRoutes: boolean): Plan {
  validateTopology(t);
  const byNode = new Map<string, PlannedIface[]>(t.nodes.map((n) => [n.name, []]));
  const ifaces: PlannedIface[] = [];
  // Default interface names: `to-<peer>` reads well in `ip link` and tcpdump;
  // fall back to eth<n> when it would exceed IFNAMSIZ or repeat (two links
  // between the same pair). Explicit names are reserved first.
  const taken = new Map<string, Set<string>>(t.nodes.map((n) => [n.name, new Set<string>()]));
  for (const l of t.links) {
    for (const [node, name] of [[l.a, l.ifA], [l.b, l.ifB]] as const) {
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
      if (dev !== 'lo' && !byNode.get(n.name)!.some((f) => f.name === dev)) throw new Error(`node ${n.name}: address ${spec.cidr} on unknown interface ${dev}`);
      return { cidr: c, dev };
    });
    extra.set(n.name, list);
  }

  const routes: PlannedRoute[] = autoRoutes ? computeAutoRoutes(t, byNode, forward, extra) : [];
  // Explicit routes last, so `ip route replace` lets them override automatic ones.
  for (const n of t.nodes) {
    for (const r of n.routes ?? []) {
      const neighbour = byNode.get(n.name)!.find((f) => f.peerNode === r.via);
      const families: (4 | 6)[] = r.to === 'default' ? (neighbour ? [4, 6] : [isIPv4(r.via) ? 4 : 6]) : [parseCidr(r.to).family];
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

/**
 * Routes so that plain routing works between any two nodes:
 *   - a leaf (one link, not forwarding) gets default routes via its neighbour;
 *   - every other node gets, for each link subnet it is not on and for each
 *     extra address owned by exactly one other node, a route via the first
 *     hop of a shortest path (BFS). Extra addresses held by several nodes
 *     (e.g. a VIP on the LB and on back ends for direct return) are ambiguous
 *     and left to explicit routes.
 */
function computeAutoRoutes(
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
  for (const [node, list] of extra) for (const e of list) owners.set(e.cidr.network, [...(owners.get(e.cidr.network) ?? []), node]);

  for (const n of t.nodes) {
    const mine = byNode.get(n.name)!;
    if (mine.length === 1 && !forward.get(n.name)) {
      const f = mine[0]!;
      for (const family of [4, 6] as const) routes.push({ node: n.name, family, to: 'default', via: addr(peerOf(f), family), dev: f.name });
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

// ---------------------------------------------------------------------------
// Ownership markers and stale cleanup
// ---------------------------------------------------------------------------

export interface OwnerMarker {
  prefix: string;
  pid: number;
  /** field 22 of /proc/<pid>/stat when the marker was written: guards against pid reuse */
  startTime?: string;
  /** created by `scripts/testbed up`: not stale while its namespaces exist */
  persistent?: boolean;
  topology?: string;
  created?: string;
}

export function markerPath(prefix: string): string {
  return `${RUN_DIR}/${prefix}/owner.json`;
}

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parens; fields after the last ')' are stable.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(m: OwnerMarker): boolean {
  const st = procStartTime(m.pid);
  if (st === undefined) return false;
  return m.startTime === undefined || m.startTime === st;
}

function readMarker(prefix: string): OwnerMarker | undefined {
  try {
    return JSON.parse(readFileSync(markerPath(prefix), 'utf8')) as OwnerMarker;
  } catch {
    return undefined;
  }
}

function writeMarker(m: OwnerMarker): void {
  mkdirSync(`${RUN_DIR}/${m.prefix}`, { recursive: true });
  writeFileSync(markerPath(m.prefix), `${JSON.stringify(m, null, 2)}\n`);
}

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

export interface TestbedListing {
  prefix: string;
  namespaces: string[];
  owner: OwnerMarker | undefined;
  state: 'live' | 'persistent' | 'stale';
}

/** Every testbed on this machine, from the namespace names and the markers. */
export function listTestbeds(): TestbedListing[] {
  // Namespaces first, markers second: a run writes its marker before it
  // creates any namespace, so a namespace seen here always has its marker
  // visible by the time we look for it.
  const byPrefix = new Map<string, string[]>();
  for (const ns of listNetns()) {
    const m = NS_NAME_RE.exec(ns);
    if (m) byPrefix.set(m[1]!, [...(byPrefix.get(m[1]!) ?? []), ns]);
  }
  let dirs: string[] = [];
  try {
    dirs = readdirSync(RUN_DIR).filter((d) => PREFIX_RE.test(d));
  } catch {
    /* no run dir yet */
  }
  for (const d of dirs) if (!byPrefix.has(d)) byPrefix.set(d, []);
  return [...byPrefix].sort(([a], [b]) => a.localeCompare(b)).map(([prefix, namespaces]) => {
    const owner = readMarker(prefix);
    const state: TestbedListing['state'] = owner && ownerAlive(owner) ? 'live' : owner?.persistent && namespaces.length ? 'persistent' : 'stale';
    return { prefix, namespaces: namespaces.sort(), owner, state };
  });
}

/** Bpffs instances we mounted under /run/baton-testbed/<prefix>/, deepest first. */
function bpffsMounts(prefix: string): string[] {
  const root = `${RUN_DIR}/${prefix}/`;
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((p) => p.startsWith(root))
      .sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

/**
 * Tears down everything of one prefix, synchronously and best effort: kills
 * every process inside its namespaces (a live process would keep a namespace,
 * and with it the veths and any XDP program, alive after `ip netns del`),
 * deletes the namespaces, unmounts its bpffs instances, removes its run dir.
 * Returns what could not be removed.
 */
function teardownPrefixSync(prefix: string, namespaces: readonly string[]): string[] {
  for (const ns of namespaces) {
    for (const pid of (runSync(['ip', 'netns', 'pids', ns]) ?? '').split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const ns of namespaces) runSync(['ip', 'netns', 'del', ns]);
  for (const mnt of bpffsMounts(prefix)) runSync(['umount', '-l', mnt]);
  try {
    rmSync(`${RUN_DIR}/${prefix}`, { recursive: true, force: true });
  } catch {
    /* reported below if the namespaces remain */
  }
  const left = new Set(listNetns());
  return namespaces.filter((ns) => left.has(ns));
}

/**
 * Removes testbeds whose owner is dead (crashed runs). A live run's testbed
 * is never touched; persistent ones (`scripts/testbed up`) only with `all`.
 * Returns the prefixes removed.
 */
export function cleanStale(opts: { all?: boolean } = {}): string[] {
  const removed: string[] = [];
  for (const tb of listTestbeds()) {
    if (tb.state === 'live' || (tb.state === 'persistent' && !opts.all)) continue;
    teardownPrefixSync(tb.prefix, tb.namespaces);
    removed.push(tb.prefix);
  }
  return removed;
}

/** Removes one testbed by prefix (scripts/testbed down). Refuses a live run's unless force. */
export function destroyPrefix(prefix: string, opts: { force?: boolean } = {}): void {
  const tb = listTestbeds().find((t) => t.prefix === prefix);
  if (!tb) throw new Error(`no testbed with prefix ${prefix}`);
  if (tb.state === 'live' && !opts.force && tb.owner?.pid !== process.pid) {
    throw new Error(`testbed ${prefix} belongs to live process ${tb.owner?.pid}; it cleans up after itself`);
  }
  const left = teardownPrefixSync(prefix, tb.namespaces);
  if (left.length) throw new Error(`could not delete namespaces: ${left.join(' ')}`);
}

// ---------------------------------------------------------------------------
// Exit handlers: one set per process, covering every live Testbed
// ---------------------------------------------------------------------------

const live = new Set<Testbed>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function cleanupAllSync(): void {
  for (const tb of [...live]) tb.destroySync();
}

function onUncaught(): void {
  // Only when the exception will kill the process. If someone handles
  // uncaughtException (node:test does, to report it and go on), the process
  // lives on with its testbeds; 'exit' still covers the end.
  if (process.listenerCount('uncaughtException') === 0) cleanupAllSync();
}

function onSignal(sig: NodeJS.Signals): void {
  // If nobody else handles this signal, restore the default (die by it), so
  // the exit status still says "killed by SIGINT" to the shell / test runner.
  // (Asked before cleanup: the last destroySync removes our listeners.)
  const alone = process.listenerCount(sig) === 1;
  cleanupAllSync();
  if (alone) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

function track(tb: Testbed): void {
  if (live.size === 0) {
    process.on('exit', cleanupAllSync);
    // Monitor, not handler: we clean up but keep Node's default crash behaviour.
    process.on('uncaughtExceptionMonitor', onUncaught);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  live.add(tb);
}

function untrack(tb: Testbed): void {
  if (!live.delete(tb) || live.size) return;
  process.removeListener('exit', cleanupAllSync);
  process.removeListener('uncaughtExceptionMonitor', onUncaught);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}

// ---------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------

export type Privilege = { ok: true } | { ok: false; reason: string };

/**
 * Whether this process can build a testbed, with a one-line reason if not,
 * for `test(..., { skip: priv.ok ? false : priv.reason })`.
 */
export function canRunPrivileged(): Privilege {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces, veth, XDP)' };
  for (const [bin, pkg] of [['ip', 'iproute2'], ['ethtool', 'ethtool']] as const) {
    try {
      execFileSync(bin, bin === 'ip' ? ['-V'] : ['--version'], { stdio: 'ignore' });
    } catch {
      return { ok: false, reason: `no \`${bin}\` binary (install ${pkg})` };
    }
  }
  // A probe name outside the bt- space, so no concurrent stale cleanup can mistake it for a testbed.
  const probe = `btprobe-${process.pid}-${randomBytes(2).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const msg = (e as { stderr?: Buffer }).stderr?.toString().trim() || String(e);
    return { ok: false, reason: `cannot create a network namespace: ${msg.split('\n')[0]}` };
  }
  runSync(['ip', 'netns', 'del', probe]);
  return { ok: true };
}

// ---------------------------------------------------------------------------
// The testbed
// ---------------------------------------------------------------------------

/** Builds the topology; on any failure everything created so far is removed and the error rethrown. */
export async function createTestbed(topology: Topology, opts: TestbedOptions = {}): Promise<Testbed> {
  const plan = planTopology(topology, opts.autoRoutes ?? true);
  const xdpObj = opts.xdpPassObj ?? DEFAULT_XDP_PASS_OBJ;
  if (!existsSync(xdpObj)) throw new Error(`${xdpObj} is missing: run \`make bpf\` first`);
  if (opts.cleanStale ?? true) cleanStale();

  let prefix = opts.prefix;
  if (prefix !== undefined) {
    if (/^[A-Za-z0-9]{1,16}$/.test(prefix)) prefix = `${NS_PREFIX}${prefix}`;
    if (!PREFIX_RE.test(prefix)) throw new Error(`bad prefix ${JSON.stringify(opts.prefix)}: want bt-<letters/digits, max 16>`);
    if (listTestbeds().some((t) => t.prefix === prefix)) throw new Error(`prefix ${prefix} is in use (scripts/testbed ls)`);
  } else {
    const used = new Set(listTestbeds().map((t) => t.prefix));
    do prefix = `${NS_PREFIX}${randomBytes(3).toString('hex')}`;
    while (used.has(prefix));
  }

  const tb = new Testbed(prefix, topology, plan, xdpObj, opts);
  // Marker before the first namespace (see listTestbeds), and never
  // "persistent" until fully built, so a half-built CLI testbed is stale.
  writeMarker({
    prefix,
    pid: process.pid,
    startTime: procStartTime(process.pid),
    topology: topology.name,
    created: new Date().toISOString(),
  });
  if (!opts.persistent) track(tb);
  try {
    await tb.build(opts);
  } catch (e) {
    await tb.destroy().catch(() => undefined);
    throw e;
  }
  if (opts.persistent) writeMarker({ ...readMarker(prefix)!, persistent: true });
  return tb;
}

export class Testbed {
  readonly nodes = new Map<string, NodeInfo>();
  private readonly children = new Set<ChildProcess>();
  private readonly bpffsReady = new Set<string>();
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  /** use createTestbed() */
  constructor(
    readonly prefix: string,
    readonly topology: Topology,
    private readonly plan: Plan,
    private readonly xdpObj: string,
    private readonly opts: TestbedOptions,
  ) {}

  /** namespace names, in node order */
  get namespaces(): string[] {
    return this.plan.nodes.map((n) => this.nsName(n.name));
  }

  private nsName(node: string): string {
    if (!this.plan.byNode.has(node)) throw new Error(`testbed ${this.prefix}: no node ${JSON.stringify(node)}`);
    return `${this.prefix}-${node}`;
  }

  node(name: string): NodeInfo {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`testbed ${this.prefix}: no node ${JSON.stringify(name)}`);
    return n;
  }

  /** namespace of a node */
  ns(node: string): string {
    return this.nsName(node);
  }

  /** The interface of `node` on the link to `peer`. */
  iface(node: string, peer: string): IfaceInfo {
    const f = this.node(node).ifaces.find((i) => i.peer.node === peer);
    if (!f) throw new Error(`testbed ${this.prefix}: ${node} has no link to ${peer}`);
    return f;
  }

  /** Runs `ip -n <ns> ...args`. */
  ip(node: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(['ip', '-n', this.nsName(node), ...args], opts);
  }

  /**
   * Host directory of this node's own bpffs instance. Pins made by one
   * command (a daemon) are visible to later ones (a CLI, a test), as on a
   * real host; every node has its own, so nodes do not see each other's pins.
   */
  bpffsPath(node: string): string {
    this.nsName(node); // validates the name
    return `${RUN_DIR}/${this.prefix}/bpffs/${node}`;
  }

  private ensureBpffs(node: string): string {
    const dir = this.bpffsPath(node);
    if (!this.bpffsReady.has(node)) {
      mkdirSync(dir, { recursive: true });
      if (!bpffsMounts(this.prefix).includes(dir)) execFileSync('mount', ['-t', 'bpf', 'bpf', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      this.bpffsReady.add(node);
    }
    return dir;
  }

  /**
   * argv prefix that runs a command inside the node's namespace. `ip netns
   * exec` gives the command a private mount namespace with a fresh /sys, in
   * which /sys/fs/bpf is empty and not a bpffs; with bpffs: true the prefix
   * first bind-mounts the node's bpffs instance there (inside that private
   * mount namespace, so it is redone for every command).
   *   [...tb.nsArgv('lb', { bpffs: true }), 'bpftool', 'map', 'show']
   */
  nsArgv(node: string, opts: { bpffs?: boolean } = {}): string[] {
    const argv = ['ip', 'netns', 'exec', this.ns(node)];
    if (!opts.bpffs) return argv;
    // $1 is the directory; the command follows as "$@" (never parsed by the shell).
    return [...argv, 'sh', '-ec', 'mount --bind "$1" /sys/fs/bpf; shift; exec "$@"', 'baton-ns', this.ensureBpffs(node)];
  }

  /** nsArgv as a shell-quoted string, for scripts and printed instructions. */
  shellPrefix(node: string, opts: { bpffs?: boolean } = {}): string {
    return this.nsArgv(node, opts).map(shellQuote).join(' ');
  }

  /** Runs a command in the node's namespace and waits for it. Throws CommandError on failure unless check: false. */
  exec(node: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([...this.nsArgv(node, opts), cmd, ...args], opts);
  }

  /**
   * Starts a long-running command in the node's namespace (a server, a
   * daemon). It gets its own process group, which destroy() kills (SIGTERM,
   * then SIGKILL); anything else left in the namespace is SIGKILLed too.
   * stdout and stderr are pipes unless opts.stdio says otherwise: read them
   * (a full pipe blocks the child) or pass stdio: 'ignore' / 'inherit'.
   */
  spawn(node: string, cmd: string, args: readonly string[] = [], opts: NsSpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error(`testbed ${this.prefix} is destroyed`);
    const { bpffs, ...rest } = opts;
    const [file, ...pre] = this.nsArgv(node, { bpffs });
    const child = cpSpawn(file!, [...pre, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...rest, detached: true });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  // -- building ------------------------------------------------------------

  /** @internal called once by createTestbed */
  async build(opts: TestbedOptions): Promise<void> {
    const { plan } = this;
    const nodes = plan.nodes;

    // 1. Namespaces, and per-namespace settings that must precede the
    //    interfaces: DAD off by default (so link-local and global IPv6
    //    addresses are usable at once), rp_filter off, forwarding.
    await Promise.all(nodes.map((n) => run(['ip', 'netns', 'add', this.nsName(n.name)])));
    await Promise.all(
      nodes.map(async (n) => {
        await this.ip(n.name, ['link', 'set', 'dev', 'lo', 'up']);
        const fwd = plan.forward.get(n.name) ? '1' : '0';
        await this.exec(n.name, 'sysctl', [
          '-q', '-w',
          'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
          'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
          `net.ipv4.ip_forward=${fwd}`, `net.ipv6.conf.all.forwarding=${fwd}`,
        ]);
      }),
    );

    // 2. veth pairs, created directly inside the two namespaces (no
    //    temporary names in the root namespace that could collide).
    for (let i = 0; i < plan.ifaces.length; i += 2) {
      const a = plan.ifaces[i]!;
      const b = plan.ifaces[i + 1]!;
      // MTU at creation: once a peer runs XDP, veth caps the MTU it accepts.
      const mtu = a.mtu ? ['mtu', String(a.mtu)] : [];
      await this.ip(a.node, ['link', 'add', a.name, 'address', a.mac, ...mtu, 'type', 'veth', 'peer', 'name', b.name, 'address', b.mac, ...mtu, 'netns', this.nsName(b.node)]);
    }

    // 3. Per interface: addresses, up, checksum offload off, xdp_pass.
    const wantPass = (node: NodeSpec, iface: string) =>
      opts.passXdp ? opts.passXdp(node.name, iface, node.role) : (node.passXdp ?? true);
    const passed = new Set<string>();
    await Promise.all(
      nodes.map(async (n) => {
        for (const f of plan.byNode.get(n.name)!) {
          await this.ip(n.name, ['addr', 'add', f.v4Cidr, 'dev', f.name]);
          await this.ip(n.name, ['-6', 'addr', 'add', f.v6Cidr, 'dev', f.name, 'nodad']);
          await this.exec(n.name, 'sysctl', ['-q', '-w', `net/ipv4/conf/${f.name}/rp_filter=0`]);
          await this.exec(n.name, 'ethtool', ['-K', f.name, 'tx', 'off']);
          if (wantPass(n, f.name)) {
            await this.ip(n.name, ['link', 'set', 'dev', f.name, 'xdpdrv', 'obj', this.xdpObj, 'sec', 'xdp']);
            passed.add(`${n.name}/${f.name}`);
          }
          await this.ip(n.name, ['link', 'set', 'dev', f.name, 'up']);
        }
        for (const e of plan.extra.get(n.name)!) {
          await this.ip(n.name, [`-${e.cidr.family}`, 'addr', 'add', `${e.cidr.addr}/${e.cidr.len}`, 'dev', e.dev, ...(e.cidr.family === 6 ? ['nodad'] : [])]);
        }
      }),
    );

    // 4. Routes (after every address exists, so next hops are on-link).
    for (const r of plan.routes) {
      await this.ip(r.node, [`-${r.family}`, 'route', 'replace', r.to, 'via', r.via, ...(r.dev ? ['dev', r.dev] : [])]);
    }

    // 5. Read back what the kernel assigned (ifindex) and confirm the MACs.
    const links = new Map<string, { ifname: string; ifindex: number; address: string }[]>();
    await Promise.all(
      nodes.map(async (n) => {
        const { stdout } = await this.ip(n.name, ['-j', 'link', 'show']);
        links.set(n.name, JSON.parse(stdout) as { ifname: string; ifindex: number; address: string }[]);
      }),
    );
    const kernel = (node: string, name: string) => {
      const l = links.get(node)!.find((x) => x.ifname === name);
      if (!l) throw new Error(`testbed ${this.prefix}: ${name} missing in ${node} after creation`);
      return l;
    };
    const bare = (c: string) => c.split('/')[0]!;
    for (const n of nodes) {
      const ifaces: IfaceInfo[] = plan.byNode.get(n.name)!.map((f) => {
        const k = kernel(n.name, f.name);
        const p = kernel(f.peerNode, f.peerIface);
        const pf = plan.byNode.get(f.peerNode)!.find((x) => x.name === f.peerIface)!;
        return {
          name: f.name,
          ifindex: k.ifindex,
          mac: k.address,
          v4: bare(f.v4Cidr),
          v4Cidr: f.v4Cidr,
          v6: bare(f.v6Cidr),
          v6Cidr: f.v6Cidr,
          link: f.link,
          peer: { node: f.peerNode, iface: f.peerIface, ifindex: p.ifindex, mac: p.address, v4: bare(pf.v4Cidr), v6: bare(pf.v6Cidr) },
          passXdp: passed.has(`${n.name}/${f.name}`),
        };
      });
      this.nodes.set(n.name, {
        name: n.name,
        role: n.role,
        ns: this.nsName(n.name),
        forward: plan.forward.get(n.name)!,
        ifaces,
        extraAddresses: plan.extra.get(n.name)!.map((e) => ({ cidr: `${e.cidr.addr}/${e.cidr.len}`, dev: e.dev })),
        v4: ifaces[0]?.v4 ?? '',
        v6: ifaces[0]?.v6 ?? '',
      });
    }
  }

  /** A JSON-friendly summary (what `scripts/testbed up` prints). */
  describe(): { prefix: string; topology: string; nodes: NodeInfo[] } {
    return { prefix: this.prefix, topology: this.topology.name, nodes: [...this.nodes.values()] };
  }

  // -- teardown ------------------------------------------------------------

  /** Kills spawned processes, deletes the namespaces, unmounts bpffs. Idempotent; safe to call concurrently. */
  destroy(): Promise<void> {
    this.destroying ??= this.destroyAsync();
    return this.destroying;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  private async destroyAsync(): Promise<void> {
    this.destroyed = true;
    // Give our own children a chance to exit cleanly (flush output, detach
    // programs), then make sure.
    const waiting = [...this.children].map(
      (c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        killGroup(c, 'SIGTERM');
      }),
    );
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([Promise.all(waiting), timeout]);
    for (const c of this.children) killGroup(c, 'SIGKILL');
    const left = teardownPrefixSync(this.prefix, this.namespaces);
    untrack(this);
    if (left.length) throw new Error(`testbed ${this.prefix}: could not delete namespaces ${left.join(' ')}`);
  }

  /** Synchronous teardown for exit paths (process 'exit', signals); best effort, idempotent. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children) killGroup(c, 'SIGKILL');
    teardownPrefixSync(this.prefix, this.namespaces);
    untrack(this);
  }
}

function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined) return;
  try {
    process.kill(-c.pid, sig); // detached: the child leads its own process group
  } catch {
    try {
      c.kill(sig);
    } catch {
      /* gone */
    }
  }
}

// ---------------------------------------------------------------------------
// CLI (scripts/testbed)
// ---------------------------------------------------------------------------

/** 'star', 'star:N', a path to a JSON file, or inline JSON. */
export function loadTopology(arg: string): Topology {
  const star = /^star(?::(\d+))?$/.exec(arg);
  if (star) return starTopology({ backends: Number(star[1] ?? 2) });
  const text = arg.trimStart().startsWith('{') ? arg : readFileSync(arg, 'utf8');
  return validateTopology(JSON.parse(text) as Topology);
}

const USAGE = `usage: scripts/testbed <command>
  up <topology> [--prefix P] [--json]   build and leave running; topology: star | star:N | file.json | '{json}'
  down <prefix>                         remove a testbed
  clean [--all]                         remove stale testbeds (--all: also ones made by \`up\`)
  ls                                    list testbeds`;

export async function runCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    if (i < 0) return false;
    rest.splice(i, 1);
    return true;
  };
  const option = (name: string) => {
    const i = rest.indexOf(name);
    if (i < 0) return undefined;
    const v = rest[i + 1];
    if (v === undefined) throw new Error(`${name} needs a value`);
    rest.splice(i, 2);
    return v;
  };
  switch (cmd) {
    case 'up': {
      const prefix = option('--prefix');
      const json = flag('--json');
      if (rest.length !== 1) throw new Error(USAGE);
      const priv = canRunPrivileged();
      if (!priv.ok) throw new Error(priv.reason);
      const tb = await createTestbed(loadTopology(rest[0]!), { prefix, persistent: true });
      if (json) {
        console.log(JSON.stringify(tb.describe(), null, 2));
      } else {
        console.log(`testbed ${tb.prefix} (${tb.topology.name})`);
        for (const n of tb.nodes.values()) {
          console.log(`  ${n.name}${n.role ? ` [${n.role}]` : ''}  ns ${n.ns}${n.forward ? '  forwarding' : ''}`);
          for (const f of n.ifaces) {
            console.log(`    ${f.name} #${f.ifindex} ${f.mac} ${f.v4Cidr} ${f.v6Cidr} -> ${f.peer.node}/${f.peer.iface}${f.passXdp ? ' xdp_pass' : ''}`);
          }
          for (const e of n.extraAddresses) console.log(`    ${e.dev} ${e.cidr}`);
        }
        console.log(`shell: ip netns exec ${tb.ns(tb.topology.nodes[0]!.name)} bash    remove: scripts/testbed down ${tb.prefix}`);
      }
      return 0;
    }
    case 'down': {
      if (rest.length !== 1) throw new Error(USAGE);
      destroyPrefix(rest[0]!);
      return 0;
    }
    case 'clean': {
      const all = flag('--all');
      const removed = cleanStale({ all });
      console.log(removed.length ? `removed ${removed.join(' ')}` : 'nothing stale');
      return 0;
    }
    case 'ls': {
      for (const t of listTestbeds()) {
        const who = t.owner ? `pid ${t.owner.pid}` : 'no marker';
        console.log(`${t.prefix}  ${t.state} (${who}${t.owner?.topology ? `, ${t.owner.topology}` : ''})  ${t.namespaces.join(' ')}`);
      }
      return 0;
    }
    default:
      console.error(USAGE);
      return cmd === undefined || cmd === '-h' || cmd === '--help' ? 0 : 2;
  }
}
