/**
 * What the splice service is asked (control/service/splice-service.ts): a
 * splice by the front end's pid and descriptors, by addresses, or with
 * descriptors passed over the local handoff channel; a handoff; a listing;
 * a batch's results. The REST routes and the channel build these.
 */
import type { BatonError } from '../errors.js';
import type { ConnectionState } from './splicer-port.js';
import type { SpliceJson } from './view.js';

export interface SocketRef {
  pid: number;
  fd: number;
}

interface SpliceCommon {
  /** Base64 of the client bytes the front end has read and not forwarded. */
  prefix?: string;
  quiesceTimeoutMs?: number;
}

export interface SpliceByDescriptor extends SpliceCommon {
  client: SocketRef;
  backend: SocketRef;
}

export interface SpliceByAddress extends SpliceCommon {
  pid: number;
  client: string;
  vip: string;
  backend: string;
  /** The LB side of the back-end connection, needed when several go to the same back end. */
  local?: string;
}

/**
 * The local handoff channel: descriptors the front end passed over its unix
 * socket (SCM_RIGHTS), already this process's. They belong to the service
 * from the call on: spliced, or closed on any failure (refusals included).
 */
export interface SpliceByPassing {
  passed: { client: number; backend: number };
  /** The client bytes themselves (the channel carries bytes, not base64). */
  prefixBytes?: Buffer;
  quiesceTimeoutMs?: number;
}

export type SpliceRequest = SpliceByDescriptor | SpliceByAddress | SpliceByPassing;

export interface HandoffRequest {
  backend: string;
  quiesceTimeoutMs?: number;
}

export interface ListQuery {
  limit?: number;
  cursor?: string;
  state?: ConnectionState;
  backend?: string;
}

export type BatchResult = { ok: true; splice: SpliceJson } | { ok: false; error: BatonError };

export const isPassed = (r: SpliceRequest): r is SpliceByPassing => 'passed' in r;
export const isByDescriptor = (r: SpliceRequest): r is SpliceByDescriptor =>
  !isPassed(r) && typeof r.client === 'object';
