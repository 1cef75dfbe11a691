/**
 * Migrate mode's LB-side entry (source document 002, claims 9-10): the pure
 * planning of a BATON_KIND_MIGRATED connection-table entry, which makes the
 * LB's datapath (bpf/lib/flowid.h) forward the client's segments to the
 * back end with the flow id in the port fields. The agent's side of the
 * same flow id is control/datapath/fid-table.ts.
 *
 * Use by the LB's migrate flow:
 *
 *   const { key, entry } = planMigratedEntry({ connId, client, backend, flowId });
 *   table.insert(key, entry);                  // state BLOCK: capture in progress
 *   ...blob to the agent, agent confirms...
 *   table.setState(key, FlowState.FORWARD);    // in place (control program)
 *   ...track(key) shows TRACK_F_FIN / TRACK_F_RST -> remove(key), id free again
 *
 * Flow ids are allocated per (LB, back end). The agent keys its mappings by
 * (client IP, flow id) only, so two LBs serving one back end must draw from
 * disjoint flow-id ranges (a per-LB prefix in the high bits, say).
 */
import { familyOf } from '../net/addr.js';
import { type FlowKey, FlowKind, FlowState, TRACK_F_FIN, TRACK_F_RST, type Track } from './abi.js';
import { type FidKey, type FidMapping, FidState, flowIdPorts } from './abi-migrate.js';
import type { FlowEntry } from './flow-table.js';

export interface MigratedFlow {
  connId: bigint;
  /** The client's connection as the LB sees it: client -> VIP. */
  client: FlowKey;
  /** The back end's address (same family as the client's). */
  backend: string;
  /** 32-bit flow id, unique per (LB, back end) among live migrations. */
  flowId: number;
}

/**
 * The connection-table key and entry for a migrated connection, in BLOCK.
 * leg[0].x carries the rewrite: destination = back end, ports = flow id,
 * source = the client (unchanged).
 */
export function planMigratedEntry(m: MigratedFlow): { key: FlowKey; entry: FlowEntry } {
  if (familyOf(m.backend) !== familyOf(m.client.src) || familyOf(m.client.dst) !== familyOf(m.client.src))
    throw new TypeError(`client ${m.client.src}, VIP ${m.client.dst} and back end ${m.backend} must share a family`);
  const ports = flowIdPorts(m.flowId);
  return {
    key: { ...m.client },
    entry: {
      connId: m.connId,
      state: FlowState.BLOCK,
      kind: FlowKind.MIGRATED,
      legs: [
        {
          seqStart: 0,
          ackFloor: 0,
          x: {
            out: { src: m.client.src, dst: m.backend, sport: ports.sport, dport: ports.dport },
            seqDelta: 0,
            ackDelta: 0,
            tsvalDelta: 0,
            tsecrDelta: 0,
            wscaleIn: 0,
            wscaleOut: 0,
            timestamps: false,
          },
        },
      ],
    },
  };
}

/** The agent's key and mapping (HOLD) for the same migration: what the blob's flow-id mapping carries. */
export function planFidMapping(m: MigratedFlow): { key: FidKey; mapping: FidMapping } {
  flowIdPorts(m.flowId); // range check
  return {
    key: { client: m.client.src, flowId: m.flowId },
    mapping: {
      connId: m.connId,
      clientPort: m.client.sport,
      vip: m.client.dst,
      vipPort: m.client.dport,
      state: FidState.HOLD,
    },
  };
}

/**
 * Linger after a migrated connection's last client segment once its FIN or
 * exact RST went through, before its entries go: the client's last ACK and
 * any retransmitted FIN still need the flow-id path (without it they would
 * reach a stack with no such socket, which answers with a RST). Linux's
 * TIME_WAIT is 60 s; the default matches it.
 */
export const DEFAULT_RECLAIM_LINGER_MS = 60_000;

/** Bounds of the interval between two looks at an open migrated connection (nextReclaimCheck). */
export const RECLAIM_CHECK_LEAST_MS = 1000;
export const RECLAIM_CHECK_MOST_MS = 30_000;

/**
 * When to look at a migrated connection's track again (pure), so that a
 * reclaim pass costs a lookup only for the entries that may be done, not
 * one per entry per pass (thousands a second at a few hundred migrations a
 * second, each lingering a minute). Ended (FIN or exact RST seen): when the
 * linger runs out, as of its last segment (a later segment moves lastNs and
 * the next look reschedules). Still open: after twice the last interval,
 * from the least (1 s, or the linger if shorter) up to the most (30 s, or
 * half the linger if shorter), so a long connection costs a lookup every
 * 30 s and its end is seen at most that late, plus the linger.
 */
export function nextReclaimCheck(
  track: Pick<Track, 'flags' | 'lastNs'>,
  nowNs: bigint,
  lingerMs: number,
  lastIntervalNs = 0n,
): { atNs: bigint; intervalNs: bigint } {
  const ms = (x: number) => BigInt(Math.round(x * 1e6));
  const leastMs = Math.min(RECLAIM_CHECK_LEAST_MS, lingerMs);
  const least = ms(leastMs);
  const most = ms(Math.max(leastMs, Math.min(RECLAIM_CHECK_MOST_MS, lingerMs / 2)));
  if ((track.flags & (TRACK_F_FIN | TRACK_F_RST)) !== 0) {
    const at = track.lastNs + ms(lingerMs);
    return { atNs: at > nowNs ? at : nowNs, intervalNs: least };
  }
  const doubled = lastIntervalNs * 2n;
  const interval = doubled < least ? least : doubled > most ? most : doubled;
  return { atNs: nowNs + interval, intervalNs: interval };
}

/**
 * Whether a migrated connection's entry (LB) or mapping (agent) may be removed (pure): its track
 * saw the client's FIN or an exact RST, and nothing for `lingerMs`.
 * `nowNs` on the clock of bpf_ktime_get_ns (CLOCK_MONOTONIC:
 * process.hrtime.bigint() on Linux).
 */
export function reclaimable(track: Pick<Track, 'flags' | 'lastNs'>, nowNs: bigint, lingerMs: number): boolean {
  if ((track.flags & (TRACK_F_FIN | TRACK_F_RST)) === 0) return false;
  return nowNs - track.lastNs >= BigInt(Math.round(lingerMs * 1e6));
}
