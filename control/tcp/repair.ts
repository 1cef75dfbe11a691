/**
 * Capturing a live TCP socket's state with TCP_REPAIR, letting it go without
 * a packet, and recreating it elsewhere: CRIU's libsoccr recipe (save:
 * refresh_sk/get_stream_options/get_window/get_queue; restore:
 * set_sk_data_noq/restore_queue) in TypeScript.
 *
 * Sequence space, as the kernel keeps it (and libsoccr draws it):
 *
 *        send queue (SIOCOUTQ bytes)                 receive queue (SIOCINQ bytes)
 *   net <--[ sent, unacked | unsent ]-- app      net --[ unread ]--> app
 *          ^snd_una        ^snd_nxt  ^write_seq         ^copied_seq ^rcv_nxt
 *
 * TCP_QUEUE_SEQ reads write_seq (send queue selected) or rcv_nxt (receive
 * queue); SIOCOUTQNSD gives write_seq - snd_nxt. TcpState.sendQueue starts at
 * sndUna and holds sent-unacked then unsent bytes; recvQueue ends at rcvNxt.
 *
 * Repair mode does not freeze a socket: segments that arrive meanwhile are
 * still processed (and ACKed). Block the flow first (the datapath's BLOCK
 * state) so the captured state is the final one; captureTcp() re-reads until
 * two consecutive reads agree and fails with EAGAIN when they never do.
 *
 * Not captured (as in libsoccr): the out-of-order queue (the peer
 * retransmits it), urgent data, congestion state, socket options other than
 * the TCP options; sockets other than ESTABLISHED are refused.
 */
import { fstatSync } from 'node:fs';
import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import {
  AF_INET, AF_INET6, IPPROTO_TCP, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD, SO_DOMAIN, SO_PROTOCOL, SO_RCVBUF, SO_RCVBUFFORCE,
  SO_REUSEADDR, SO_SNDBUF, SO_SNDBUFFORCE, SO_TYPE, SOCK_STREAM, SOL_SOCKET, SOL_TCP, TCP_ESTABLISHED, TCP_INFO,
  TCP_INFO_LAYOUT, TCP_LISTEN, TCP_MAXSEG, TCP_NO_QUEUE, TCP_QUEUE_SEQ, TCP_RECV_QUEUE, TCP_REPAIR, TCP_REPAIR_OFF,
  TCP_REPAIR_ON, TCP_REPAIR_OPT_LAYOUT, TCP_REPAIR_OPTIONS, TCP_REPAIR_QUEUE, TCP_REPAIR_WINDOW,
  TCP_REPAIR_WINDOW_LAYOUT, TCP_SEND_QUEUE, TCP_STATES, TCP_TIMESTAMP, TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS,
  TCPI_OPT_USEC_TS, TCPI_OPT_WSCALE, TCPI_WSCALE_BYTE, TCPOPT_MSS, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW,
} from './kernel.js';
import {
  bindTo, closeFd, connectTo, disconnect, fmt, getInt, getOpt, getU32, ioctlInt, localAddress, openTcpSocket, peek,
  remoteAddress, sendSome, setInt, setOpt, socketNetns,
} from './socket.js';
import { type TcpState, u32 } from './state.js';
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
      throw new SocketError(op, E('EAFNOSUPPORT'), `of fd ${fd}`, `fd ${fd} is not an IPv4/IPv6 socket (address family ${domain}); only TCP connections can be captured`);
    }
    const type = getInt(fd, SOL_SOCKET, SO_TYPE, op);
    const proto = getInt(fd, SOL_SOCKET, SO_PROTOCOL, op);
    if (type !== SOCK_STREAM || proto !== IPPROTO_TCP) {
      const what = proto === 17 ? 'a UDP socket' : `a socket of type ${type}, protocol ${proto}`;
      throw new SocketError(op, E('EPROTOTYPE'), `of fd ${fd}`, `fd ${fd} is ${what}, not TCP; only TCP connections can be captured`);
    }
    info = tcpInfo(fd, op); // a TCP socket: now the real error, if any
  }
  if (info.state !== TCP_ESTABLISHED) {
    const name = TCP_STATES[info.state] ?? `state ${info.state}`;
    const why = info.state === TCP_LISTEN
      ? `fd ${fd} is a listening socket; only established connections can be captured (capture the accepted socket instead)`
      : `fd ${fd} is in state ${name}; only ESTABLISHED connections can be captured`;
    throw new SocketError(op, E('ENOTCONN'), `of fd ${fd}`, why);
  }
  return info;
}

interface Seqs {
  outq: number;
  notsent: number;
  inq: number;
  rcvNxt: number;
  writeSeq: number;
}

