/**
 * One migration on the agent: blob -> live socket. Decodes the blob (all or
 * nothing: BlobError), restores the socket with TCP_REPAIR bound to the
 * VIP (its local endpoint), with the bytes the LB's front end already read
 * put back in front of the receive queue, and leaves repair with
 * TCP_REPAIR_OFF_NO_WP: no window probe, so the restored socket sends
 * nothing until the app answers (the client has nothing outstanding; the
 * first packet cannot race the LB's switch-over).
 */
import { type FidKey, type FidMapping, FidState } from '../datapath/abi-migrate.js';
import { libc } from '../sys/libc.js';
import { type FlowMapping, receiveQueueOf, type StateBlob } from '../tcp/blob/index.js';
import { SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON } from '../tcp/kernel.js';
import { restoreTcp } from '../tcp/restore.js';
import { int32, setInt } from '../tcp/socket.js';

/** <linux/in.h>: a socket may bind and answer from an address not configured on this host. */
export const SOL_IP = 0;
export const IP_TRANSPARENT = 19;
export const SOL_IPV6 = 41;
export const IPV6_TRANSPARENT = 75;

export interface Restored {
  fd: number;
  blob: StateBlob;
  /** Bytes readable in the restored socket: what the front end read, then what was still queued. */
  queuedBytes: number;
}

/**
 * Restores the socket of a decoded blob in this thread's network namespace.
 * `transparent`: set IP_TRANSPARENT first (the VIP is not on this host's lo).
 */
export function restoreMigration(blob: StateBlob, opts: { transparent?: boolean } = {}): Restored {
  const recvQueue = receiveQueueOf(blob);
  const fd = restoreTcp(
    { ...blob.tcp, recvQueue },
    {
      noWindowProbe: true,
      beforeConnect: opts.transparent
        ? (s) =>
            blob.tcp.family === 4
              ? setInt(s, SOL_IP, IP_TRANSPARENT, 1, 'restore_transparent')
              : setInt(s, SOL_IPV6, IPV6_TRANSPARENT, 1, 'restore_transparent')
        : undefined,
    },
  );
  return { fd, blob, queuedBytes: recvQueue.length };
}

/**
 * Closes a restored socket without a packet to the client (back into repair
 * mode first: close() in repair mode sends neither FIN nor RST), when it
 * could not be handed to the app. The LB still holds the connection.
 */
export function discardRestored(fd: number): void {
  libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, int32(TCP_REPAIR_ON), 4);
  libc.close(fd);
}

/**
 * The agent's flow-id mapping (HOLD) of a migration's flow mapping (pure).
 * For a state blob, the codec already checked that the mapping's client is
 * the socket's remote and its VIP the socket's local endpoint.
 */
export function fidOfFlow(migrationId: bigint, f: FlowMapping): { key: FidKey; mapping: FidMapping } {
  return {
    key: { client: f.client.ip, flowId: f.flowId },
    mapping: {
      connId: migrationId,
      clientPort: f.client.port,
      vip: f.vip.ip,
      vipPort: f.vip.port,
      state: FidState.HOLD,
    },
  };
}
