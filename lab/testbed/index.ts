/**
 * Network-namespace testbed: builds a small network of "hosts" (one network
 * namespace each) joined by point-to-point veth links, for the e2e tests, the
 * demo and the benchmarks. The CLI in scripts/testbed is a thin wrapper
 * around runCli() (cli.ts). This file is the public face of lab/testbed/;
 * each concern has its own module beside it.
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
export { runCli } from './cli.js';
export { createTestbed } from './create.js';
export {
  ECMP_ROUTER,
  EcmpBed,
  type EcmpOptions,
  ecmpTopology,
  lbName,
  multipathRouteArgs,
  type NextHop,
} from './ecmp.js';
export { CommandError, type ExecOptions, type ExecResult, run, shellQuote } from './exec.js';
export { cleanStale, destroyPrefix, listTestbeds, type TestbedListing } from './inventory.js';
export { NS_PREFIX, RUN_DIR } from './naming.js';
export type { IfaceInfo, NodeInfo, PeerInfo } from './node-info.js';
export { DEFAULT_XDP_PASS_OBJ, type TestbedOptions } from './options.js';
export { markerPath, type OwnerMarker } from './owner-markers.js';
export { canRunPrivileged, type Privilege } from './privilege.js';
export { ROUTED_BACKENDS, ROUTED_LB_ADDR, routedTopology } from './routed.js';
export { type NsSpawnOptions, Testbed } from './testbed.js';
export {
  type AddressSpec,
  type LinkSpec,
  loadTopology,
  type NodeSpec,
  type RouteSpec,
  starTopology,
  type Topology,
  VIP4,
  VIP6,
  validateTopology,
} from './topology.js';
