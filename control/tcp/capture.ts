/**
 * Capturing TCP sockets in repair mode, and letting them go: captureSockets
 * (the splicer's: one socket-probe run reads every number of every state),
 * captureTcp (socket options only, no BPF), releaseSilently, leaveRepair.
 * What may be captured, and why not: capturable.ts; the queues' bytes:
 * repair-queues.ts.
 */
import { recordedSynMss } from '../datapath/profile-egress.js';
import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { checkCapturable, explained, type TcpInfo } from './capturable.js';
import { SocketError } from './errors.js';
import {
  SOL_TCP,
  TCP_ESTABLISHED,
  TCP_MAXSEG,
  TCP_REPAIR,
  TCP_REPAIR_OFF,
  TCP_REPAIR_OFF_NO_WP,
  TCP_REPAIR_ON,
  TCP_REPAIR_WINDOW,
  TCP_REPAIR_WINDOW_LAYOUT,
  TCP_TIMESTAMP,
  TCPI_OPT_SACK,
  TCPI_OPT_TIMESTAMPS,
  TCPI_OPT_USEC_TS,
  TCPI_OPT_WSCALE,
} from './kernel.js';
import { queueBytes, snapshotQueues } from './repair-queues.js';
import {
  closeFd,
  disconnect,
  fmt,
  getInt,
  getOpt,
  getU32,
  int32,
  localAddress,
  NetnsFds,
  remoteAddress,
  setInt,
} from './socket.js';
import { loadedSocketProbe, type SocketProbe, sharedSocketProbe, type TcpProbe } from './socket-probe.js';
import { type Endpoint, type TcpState, u32 } from './state.js';

const E = (name: string): number => errnoValue(name);

export interface CaptureOptions {
  /** Reads of the queues before giving up on a socket that keeps changing (default 5). */
  attempts?: number;
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

/**
 * Puts the socket in repair mode and reads its complete TCP state by socket
 * options (no BPF; tsRecent stays undefined: captureSockets reads it too,
 * with the probe). The socket is LEFT IN REPAIR MODE on success: the caller
 * either releases it (releaseSilently) or resumes it (leaveRepair). On
 * failure, repair mode is turned off again if this call turned it on.
 */
export function captureTcp(fd: number, opts: CaptureOptions = {}): TcpState {
  const info = checkCapturable(fd);
  const turnedOn = enterRepair(fd);
  try {
    return readState(fd, info, opts.attempts ?? 5, opts.endpoints);
  } catch (e) {
    if (turnedOn) repairOff(fd);
    throw e;
  }
}

const repairOff = (fd: number): void => {
  libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_OFF), 4);
};

/**
 * The state of a socket in repair mode, by socket options. `info` is its
 * TCP_INFO from before repair mode: options, window scales and MSS are
 * fixed for the life of a connection, and the state cannot leave
 * ESTABLISHED without a segment.
 */
function readState(fd: number, info: TcpInfo, attempts: number, known: KnownEndpoints | undefined): TcpState {
  const op = 'capture';
  const { seqs, sendQueue, recvQueue } = snapshotQueues(fd, attempts);
  const w = getOpt(fd, SOL_TCP, TCP_REPAIR_WINDOW, TCP_REPAIR_WINDOW_LAYOUT.size, op);
  const wf = TCP_REPAIR_WINDOW_LAYOUT.fields;
  const wscale = (info.options & TCPI_OPT_WSCALE) !== 0;
  return buildState(fd, addresses(fd, known), {
    sndNxt: u32(seqs.writeSeq - seqs.notsent),
    sndUna: u32(seqs.writeSeq - seqs.outq),
    rcvNxt: seqs.rcvNxt,
    mssClamp: getInt(fd, SOL_TCP, TCP_MAXSEG, op), // in repair mode: rx_opt.mss_clamp
    advMss: info.advMss,
    sndWscale: wscale ? info.sndWscale : 0,
    rcvWscale: wscale ? info.rcvWscale : 0,
    timestamps: (info.options & TCPI_OPT_TIMESTAMPS) !== 0,
    sackPermitted: (info.options & TCPI_OPT_SACK) !== 0,
    tsNow: getU32(fd, SOL_TCP, TCP_TIMESTAMP, op),
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
  });
}

/**
 * The state of a socket in repair mode from its probe reading: no socket
 * option at all unless a queue holds bytes (then those bytes are read).
 * The reading is the truth: the socket was already in repair mode (the
 * application can neither read nor write) and its flow is blocked.
 */
function probedState(fd: number, ends: KnownEndpoints, p: TcpProbe): TcpState {
  const { sendQueue, recvQueue } = queueBytes(fd, u32(p.rcvNxt - p.copiedSeq), u32(p.writeSeq - p.sndUna));
  return buildState(fd, ends, {
    sndNxt: p.sndNxt,
    sndUna: p.sndUna,
    rcvNxt: p.rcvNxt,
    mssClamp: p.mssClamp,
    advMss: p.advMss,
    sndWscale: p.wscale ? p.sndWscale : 0,
    rcvWscale: p.wscale ? p.rcvWscale : 0,
    timestamps: p.timestamps,
    sackPermitted: p.sackPermitted,
    tsNow: p.tsNow,
    usecTs: p.usecTs,
    ...(p.timestamps ? { tsRecent: p.tsRecent } : {}),
    sendQueue,
    recvQueue,
    window: p.window,
  });
}

