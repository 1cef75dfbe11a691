/**
 * Properties of the state-blob codec over generated inputs:
 *  - any valid state round-trips exactly;
 *  - whatever is done to a valid blob's bytes (bit flips, overwrites,
 *    truncation, extension, insertion; with the CRC left stale or repaired so
 *    the structural checks are reached; TLV-level drops, duplicates, random
 *    values), decoding either throws BlobError and nothing else, or returns a
 *    state that is valid: it re-encodes, and decoding that gives it back.
 * Run counts are bounded so the file stays within a few seconds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToIp, ipv6Bytes } from '../../control/net/addr.js';
import { FIELD, HEADER } from '../../control/tcp/blob/format.js';
import {
  BlobError,
  decodeStateBlob,
  encodeStateBlob,
  frameFields,
  type StateBlob,
  sealBlob,
} from '../../control/tcp/blob/index.js';
import { migrateV4, takeoverV6 } from '../lib/blob-fixtures.js';

const u32 = fc.nat({ max: 0xffffffff });
const port = fc.integer({ min: 1, max: 65535 });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
/** IPv6 text as the decoder writes it (RFC 5952), so round trips compare equal. */
const ipv6 = fc.ipV6().map((ip) => bytesToIp(ipv6Bytes(ip), 6));

const stateArb: fc.Arbitrary<StateBlob> = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    v4: fc.array(fc.ipV4(), { minLength: 3, maxLength: 3 }),
    v6: fc.array(ipv6, { minLength: 3, maxLength: 3 }),
    ports: fc.tuple(port, port),
    migrationId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    createdAtMs: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    protocol: fc.option(fc.stringMatching(/^[!-~]{1,64}$/), { nil: undefined }),
    appState: fc.option(bytes(64), { nil: undefined }),
    object: fc.option(fc.record({ id: bytes(32).filter((b) => b.length > 0), firstByteSeq: u32 }), { nil: undefined }),
    seqs: fc.tuple(u32, u32),
    mss: fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 65535 })),
    wscale: fc.tuple(fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 14 })),
    flags: fc.tuple(fc.boolean(), fc.boolean(), fc.option(fc.boolean(), { nil: undefined })),
    ts: fc.tuple(u32, fc.option(u32, { nil: undefined })),
    win: fc.tuple(u32, u32, u32, u32, u32),
    sendQueue: bytes(200),
    inFlight: fc.nat(),
    recvQueue: bytes(200),
    receivedData: bytes(200),
    ip: fc.option(fc.record({ tos: fc.nat({ max: 255 }), ttl: fc.integer({ min: 1, max: 255 }) }), { nil: undefined }),
    flow: fc.option(fc.record({ flowId: u32, lbOther: fc.boolean() }), { nil: undefined }),
  })
  .map((r) => {
    const ips = r.family === 4 ? r.v4 : r.v6;
    const [localIp, remoteIp, lbIp] = ips as [string, string, string];
    const local = { ip: localIp, port: r.ports[0] };
    const remote = { ip: remoteIp, port: r.ports[1] };
    const [sndWl1, a, b, rcvWnd, rcvWup] = r.win;
    const app: StateBlob['app'] = {};
    if (r.protocol !== undefined) app.protocol = r.protocol;
    if (r.appState !== undefined) app.state = r.appState;
    if (r.object !== undefined) app.object = { id: r.object.id, firstByteSeq: r.object.firstByteSeq };
    const sndUna = r.seqs[0];
    const tcp: StateBlob['tcp'] = {
      family: r.family,
      local,
      remote,
      sndUna,
      sndNxt: (sndUna + (r.inFlight % (r.sendQueue.length + 1))) >>> 0,
      rcvNxt: r.seqs[1],
      mssClamp: r.mss[0],
      advMss: r.mss[1],
      sndWscale: r.wscale[0],
      rcvWscale: r.wscale[1],
      timestamps: r.flags[0],
      sackPermitted: r.flags[1],
      tsNow: r.ts[0],
      sendQueue: r.sendQueue,
      recvQueue: r.recvQueue,
      window: { sndWl1, sndWnd: Math.min(a, b), maxWindow: Math.max(a, b), rcvWnd, rcvWup },
    };
    if (r.flags[2] !== undefined) tcp.usecTs = r.flags[2];
    if (r.ts[1] !== undefined) tcp.tsRecent = r.ts[1];
    const out: StateBlob = {
      migrationId: r.migrationId,
      createdAtMs: r.createdAtMs,
      app,
      tcp,
      receivedData: r.receivedData,
    };
    // fc.record builds null-prototype objects; the decoder returns plain ones.
    if (r.ip !== undefined) out.ip = { tos: r.ip.tos, ttl: r.ip.ttl };
    if (r.flow !== undefined) {
      const lb = r.flow.lbOther ? (r.family === 4 ? (r.v6[2] as string) : (r.v4[2] as string)) : lbIp;
      out.flow = { lb, flowId: r.flow.flowId, client: { ...remote }, vip: { ...local } };
    }
    return out;
  });

