import { recordedSynMss } from '../datapath/profile-egress.js';
import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  SO_DOMAIN,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_STREAM,
  SOL_SOCKET,
  SOL_TCP,
  TCP_ESTABLISHED,
  TCP_INFO,
  TCP_INFO_LAYOUT,
  TCP_LISTEN,
  TCP_MAXSEG,
  TCP_REPAIR,
  TCP_REPAIR_OFF,
  TCP_REPAIR_OFF_NO_WP,
  TCP_REPAIR_ON,
  TCP_REPAIR_WINDOW,
  TCP_REPAIR_WINDOW_LAYOUT,
  TCP_STATES,
  TCP_TIMESTAMP,
  TCPI_OPT_SACK,
  TCPI_OPT_TIMESTAMPS,
  TCPI_OPT_USEC_TS,
  TCPI_OPT_WSCALE,
  TCPI_WSCALE_BYTE,
} from './kernel.js';
import { snapshotQueues } from './repair-queues.js';
import {
  closeFd,
  disconnect,
  fmt,
  getInt,
  getOpt,
  getU32,
  int32,
  localAddress,
  remoteAddress,
  setInt,
  socketNetns,
} from './socket.js';
import { type Endpoint, type TcpState, u32 } from './state.js';
import { type FillResult, sharedTsProbe, type TsProbe } from './ts-probe.js';

const E = (name: string): number => errnoValue(name);

export interface CaptureOptions {
  /** A loaded probe: tsRecent is filled in the same call. Without one tsRecent stays undefined. */
  probe?: TsProbe;
  /** Reads of the queues before giving up on a socket that keeps changing (default 5). */
  attempts?: number;
  /**
   * The caller checks the state against the kernel's sequence numbers
   * afterwards (the timestamp probe does): one read of the queues instead of
   * two that must agree.
   */
  verifiedLater?: boolean;
  /**
   * The socket's addresses, when the caller read them already (the splicer
   * does, to block the flows first): two system calls fewer.
   */
  endpoints?: KnownEndpoints;
}

/** A socket's addresses as the caller read them (getsockname/getpeername). */
export interface KnownEndpoints {
  family: TcpState['family'];
  local: Endpoint;
  remote: Endpoint;
}

interface TcpInfo {
  state: number;
  options: number;
  sndWscale: number;
  rcvWscale: number;
  advMss: number;
}

function tcpInfo(fd: number, op: string): TcpInfo {
  const b = getOpt(fd, SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT.size, op);
  if (b.length < TCP_INFO_LAYOUT.fields.tcpi_advmss + 4) {
    throw new SocketError(op, E('EPROTO'), `of fd ${fd}`, `the kernel returned a ${b.length}-byte tcp_info`);
  }
  const ws = b.readUInt8(TCPI_WSCALE_BYTE);
  return {
    state: b.readUInt8(TCP_INFO_LAYOUT.fields.tcpi_state),
    options: b.readUInt8(TCP_INFO_LAYOUT.fields.tcpi_options),
    sndWscale: ws & 0x0f,
    rcvWscale: ws >> 4,
    advMss: b.readUInt32LE(TCP_INFO_LAYOUT.fields.tcpi_advmss),
  };
}

/**
 * Refuses anything but an established TCP socket, with a message that says
 * what it is instead. One TCP_INFO call answers for a good socket; the
 * socket's domain, type and protocol are only asked to explain a refusal.
 */
function checkCapturable(fd: number): TcpInfo {
  const op = 'capture';
  let info: TcpInfo | undefined;
  try {
    info = tcpInfo(fd, op);
  } catch {
    /* not TCP (or not a socket): explained below */
  }
  if (!info) {
    const domain = getInt(fd, SOL_SOCKET, SO_DOMAIN, op);
    if (domain !== AF_INET && domain !== AF_INET6) {
      throw new SocketError(
        op,
        E('EAFNOSUPPORT'),
        `of fd ${fd}`,
        `fd ${fd} is not an IPv4/IPv6 socket (address family ${domain}); only TCP connections can be captured`,
      );
    }
    const type = getInt(fd, SOL_SOCKET, SO_TYPE, op);
    const proto = getInt(fd, SOL_SOCKET, SO_PROTOCOL, op);
    if (type !== SOCK_STREAM || proto !== IPPROTO_TCP) {
      const what = proto === 17 ? 'a UDP socket' : `a socket of type ${type}, protocol ${proto}`;
      throw new SocketError(
        op,
        E('EPROTOTYPE'),
        `of fd ${fd}`,
        `fd ${fd} is ${what}, not TCP; only TCP connections can be captured`,
      );
    }
    info = tcpInfo(fd, op); // a TCP socket: now the real error, if any
  }
  if (info.state !== TCP_ESTABLISHED) {
    const name = TCP_STATES[info.state] ?? `state ${info.state}`;
    const why =
      info.state === TCP_LISTEN
        ? `fd ${fd} is a listening socket; only established connections can be captured (capture the accepted socket instead)`
        : `fd ${fd} is in state ${name}; only ESTABLISHED connections can be captured`;
    throw new SocketError(op, E('ENOTCONN'), `of fd ${fd}`, why);
  }
  return info;
}

