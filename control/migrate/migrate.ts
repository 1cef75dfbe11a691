/**
 * Migrating one client socket from the LB to an agent (migrate mode, the
 * LB's side), in the order of design.md §4 "Migrate". The caller has read
 * the first request from the socket.
 *
 *   with `datapath`: a flow id and the MIGRATED entry in BLOCK (the client's
 *   data segments no longer reach this socket) -> the flow-id reservation
 *   sent (the agent installs the mapping in HOLD and answers "held"; this
 *   round trip overlaps the capture) -> capture (socket left in repair
 *   mode) -> blob (state + the bytes the front end read + the mapping) ->
 *   held: the entry goes BLOCK -> FORWARD -> the state sent: the agent
 *   restores, switches the mapping to RESTORE, hands the socket to its app
 *   and confirms -> (`switchOver`, when given, runs) -> the LB's socket is
 *   released in repair mode (no FIN, no RST).
 *
 * FORWARD before the state leaves is what keeps the app's first answer
 * from stalling: the app can only answer after the agent has the state, so
 * every ACK of that answer finds the entry forwarding to the back end; in
 * BLOCK it would reach this captured socket and be lost to the back end,
 * whose first flight would then wait for a retransmission timeout.
 *
 * Without `datapath`, `switchOver` alone makes the client's packets reach
 * the back end (in tests: a route change) and the caller blocks the flow.
 *
 * Before the confirmation, any failure (capture, channel, refusal, timeout)
 * turns repair mode off again and returns the socket to the caller intact:
 * it still holds the request's bytes as read, and the caller relays or
 * answers itself. Segments the client sent meanwhile were dropped (in BLOCK
 * here, in HOLD on the agent) and are retransmitted to this socket. A
 * refusal is clean: the agent restores nothing, or closes what it restored
 * in repair mode, and removes its mapping. A TIMEOUT is clean as far as
 * the two hosts' clocks agree: the state carries REPLY_BY (when this side
 * stops waiting), and an agent that would hand the socket to its app later
 * than that (less its margin for the way back) refuses too_late instead.
 * Clocks further apart than that margin (100 ms) reopen the gap: a late
 * copy in the app, which sent nothing (TCP_REPAIR_OFF_NO_WP) but whose app
 * will answer a client that now talks to this side (with `datapath` the
 * LB's entry is gone, so the client's segments never reach that copy).
 */

import type { Refusal } from '../agent/reply.js';
import type { FlowKey } from '../datapath/abi.js';
import { BatonError } from '../errors.js';
import { encodeFlowReservation, encodeStateBlob, type FlowMapping, type StateBlob } from '../tcp/blob/index.js';
import { captureTcp, leaveRepair, releaseSilently } from '../tcp/capture.js';
import { localAddress, remoteAddress } from '../tcp/socket.js';
import type { TcpState } from '../tcp/state.js';
import type { AgentChannel } from './channel.js';
import type { FlowIdSwitch, PendingSwitch } from './flow-switch.js';

/** The seam to the datapath: once the agent confirmed, make the client's packets reach the back end. */
export type SwitchOver = (state: TcpState, migrationId: bigint) => Promise<void> | void;

export interface MigrateOptions {
  channel: AgentChannel;
  /** Bytes the front end already read from the socket (the first request); they go back into the restored receive queue. */
  receivedData: Buffer;
  migrationId: bigint;
  /** Runs after the confirmation (and after the datapath's FORWARD, with `datapath`). */
  switchOver?: SwitchOver;
  /** The LB's datapath: flow id, MIGRATED entry in BLOCK before capture, FORWARD after the confirmation. */
  datapath?: { switch: FlowIdSwitch; backend: string };
  /** The blob's flow-id mapping when there is no `datapath` (which makes its own). */
  flow?: FlowMapping;
  appProtocol?: string;
  timeoutMs?: number;
}

/**
 * Where a migration's time went (µs): block (entry in BLOCK, reservation
 * sent), capture, blob (encode), reserve (waiting for the agent's "held"
 * once the blob was ready, ≈ 0 when it came during the capture; and the
 * entry to FORWARD), agent (state sent to confirmation: restore and
 * hand-off on the back end, and the round trip), release (switch-over,
 * silent release).
 */
export interface MigratePhases {
  block: number;
  capture: number;
  blob: number;
  reserve: number;
  agent: number;
  release: number;
}

