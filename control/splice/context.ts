/**
 * What every splice operation works on: the connection table, the socket
 * layer, the records and the per-connection queue. The Splicer owns one;
 * the operation modules (first-splice, handoff, teardown, recovery) take it.
 */
import type { FlowTable } from '../datapath/flow-table.js';
import { SpliceRefused } from '../datapath/splice-plan.js';
import { BatonError } from '../errors.js';
import type { Endpoint } from '../tcp/state.js';
import type { ConnectionQueue } from './connection-queue.js';
import type { PortRange } from './leg-ports.js';
import type { SpliceRecord } from './records.js';
import type { SocketOps } from './socket-port.js';

export interface SpliceContext {
  readonly table: FlowTable;
  readonly ops: SocketOps;
  readonly records: Map<bigint, SpliceRecord>;
  readonly queue: ConnectionQueue;
  /**
   * Local ports of back-end legs whose tuple the table entry alone reserves
   * (leg-ports.ts): no socket is held. Undefined: every leg holds a socket.
   */
  readonly legPorts: Readonly<PortRange> | undefined;
  /** A port of the leg range for a new leg from `localIp` to `backend` (Splicer.legPort). */
  readonly legPortFor: (localIp: string, backend: Endpoint) => number;
  /**
   * Reclaims connection `id` if it is over (both FINs acknowledged, or a
   * RST: the datapath's rule for letting a new SYN through); true when it
   * was reclaimed.
   */
  readonly reclaimIfFinished: (id: bigint) => Promise<boolean>;
}

/** A planning refusal as the catalogue error the API answers with; anything else unchanged. */
export function asBatonError(e: unknown): unknown {
  return e instanceof SpliceRefused ? new BatonError('SPLICE_REFUSED', e.message, e.reason, { cause: e }) : e;
}

/** The record, unless it was removed (aborted, reclaimed) meanwhile. */
export function stillThere(ctx: SpliceContext, rec: SpliceRecord): boolean {
  return ctx.records.get(rec.id) === rec;
}

export function notFound(id: bigint): BatonError {
  return new BatonError(
    'NOT_FOUND',
    `no spliced connection with id ${id}; list them with GET /v1/splices`,
    'unknown_id',
  );
}