/**
 * Puts the socket in repair mode and reads its complete TCP state. The
 * socket is LEFT IN REPAIR MODE on success: the caller either releases it
 * (releaseSilently) or resumes it (leaveRepair). On failure, repair mode is
 * turned off again if this call turned it on.
 *
 * tsRecent is filled only when `opts.probe` is given; captureSockets() does
 * captures and one probe for all.
 */
export function captureTcp(fd: number, opts: CaptureOptions = {}): TcpState {
  return captureOne(fd, opts).state;
}

/** captureTcp, also saying whether this call turned repair mode on (captureSockets undoes that on failure). */
function captureOne(fd: number, opts: CaptureOptions): { state: TcpState; turnedOn: boolean } {
  const info = checkCapturable(fd);
  const wasRepair = getInt(fd, SOL_TCP, TCP_REPAIR, 'capture') === 1;
  if (!wasRepair) setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, 'repair');
  try {
    const state = readState(
      fd,
      info,
      opts.attempts ?? 5,
      opts.verifiedLater === true || opts.probe !== undefined,
      opts.endpoints,
    );
    if (opts.probe) probeInSocketNetns(opts.probe, [state], fd);
    return { state, turnedOn: !wasRepair };
  } catch (e) {
    if (!wasRepair) libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_OFF), 4);
    throw e;
  }
}

/**
 * The state of a socket in repair mode. `info` is its TCP_INFO from before
 * repair mode: options, window scales and MSS are fixed for the life of a
 * connection, and the state cannot leave ESTABLISHED without a segment,
 * which a captured flow does not get (the datapath blocks it, and a
 * verified capture is compared with the kernel's numbers afterwards).
 */
function readState(
  fd: number,
  info: TcpInfo,
  attempts: number,
  verifiedLater: boolean,
  known: KnownEndpoints | undefined,
): TcpState {
  const op = 'capture';
  const { seqs, sendQueue, recvQueue } = snapshotQueues(fd, attempts, verifiedLater);
  const mssClamp = getInt(fd, SOL_TCP, TCP_MAXSEG, op); // in repair mode: rx_opt.mss_clamp
  // A leg opened with a client's profile: baton's TC egress program may have
  // lowered the MSS its SYN advertised (control/datapath/profile-egress.ts);
  // the back end then sends no more than that, whatever tcpi_advmss says.
  const wireMss = recordedSynMss(fd);
  const tsNow = getU32(fd, SOL_TCP, TCP_TIMESTAMP, op);
  const w = getOpt(fd, SOL_TCP, TCP_REPAIR_WINDOW, TCP_REPAIR_WINDOW_LAYOUT.size, op);
  const wf = TCP_REPAIR_WINDOW_LAYOUT.fields;
  // The addresses of a connected socket never change: the caller's reading stands.
  const local = known ? { family: known.family, ...known.local } : localAddress(fd);
  const remote = known ? { family: known.family, ...known.remote } : remoteAddress(fd);
  if (local.family !== remote.family) {
    throw new SocketError(
      op,
      E('EAFNOSUPPORT'),
      `of fd ${fd}`,
      `local ${fmt(local)} and remote ${fmt(remote)} differ in address family`,
    );
  }
  const wscale = (info.options & TCPI_OPT_WSCALE) !== 0;
  return {
    family: local.family,
    local: { ip: local.ip, port: local.port },
    remote: { ip: remote.ip, port: remote.port },
    sndNxt: u32(seqs.writeSeq - seqs.notsent),
    sndUna: u32(seqs.writeSeq - seqs.outq),
    rcvNxt: seqs.rcvNxt,
    mssClamp,
    advMss: wireMss === undefined ? info.advMss : Math.min(info.advMss, wireMss),
    sndWscale: wscale ? info.sndWscale : 0,
    rcvWscale: wscale ? info.rcvWscale : 0,
    timestamps: (info.options & TCPI_OPT_TIMESTAMPS) !== 0,
    sackPermitted: (info.options & TCPI_OPT_SACK) !== 0,
    tsNow,
    usecTs: (info.options & TCPI_OPT_USEC_TS) !== 0,
    sendQueue,
    recvQueue,
    window: {
      sndWl1: w.readUInt32LE(wf.snd_wl1),
      sndWnd: w.readUInt32LE(wf.snd_wnd),
      maxWindow: w.readUInt32LE(wf.max_window),
      rcvWnd: w.readUInt32LE(wf.rcv_wnd),
      rcvWup: w.readUInt32LE(wf.rcv_wup),
    },
  };
}

