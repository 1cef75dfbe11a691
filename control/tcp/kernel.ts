/**
 * Linux socket ABI that control/tcp/ speaks: option numbers, ioctls and the
 * byte layouts of the kernel structs passed through getsockopt/setsockopt
 * (x86-64). test/unit/abi-layout.test.ts compiles a C program against the
 * installed uapi headers and checks every size and offset listed in
 * TCP_STRUCTS.
 */
import type { StructLayout } from '../sys/struct-layout.js';

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOCK_NONBLOCK = 0o4000;
export const IPPROTO_TCP = 6;

export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_LINGER = 13;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_MARK = 36;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
/** The socket's network namespace cookie (u64, Linux 5.14+): unique while the host runs. */
export const SO_NETNS_COOKIE = 71;

export const SOL_TCP = 6;
export const TCP_MAXSEG = 2;
export const TCP_INFO = 11;
export const TCP_REPAIR = 19;
export const TCP_REPAIR_QUEUE = 20;
export const TCP_QUEUE_SEQ = 21;
export const TCP_REPAIR_OPTIONS = 22;
export const TCP_TIMESTAMP = 24;
export const TCP_REPAIR_WINDOW = 29;

/** Values of TCP_REPAIR. OFF sends a window probe so the peer re-ACKs; OFF_NO_WP does not. */
export const TCP_REPAIR_ON = 1;
export const TCP_REPAIR_OFF = 0;
export const TCP_REPAIR_OFF_NO_WP = -1;

/** Values of TCP_REPAIR_QUEUE. */
export const TCP_NO_QUEUE = 0;
export const TCP_RECV_QUEUE = 1;
export const TCP_SEND_QUEUE = 2;

/** opt_code of struct tcp_repair_opt (TCP option kinds). */
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_TIMESTAMP = 8;

/** tcpi_options bits. */
export const TCPI_OPT_TIMESTAMPS = 1;
export const TCPI_OPT_SACK = 2;
export const TCPI_OPT_WSCALE = 4;
export const TCPI_OPT_USEC_TS = 64; // Linux 6.7+

/** tcpi_state values (include/net/tcp_states.h). */
export const TCP_STATES = [
  'UNKNOWN',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
  'BOUND_INACTIVE',
] as const;
export const TCP_ESTABLISHED = 1;
export const TCP_LISTEN = 10;

export const MSG_PEEK = 0x2;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;

/** ioctls on TCP sockets. */
export const SIOCINQ = 0x541b; // bytes not yet read (rcv_nxt - copied_seq)
export const SIOCOUTQ = 0x5411; // bytes not yet acknowledged (write_seq - snd_una)
export const SIOCOUTQNSD = 0x894b; // bytes not yet sent (write_seq - snd_nxt)
export const SIOCGSKNS = 0x894c; // a new fd for the socket's network namespace
export const SIOCGIFINDEX = 0x8933; // struct ifreq: ifr_name (16 bytes) -> ifr_ifindex (int at 16), in the socket's netns

export const CLONE_NEWNET = 0x40000000;

/** x86-64 syscall numbers (unistd_64.h). */
export const SYS_pidfd_open = 434;
export const SYS_pidfd_getfd = 438;

/** The prefix of struct tcp_info baton reads (the kernel copies min(len, its size)). */
export const TCP_INFO_LAYOUT = {
  name: 'tcp_info',
  size: 232,
  // The byte after tcpi_options holds the bitfields tcpi_snd_wscale (low
  // nibble) and tcpi_rcv_wscale (high nibble); offsetof cannot name them.
  fields: {
    tcpi_state: 0,
    tcpi_options: 5,
    tcpi_rto: 8,
    tcpi_snd_mss: 16,
    tcpi_advmss: 84,
    tcpi_bytes_acked: 120,
    tcpi_bytes_received: 128,
    tcpi_notsent_bytes: 144,
    tcpi_snd_wnd: 228,
  },
} as const satisfies StructLayout;
export const TCPI_WSCALE_BYTE = 6;

export const TCP_REPAIR_WINDOW_LAYOUT = {
  name: 'tcp_repair_window',
  size: 20,
  fields: { snd_wl1: 0, snd_wnd: 4, max_window: 8, rcv_wnd: 12, rcv_wup: 16 },
} as const satisfies StructLayout;

export const TCP_REPAIR_OPT_LAYOUT = {
  name: 'tcp_repair_opt',
  size: 8,
  fields: { opt_code: 0, opt_val: 4 },
} as const satisfies StructLayout;

export const SOCKADDR_IN_LAYOUT = {
  name: 'sockaddr_in',
  size: 16,
  fields: { sin_family: 0, sin_port: 2, sin_addr: 4 },
} as const satisfies StructLayout;

export const SOCKADDR_IN6_LAYOUT = {
  name: 'sockaddr_in6',
  size: 28,
  fields: { sin6_family: 0, sin6_port: 2, sin6_flowinfo: 4, sin6_addr: 8, sin6_scope_id: 24 },
} as const satisfies StructLayout;

export const TCP_STRUCTS: readonly StructLayout[] = [
  TCP_INFO_LAYOUT,
  TCP_REPAIR_WINDOW_LAYOUT,
  TCP_REPAIR_OPT_LAYOUT,
  SOCKADDR_IN_LAYOUT,
  SOCKADDR_IN6_LAYOUT,
];