/** The invariant: BlobError or a valid state that survives its own re-encoding. */
function decodesSafely(input: Buffer): void {
  let d: StateBlob;
  try {
    d = decodeStateBlob(input);
  } catch (e) {
    if (e instanceof BlobError) return;
    throw e;
  }
  const again = encodeStateBlob(d);
  assert.deepStrictEqual(decodeStateBlob(again), d);
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'insert'; at: number; extra: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    extra: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
);

function mutate(blob: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(blob);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : ('at' in m ? m.at : 0) % b.length;
    if (m.kind === 'flip' && b.length) b[at] = (b[at] as number) ^ (1 << m.bit);
    else if (m.kind === 'set' && b.length) b[at] = m.value;
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'extend') b = Buffer.concat([b, m.extra]);
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.extra, b.subarray(at)]);
  }
  return b;
}

/** Makes the header consistent again (total length, CRC) so decoding reaches the fields. */
function repaired(b: Buffer): Buffer {
  if (b.length < 16) return b;
  const out = Buffer.from(b);
  out.writeUInt32BE(out.length, HEADER.totalLength);
  sealBlob(out);
  return out;
}

const validBlob = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(migrateV4(), takeoverV6()) },
  { weight: 3, arbitrary: stateArb },
);

describe('state blob: properties', () => {
  it('every valid state round-trips exactly', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const blob = encodeStateBlob(s);
        assert.deepStrictEqual(decodeStateBlob(blob), s);
        assert.ok(encodeStateBlob(decodeStateBlob(blob)).equals(blob));
      }),
      { numRuns: 500 },
    );
  });

  it('mutated bytes with a stale CRC: only BlobError, never a state', () => {
    fc.assert(
      fc.property(validBlob, fc.array(mutation, { minLength: 1, maxLength: 4 }), (s, ms) => {
        const good = encodeStateBlob(s);
        const bad = mutate(good, ms);
        if (bad.equals(good)) return;
        // Any change to covered bytes is caught: by the CRC, or by a length check before it.
        assert.throws(() => decodeStateBlob(bad), BlobError);
      }),
      { numRuns: 1000 },
    );
  });

  it('mutated bytes with the header repaired: BlobError or a state that re-encodes to itself', () => {
    fc.assert(
      fc.property(validBlob, fc.array(mutation, { minLength: 1, maxLength: 4 }), (s, ms) => {
        decodesSafely(repaired(mutate(encodeStateBlob(s), ms)));
      }),
      { numRuns: 2000 },
    );
  });

  it('TLV-level damage (drops, duplicates, random values, unknown types): BlobError or a valid state', () => {
    const types = Object.values(FIELD);
    const edit = fc.oneof(
      fc.record({ op: fc.constant('drop' as const), i: fc.nat() }),
      fc.record({ op: fc.constant('dup' as const), i: fc.nat() }),
      fc.record({ op: fc.constant('value' as const), i: fc.nat(), v: fc.uint8Array({ maxLength: 48 }) }),
      fc.record({
        op: fc.constant('add' as const),
        t: fc.oneof(fc.constantFrom(...types), fc.nat({ max: 0xffff })),
        v: fc.uint8Array({ maxLength: 48 }),
      }),
    );
    fc.assert(
      fc.property(validBlob, fc.array(edit, { minLength: 1, maxLength: 4 }), (s, edits) => {
        const blob = encodeStateBlob(s);
        const fields: Array<[number, Uint8Array]> = [];
        for (let off = 16; off < blob.length; ) {
          const len = blob.readUInt32BE(off + 2);
          fields.push([blob.readUInt16BE(off), blob.subarray(off + 6, off + 6 + len)]);
          off += 6 + len;
        }
        for (const e of edits) {
          if (e.op === 'add') fields.push([e.t, e.v]);
          else if (fields.length) {
            const i = e.i % fields.length;
            const f = fields[i] as [number, Uint8Array];
            if (e.op === 'drop') fields.splice(i, 1);
            else if (e.op === 'dup') fields.push(f);
            else fields[i] = [f[0], e.v];
          }
        }
        decodesSafely(frameFields(fields));
      }),
      { numRuns: 1000 },
    );
  });
});
