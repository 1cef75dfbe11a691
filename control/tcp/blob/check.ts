/**
 * Value checks of a StateBlob, shared by the encoder (refuse to write what no
 * reader would accept) and the decoder (after the bytes parsed, refuse a
 * state that contradicts itself). Pure: throws BlobError or returns.
 */
import { addrToKeyBytes, familyOf, formatAddress } from '../../net/addr.js';
import { type Endpoint, tcpStateInconsistency } from '../state.js';
import { BlobError } from './errors.js';
import {
  type FlowMapping,
  type FlowReservation,
  MAX_APP_PROTOCOL_BYTES,
  MAX_APP_STATE_BYTES,
  MAX_OBJECT_ID_BYTES,
  MAX_QUEUE_BYTES,
  type StateBlob,
} from './format.js';

const U64_MAX = (1n << 64n) - 1n;
/** ALPN-style protocol names: printable ASCII without spaces. */
const PROTOCOL_RE = /^[\x21-\x7e]+$/;

function bad(what: string): never {
  throw new BlobError('bad_field', `state blob field ${what}; the sender wrote an invalid state, fix the sender`);
}

function uint(value: unknown, bits: 8 | 16 | 32, name: string, min = 0): void {
  const max = 2 ** bits - 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    bad(`${name} must be an integer ${min}..${max}, got ${String(value)}`);
  }
}

function buffer(value: unknown, name: string): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) bad(`${name} must be a Buffer, got ${typeof value}`);
}

function sameAddress(a: string, b: string): boolean {
  return addrToKeyBytes(a).equals(addrToKeyBytes(b)) && familyOf(a) === familyOf(b);
}

function endpoint(e: Endpoint | undefined, family: 4 | 6, name: string): void {
  if (!e || typeof e !== 'object') bad(`${name} is missing`);
  let f: 4 | 6;
  try {
    f = familyOf(e.ip);
  } catch {
    bad(`${name}.ip is not an IP address: ${JSON.stringify(e.ip)}`);
  }
  if (f !== family) bad(`${name}.ip ${e.ip} is IPv${f} but the socket is IPv${family}`);
  uint(e.port, 16, `${name}.port`, 1);
}

function meta(migrationId: unknown, createdAtMs: unknown): void {
  if (typeof migrationId !== 'bigint' || migrationId < 0n || migrationId > U64_MAX) {
    bad(`migrationId must be a bigint 0..2^64-1, got ${String(migrationId)}`);
  }
  if (!Number.isSafeInteger(createdAtMs) || (createdAtMs as number) < 0) {
    bad(`createdAtMs must be a non-negative safe integer (ms since the epoch), got ${String(createdAtMs)}`);
  }
}

/** A flow-id mapping on its own: id, LB address, client and VIP of `family`. */
function flowMapping(f: FlowMapping, family: 4 | 6): void {
  uint(f.flowId, 32, 'flow.flowId');
  try {
    familyOf(f.lb);
  } catch {
    bad(`flow.lb is not an IP address: ${JSON.stringify(f.lb)}`);
  }
  endpoint(f.client, family, 'flow.client');
  endpoint(f.vip, family, 'flow.vip');
}

/** Throws BlobError unless `r` is a reservation every reader of this version accepts. */
export function checkReservation(r: FlowReservation): void {
  meta(r.migrationId, r.createdAtMs);
  if (!r.flow || typeof r.flow !== 'object') bad('flow is missing');
  let family: 4 | 6;
  try {
    family = familyOf(r.flow.client?.ip);
  } catch {
    bad(`flow.client.ip is not an IP address: ${JSON.stringify(r.flow.client?.ip)}`);
  }
  flowMapping(r.flow, family);
}

