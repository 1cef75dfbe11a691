/**
 * Building a planned testbed on the host: namespaces and their sysctls, veth
 * pairs, addresses, checksum offload off, xdp_pass, routes; then reading
 * back what the kernel assigned (ifindexes, MACs) into the testbed's nodes.
 */
import { run } from './exec.js';
import type { IfaceInfo } from './node-info.js';
import type { TestbedOptions } from './options.js';
import type { Plan } from './plan.js';
import type { Testbed } from './testbed.js';
import type { NodeSpec } from './topology.js';

/** Creates everything the plan describes and fills tb.nodes; called once by createTestbed. */
export async function buildNetwork(tb: Testbed, plan: Plan, xdpObj: string, opts: TestbedOptions): Promise<void> {
  const nodes = plan.nodes;

  // 1. Namespaces, and per-namespace settings that must precede the
  //    interfaces: DAD off by default (so link-local and global IPv6
  //    addresses are usable at once), rp_filter off, forwarding.
  await Promise.all(nodes.map((n) => run(['ip', 'netns', 'add', tb.ns(n.name)])));
  await Promise.all(
    nodes.map(async (n) => {
      await tb.ip(n.name, ['link', 'set', 'dev', 'lo', 'up']);
      const fwd = plan.forward.get(n.name) ? '1' : '0';
      await tb.exec(n.name, 'sysctl', [
        '-q',
        '-w',
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.accept_dad=0',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
        `net.ipv4.ip_forward=${fwd}`,
        `net.ipv6.conf.all.forwarding=${fwd}`,
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
    await tb.ip(a.node, [
      'link',
      'add',
      a.name,
      'address',
      a.mac,
      ...mtu,
      'type',
      'veth',
      'peer',
      'name',
      b.name,
      'address',
      b.mac,
      ...mtu,
      'netns',
      tb.ns(b.node),
    ]);
  }

  // 3. Per interface: addresses, up, checksum offload off, xdp_pass.
  const wantPass = (node: NodeSpec, iface: string) =>
    opts.passXdp ? opts.passXdp(node.name, iface, node.role) : (node.passXdp ?? true);
  const passed = new Set<string>();
  await Promise.all(
    nodes.map(async (n) => {
      for (const f of plan.byNode.get(n.name)!) {
        await tb.ip(n.name, ['addr', 'add', f.v4Cidr, 'dev', f.name]);
        await tb.ip(n.name, ['-6', 'addr', 'add', f.v6Cidr, 'dev', f.name, 'nodad']);
        await tb.exec(n.name, 'sysctl', ['-q', '-w', `net/ipv4/conf/${f.name}/rp_filter=0`]);
        await tb.exec(n.name, 'ethtool', ['-K', f.name, 'tx', 'off']);
        if (wantPass(n, f.name)) {
          await tb.ip(n.name, ['link', 'set', 'dev', f.name, 'xdpdrv', 'obj', xdpObj, 'sec', 'xdp']);
          passed.add(`${n.name}/${f.name}`);
        }
        await tb.ip(n.name, ['link', 'set', 'dev', f.name, 'up']);
      }
      for (const e of plan.extra.get(n.name)!) {
        await tb.ip(n.name, [
          `-${e.cidr.family}`,
          'addr',
          'add',
          `${e.cidr.addr}/${e.cidr.len}`,
          'dev',
          e.dev,
          ...(e.cidr.family === 6 ? ['nodad'] : []),
        ]);
      }
    }),
  );

  // 4. Routes (after every address exists, so next hops are on-link).
  for (const r of plan.routes) {
    await tb.ip(r.node, [`-${r.family}`, 'route', 'replace', r.to, 'via', r.via, ...(r.dev ? ['dev', r.dev] : [])]);
  }

  // 5. Read back what the kernel assigned (ifindex) and confirm the MACs.
  const links = new Map<string, { ifname: string; ifindex: number; address: string }[]>();
  await Promise.all(
    nodes.map(async (n) => {
      const { stdout } = await tb.ip(n.name, ['-j', 'link', 'show']);
      links.set(n.name, JSON.parse(stdout) as { ifname: string; ifindex: number; address: string }[]);
    }),
  );
  const kernel = (node: string, name: string) => {
    const l = links.get(node)!.find((x) => x.ifname === name);
    if (!l) throw new Error(`testbed ${tb.prefix}: ${name} missing in ${node} after creation`);
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
        peer: {
          node: f.peerNode,
          iface: f.peerIface,
          ifindex: p.ifindex,
          mac: p.address,
          v4: bare(pf.v4Cidr),
          v6: bare(pf.v6Cidr),
        },
        passXdp: passed.has(`${n.name}/${f.name}`),
      };
    });
    tb.nodes.set(n.name, {
      name: n.name,
      role: n.role,
      ns: tb.ns(n.name),
      forward: plan.forward.get(n.name)!,
      ifaces,
      extraAddresses: plan.extra.get(n.name)!.map((e) => ({ cidr: `${e.cidr.addr}/${e.cidr.len}`, dev: e.dev })),
      v4: ifaces[0]?.v4 ?? '',
      v6: ifaces[0]?.v6 ?? '',
    });
  }
}
