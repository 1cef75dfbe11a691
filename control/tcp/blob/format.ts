/**
 * The connection-state blob: one versioned binary format for every mode that
 * moves a socket between hosts (migrate: LB -> agent; roam: agent -> agent;
 * takeover: store -> agent). This module is the single source of truth for
 * its layout, field numbers and limits; encode.ts writes it, decode.ts reads
 * it, docs/state-blob.md explains it to people.
 *
 * BYTE ORDER: every integer is big-endian (network order), like the TCP/IP
 * headers the blob describes, so a hex dump reads the same as a packet dump.
 *
 * Layout:
 *
 *   offset size  header (HEADER_BYTES = 16, fixed in every version)
 *   0      4     magic "BTSB"
 *   4      2     format version (BLOB_VERSION)
 *   6      2     header length: where the first field starts (>= 16; a reader
 *                skips header bytes it does not know)
 *   8      4     total length of the blob, header included
 *   12     4     CRC-32C (Castagnoli) over the whole blob except these 4 bytes
 *   16...        fields, back to back until the total length:
 *                  type u16, length u32, value (length bytes)
 *
 * Versioning rule:
 *   - The 16 header bytes keep this layout in every version, so any reader can
 *     frame, checksum and then refuse a version it does not know.
 *   - A compatible addition is a new field type: no version bump. A reader
 *     skips field types it does not know, unless the type has the CRITICAL bit
 *     (0x8000) set, which says "refuse me if you do not understand me".
 *   - A known field's encoding never changes; an incompatible change (a field
 *     redefined, a required field dropped) bumps BLOB_VERSION, and readers
 *     refuse versions they do not know.
 *   - Each field appears at most once. Writers emit fields in ascending type
 *     order (top of the stack down); readers accept any order.
 */
import type { Endpoint, TcpState } from '../state.js';

export const BLOB_MAGIC = Buffer.from('BTSB', 'latin1');
export const BLOB_VERSION = 1;
export const HEADER_BYTES = 16;
/** Offsets inside the fixed header. */
export const HEADER = { magic: 0, version: 4, headerLength: 6, totalLength: 8, crc: 12 } as const;
/** type u16 + length u32 in front of every field value. */
export const FIELD_HEADER_BYTES = 6;
/** A field type with this bit must be understood by the reader or the blob is refused. */
export const FIELD_CRITICAL = 0x8000;

const MiB = 1024 * 1024;
/**
 * Queue bytes in one blob: send queue + receive queue + data the front end
 * already read. 64 MiB is far above what Linux queues hold by default
 * (tcp_wmem/tcp_rmem max 4/6 MiB) and leaves room for hosts tuned to 32 MiB
 * buffers; anything larger is not a socket we could restore anyway.
 */
export const MAX_QUEUE_BYTES = 64 * MiB;
/** Opaque application state (session tickets, parser state, app checkpoints). */
export const MAX_APP_STATE_BYTES = 1 * MiB;
/** Application-layer object id (a URL, a file handle, a key). */
export const MAX_OBJECT_ID_BYTES = 1024;
/** Application protocol name (ALPN-style: "http/1.1", "h2", "ftp"). */
export const MAX_APP_PROTOCOL_BYTES = 64;
/** Room for the header, fixed-size fields and unknown fields of newer writers. */
export const BLOB_HEADROOM_BYTES = 64 * 1024;
/** No blob is larger; a framer refuses a declared length above this before buffering it. */
export const MAX_BLOB_BYTES = MAX_QUEUE_BYTES + MAX_APP_STATE_BYTES + BLOB_HEADROOM_BYTES;

/**
 * Field types, grouped by layer (high byte), top of the stack down. The values
 * are wire constants: never renumber, never reuse a retired number.
 */
