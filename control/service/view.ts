/**
 * A splice record as the API shows it (docs/api.md, "Splice"). Pure: the
 * record, its datapath status and the current monotonic time in, JSON out.
 */
import type { Xlate } from '../datapath/abi.js';
import { formatEndpoint } from './endpoint.js';
import type { ConnectionState, ConnectionStatus, SpliceRecord, TrafficView } from './splicer-port.js';

/** One handoff: where it goes, from which client byte, and its translation (the datapath's, minus the tuple). */
export interface HandoffJson extends Omit<Xlate, 'out'> {
  index: number;
  backend: string;
  local: string;
  seqStart: number;
  /** A later handoff replaced this back end; its leg was closed. */
  retired: boolean;
}

export interface TrafficJson {
  packets: number;
  bytes: number;
  fin: boolean;
  rst: boolean;
  /** Milliseconds since the datapath last saw a segment; null when it has seen none. */
  lastSeenMs: number | null;
}

export interface SpliceJson {
  id: string;
  state: ConnectionState;
  family: 4 | 6;
  client: string;
  vip: string;
  createdAt: string;
  durationUs: number | null;
  recovered: boolean;
  ownerUid: number;
  handoffs: HandoffJson[];
  traffic: { toBackend: TrafficJson; toClient: TrafficJson };
}

const NO_TRAFFIC: TrafficView = { packets: 0n, bytes: 0n, fin: false, rst: false, lastSeenNs: 0n };

function traffic(t: TrafficView, nowNs: bigint): TrafficJson {
  return {
    packets: Number(t.packets),
    bytes: Number(t.bytes),
    fin: t.fin,
    rst: t.rst,
    lastSeenMs: t.lastSeenNs === 0n ? null : Math.max(0, Number((nowNs - t.lastSeenNs) / 1_000_000n)),
  };
}

/**
 * `nowNs` is CLOCK_MONOTONIC (process.hrtime.bigint()): the clock of
 * bpf_ktime_get_coarse_ns(), which stamps lastSeenNs in jiffy steps (so a
 * lastSeenMs below a few milliseconds is noise).
 */
export function spliceView(rec: SpliceRecord, status: ConnectionStatus | undefined, nowNs: bigint): SpliceJson {
  const totalMs = rec.recovered ? undefined : rec.timings.totalMs;
  return {
    id: rec.id.toString(),
    state: status?.state ?? 'closed',
    family: rec.family,
    client: formatEndpoint(rec.client),
    vip: formatEndpoint(rec.vip),
    createdAt: new Date(rec.createdAt).toISOString(),
    durationUs: totalMs === undefined ? null : Math.round(totalMs * 1000),
    recovered: rec.recovered,
    ownerUid: rec.ownerUid,
    handoffs: rec.legs.map((h) => ({
      index: h.index,
      backend: formatEndpoint(h.backend),
      local: formatEndpoint(h.local),
      seqStart: h.toBackend.seqStart,
      seqDelta: h.toBackend.x.seqDelta,
      ackDelta: h.toBackend.x.ackDelta,
      tsvalDelta: h.toBackend.x.tsvalDelta,
      tsecrDelta: h.toBackend.x.tsecrDelta,
      wscaleIn: h.toBackend.x.wscaleIn,
      wscaleOut: h.toBackend.x.wscaleOut,
      timestamps: h.toBackend.x.timestamps,
      retired: h.retired,
    })),
    traffic: {
      toBackend: traffic(status?.toBackend ?? NO_TRAFFIC, nowNs),
      toClient: traffic(status?.toClient ?? NO_TRAFFIC, nowNs),
    },
  };
}
