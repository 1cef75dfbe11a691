/**
 * Reading a socket's queues in repair mode: the queue lengths, the sequence
 * numbers and the bytes of both queues, read until two reads agree (or once,
 * when the timestamp probe will verify the sequence numbers after). Part of
 * capture (capture.ts); the socket must already be in repair mode.
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
 * Sequence numbers and both queues' bytes, read until two reads agree. With
 * `verifiedLater` (the timestamp probe will compare the kernel's sequence
 * numbers with the state, and reject a socket that moved) one read suffices.
 */
export function snapshotQueues(
  fd: number,
  attempts: number,
  verifiedLater: boolean,
): { seqs: Seqs; sendQueue: Buffer; recvQueue: Buffer } {
  const op = 'capture';
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const { seqs: a, sendQueue, recvQueue } = readQueues(fd);
    const b = verifiedLater ? a : readSeqs(fd);
    if (!verifiedLater) setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, op);
    if (sameSeqs(a, b) && recvQueue.length === a.inq && sendQueue.length === a.outq) {
      return { seqs: a, sendQueue: Buffer.from(sendQueue), recvQueue: Buffer.from(recvQueue) };
    }
    last = `queues ${a.inq}/${a.outq} bytes, peeked ${recvQueue.length}/${sendQueue.length}, rcv_nxt ${a.rcvNxt}->${b.rcvNxt}, write_seq ${a.writeSeq}->${b.writeSeq}`;
  }
  throw new SocketError(
    op,
    E('EAGAIN'),
    `of fd ${fd}`,
    `the socket kept changing while being read (${last}); block the flow in the datapath before capturing it`,
  );
}