export const FIELD = {
  // 0x01: metadata of the move.
  /** u64: unique per move, chosen by the sender; the receiver's answers name it. */
  MIGRATION_ID: 0x0101,
  /** u64: milliseconds since the Unix epoch when the state was captured. */
  CREATED_AT: 0x0102,
  /**
   * u64: milliseconds since the Unix epoch when the sender stops waiting for
   * the answer (it then serves the connection itself). A receiver that
   * would restore after it refuses instead (agent: too_late), so a late
   * restore never makes a second copy of a connection the sender kept.
   * Compared across hosts' clocks; absent: no limit.
   */
  REPLY_BY: 0x0103,
  // 0x02: application layer.
  /** printable ASCII, 1..MAX_APP_PROTOCOL_BYTES. */
  APP_PROTOCOL: 0x0201,
  /** opaque bytes, 0..MAX_APP_STATE_BYTES. */
  APP_STATE: 0x0202,
  /** u32 seq of the object's first byte, then the object id (1..MAX_OBJECT_ID_BYTES bytes). */
  APP_OBJECT: 0x0203,
  // 0x03: TCP.
  /** u32 sndUna, u32 sndNxt, u32 rcvNxt. */
  TCP_SEQ: 0x0301,
  /** u16 mssClamp, u16 advMss, u8 sndWscale, u8 rcvWscale, u8 flags (TCP_FLAG). */
  TCP_OPTIONS: 0x0302,
  /** u32 tsNow: this socket's TSval clock. */
  TCP_TS_CLOCK: 0x0303,
  /** u32 tsRecent: the peer's last TSval; absent when unknown. */
  TCP_TS_RECENT: 0x0304,
  /** u32 sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup. */
  TCP_WINDOW: 0x0305,
  /** bytes from sndUna on: sent-unacknowledged, then unsent. */
  TCP_SEND_QUEUE: 0x0306,
  /** bytes received and not yet read, ending at rcvNxt. */
  TCP_RECV_QUEUE: 0x0307,
  /** bytes the front end already read from the socket; they go back in front of TCP_RECV_QUEUE. */
  TCP_RECEIVED_DATA: 0x0308,
  // 0x04: IP.
  /** local endpoint, remote endpoint (ENDPOINT encoding each; one family). */
  IP_ENDPOINTS: 0x0401,
  /** u8 TOS / traffic class, u8 TTL / hop limit (1..255); absent = the host's defaults. */
  IP_OPTIONS: 0x0402,
  // 0x05: flow-id mapping for the receiving agent's datapath (migrate).
  /** u32 flow id, ADDRESS lb, ENDPOINT client, ENDPOINT vip. */
  FLOW_MAPPING: 0x0501,
  /**
   * empty, critical: this blob is a reservation, not a state. It carries
   * MIGRATION_ID, CREATED_AT and FLOW_MAPPING and nothing else, and asks the
   * receiving agent to install the mapping in HOLD before the state exists
   * (migrate: the LB sends it before it captures, and switches its entry to
   * FORWARD once the agent answers "held"). The state follows in a blob
   * with the same MIGRATION_ID and FLOW_MAPPING. Critical, so a reader that
   * does not know reservations refuses one instead of misreading it.
   */
  FLOW_RESERVATION: 0x8502,
} as const;

export type FieldType = (typeof FIELD)[keyof typeof FIELD];

/** Without these a blob does not describe a socket; their absence is a refusal. */
export const REQUIRED_FIELDS: readonly FieldType[] = [
  FIELD.MIGRATION_ID,
  FIELD.CREATED_AT,
  FIELD.TCP_SEQ,
  FIELD.TCP_OPTIONS,
  FIELD.TCP_TS_CLOCK,
  FIELD.TCP_WINDOW,
  // Queues are required even when empty: a missing queue is corruption, not emptiness.
  FIELD.TCP_SEND_QUEUE,
  FIELD.TCP_RECV_QUEUE,
  FIELD.TCP_RECEIVED_DATA,
  FIELD.IP_ENDPOINTS,
];

/** A reservation carries exactly these (FLOW_RESERVATION); any other known field in it is a refusal. */
export const RESERVATION_FIELDS: readonly FieldType[] = [
  FIELD.MIGRATION_ID,
  FIELD.CREATED_AT,
  FIELD.FLOW_MAPPING,
  FIELD.FLOW_RESERVATION,
];

