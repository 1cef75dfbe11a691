/**
 * The ECMP testbed of owner forwarding (source document 004, issue 12): a
 * router in front of two or three LBs, all holding the VIP, with one
 * multipath route for it (L4 hash: fib_multipath_hash_policy=1, IPv4 and
 * IPv6), several clients behind the router, and every back end linked to
 * every LB. Helpers change the ECMP set mid-test (remove or add a next hop,
 * change weights), which is what moves a live connection to another LB.
 *
 *   client1..C ── router ──┬── lb1 ──┬── backend1..B
 *                          ├── lb2 ──┤   (each back end has a link to each LB)
 *                          └── lb3 ──┘
 *
 * Link numbering (lab/testbed/index.ts: link k is 198.18.k.0/24 and
 * 2001:db8:k::/64, side a .1, side b .2): client i–router is link i,
 * router–lb j is link C+j (the router is side a: lb j is 198.18.(C+j).2),
 * lb j–backend k is link C+L+(j-1)*B+k.
 */

import { createTestbed } from './create.js';
import type { TestbedOptions } from './options.js';
import type { Testbed } from './testbed.js';
import type { LinkSpec, NodeSpec, Topology } from './topology.js';
import { VIP4, VIP6 } from './topology.js';

export interface EcmpOptions {
  /** clients behind the router, 1..8 (default 3) */
  clients?: number;
  /** LBs behind the router, 2..3 (default 3) */
  lbs?: number;
  /** back ends, each linked to every LB, 1..4 (default 2) */
  backends?: number;
  name?: string;
}

export const ECMP_ROUTER = 'router';
export const lbName = (j: number): string => `lb${j}`;

function count(v: number | undefined, dflt: number, lo: number, hi: number, what: string): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new Error(`ecmpTopology: ${what} must be an integer ${lo}..${hi}, got ${n}`);
  return n;
}

/** The topology (pure): nodes, links, the VIP on every LB's loopback. The multipath route is added after creation. */
export function ecmpTopology(opts: EcmpOptions = {}): Topology {
  const c = count(opts.clients, 3, 1, 8, 'clients');
  const l = count(opts.lbs, 3, 2, 3, 'lbs');
  const b = count(opts.backends, 2, 1, 4, 'backends');
  const nodes: NodeSpec[] = [];
  const links: LinkSpec[] = [];
  for (let i = 1; i <= c; i++) nodes.push({ name: `client${i}`, role: 'client' });
  nodes.push({ name: ECMP_ROUTER, role: 'router' });
  for (let j = 1; j <= l; j++) nodes.push({ name: lbName(j), role: 'lb', addresses: [`${VIP4}/32`, `${VIP6}/128`] });
  for (let k = 1; k <= b; k++) nodes.push({ name: `backend${k}`, role: 'backend', forward: false });
  for (let i = 1; i <= c; i++) links.push({ a: `client${i}`, b: ECMP_ROUTER });
  for (let j = 1; j <= l; j++) links.push({ a: ECMP_ROUTER, b: lbName(j) });
  for (let j = 1; j <= l; j++) for (let k = 1; k <= b; k++) links.push({ a: lbName(j), b: `backend${k}` });
  return { name: opts.name ?? `ecmp${c}x${l}x${b}`, nodes, links };
}

export interface NextHop {
  lb: string;
  /** 1..256 (ip-route's range); default 1 */
  weight?: number;
}

/**
 * `ip route replace` arguments for the VIP's multipath route (pure): one
 * `nexthop via <lb's address on its router link> dev <router's iface> weight w`
 * per next hop. A single next hop is written the same way (a one-way
 * multipath route), so removing down to one LB needs no other form.
 */
export function multipathRouteArgs(
  family: 4 | 6,
  vip: string,
  hops: ReadonlyArray<{ via: string; dev: string; weight: number }>,
): string[] {
  if (hops.length === 0) throw new Error('an ECMP route needs at least one next hop');
  const args = [...(family === 6 ? ['-6'] : []), 'route', 'replace', `${vip}/${family === 4 ? 32 : 128}`];
  for (const h of hops) {
    if (!Number.isInteger(h.weight) || h.weight < 1 || h.weight > 256)
      throw new Error(`next-hop weight must be 1..256, got ${h.weight}`);
    args.push('nexthop', 'via', h.via, 'dev', h.dev, 'weight', String(h.weight));
  }
  return args;
}

