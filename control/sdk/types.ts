/**
 * The v1 REST contract (docs/api.md) as TypeScript types, for the SDK, the
 * CLI and the dispatcher. Wire shapes only: ids are decimal strings,
 * addresses "ip:port" ("[v6]:port").
 */

export type SpliceState = 'blocked' | 'forwarding' | 'closing' | 'closed';

export interface Handoff {
  index: number;
  backend: string;
  local: string;
  seqStart: number;
  seqDelta: number;
  ackDelta: number;
  tsvalDelta: number;
  tsecrDelta: number;
  wscaleIn: number;
  wscaleOut: number;
  timestamps: boolean;
}

export interface DirectionTraffic {
  packets: number;
  bytes: number;
  fin: boolean;
  rst: boolean;
  /** ms since the datapath last saw a segment; null before the first */
  lastSeenMs: number | null;
}

export interface Splice {
  id: string;
  state: SpliceState;
  family: 4 | 6;
  client: string;
  vip: string;
  createdAt: string;
  /** request received to sockets released; null for connections recovered after a restart */
  durationUs: number | null;
  recovered: boolean;
  handoffs: Handoff[];
  traffic: { toBackend: DirectionTraffic; toClient: DirectionTraffic };
}

/** RFC 9457 problem document, as the daemon sends it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  reason?: string;
  instance?: string;
  /** schema errors (400 BAD_REQUEST) */
  errors?: { path: string; message: string }[];
}

export interface SocketRef {
  pid: number;
  fd: number;
}

/** POST /v1/splices, by descriptor. */
export interface SpliceByFd {
  client: SocketRef;
  backend: SocketRef;
  /** base64 */
  prefix?: string;
  quiesceTimeoutMs?: number;
}

/** POST /v1/splices, by address. */
export interface SpliceByAddress {
  pid: number;
  client: string;
  vip: string;
  backend: string;
  /** LB side of the back-end connection, when the pid holds several to the same back end */
  local?: string;
  prefix?: string;
  quiesceTimeoutMs?: number;
}

export type SpliceRequest = SpliceByFd | SpliceByAddress;

export interface SpliceList {
  items: Splice[];
  next: string | null;
}

export interface ListQuery {
  limit?: number;
  cursor?: string;
  state?: SpliceState;
  backend?: string;
}

export type BatchResult = { status: number; splice: Splice } | { status: number; error: Problem };

export interface Version {
  version: string;
  abi: number;
  kernel: string;
  libbpf: string;
}
