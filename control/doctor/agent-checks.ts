/**
 * `baton doctor --role agent`: what a back end needs for migrate mode
 * (docs/agent.md). The LB forwards a migrated connection's segments to this
 * host with the client's source address and the flow id in the ports; the
 * agent's XDP program restores the original tuple; the restored socket
 * answers from the VIP straight to the client (direct server return).
 * Hence: the VIP on lo (or --transparent), ARP kept off the VIP, reverse-path
 * filtering that accepts the asymmetric path, conntrack that picks up a
 * connection mid-stream, TCP_REPAIR, and an interface that takes the agent's
 * XDP program. The sysctl and `ip` readers are the shared ones (system.ts).
 */
import { canonicalIp } from '../service/endpoint.js';
import { bad, type Check, ok } from './check.js';
import { command, link, sysctl, sysctlInt } from './system.js';

/** The agent's XDP program (bpf/xdp_agent.c), as the kernel names it (15 characters at most). */
export const AGENT_XDP_PROGRAM = 'baton_agent_xdp';

/** The addresses on lo, canonical (`ip -j addr show dev lo`); undefined when ip fails. */
export function loAddresses(): Set<string> | undefined {
  const out = command('ip', ['-j', 'addr', 'show', 'dev', 'lo']);
  if (!out) return undefined;
  try {
    const [lo] = JSON.parse(out) as { addr_info?: { local?: string }[] }[];
    return new Set((lo?.addr_info ?? []).flatMap((a) => (a.local ? [canonicalIp(a.local)?.ip ?? a.local] : [])));
  } catch {
    return undefined;
  }
}

/** Each VIP on lo, or --transparent (pure over what was read). */
export function checkVips(vips: readonly string[], onLo: Set<string> | undefined, transparent: boolean): Check[] {
  if (vips.length === 0)
    return [
      bad(
        'vip',
        'skip',
        'no VIP to look for',
        "pass the VIPs this back end serves with --vip (the agent's --app entries are read too)",
      ),
    ];
  if (!onLo) return [bad('vip', 'skip', 'ip -j addr show dev lo failed', 'apt-get install iproute2')];
  return vips.map((vip) => {
    const v6 = vip.includes(':');
    if (onLo.has(vip)) return ok('vip', `${vip} is on lo: restored sockets bind to it and the replies leave from it`);
    if (transparent)
      return ok(
        'vip',
        `${vip} is not on lo; the agent restores with IP_TRANSPARENT (--transparent), which also needs a local route for the VIP to reach its sockets`,
      );
    return bad(
      'vip',
      'fail',
      `${vip} is not on lo: a restored socket cannot bind to it (restore_failed) and the client's segments for it are not for this host`,
      `ip addr add ${vip}/${v6 ? 128 : 32} dev lo (or start the agent with --transparent)`,
    );
  });
}

/**
 * arp_ignore >= 1 and arp_announce >= 2, effective value = max(conf.all,
 * conf.<dev>) (ip-sysctl.rst). Only with an IPv4 VIP on lo: Linux answers
 * ARP for any local address on every interface by default, so a back end on
 * a segment it shares with the LB or the clients' router would answer for
 * the VIP and take the LB's traffic.
 */
export function checkArp(ifaces: readonly string[], v4VipOnLo: boolean): Check[] {
  if (!v4VipOnLo) return [ok('arp', 'no IPv4 VIP on lo: nothing for ARP to leak')];
  const devs = ifaces.length ? ifaces : ['default'];
  const all = {
    ignore: sysctlInt('net.ipv4.conf.all.arp_ignore') ?? 0,
    announce: sysctlInt('net.ipv4.conf.all.arp_announce') ?? 0,
  };
  return devs.map((dev) => {
    const ignore = Math.max(all.ignore, sysctlInt(`net.ipv4.conf.${dev}.arp_ignore`) ?? 0);
    const announce = Math.max(all.announce, sysctlInt(`net.ipv4.conf.${dev}.arp_announce`) ?? 0);
    const seen = `${dev}: arp_ignore=${ignore}, arp_announce=${announce} (effective: max of conf.all and conf.${dev})`;
    const iface = ifaces.length ? dev : undefined;
    if (ignore >= 1 && announce >= 2)
      return ok('arp', `${seen}: the VIP on lo is neither answered for nor announced`, iface);
    return bad(
      'arp',
      'fail',
      `${seen}: ${ignore < 1 ? 'this host answers ARP requests for the VIP on lo from any interface, taking the traffic meant for the LB' : 'this host may use the VIP as the source of its ARP requests, teaching neighbours that the VIP is here'}`,
      `sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 (persist in /etc/sysctl.d/)`,
      iface,
    );
  });
}

/**
 * rp_filter on the interfaces the LB's segments arrive on, effective value
 * max(conf.all, conf.<dev>). Those segments carry the client's source
 * address; with strict filtering (1) the kernel drops each one unless its
 * route back to that client leaves by the same interface, which direct
 * server return usually breaks (the replies take another path). 2 (loose:
 * the source need only be routable) or 0 work.
 */