/** A created ECMP testbed and the helpers that change its next-hop set. */
export class EcmpBed {
  private hops: Required<NextHop>[];

  private constructor(
    readonly tb: Testbed,
    readonly lbs: string[],
    readonly clients: string[],
    readonly backends: string[],
  ) {
    this.hops = lbs.map((lb) => ({ lb, weight: 1 }));
  }

  static async create(opts: EcmpOptions = {}, tbOpts: TestbedOptions = {}): Promise<EcmpBed> {
    const topo = ecmpTopology(opts);
    const tb = await createTestbed(topo, tbOpts);
    try {
      const role = (r: string) => topo.nodes.filter((n) => n.role === r).map((n) => n.name);
      const bed = new EcmpBed(tb, role('lb'), role('client'), role('backend'));
      // L4 hash for both families, so flows (not just hosts) spread.
      await tb.exec(ECMP_ROUTER, 'sysctl', [
        '-qw',
        'net.ipv4.fib_multipath_hash_policy=1',
        'net.ipv6.fib_multipath_hash_policy=1',
      ]);
      await bed.apply();
      return bed;
    } catch (e) {
      await tb.destroy();
      throw e;
    }
  }

  /** The next hops now in force, in order. */
  nextHops(): Required<NextHop>[] {
    return this.hops.map((h) => ({ ...h }));
  }

  /** The LB's address on its link to the router (the next hop's `via`). */
  lbAddress(lb: string, family: 4 | 6): string {
    const f = this.tb.iface(lb, ECMP_ROUTER);
    return family === 4 ? f.v4 : f.v6;
  }

  /** Replaces the whole set (both families at once). */
  async setNextHops(hops: NextHop[]): Promise<void> {
    for (const h of hops) if (!this.lbs.includes(h.lb)) throw new Error(`${h.lb} is not an LB of this testbed`);
    if (new Set(hops.map((h) => h.lb)).size !== hops.length) throw new Error('an LB appears twice in the next hops');
    const before = this.hops;
    this.hops = hops.map((h) => ({ lb: h.lb, weight: h.weight ?? 1 }));
    try {
      await this.apply();
    } catch (e) {
      this.hops = before;
      throw e;
    }
  }

  removeNextHop(lb: string): Promise<void> {
    if (!this.hops.some((h) => h.lb === lb)) throw new Error(`${lb} is not a next hop now`);
    return this.setNextHops(this.hops.filter((h) => h.lb !== lb));
  }

  addNextHop(lb: string, weight = 1): Promise<void> {
    if (this.hops.some((h) => h.lb === lb)) throw new Error(`${lb} is already a next hop`);
    return this.setNextHops([...this.hops, { lb, weight }]);
  }

  setWeight(lb: string, weight: number): Promise<void> {
    if (!this.hops.some((h) => h.lb === lb)) throw new Error(`${lb} is not a next hop now`);
    return this.setNextHops(this.hops.map((h) => (h.lb === lb ? { lb, weight } : h)));
  }

  /** The router's route for the VIP as the kernel has it: [{ via, weight }] per family. */
  async routeInKernel(family: 4 | 6): Promise<Array<{ via: string; weight: number }>> {
    const vip = family === 4 ? VIP4 : VIP6;
    const { stdout } = await this.tb.ip(ECMP_ROUTER, [...(family === 6 ? ['-6'] : []), '-j', 'route', 'show', vip]);
    const routes = JSON.parse(stdout) as Array<{
      gateway?: string;
      weight?: number;
      nexthops?: Array<{ gateway: string; weight?: number }>;
    }>;
    const r = routes[0];
    if (!r) return [];
    if (r.nexthops) return r.nexthops.map((n) => ({ via: n.gateway, weight: n.weight ?? 1 }));
    return r.gateway ? [{ via: r.gateway, weight: r.weight ?? 1 }] : [];
  }

  destroy(): Promise<void> {
    return this.tb.destroy();
  }

  private async apply(): Promise<void> {
    for (const family of [4, 6] as const) {
      const hops = this.hops.map((h) => ({
        via: this.lbAddress(h.lb, family),
        dev: this.tb.iface(ECMP_ROUTER, h.lb).name,
        weight: h.weight,
      }));
      await this.tb.ip(ECMP_ROUTER, multipathRouteArgs(family, family === 4 ? VIP4 : VIP6, hops));
    }
  }
}