/** Throws BlobError unless `b` is a blob every reader of this version accepts. */
export function checkBlob(b: StateBlob): void {
  meta(b.migrationId, b.createdAtMs);
  if (b.replyByMs !== undefined && (!Number.isSafeInteger(b.replyByMs) || b.replyByMs < 0)) {
    bad(`replyByMs must be a non-negative safe integer (ms since the epoch), got ${String(b.replyByMs)}`);
  }

  const app = b.app ?? {};
  if (app.protocol !== undefined) {
    const p = app.protocol;
    if (typeof p !== 'string' || p.length > MAX_APP_PROTOCOL_BYTES || !PROTOCOL_RE.test(p)) {
      bad(
        `app.protocol must be 1..${MAX_APP_PROTOCOL_BYTES} printable ASCII characters without spaces, got ${JSON.stringify(p)}`,
      );
    }
  }
  if (app.state !== undefined) {
    buffer(app.state, 'app.state');
    if (app.state.length > MAX_APP_STATE_BYTES) {
      throw new BlobError(
        'oversized',
        `state blob app.state holds ${app.state.length} bytes, more than the ${MAX_APP_STATE_BYTES} allowed; keep large application state in the store and ship its key`,
      );
    }
  }
  if (app.object !== undefined) {
    buffer(app.object.id, 'app.object.id');
    if (app.object.id.length < 1 || app.object.id.length > MAX_OBJECT_ID_BYTES) {
      bad(`app.object.id must hold 1..${MAX_OBJECT_ID_BYTES} bytes, got ${app.object.id.length}`);
    }
    uint(app.object.firstByteSeq, 32, 'app.object.firstByteSeq');
  }

  const t = b.tcp;
  if (!t || typeof t !== 'object') bad('tcp is missing');
  if (t.family !== 4 && t.family !== 6) bad(`tcp.family must be 4 or 6, got ${String(t.family)}`);
  endpoint(t.local, t.family, 'tcp.local');
  endpoint(t.remote, t.family, 'tcp.remote');
  uint(t.sndUna, 32, 'tcp.sndUna');
  uint(t.sndNxt, 32, 'tcp.sndNxt');
  uint(t.rcvNxt, 32, 'tcp.rcvNxt');
  uint(t.mssClamp, 16, 'tcp.mssClamp', 1);
  uint(t.advMss, 16, 'tcp.advMss');
  uint(t.sndWscale, 8, 'tcp.sndWscale');
  uint(t.rcvWscale, 8, 'tcp.rcvWscale');
  if (typeof t.timestamps !== 'boolean') bad('tcp.timestamps must be a boolean');
  if (typeof t.sackPermitted !== 'boolean') bad('tcp.sackPermitted must be a boolean');
  if (t.usecTs !== undefined && typeof t.usecTs !== 'boolean') bad('tcp.usecTs must be a boolean or absent');
  uint(t.tsNow, 32, 'tcp.tsNow');
  if (t.tsRecent !== undefined) uint(t.tsRecent, 32, 'tcp.tsRecent');
  const w = t.window;
  if (!w || typeof w !== 'object') bad('tcp.window is missing');
  for (const k of ['sndWl1', 'sndWnd', 'maxWindow', 'rcvWnd', 'rcvWup'] as const) uint(w[k], 32, `tcp.window.${k}`);

  buffer(t.sendQueue, 'tcp.sendQueue');
  buffer(t.recvQueue, 'tcp.recvQueue');
  buffer(b.receivedData, 'receivedData');
  const queued = t.sendQueue.length + t.recvQueue.length + b.receivedData.length;
  if (queued > MAX_QUEUE_BYTES) {
    throw new BlobError(
      'oversized',
      `state blob queues hold ${queued} bytes (send ${t.sendQueue.length}, receive ${t.recvQueue.length}, received ${b.receivedData.length}), more than the ${MAX_QUEUE_BYTES} a blob carries; this socket cannot be moved, serve it where it is`,
    );
  }
  // The rules a restore applies (control/tcp/state.ts), checked here so a blob never carries what cannot be restored.
  const problem = tcpStateInconsistency(t);
  if (problem) bad(`tcp: ${problem}`);

  if (b.ip !== undefined) {
    uint(b.ip.tos, 8, 'ip.tos');
    uint(b.ip.ttl, 8, 'ip.ttl', 1);
  }

  if (b.flow !== undefined) {
    const f = b.flow;
    flowMapping(f, t.family);
    // The mapping restores the tuple of this very socket; any other tuple would hand its packets to a stranger.
    if (!sameAddress(f.client.ip, t.remote.ip) || f.client.port !== t.remote.port) {
      bad(
        `flow.client ${formatAddress(f.client.ip, f.client.port)} differs from the socket's remote ${formatAddress(t.remote.ip, t.remote.port)}`,
      );
    }
    if (!sameAddress(f.vip.ip, t.local.ip) || f.vip.port !== t.local.port) {
      bad(
        `flow.vip ${formatAddress(f.vip.ip, f.vip.port)} differs from the socket's local ${formatAddress(t.local.ip, t.local.port)}`,
      );
    }
  }
}
