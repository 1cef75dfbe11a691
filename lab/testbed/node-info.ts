/** What a built testbed tells its user about each node and interface (names, ifindexes, MACs, addresses). */

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
