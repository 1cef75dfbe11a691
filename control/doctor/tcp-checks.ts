import { bad, type Check, ok } from './check.js';
import { sysctl, sysctlInt } from './system.js';

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
