import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import {
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEADDR,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOL_SOCKET,
  SOL_TCP,
  TCP_NO_QUEUE,
  TCP_QUEUE_SEQ,
  TCP_RECV_QUEUE,
  TCP_REPAIR,
  TCP_REPAIR_OFF,
  TCP_REPAIR_OFF_NO_WP,
  TCP_REPAIR_ON,
  TCP_REPAIR_OPT_LAYOUT,
  TCP_REPAIR_OPTIONS,
  TCP_REPAIR_QUEUE,
  TCP_REPAIR_WINDOW,
  TCP_REPAIR_WINDOW_LAYOUT,
  TCP_SEND_QUEUE,
  TCP_TIMESTAMP,
  TCPOPT_MSS,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_WINDOW,
} from './kernel.js';
import { bindTo, connectTo, fmt, getInt, int32, openTcpSocket, sendSome, setInt, setOpt } from './socket.js';
import { type TcpState, tcpStateInconsistency, u32 } from './state.js';

const E = (name: string): number => errnoValue(name);

export interface RestoreOptions {
  /** Called with the fd before repair mode and bind (e.g. to set socket options; not SO_REUSEADDR/SO_REUSEPORT-sensitive ones). */
  beforeConnect?: (fd: number) => void;
  /**
   * Leave the socket in repair mode: it sends nothing, ever (no window
   * probe, no unsent data), and only holds its 4-tuple. Unsent bytes in the
   * state are refused.
   */
  stayInRepair?: boolean;
  /**
   * Leave repair mode with TCP_REPAIR_OFF_NO_WP: no window probe is sent.
   * For a socket whose peer has nothing outstanding to learn (a migrated
   * connection answers with data soon), and whose first packet must not
   * race the switch-over of the datapath.
   */
  noWindowProbe?: boolean;
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
      if (unsentPart.length)
        throw new SocketError(
          'restore',
          E('EINVAL'),
          `of ${fmt(state.local)} -> ${fmt(state.remote)}`,
          'a socket kept in repair mode cannot send its unsent bytes',
        );
      return fd;
    }
    setInt(fd, SOL_TCP, TCP_REPAIR, opts.noWindowProbe ? TCP_REPAIR_OFF_NO_WP : TCP_REPAIR_OFF, 'repair');
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
  const problem = tcpStateInconsistency(s);
  if (problem) throw new SocketError('restore', E('EINVAL'), `of ${fmt(s.local)} -> ${fmt(s.remote)}`, problem);
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
    throw new SocketError(
      op,
      r.errno || E('EIO'),
      `on fd ${fd}`,
      `the kernel took ${off} of ${data.length} bytes of the ${queue === TCP_RECV_QUEUE ? 'receive' : 'send'} queue`,
    );
  }
}

/** Writes all of `data` on a socket out of repair mode without blocking; throws if the send buffer cannot take it. */
export function writeUnsent(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    const r = sendSome(fd, data.subarray(off), 'restore_unsent');
    if (r.sent === 0) {
      throw new SocketError(
        'restore_unsent',
        r.errno || E('EIO'),
        `on fd ${fd}`,
        `the send buffer took ${off} of ${data.length} unsent bytes`,
      );
    }
    off += r.sent;
  }
}