export function checkAgentRpFilter(ifaces: readonly string[]): Check[] {
  const all = sysctlInt('net.ipv4.conf.all.rp_filter') ?? 0;
  return (ifaces.length ? ifaces : ['default']).map((dev) => {
    const own = sysctlInt(`net.ipv4.conf.${dev}.rp_filter`) ?? 0;
    const eff = Math.max(all, own);
    const iface = ifaces.length ? dev : undefined;
    if (eff === 1)
      return bad(
        'rp_filter',
        'fail',
        `${dev}: rp_filter strict (all=${all}, ${dev}=${own}): the client segments the LB forwards here are dropped whenever this host's route back to the client leaves by another interface (as the direct replies usually do)`,
        `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${dev}.rp_filter=2 (2 = loose, which works; 0 = off works too)`,
        iface,
      );
    return ok(
      'rp_filter',
      `${dev}: rp_filter ${eff === 2 ? 'loose' : 'off'} (all=${all}, ${dev}=${own}): forwarded client segments are accepted`,
      iface,
    );
  });
}

/**
 * nf_conntrack on a back end: a restored connection was never seen by this
 * host's conntrack, so its first segment here is mid-stream. With tcp_loose=0
 * conntrack will not pick it up: every segment is INVALID (dropped by
 * "ctstate INVALID" rules; stateful rules never match). With
 * tcp_be_liberal=0, a flow picked up mid-stream has no window-scale
 * knowledge and out-of-window segments (retransmissions after loss) are
 * INVALID.
 */
export function checkAgentConntrack(): Check {
  if (sysctl('net.netfilter.nf_conntrack_max') === undefined)
    return ok('conntrack', 'nf_conntrack not loaded: nothing marks restored connections INVALID');
  const loose = sysctlInt('net.netfilter.nf_conntrack_tcp_loose');
  const liberal = sysctlInt('net.netfilter.nf_conntrack_tcp_be_liberal');
  const seen = `nf_conntrack loaded (tcp_loose=${loose}, tcp_be_liberal=${liberal})`;
  const fix =
    'sysctl -w net.netfilter.nf_conntrack_tcp_loose=1 net.netfilter.nf_conntrack_tcp_be_liberal=1, and make sure no rule drops or rejects ctstate INVALID for VIP traffic';
  if (loose === 0)
    return bad(
      'conntrack',
      'fail',
      `${seen}: a restored connection is mid-stream to conntrack here and with tcp_loose=0 it is never picked up: all its segments are INVALID`,
      fix,
    );
  if (liberal !== 1)
    return bad(
      'conntrack',
      'warn',
      `${seen}: restored connections are picked up mid-stream without their window scale; retransmitted or out-of-window segments may be INVALID (dropped by "ctstate INVALID" rules, which Docker and firewalld install)`,
      fix,
    );
  return ok('conntrack', `${seen}: restored connections are picked up mid-stream and their segments never INVALID`);
}

/**
 * The interface takes the agent's XDP program: already attached (a running
 * or stopped agent's pinned link), or attached and detached again now in
 * native mode. Another program on it fails: the agent would not attach.
 */
export async function checkAgentXdp(dev: string): Promise<Check[]> {
  const l = link(dev);
  if (!l) {
    return [
      bad(
        'iface',
        'fail',
        `no interface ${dev} in this network namespace`,
        'pass the interfaces the LBs forward migrated segments to (--interface), or --netns for another namespace',
        dev,
      ),
    ];
  }
  const out: Check[] = [ok('iface', `${dev}: ifindex ${l.ifindex}, ${l.operstate ?? 'state unknown'}`, dev)];
  if (!(l.flags ?? []).includes('UP'))
    out[0] = bad('iface', 'warn', `${dev} is down`, `ip link set dev ${dev} up`, dev);
  const progs = (l.xdp?.attached ?? (l.xdp ? [{ mode: l.xdp.mode, prog: l.xdp.prog }] : [])).map((a) => a.prog?.name);
  if (progs.includes(AGENT_XDP_PROGRAM)) {
    out.push(ok('xdp', `${dev}: ${AGENT_XDP_PROGRAM} attached (the agent's pinned link)`, dev));
    return out;
  }
  if (progs.length > 0) {
    out.push(
      bad(
        'xdp',
        'fail',
        `${dev}: another XDP program is attached (${progs.join(', ')}): the agent cannot attach ${AGENT_XDP_PROGRAM}`,
        `detach it (ip link set dev ${dev} xdp off), or run baton agent down if a stale agent link holds it`,
        dev,
      ),
    );
    return out;
  }
  let AgentDatapath: typeof import('../datapath/agent-datapath.js').AgentDatapath;
  try {
    ({ AgentDatapath } = await import('../datapath/agent-datapath.js'));
  } catch (e) {
    out.push(bad('xdp', 'skip', `cannot try: ${(e as Error).message.split('\n')[0]}`, 'see the libbpf check', dev));
    return out;
  }
  try {
    const dp = await AgentDatapath.load({ fidsCapacity: 16 });
    try {
      dp.attach(l.ifindex);
    } finally {
      dp.close(); // unpinned: detaches at once
    }
    out.push(ok('xdp', `${dev}: ${AGENT_XDP_PROGRAM} attached in native mode and detached again (test)`, dev));
  } catch (e) {
    out.push(
      bad(
        'xdp',
        'fail',
        `${dev}: the agent's XDP program does not attach: ${(e as Error).message.split('\n')[0]}`,
        `native XDP needs driver support (veth, virtio_net, mlx5, ice, i40e, ena...), LRO off (ethtool -K ${dev} lro off) and, on a veth, an MTU up to about 3500`,
        dev,
      ),
    );
  }
  return out;
}