function readSeqs(fd: number): Seqs {
  const op = 'capture';
  const outq = ioctlInt(fd, SIOCOUTQ, op);
  const notsent = ioctlInt(fd, SIOCOUTQNSD, op);
  const inq = ioctlInt(fd, SIOCINQ, op);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, op);
  const rcvNxt = getU32(fd, SOL_TCP, TCP_QUEUE_SEQ, op);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, op);
  const writeSeq = getU32(fd, SOL_TCP, TCP_QUEUE_SEQ, op);
  return { outq, notsent, inq, rcvNxt, writeSeq };
}

const sameSeqs = (a: Seqs, b: Seqs): boolean =>
  a.outq === b.outq && a.notsent === b.notsent && a.inq === b.inq && a.rcvNxt === b.rcvNxt && a.writeSeq === b.writeSeq;

/**
 * Sequence numbers and both queues' bytes, read until two reads agree. With
 * `verifiedLater` (the timestamp probe will compare the kernel's sequence
 * numbers with the state, and reject a socket that moved) one read suffices.
 */
function snapshotQueues(fd: number, attempts: number, verifiedLater: boolean): { seqs: Seqs; sendQueue: Buffer; recvQueue: Buffer } {
  const op = 'capture';
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const a = readSeqs(fd);
    // One byte more than announced, to prove the queue holds exactly that much (libsoccr does the same).
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, op);
    const recvQueue = peek(fd, a.inq + 1, op);
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, op);
    const sendQueue = peek(fd, a.outq + 1, op);
    const b = verifiedLater ? a : readSeqs(fd);
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, op);
    if (sameSeqs(a, b) && recvQueue.length === a.inq && sendQueue.length === a.outq) {
      return { seqs: a, sendQueue: Buffer.from(sendQueue), recvQueue: Buffer.from(recvQueue) };
    }
    last = `queues ${a.inq}/${a.outq} bytes, peeked ${recvQueue.length}/${sendQueue.length}, rcv_nxt ${a.rcvNxt}->${b.rcvNxt}, write_seq ${a.writeSeq}->${b.writeSeq}`;
  }
  throw new SocketError(op, E('EAGAIN'), `of fd ${fd}`,
    `the socket kept changing while being read (${last}); block the flow in the datapath before capturing it`);
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
    const state = readState(fd, info, opts.attempts ?? 5, opts.verifiedLater === true || opts.probe !== undefined);
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
function readState(fd: number, info: TcpInfo, attempts: number, verifiedLater: boolean): TcpState {
  const op = 'capture';
  const { seqs, sendQueue, recvQueue } = snapshotQueues(fd, attempts, verifiedLater);
  const mssClamp = getInt(fd, SOL_TCP, TCP_MAXSEG, op); // in repair mode: rx_opt.mss_clamp
  const tsNow = getU32(fd, SOL_TCP, TCP_TIMESTAMP, op);
  const w = getOpt(fd, SOL_TCP, TCP_REPAIR_WINDOW, TCP_REPAIR_WINDOW_LAYOUT.size, op);
  const wf = TCP_REPAIR_WINDOW_LAYOUT.fields;
  const local = localAddress(fd);
  const remote = remoteAddress(fd);
  if (local.family !== remote.family) {
    throw new SocketError(op, E('EAFNOSUPPORT'), `of fd ${fd}`, `local ${fmt(local)} and remote ${fmt(remote)} differ in address family`);
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
    advMss: info.advMss,
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
  if (r.stale > 0) {
    throw new SocketError('capture', E('EAGAIN'), `of ${states.length === 1 ? `fd ${fd}` : `${states.length} sockets`}`,
      `${r.stale} socket(s) received or sent data between capture and timestamp probe; block the flow in the datapath before capturing`);
  }
}

export interface CaptureSocketsOptions {
  /** The probe to use; default the shared one (loaded on first use); false: do not probe. */
  probe?: TsProbe | false;
  attempts?: number;
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
    for (const fd of fds) {
      const c = captureOne(fd, { ...(opts.attempts === undefined ? {} : { attempts: opts.attempts }), verifiedLater: probe !== undefined });
      states.push(c.state);
      if (c.turnedOn) turnedOn.push(fd);
    }
    if (probe) {
      const groups = new Map<string, { fd: number; states: TcpState[] }>();
      fds.forEach((fd, i) => {
        const ns = socketNetns(fd);
        if (ns) libc.close(ns.fd);
        const key = ns?.id ?? 'self';
        const g = groups.get(key) ?? { fd, states: [] };
        g.states.push(states[i] as TcpState);
        groups.set(key, g);
      });
      for (const g of groups.values()) probeInSocketNetns(probe, g.states, g.fd);
    }
    return states;
  } catch (e) {
    for (const fd of turnedOn) libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_OFF), 4);
    throw e;
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
    throw new SocketError('release', E('EINVAL'), `of fd ${fd}`,
      `fd ${fd} is not in repair mode, so closing it would send a FIN or RST; capture it (captureTcp) first`);
  }
  disconnect(fd);
  closeFd(fd);
}

