/**
 * The doctor's checks: what baton needs from a host, and the setup mistakes
 * that break XDP load balancers most often (the ones Katran and Cilium users
 * report). Each returns ok / warn / fail with what it saw and what to do.
 * Modules that load libbpf (through koffi) are imported lazily, so a host
 * without libbpf still gets every other answer.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { BPF_OBJECTS, missingObjectHint, type ObjectLocation, objectCandidates } from '../bpf/objects.js';
import { bpffsAt, command, effectiveCaps, ethtoolFeatures, kernelVersion, link, sysctl, sysctlInt } from './system.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  /** stable id, e.g. "rp_filter"; per-interface checks also carry `iface` */
  id: string;
  iface?: string;
  status: CheckStatus;
  /** what was seen */
  detail: string;
  /** what to do (for warn/fail) */
  fix?: string;
}

const ok = (id: string, detail: string, iface?: string): Check => ({
  id,
  status: 'ok',
  detail,
  ...(iface ? { iface } : {}),
});
const bad = (id: string, status: 'warn' | 'fail' | 'skip', detail: string, fix?: string, iface?: string): Check => ({
  id,
  status,
  detail,
  ...(fix ? { fix } : {}),
  ...(iface ? { iface } : {}),
});

/** The oldest kernel baton runs on: its control program is BPF_PROG_TYPE_SYSCALL (5.14). */
const MIN_KERNEL: [number, number] = [5, 14];

export function checkKernel(): Check {
  const r = release();
  const [maj, min] = kernelVersion(r);
  if (maj < MIN_KERNEL[0] || (maj === MIN_KERNEL[0] && min < MIN_KERNEL[1])) {
    return bad(
      'kernel',
      'fail',
      `Linux ${r}`,
      `baton needs Linux ${MIN_KERNEL.join('.')}+ (syscall BPF programs, pidfd_getfd, bpf iterators); upgrade the kernel`,
    );
  }
  return ok('kernel', `Linux ${r}`);
}

export function checkBtf(): Check {
  if (existsSync('/sys/kernel/btf/vmlinux')) return ok('btf', '/sys/kernel/btf/vmlinux present (CO-RE programs load)');
  return bad(
    'btf',
    'fail',
    '/sys/kernel/btf/vmlinux missing',
    'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel has it)',
  );
}

export function checkBpffs(pinDir: string): Check {
  const b = bpffsAt(pinDir);
  if (b.bpffs)
    return ok('bpffs', b.exists ? `${pinDir} is on bpffs` : `${b.checked} is bpffs (${pinDir} will be created there)`);
  return bad(
    'bpffs',
    'fail',
    `${b.checked} is not a bpffs, so ${pinDir} cannot hold pinned maps and links (without them a daemon restart drops every spliced connection)`,
    'mount -t bpf bpf /sys/fs/bpf (add it to /etc/fstab: "bpf /sys/fs/bpf bpf defaults 0 0"); under `ip netns exec`, mount it inside: /sys is remounted there',
  );
}

const CAP = { NET_ADMIN: 12n, SYS_PTRACE: 19n, SYS_ADMIN: 21n, PERFMON: 38n, BPF: 39n } as const;

export function checkPrivileges(): Check {
  const caps = effectiveCaps();
  const has = (c: bigint) => (caps & (1n << c)) !== 0n;
  const missing = [
    !has(CAP.NET_ADMIN) && 'CAP_NET_ADMIN (XDP attach, TCP_REPAIR)',
    !has(CAP.BPF) && !has(CAP.SYS_ADMIN) && 'CAP_BPF (load programs, create maps)',
    !has(CAP.PERFMON) && !has(CAP.SYS_ADMIN) && 'CAP_PERFMON (tracing-type iterator program)',
    !has(CAP.SYS_PTRACE) && "CAP_SYS_PTRACE (pidfd_getfd of a front end's sockets)",
  ].filter(Boolean) as string[];
  const who = process.getuid?.() === 0 ? 'root' : `uid ${process.getuid?.()}`;
  if (missing.length === 0) return ok('privileges', `${who}, with CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE`);
  return bad(
    'privileges',
    'fail',
    `${who} lacks ${missing.join(', ')}`,
    'run baton as root, or grant these capabilities (e.g. systemd AmbientCapabilities=)',
  );
}

/** Loads the binding (which dlopens libbpf.so.1) and reads the version from the mapped file's name. */
export async function checkLibbpf(): Promise<Check> {
  try {
    await import('../bpf/ffi.js');
  } catch (e) {
    return bad(
      'libbpf',
      'fail',
      `the libbpf binding did not load: ${(e as Error).message.split('\n')[0]}`,
      'install libbpf (Debian/Ubuntu: apt-get install libbpf1 libbpf-dev; scripts/setup does it)',
    );
  }
  const mapped = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .find((l) => /\/libbpf\.so/.test(l));
  const path = mapped?.slice(mapped.indexOf('/'));
  let version = 'version unknown';
  if (path) {
    const m = /libbpf\.so\.(\d+\.\d+\.\d+)/.exec(realpathSync(path));
    if (m) version = `libbpf ${m[1]}`;
  }
  return ok('libbpf', `${version}${path ? ` (${path})` : ''}`);
}