/** A socket's addresses: the caller's reading (those of a connected socket never change), or asked now. */
function addresses(fd: number, known: KnownEndpoints | undefined): KnownEndpoints {
  if (known) return known;
  const local = localAddress(fd);
  const remote = remoteAddress(fd);
  if (local.family !== remote.family) {
    throw new SocketError(
      'capture',
      E('EAFNOSUPPORT'),
      `of fd ${fd}`,
      `local ${fmt(local)} and remote ${fmt(remote)} differ in address family`,
    );
  }
  return {
    family: local.family,
    local: { ip: local.ip, port: local.port },
    remote: { ip: remote.ip, port: remote.port },
  };
}

/** The one place a TcpState is put together, whichever way it was read. */
function buildState(fd: number, ends: KnownEndpoints, s: Omit<TcpState, 'family' | 'local' | 'remote'>): TcpState {
  // A leg opened with a client's profile: baton's TC egress program may have
  // lowered the MSS its SYN advertised (control/datapath/profile-egress.ts);
  // the back end then sends no more than that, whatever tp->advmss says.
  const wireMss = recordedSynMss(fd);
  return {
    family: ends.family,
    local: { ip: ends.local.ip, port: ends.local.port },
    remote: { ip: ends.remote.ip, port: ends.remote.port },
    ...s,
    advMss: wireMss === undefined ? s.advMss : Math.min(s.advMss, wireMss),
  };
}

export interface CaptureSocketsOptions {
  /** The probe to use; default the shared one (loaded on first use). captureTcp captures without. */
  probe?: SocketProbe;
  /** Each socket's addresses, when the caller has them (same order as the fds). */
  endpoints?: ReadonlyArray<KnownEndpoints | undefined>;
  /** Namespace fds the caller keeps (the splicer's); default: opened for this call and closed after. */
  netns?: NetnsFds;
}

/**
 * Captures several sockets, all or nothing: if one capture fails, the
 * sockets this call put in repair mode leave it again, and the error is
 * thrown. Repair mode on for each socket, then one probe run per network
 * namespace reads every number of every state, tsRecent included; a socket
 * whose queues are empty takes two system calls (TCP_REPAIR read and set)
 * besides its share of the run. Synchronous once the shared probe is loaded
 * (the daemon loads it at start: the splicer's hot path awaits nothing
 * here), a promise while it loads.
 */
export function captureSockets(
  fds: readonly number[],
  opts: CaptureSocketsOptions = {},
): TcpState[] | Promise<TcpState[]> {
  const probe = opts.probe ?? loadedSocketProbe();
  return probe
    ? captureSocketsWith(probe, fds, opts)
    : sharedSocketProbe().then((p) => captureSocketsWith(p, fds, opts));
}

function captureSocketsWith(probe: SocketProbe, fds: readonly number[], opts: CaptureSocketsOptions): TcpState[] {
  const turnedOn: number[] = [];
  const netns = opts.netns ?? new NetnsFds();
  try {
    const ends = fds.map((fd, i) => {
      if (enterRepair(fd)) turnedOn.push(fd);
      try {
        return addresses(fd, opts.endpoints?.[i]);
      } catch (e) {
        throw explained(fd, e);
      }
    });
    const rows = probeByNetns(probe, fds, ends, netns);
    return fds.map((fd, i) => {
      const p = rows[i];
      const e = ends[i] as KnownEndpoints;
      if (p?.state !== TCP_ESTABLISHED) {
        throw explained(
          fd,
          new SocketError(
            'capture',
            E('ENOENT'),
            `of fd ${fd}`,
            `the socket probe found no established socket ${fmt(e.local)} -> ${fmt(e.remote)} in the socket's network namespace`,
          ),
        );
      }
      return probedState(fd, e, p);
    });
  } catch (e) {
    for (const fd of turnedOn) repairOff(fd);
    throw e;
  } finally {
    if (!opts.netns) netns.close();
  }
}

/**
 * Puts a socket in repair mode; true when this call turned it on. A socket
 * that refuses (not TCP, not a socket, not established: the kernel allows
 * repair of established and closed sockets only) gets the error that says
 * what it is instead.
 */
function enterRepair(fd: number): boolean {
  try {
    if (getInt(fd, SOL_TCP, TCP_REPAIR, 'capture') === 1) return false;
    setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, 'repair');
    return true;
  } catch (e) {
    throw explained(fd, e);
  }
}

/** One probe run per network namespace of the sockets (usually one: the caller's own). */
function probeByNetns(
  probe: SocketProbe,
  fds: readonly number[],
  ends: readonly KnownEndpoints[],
  netns: NetnsFds,
): Array<TcpProbe | undefined> {
  const groups = new Map<number | undefined, number[]>();
  fds.forEach((fd, i) => {
    const ns = netns.of(fd);
    const g = groups.get(ns);
    if (g) g.push(i);
    else groups.set(ns, [i]);
  });
  const rows = new Array<TcpProbe | undefined>(fds.length);
  for (const [ns, idx] of groups) {
    const got = probe.read(
      idx.map((i) => ends[i] as KnownEndpoints),
      ns === undefined ? {} : { netnsFd: ns },
    );
    idx.forEach((i, j) => {
      rows[i] = got[j];
    });
  }
  return rows;
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