export type MigrateResult =
  | {
      migrated: true;
      migrationId: bigint;
      queuedBytes: number;
      state: TcpState;
      flowId?: number;
      phasesUs: MigratePhases;
    }
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
  const marks = [performance.now()];
  const mark = () => marks.push(performance.now());
  let pending: PendingSwitch | undefined;
  if (opts.datapath) {
    try {
      const local = localAddress(fd);
      const remote = remoteAddress(fd);
      const client: FlowKey = { src: remote.ip, sport: remote.port, dst: local.ip, dport: local.port };
      pending = opts.datapath.switch.begin(opts.migrationId, client, opts.datapath.backend);
    } catch (e) {
      // Nothing changed: no entry, the socket never entered repair mode.
      return {
        migrated: false,
        error:
          e instanceof BatonError
            ? e
            : new BatonError('SOCKET_UNUSABLE', `blocking the flow failed: ${(e as Error).message}`, 'block'),
      };
    }
  }
  // The reservation goes before the capture: its round trip to the agent runs while the socket is captured.
  const held = pending
    ? opts.channel.reserve(
        opts.migrationId,
        encodeFlowReservation({ migrationId: opts.migrationId, createdAtMs: Date.now(), flow: pending.mapping }),
      )
    : undefined;
  held?.catch(() => {}); // awaited below; a channel that fails during the capture must not be an unhandled rejection
  mark();
  let state: TcpState;
  try {
    state = captureTcp(fd);
  } catch (e) {
    pending?.abort();
    return {
      migrated: false,
      error: new BatonError('SOCKET_UNUSABLE', `capture failed: ${(e as Error).message}`, 'capture'),
    };
  }
  const giveBack = (error: BatonError): MigrateResult => {
    // The socket first, then the entry: once the entry is gone the client's segments reach a live socket again.
    leaveRepair(fd);
    pending?.abort();
    return { migrated: false, error };
  };
  mark();
  const flow = pending?.mapping ?? opts.flow;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const now = Date.now();
  const blob: StateBlob = {
    migrationId: opts.migrationId,
    createdAtMs: now,
    // The agent refuses to hand the socket over after this (its clock), so a late answer is a refusal, not a copy.
    replyByMs: now + timeoutMs,
    app: opts.appProtocol ? { protocol: opts.appProtocol } : {},
    tcp: state,
    receivedData: opts.receivedData,
    ...(flow ? { flow } : {}),
  };
  let bytes: Buffer;
  try {
    bytes = encodeStateBlob(blob);
  } catch (e) {
    return giveBack(
      new BatonError('BLOB_INVALID', `the state could not be encoded: ${(e as Error).message}`, 'encode'),
    );
  }
  mark();
  // One deadline for both answers: the caller's timeout covers the whole exchange with the agent.
  const deadline = withDeadline(timeoutMs);
  let queuedBytes: number;
  try {
    if (held && pending) {
      const h = await deadline.race(held);
      if (!h.ok) return giveBack(refusal(h));
      // The agent drops what it gets for this flow until its socket exists; nothing reaches a stack that would RST.
      pending.forward();
    }
    mark();
    const reply = await deadline.race(opts.channel.send(opts.migrationId, bytes));
    if (!reply.ok) return giveBack(refusal(reply));
    queuedBytes = reply.queuedBytes;
  } catch (e) {
    return giveBack(
      e instanceof BatonError ? e : new BatonError('AGENT_UNREACHABLE', (e as Error).message, 'channel_failed'),
    );
  } finally {
    deadline.clear();
  }
  mark();
  // The connection lives on the back end now (the agent's mapping is RESTORE): a failure from here on throws.
  pending?.confirm();
  await opts.switchOver?.(state, opts.migrationId);
  releaseSilently(fd);
  mark();
  const us = (i: number) => Math.round(((marks[i + 1] as number) - (marks[i] as number)) * 1000);
  return {
    migrated: true,
    phasesUs: { block: us(0), capture: us(1), blob: us(2), reserve: us(3), agent: us(4), release: us(5) },
    migrationId: opts.migrationId,
    queuedBytes,
    state,
    ...(pending ? { flowId: pending.flowId } : {}),
  };
}

const refusal = (r: Refusal): BatonError =>
  new BatonError('AGENT_REFUSED', `the agent refused migration ${r.migrationId}: ${r.reason}`, r.code);

/** A timeout shared by several awaits: race() rejects with AGENT_UNREACHABLE once `ms` passed since the start. */
function withDeadline(ms: number): { race<T>(p: Promise<T>): Promise<T>; clear(): void } {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BatonError('AGENT_UNREACHABLE', `the agent did not answer within ${ms} ms`, 'timeout')),
      ms,
    );
  });
  expired.catch(() => {});
  return { race: (p) => Promise.race([p, expired]), clear: () => clearTimeout(timer) };
}