/** Turns repair mode off: the socket works normally again (the kernel sends a window probe to resync). */
export function leaveRepair(fd: number): void {
  setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF, 'leave_repair');
}

export interface RestoreOptions {
  /** Called with the fd before repair mode and bind (e.g. to set socket options; not SO_REUSEADDR/SO_REUSEPORT-sensitive ones). */
  beforeConnect?: (fd: number) => void;
  /**
   * Leave the socket in repair mode: it sends nothing, ever (no window
   * probe, no unsent data), and only holds its 4-tuple. Unsent bytes in the
   * state are refused.
   */
  stayInRepair?: boolean;
}

/**
 * A new socket with the captured connection's state, in the calling
 * thread's network namespace, out of repair mode and ready to use (blocking;
 * wrap it with `new net.Socket({ fd })` for Node). The original must be gone
 * from this namespace first (releaseSilently), or connect fails with
 * EADDRNOTAVAIL. Nothing is sent before repair mode is turned off; then the
 * kernel sends one window probe (the peer answers with an ACK that carries
 * its current window), retransmits sent-but-unacknowledged data on its
 * timer, and sends the unsent data.
 *
 * Socket buffers are raised (SO_SNDBUFFORCE/SO_RCVBUFFORCE, which also stops
 * their autotuning) only when a captured queue would not fit the defaults.
 */
export function restoreTcp(state: TcpState, opts: RestoreOptions = {}): number {
  validateState(state);
  const fd = openTcpSocket(state.family);
  let repairOn = false;
  try {
    // SO_REUSEADDR first: it sets sk_reuse, and so would undo the SK_FORCE_REUSE
    // that TCP_REPAIR sets (which lets bind() share a port held by a listener
    // or by other connections).
    setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, 'restore');
    opts.beforeConnect?.(fd);
    setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, 'repair');
    repairOn = true;

    const sent = u32(state.sndNxt - state.sndUna);
    const sentPart = state.sendQueue.subarray(0, sent);
    const unsentPart = state.sendQueue.subarray(sent);
    // Before connect(), which derives the window clamp from the receive buffer.
    ensureBuffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, state.recvQueue.length);

    // Sequence numbers before connect(): connect() in repair mode starts from them.
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, 'restore');
    setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, u32(state.rcvNxt - state.recvQueue.length), 'restore');
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, 'restore');
    setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, state.sndUna, 'restore');
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, 'restore');

    bindTo(fd, state.local, state.family);
    connectTo(fd, state.remote, state.family); // no SYN in repair mode: straight to ESTABLISHED
    // After connect(), which sizes the send buffer for the route's MSS.
    ensureBuffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, state.sendQueue.length);

    // Options must be set while nothing has been sent (the kernel refuses after).
    setOpt(fd, SOL_TCP, TCP_REPAIR_OPTIONS, repairOptions(state), 'restore_options');
    if (state.timestamps) setInt(fd, SOL_TCP, TCP_TIMESTAMP, state.tsNow, 'restore_timestamp');

    // Queues: what arrived unread, then what was sent and awaits its ACK.
    writeQueue(fd, TCP_RECV_QUEUE, state.recvQueue);
    writeQueue(fd, TCP_SEND_QUEUE, sentPart);
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, 'restore');

    // After the queues: the kernel checks rcv_wup against the restored rcv_nxt.
    const wf = TCP_REPAIR_WINDOW_LAYOUT.fields;
    const w = Buffer.alloc(TCP_REPAIR_WINDOW_LAYOUT.size);
    w.writeUInt32LE(u32(state.window.sndWl1), wf.snd_wl1);
    w.writeUInt32LE(u32(state.window.sndWnd), wf.snd_wnd);
    w.writeUInt32LE(u32(state.window.maxWindow), wf.max_window);
    w.writeUInt32LE(u32(state.window.rcvWnd), wf.rcv_wnd);
    w.writeUInt32LE(u32(state.window.rcvWup), wf.rcv_wup);
    setOpt(fd, SOL_TCP, TCP_REPAIR_WINDOW, w, 'restore_window');

    if (opts.stayInRepair) {
      if (unsentPart.length) throw new SocketError('restore', E('EINVAL'), `of ${fmt(state.local)} -> ${fmt(state.remote)}`, 'a socket kept in repair mode cannot send its unsent bytes');
      return fd;
    }
    setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF, 'repair');
    repairOn = false;

    // Never-sent bytes go through the normal path, as if the application wrote them now.
    writeUnsent(fd, unsentPart);
    return fd;
  } catch (e) {
    // Close silently: back in repair mode if we had left it.
    if (!repairOn) libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_ON), 4);
    libc.close(fd);
    throw e;
  }
}

