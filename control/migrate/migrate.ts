/**
 * Migrating one client socket from the LB to an agent (migrate mode, the
 * LB's side). The caller has already blocked the client's flow (so nothing
 * changes under the capture) and read the first request from the socket.
 *
 *   capture (socket left in repair mode) -> blob (state + the bytes the
 *   front end read + flow mapping) -> the agent restores, hands it to its
 *   app and confirms -> switchOver (the datapath's seam: the flow-id
 *   forwarding entry; in tests, a route change) -> the LB's socket is
 *   released in repair mode (no FIN, no RST).
 *
 * Before the confirmation, any failure (capture, channel, refusal, timeout)
 * turns repair mode off again and returns the socket to the caller intact:
 * it still holds the request's bytes as read, and the caller relays or
 * answers itself. A refusal is clean: the agent restores nothing, or closes
 * what it restored in repair mode. A TIMEOUT is not fully clean: an agent
 * that answers late may have handed a copy to its app; that copy sent
 * nothing (TCP_REPAIR_OFF_NO_WP) but its app will answer, and the client
 * ignores or RSTs the duplicate. The flow-id datapath (HOLD state) and a
 * cancel message are what closes that gap; not done here.
 */
import { BatonError } from '../errors.js';
import { encodeStateBlob, type FlowMapping, type StateBlob } from '../tcp/blob/index.js';
import { captureTcp, leaveRepair, releaseSilently } from '../tcp/capture.js';
import type { TcpState } from '../tcp/state.js';
import type { AgentChannel } from './channel.js';

/** The seam to the datapath: once the agent confirmed, make the client's packets reach the back end. */
export type SwitchOver = (state: TcpState, migrationId: bigint) => Promise<void> | void;

export interface MigrateOptions {
  channel: AgentChannel;
  /** Bytes the front end already read from the socket (the first request); they go back into the restored receive queue. */
  receivedData: Buffer;
  migrationId: bigint;
  switchOver: SwitchOver;
  flow?: FlowMapping;
  appProtocol?: string;
  timeoutMs?: number;
}

export type MigrateResult =
  | { migrated: true; migrationId: bigint; queuedBytes: number; state: TcpState }
  | { migrated: false; error: BatonError };

/**
 * Migrates socket `fd`. Resolves migrated: true once the agent confirmed and
 * the LB's socket is released (fd is closed); migrated: false with the
 * reason when the LB's socket is back out of repair and usable (fd still
 * open, the caller's). Throws only when the switch-over itself fails after
 * the agent confirmed (the connection lives on the back end then; the fd is
 * left in repair mode for the caller to release).
 */
export async function migrateSocket(fd: number, opts: MigrateOptions): Promise<MigrateResult> {
  let state: TcpState;
  try {
    state = captureTcp(fd);
  } catch (e) {
    return {
      migrated: false,
      error: new BatonError('SOCKET_UNUSABLE', `capture failed: ${(e as Error).message}`, 'capture'),
    };
  }
  const giveBack = (error: BatonError): MigrateResult => {
    leaveRepair(fd);
    return { migrated: false, error };
  };
  const blob: StateBlob = {
    migrationId: opts.migrationId,
    createdAtMs: Date.now(),
    app: opts.appProtocol ? { protocol: opts.appProtocol } : {},
    tcp: state,
    receivedData: opts.receivedData,
    ...(opts.flow ? { flow: opts.flow } : {}),
  };
  let bytes: Buffer;
  try {
    bytes = encodeStateBlob(blob);
  } catch (e) {
    return giveBack(
      new BatonError('BLOB_INVALID', `the state could not be encoded: ${(e as Error).message}`, 'encode'),
    );
  }
  const timeoutMs = opts.timeoutMs ?? 2000;
  let timer: NodeJS.Timeout | undefined;
  let reply: Awaited<ReturnType<AgentChannel['send']>>;
  try {
    reply = await Promise.race([
      opts.channel.send(opts.migrationId, bytes),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new BatonError('AGENT_UNREACHABLE', `the agent did not answer within ${timeoutMs} ms`, 'timeout')),
          timeoutMs,
        );
      }),
    ]);
  } catch (e) {
    return giveBack(
      e instanceof BatonError ? e : new BatonError('AGENT_UNREACHABLE', (e as Error).message, 'channel_failed'),
    );
  } finally {
    clearTimeout(timer);
  }
  if (!reply.ok) {
    return giveBack(
      new BatonError('AGENT_REFUSED', `the agent refused migration ${reply.migrationId}: ${reply.reason}`, reply.code),
    );
  }
  await opts.switchOver(state, opts.migrationId);
  releaseSilently(fd);
  return { migrated: true, migrationId: opts.migrationId, queuedBytes: reply.queuedBytes, state };
}