function probeInSocketNetns(probe: TsProbe, states: TcpState[], fd: number): void {
  const ns = socketNetns(fd);
  let r: FillResult;
  try {
    r = probe.fill(states, ns === undefined ? {} : { netnsFd: ns.fd });
  } finally {
    if (ns !== undefined) libc.close(ns.fd);
  }
  if (r.stale > 0) throw staleError(r, states, fd);
}

function staleError(r: FillResult, states: TcpState[], fd: number): SocketError {
  return new SocketError(
    'capture',
    E('EAGAIN'),
    `of ${states.length === 1 ? `fd ${fd}` : `${states.length} sockets`}`,
    `${r.stale} socket(s) received or sent data between capture and timestamp probe; block the flow in the datapath before capturing`,
  );
}

export interface CaptureSocketsOptions {
  /** The probe to use; default the shared one (loaded on first use); false: do not probe. */
  probe?: TsProbe | false;
  attempts?: number;
  /** Each socket's addresses, when the caller has them (same order as the fds). */
  endpoints?: ReadonlyArray<KnownEndpoints | undefined>;
}

/**
 * Captures several sockets and fills tsRecent for all of them, setting the
 * thread into each network namespace once. All or nothing: if one capture
 * fails, the sockets this call put in repair mode leave it again, and the
 * error is thrown. The probe is loaded before any socket is touched.
 */
export async function captureSockets(fds: readonly number[], opts: CaptureSocketsOptions = {}): Promise<TcpState[]> {
  const probe = opts.probe === false ? undefined : (opts.probe ?? (await sharedTsProbe()));
  const states: TcpState[] = [];
  const turnedOn: number[] = [];
  try {
    fds.forEach((fd, i) => {
      const known = opts.endpoints?.[i];
      const c = captureOne(fd, {
        ...(opts.attempts === undefined ? {} : { attempts: opts.attempts }),
        ...(known ? { endpoints: known } : {}),
        verifiedLater: probe !== undefined,
      });
      states.push(c.state);
      if (c.turnedOn) turnedOn.push(fd);
    });
    if (probe) probeGrouped(probe, fds, states);
    return states;
  } catch (e) {
    for (const fd of turnedOn) libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_OFF), 4);
    throw e;
  }
}

/**
 * One probe run per network namespace of the sockets, each namespace asked
 * of the kernel once per socket (its fd kept for the run, closed after).
 */
function probeGrouped(probe: TsProbe, fds: readonly number[], states: TcpState[]): void {
  const groups = new Map<string, { nsFd: number | undefined; fd: number; states: TcpState[] }>();
  const extra: number[] = [];
  try {
    fds.forEach((fd, i) => {
      const ns = socketNetns(fd);
      const key = ns?.id ?? 'self';
      const g = groups.get(key);
      if (g) {
        if (ns) extra.push(ns.fd);
        g.states.push(states[i] as TcpState);
      } else groups.set(key, { nsFd: ns?.fd, fd, states: [states[i] as TcpState] });
    });
    for (const g of groups.values()) {
      const r = probe.fill(g.states, g.nsFd === undefined ? {} : { netnsFd: g.nsFd });
      if (r.stale > 0) throw staleError(r, g.states, g.fd);
    }
  } finally {
    for (const g of groups.values()) if (g.nsFd !== undefined) libc.close(g.nsFd);
    for (const nsFd of extra) libc.close(nsFd);
  }
}

/**
 * Lets a captured socket go without a packet: disconnects it while still in
 * repair mode (tcp_disconnect() sends neither FIN nor RST when repair is on,
 * stops its timers, frees its queues and its 4-tuple), then closes our fd.
 * Other descriptors of the same socket (the front end's, when ours came from
 * takeSocket) now refer to a closed socket: their next read fails with
 * ECONNABORTED, and closing them sends nothing.
 */
export function releaseSilently(fd: number): void {
  let repair: number;
  try {
    repair = getInt(fd, SOL_TCP, TCP_REPAIR, 'release');
  } catch (e) {
    throw e instanceof SocketError ? e : new SocketError('release', E('EBADF'), `of fd ${fd}`);
  }
  if (repair !== 1) {
    throw new SocketError(
      'release',
      E('EINVAL'),
      `of fd ${fd}`,
      `fd ${fd} is not in repair mode, so closing it would send a FIN or RST; capture it (captureTcp) first`,
    );
  }
  disconnect(fd);
  closeFd(fd);
}

/**
 * Turns repair mode off: the socket works normally again. The kernel then
 * sends a window probe (a segment below snd_una, which the peer answers with
 * an ACK) unless `windowProbe` is false: a caller about to send data has no
 * use for it, the data segment draws the same ACK.
 */
export function leaveRepair(fd: number, opts: { windowProbe?: boolean } = {}): void {
  const off = opts.windowProbe === false ? TCP_REPAIR_OFF_NO_WP : TCP_REPAIR_OFF;
  setInt(fd, SOL_TCP, TCP_REPAIR, off, 'leave_repair');
}