function validateState(s: TcpState): void {
  const bad = (msg: string): never => {
    throw new SocketError('restore', E('EINVAL'), `of ${fmt(s.local)} -> ${fmt(s.remote)}`, msg);
  };
  const sent = u32(s.sndNxt - s.sndUna);
  if (sent > s.sendQueue.length) bad(`sndNxt - sndUna is ${sent} bytes but the send queue holds only ${s.sendQueue.length}`);
  if (s.sndWscale > 14 || s.rcvWscale > 14 || s.sndWscale < 0 || s.rcvWscale < 0) bad(`window scale must be 0..14, got ${s.sndWscale}/${s.rcvWscale}`);
  if (!Number.isInteger(s.mssClamp) || s.mssClamp < 1 || s.mssClamp > 0xffff) bad(`mssClamp must be 1..65535, got ${s.mssClamp}`);
  if (s.window.maxWindow < s.window.sndWnd) bad(`window.maxWindow (${s.window.maxWindow}) is below window.sndWnd (${s.window.sndWnd})`);
}

function repairOptions(s: TcpState): Buffer {
  const opts: Array<[number, number]> = [];
  if (s.sackPermitted) opts.push([TCPOPT_SACK_PERM, 0]);
  if (s.sndWscale || s.rcvWscale) opts.push([TCPOPT_WINDOW, s.sndWscale | (s.rcvWscale << 16)]);
  if (s.timestamps) opts.push([TCPOPT_TIMESTAMP, 0]);
  opts.push([TCPOPT_MSS, s.mssClamp]);
  const L = TCP_REPAIR_OPT_LAYOUT;
  const b = Buffer.alloc(L.size * opts.length);
  opts.forEach(([code, val], i) => {
    b.writeUInt32LE(code, i * L.size + L.fields.opt_code);
    b.writeUInt32LE(val >>> 0, i * L.size + L.fields.opt_val);
  });
  return b;
}

/**
 * Raises a socket buffer when `bytes` of queue would not fit what the kernel
 * allows by default (getsockopt reports the internal value, which counts skb
 * overhead too; setsockopt's value is doubled by the kernel).
 */
function ensureBuffer(fd: number, get: number, force: number, bytes: number): void {
  if (bytes === 0) return;
  const want = bytes + (bytes >> 2) + (64 << 10);
  if (getInt(fd, SOL_SOCKET, get, 'restore') >= want) return;
  setInt(fd, SOL_SOCKET, force, Math.ceil(want / 2), 'restore_buffer');
}

const MAX_CHUNK = 256 << 10;
const MIN_CHUNK = 1024;

/**
 * Writes a queue in repair mode. The receive queue is written as one skb per
 * send(), so large chunks can fail with ENOMEM; like libsoccr, halve and retry.
 */
function writeQueue(fd: number, queue: number, data: Buffer): void {
  if (data.length === 0) return;
  const op = queue === TCP_RECV_QUEUE ? 'restore_recv_queue' : 'restore_send_queue';
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue, op);
  let off = 0;
  let chunk = Math.min(MAX_CHUNK, data.length);
  while (off < data.length) {
    const piece = data.subarray(off, off + chunk);
    const r = sendSome(fd, piece, op);
    if (r.sent > 0) {
      off += r.sent;
      continue;
    }
    if (chunk > MIN_CHUNK) {
      chunk = Math.max(MIN_CHUNK, chunk >> 1);
      continue;
    }
    throw new SocketError(op, r.errno || E('EIO'), `on fd ${fd}`, `the kernel took ${off} of ${data.length} bytes of the ${queue === TCP_RECV_QUEUE ? 'receive' : 'send'} queue`);
  }
}

/** Writes all of `data` on a socket out of repair mode without blocking; throws if the send buffer cannot take it. */
export function writeUnsent(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    const r = sendSome(fd, data.subarray(off), 'restore_unsent');
    if (r.sent === 0) {
      throw new SocketError('restore_unsent', r.errno || E('EIO'), `on fd ${fd}`,
        `the send buffer took ${off} of ${data.length} unsent bytes`);
    }
    off += r.sent;
  }
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}