/** The objects the daemon loads, found as it finds them (control/bpf/objects.ts), with the same overrides. */
export function checkObjects(where: Partial<Record<'datapath' | 'probe', ObjectLocation>> = {}): Check {
  const found: string[] = [];
  const missing: string[] = [];
  for (const role of ['datapath', 'probe'] as const) {
    const candidates = objectCandidates(role, where[role]);
    const hit = candidates.find((p) => existsSync(p));
    if (hit) found.push(hit);
    else
      missing.push(
        `${BPF_OBJECTS[role]}.o (looked at ${candidates.join(', ') || 'nothing: no baton package root above the CLI'})`,
      );
  }
  if (missing.length === 0) return ok('objects', found.join(', '));
  return bad(
    'objects',
    'fail',
    `missing: ${missing.join('; ')}`,
    `${missingObjectHint('datapath')}; make bpf needs clang, libbpf-dev, bpftool (scripts/setup)`,
  );
}

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

export function checkForwarding(): Check {
  const v4 = sysctlInt('net.ipv4.ip_forward');
  const v6 = sysctlInt('net.ipv6.conf.all.forwarding');
  if (v4 !== 1) {
    return bad(
      'ip_forward',
      'fail',
      `net.ipv4.ip_forward=${v4}: the datapath's FIB lookup answers "forwarding disabled" and packets it forwards via the stack are dropped`,
      'sysctl -w net.ipv4.ip_forward=1',
      undefined,
    );
  }
  if (v6 !== undefined && v6 !== 1)
    return bad(
      'ip_forward',
      'warn',
      `IPv4 forwarding on; IPv6 forwarding off (net.ipv6.conf.all.forwarding=${v6}): IPv6 flows cannot be forwarded`,
      'sysctl -w net.ipv6.conf.all.forwarding=1',
    );
  return ok('ip_forward', `forwarding on (IPv4${v6 === 1 ? ', IPv6' : ''})`);
}

export function checkConntrack(): Check {
  const max = sysctl('net.netfilter.nf_conntrack_max');
  if (max === undefined) return ok('conntrack', 'nf_conntrack not loaded: nothing marks moved flows INVALID');
  const liberal = sysctlInt('net.netfilter.nf_conntrack_tcp_be_liberal');
  const loose = sysctlInt('net.netfilter.nf_conntrack_tcp_loose');
  const seen = `nf_conntrack loaded (tcp_be_liberal=${liberal}, tcp_loose=${loose})`;
  if (liberal === 1) return ok('conntrack', `${seen}: out-of-window segments of moved flows are not marked INVALID`);
  const fix =
    'sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1 net.netfilter.nf_conntrack_tcp_loose=1, and make sure no rule drops or rejects ctstate INVALID for VIP traffic';
  if (loose === 0)
    return bad(
      'conntrack',
      'fail',
      `${seen}: mid-stream packets of spliced or moved flows are INVALID and never picked up`,
      fix,
    );
  return bad(
    'conntrack',
    'warn',
    `${seen}: segments of spliced flows whose sequence numbers conntrack did not see are INVALID (dropped by "ctstate INVALID" rules, which Docker and firewalld install)`,
    fix,
  );
}

/** TCP_REPAIR on a fresh socket: the kernel allows it only with CAP_NET_ADMIN in this namespace. */
export async function checkTcpRepair(): Promise<Check> {
  let sock: typeof import('../tcp/socket.js');
  let kernel: typeof import('../tcp/kernel.js');
  let libc: typeof import('../sys/libc.js')['libc'];
  try {
    [sock, kernel, { libc }] = await Promise.all([
      import('../tcp/socket.js'),
      import('../tcp/kernel.js'),
      import('../sys/libc.js'),
    ]);
  } catch (e) {
    return bad(
      'tcp_repair',
      'skip',
      `cannot try: the socket binding did not load (${(e as Error).message.split('\n')[0]})`,
      'see the libbpf check',
    );
  }
  let fd = -1;
  try {
    fd = sock.openTcpSocket(4);
    sock.setInt(fd, kernel.SOL_TCP, kernel.TCP_REPAIR, kernel.TCP_REPAIR_ON, 'repair');
    sock.setInt(fd, kernel.SOL_TCP, kernel.TCP_REPAIR, kernel.TCP_REPAIR_OFF, 'leave_repair');
    return ok('tcp_repair', 'TCP_REPAIR on/off works on a real socket');
  } catch (e) {
    return bad(
      'tcp_repair',
      'fail',
      `TCP_REPAIR failed: ${(e as Error).message}`,
      'run baton as root: TCP_REPAIR needs CAP_NET_ADMIN in the network namespace of the socket',
    );
  } finally {
    if (fd >= 0) libc.close(fd);
  }
}

export function checkTcpOptions(): Check {
  const ts = sysctlInt('net.ipv4.tcp_timestamps');
  const sack = sysctlInt('net.ipv4.tcp_sack');
  const seen = `tcp_timestamps=${ts}, tcp_sack=${sack}`;
  if (ts === 1 && sack === 1) return ok('tcp_options', `${seen} (kernel defaults)`);
  return bad(
    'tcp_options',
    'warn',
    `${seen}: the LB's two legs of a spliced connection must agree on timestamps and SACK; a client or back end that negotiated them on one leg only makes baton refuse the splice (SPLICE_REFUSED)`,
    'keep net.ipv4.tcp_timestamps=1 and net.ipv4.tcp_sack=1 on the LB (and the back ends) unless you have a reason',
  );
}
