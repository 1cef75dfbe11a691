import { bad, type Check, ok } from './check.js';
import { command, ethtoolFeatures, link, sysctlInt } from './system.js';

export function checkInterface(dev: string): Check[] {
  const l = link(dev);
  if (!l) {
    const names =
      command('ip', ['-o', 'link', 'show'])
        ?.split('\n')
        .map((x) => x.split(': ')[1]?.split('@')[0])
        .filter(Boolean) ?? [];
    return [
      bad(
        'iface',
        'fail',
        `no interface ${dev} in this network namespace (there are: ${names.join(', ') || 'none'})`,
        'pass the interfaces the LB receives client and back-end traffic on (--interface), or --netns for another namespace',
        dev,
      ),
    ];
  }
  const veth = l.linkinfo?.info_kind === 'veth';
  const out: Check[] = [
    ok('iface', `${dev}: ifindex ${l.ifindex}, ${l.operstate ?? 'state unknown'}${veth ? ', veth' : ''}`, dev),
  ];
  if (!(l.flags ?? []).includes('UP'))
    out[0] = bad('iface', 'warn', `${dev} is down`, `ip link set dev ${dev} up`, dev);
  out.push(checkXdp(dev, l, veth));
  const f = ethtoolFeatures(dev);
  if (!f) {
    out.push(
      bad('offloads', 'skip', `ethtool -k ${dev} failed (is ethtool installed?)`, 'apt-get install ethtool', dev),
    );
  } else {
    const tx = f.get('tx-checksumming');
    if (veth && tx?.on) {
      out.push(
        bad(
          'tx_checksum',
          'fail',
          `${dev}: tx-checksumming on (veth): locally sent packets leave with a partial checksum that XDP on the other side sees as wrong, and rewritten segments are dropped`,
          `ethtool -K ${dev} tx off (and on its peer)`,
          dev,
        ),
      );
    } else
      out.push(
        ok(
          'tx_checksum',
          `${dev}: tx-checksumming ${tx?.on ? 'on (not a veth: the device completes checksums)' : 'off'}`,
          dev,
        ),
      );
    const lro = f.get('large-receive-offload');
    const gro = f.get('generic-receive-offload');
    if (lro?.on)
      out.push(
        bad(
          'gro_lro',
          'fail',
          `${dev}: large-receive-offload on: native XDP refuses to attach (or sees merged super-frames)`,
          `ethtool -K ${dev} lro off`,
          dev,
        ),
      );
    else
      out.push(
        ok(
          'gro_lro',
          `${dev}: LRO ${lro ? 'off' : 'n/a'}, GRO ${gro?.on ? 'on' : 'off'} (GRO runs after XDP; fine either way)`,
          dev,
        ),
      );
  }
  out.push(checkRpFilter(dev));
  return out;
}

const XDP_MODES: Record<number, string> = {
  1: 'native (driver)',
  2: 'generic (skb)',
  3: 'offloaded (hardware)',
  4: 'several',
};

function checkXdp(dev: string, l: NonNullable<ReturnType<typeof link>>, veth: boolean): Check {
  const x = l.xdp;
  const vethNote = veth ? '; its veth peer must run an XDP program too, or redirected frames are dropped' : '';
  if (!x)
    return bad(
      'xdp',
      'warn',
      `${dev}: no XDP program attached`,
      `\`baton lb --interface ${dev}\` attaches baton_xdp${vethNote}`,
      dev,
    );
  const progs = (x.attached ?? [{ mode: x.mode, prog: x.prog }]).map(
    (a) => `${a.prog?.name ?? '?'} ${XDP_MODES[a.mode] ?? `mode ${a.mode}`}`,
  );
  const baton = (x.attached ?? [{ mode: x.mode, prog: x.prog }]).find((a) => a.prog?.name === 'baton_xdp');
  if (!baton)
    return bad(
      'xdp',
      'warn',
      `${dev}: another XDP program is attached (${progs.join(', ')})`,
      `detach it (ip link set dev ${dev} xdp off) or baton lb cannot attach baton_xdp`,
      dev,
    );
  if (baton.mode === 2)
    return bad(
      'xdp',
      'warn',
      `${dev}: baton_xdp attached in generic (skb) mode: correct but several times slower`,
      `use a driver with native XDP (veth, mlx5, ice, i40e, ena, virtio_net...)${vethNote}`,
      dev,
    );
  return ok('xdp', `${dev}: baton_xdp attached, ${XDP_MODES[baton.mode] ?? `mode ${baton.mode}`}${vethNote}`, dev);
}

/** The effective value is the maximum of conf.all and conf.<dev> (Documentation/networking/ip-sysctl.rst). */
function checkRpFilter(dev: string): Check {
  const all = sysctlInt('net.ipv4.conf.all.rp_filter') ?? 0;
  const own = sysctlInt(`net.ipv4.conf.${dev}.rp_filter`) ?? 0;
  const eff = Math.max(all, own);
  if (eff === 1) {
    return bad(
      'rp_filter',
      'fail',
      `${dev}: rp_filter strict (all=${all}, ${dev}=${own}): packets of flows the LB forwards asymmetrically are dropped`,
      `sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.${dev}.rp_filter=0 (or 2, loose)`,
      dev,
    );
  }
  return ok('rp_filter', `${dev}: rp_filter ${eff === 2 ? 'loose' : 'off'} (all=${all}, ${dev}=${own})`, dev);
}

/**
 * The sysctls baton lb sets on the interfaces it attaches to (values now,
 * with conf.all, which the kernel ORs in), and, when baton recorded changes
 * here, the values baton down will restore.
 */
export async function checkHostSettings(
  ifaces: readonly string[],
  pinDir: string,
  stateDir: string | undefined,
): Promise<Check[]> {
  let hs: typeof import('../daemon/host-settings.js');
  try {
    if (stateDir === undefined) throw new Error('the daemon configuration did not load');
    hs = await import('../daemon/host-settings.js');
  } catch (e) {
    return [
      bad(
        'host_settings',
        'skip',
        `cannot read baton's record of host settings (${(e as Error).message.split('\n')[0]})`,
        'see the libbpf check',
      ),
    ];
  }
  let view: ReturnType<typeof hs.describeHostSettings>;
  try {
    view = hs.describeHostSettings(ifaces, { pinDir, stateDir });
  } catch (e) {
    return [
      bad(
        'host_settings',
        'warn',
        (e as Error).message,
        'fix or remove the record, then run baton down (or restore the sysctls by hand)',
      ),
    ];
  }
  const recorded = new Map((view.recorded ?? []).map((e) => [e.name, e]));
  const out: Check[] = view.current.map((c) => {
    const r = recorded.get(c.name);
    recorded.delete(c.name);
    const now = `${c.name}=${c.value ?? 'missing'} (conf.all=${c.all ?? 'missing'})`;
    if (r) return ok('host_settings', `${now}: set by baton lb; baton down restores ${r.old}`, c.ifname);
    if (c.value === c.wanted)
      return ok('host_settings', `${now}: as baton lb needs it (not changed by baton: nothing to restore)`, c.ifname);
    return ok(
      'host_settings',
      `${now}: baton lb sets it to ${c.wanted} on start (and records ${c.value} for baton down)`,
      c.ifname,
    );
  });
  for (const r of recorded.values()) {
    out.push(
      ok(
        'host_settings',
        `${r.name}=${hs.readSysctl(r.path) ?? 'missing'}: set to ${r.set} by baton lb; baton down restores ${r.old}`,
        r.ifname,
      ),
    );
  }
  if (out.length === 0) out.push(ok('host_settings', `baton changed no host settings here (no record ${view.record})`));
  return out;
}
