/**
 * Reading a socket's queues in repair mode, for capture (capture.ts); the
 * socket must already be in repair mode. Two ways: the bytes of queues
 * whose lengths the socket probe reported (queueBytes: no call at all for
 * empty queues), or, without the probe, lengths, sequence numbers and bytes
 * by socket options and ioctls, read until two reads agree (snapshotQueues).
 */
import { errnoValue } from '../sys/errno.js';
import { SocketError } from './errors.js';
import {
  SIOCINQ,
  SIOCOUTQ,
  SIOCOUTQNSD,
  SOL_TCP,
  TCP_NO_QUEUE,
  TCP_QUEUE_SEQ,
  TCP_RECV_QUEUE,
  TCP_REPAIR_QUEUE,
  TCP_SEND_QUEUE,
} from './kernel.js';
import { getU32, ioctlInt, peek, setInt } from './socket.js';

const E = (name: string): number => errnoValue(name);

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
 * One pass over the queues: both queue lengths and the unsent bytes
 * (ioctls), then each queue selected once for its sequence number and its
 * bytes (10 calls; reading all sequence numbers first and the bytes after
 * selected each queue twice).
 */
function readQueues(fd: number): { seqs: Seqs; sendQueue: Buffer; recvQueue: Buffer } {
  const op = 'capture';
  const outq = ioctlInt(fd, SIOCOUTQ, op);
  const notsent = ioctlInt(fd, SIOCOUTQNSD, op);
  const inq = ioctlInt(fd, SIOCINQ, op);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, op);
  const rcvNxt = getU32(fd, SOL_TCP, TCP_QUEUE_SEQ, op);
  // One byte more than announced, to prove the queue holds exactly that much (libsoccr does the same).
  const recvQueue = peek(fd, inq + 1, op);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, op);
  const writeSeq = getU32(fd, SOL_TCP, TCP_QUEUE_SEQ, op);
  const sendQueue = peek(fd, outq + 1, op);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, op);
  return { seqs: { outq, notsent, inq, rcvNxt, writeSeq }, sendQueue, recvQueue };
}

/**
 * Sequence numbers and both queues' bytes by socket options, read until two
 * reads agree.
 */
export function snapshotQueues(fd: number, attempts: number): { seqs: Seqs; sendQueue: Buffer; recvQueue: Buffer } {
  const op = 'capture';
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const { seqs: a, sendQueue, recvQueue } = readQueues(fd);
    const b = readSeqs(fd);
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, op);
    if (sameSeqs(a, b) && recvQueue.length === a.inq && sendQueue.length === a.outq) {
      return { seqs: a, sendQueue: Buffer.from(sendQueue), recvQueue: Buffer.from(recvQueue) };
    }
    last = `queues ${a.inq}/${a.outq} bytes, peeked ${recvQueue.length}/${sendQueue.length}, rcv_nxt ${a.rcvNxt}->${b.rcvNxt}, write_seq ${a.writeSeq}->${b.writeSeq}`;
  }
  throw changing(fd, last);
}

/**
 * The bytes of both queues, whose lengths the caller knows (the socket
 * probe read them with the sequence numbers): nothing to do when both are
 * empty, the common case of a first splice. A queue that holds other than
 * its announced length means the socket moved since: refused.
 */
export function queueBytes(fd: number, unread: number, unacked: number): { sendQueue: Buffer; recvQueue: Buffer } {
  if (unread === 0 && unacked === 0) return { sendQueue: Buffer.alloc(0), recvQueue: Buffer.alloc(0) };
  const op = 'capture';
  // One byte more than announced, to prove the queue holds exactly that much.
  const queue = (which: number, length: number): Buffer => {
    if (length === 0) return Buffer.alloc(0);
    setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, which, op);
    return Buffer.from(peek(fd, length + 1, op));
  };
  const recvQueue = queue(TCP_RECV_QUEUE, unread);
  const sendQueue = queue(TCP_SEND_QUEUE, unacked);
  setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, op);
  if (recvQueue.length !== unread || sendQueue.length !== unacked) {
    throw changing(fd, `queues ${unread}/${unacked} bytes by the probe, ${recvQueue.length}/${sendQueue.length} read`);
  }
  return { sendQueue, recvQueue };
}

const changing = (fd: number, what: string): SocketError =>
  new SocketError(
    'capture',
    E('EAGAIN'),
    `of fd ${fd}`,
    `the socket kept changing while being read (${what}); block the flow in the datapath before capturing it`,
  );