/** Bits of the TCP_OPTIONS flags byte; the others must be zero. */
export const TCP_FLAG = {
  TIMESTAMPS: 0x01,
  SACK_PERMITTED: 0x02,
  /** usecTs is known (TcpState.usecTs !== undefined). */
  USEC_TS_KNOWN: 0x04,
  /** usecTs is true; only with USEC_TS_KNOWN. */
  USEC_TS: 0x08,
} as const;
export const TCP_FLAGS_DEFINED = 0x0f;

/** Fixed value sizes of the fixed-size fields. */
export const FIXED_SIZE: Partial<Record<FieldType, number>> = {
  [FIELD.MIGRATION_ID]: 8,
  [FIELD.CREATED_AT]: 8,
  [FIELD.REPLY_BY]: 8,
  [FIELD.TCP_SEQ]: 12,
  [FIELD.TCP_OPTIONS]: 7,
  [FIELD.TCP_TS_CLOCK]: 4,
  [FIELD.TCP_TS_RECENT]: 4,
  [FIELD.TCP_WINDOW]: 20,
  [FIELD.IP_OPTIONS]: 2,
  [FIELD.FLOW_RESERVATION]: 0,
};

/**
 * ADDRESS encoding: u8 family (4 or 6), then 4 or 16 address bytes.
 * ENDPOINT encoding: ADDRESS, then u16 port.
 */
export const addressBytes = (family: 4 | 6): number => 1 + (family === 4 ? 4 : 16);
export const endpointBytes = (family: 4 | 6): number => addressBytes(family) + 2;

export interface AppLayer {
  /** Application protocol, e.g. "http/1.1". */
  protocol?: string;
  /** Opaque state the application hands to its successor. */
  state?: Buffer;
  /** The object being served (takeover): its id, and the TCP seq its first byte was sent at. */
  object?: { id: Buffer; firstByteSeq: number };
}

export interface IpOptions {
  /** IP_TOS / IPV6_TCLASS byte. */
  tos: number;
  /** IP_TTL / IPV6_UNICAST_HOPS, 1..255. */
  ttl: number;
}

/**
 * What the receiving agent's datapath needs to restore the tuple of flow-id
 * packets: (client ip, flow id) -> (client port, VIP, VIP port). `client`
 * equals the socket's remote endpoint and `vip` its local endpoint.
 */
export interface FlowMapping {
  /** The LB that allocated the flow id (ids are unique per LB and back end). */
  lb: string;
  flowId: number;
  client: Endpoint;
  vip: Endpoint;
}

/** Everything one blob carries. Decoded blobs omit absent optional members (never `undefined`). */
export interface StateBlob {
  /** u64. */
  migrationId: bigint;
  /** Milliseconds since the Unix epoch when the state was captured. */
  createdAtMs: number;
  /** Milliseconds since the Unix epoch when the sender stops waiting for the answer (REPLY_BY). */
  replyByMs?: number;
  app: AppLayer;
  /** The socket: sequence numbers, options, windows, queues, family and endpoints. */
  tcp: TcpState;
  /** Bytes the front end read from the socket before the move; the restore puts them back in
   * the receive queue in front of tcp.recvQueue (see receiveQueueOf). */
  receivedData: Buffer;
  ip?: IpOptions;
  flow?: FlowMapping;
}

/**
 * A reservation (FLOW_RESERVATION): the flow-id mapping of a migration whose
 * state is still being captured, for the agent to install in HOLD ahead of it.
 */
export interface FlowReservation {
  migrationId: bigint;
  createdAtMs: number;
  flow: FlowMapping;
}

/** What one blob on a channel is: a state, or a reservation ahead of one. */
export type ChannelBlob = { kind: 'state'; blob: StateBlob } | { kind: 'reservation'; reservation: FlowReservation };

/**
 * The bytes the restored socket's receive queue must hold: what the front end
 * already read, then what was still queued. The queue then starts at
 * tcp.rcvNxt - length (TCP_QUEUE_SEQ) and ends at tcp.rcvNxt.
 */
export function receiveQueueOf(blob: Pick<StateBlob, 'receivedData' | 'tcp'>): Buffer {
  if (blob.receivedData.length === 0) return blob.tcp.recvQueue;
  return Buffer.concat([blob.receivedData, blob.tcp.recvQueue]);
}
