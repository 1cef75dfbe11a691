/**
 * The connection-state blob codec (control/tcp/blob): round trips of real
 * shapes of state, the golden bytes of one small blob (the format cannot
 * change silently), every refusal reason, and the versioning rules (unknown
 * fields skipped, unknown critical fields and versions refused).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatonError, ERRORS } from '../../control/errors.js';
import { FIELD, FIELD_CRITICAL, HEADER, MAX_APP_STATE_BYTES } from '../../control/tcp/blob/format.js';
import {
  BLOB_REFUSAL_REASONS,
  BLOB_VERSION,
  BlobError,
  type BlobRefusalReason,
  decodeChannelBlob,
  decodeStateBlob,
  encodeFlowReservation,
  encodeStateBlob,
  type FlowReservation,
  frameFields,
  MAX_BLOB_BYTES,
  MAX_QUEUE_BYTES,
  peekBlobHeader,
  receiveQueueOf,
  type StateBlob,
  sealBlob,
} from '../../control/tcp/blob/index.js';
import { crc32c } from '../../control/tcp/crc32c.js';
import { bulkUsecV4, migrateV4, takeoverV6 } from '../lib/blob-fixtures.js';

/** The fields of a blob, read here without the codec: [type, value] in wire order. */
function tlvs(blob: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let off = blob.readUInt16BE(6); off < blob.length; ) {
    const len = blob.readUInt32BE(off + 2);
    out.push([blob.readUInt16BE(off), blob.subarray(off + 6, off + 6 + len)]);
    off += 6 + len;
  }
  return out;
}

const fieldsOf = (b: StateBlob): Array<[number, Buffer]> => tlvs(encodeStateBlob(b));
const without = (b: StateBlob, type: number): Array<[number, Buffer]> => fieldsOf(b).filter(([t]) => t !== type);
/** The blob's fields plus one more, in ascending type order as a writer would put it. */
const added = (b: StateBlob, type: number, value: Buffer): Array<[number, Buffer]> =>
  [...fieldsOf(b), [type, value] as [number, Buffer]].sort((x, y) => x[0] - y[0]);
const replaced = (b: StateBlob, type: number, value: Buffer): Array<[number, Buffer]> =>
  fieldsOf(b).map(([t, v]) => [t, t === type ? value : v]);

function refused(reason: BlobRefusalReason, fn: () => unknown, message?: RegExp): BlobError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BlobError, `expected BlobError(${reason}), got ${String(caught)}`);
  assert.ok(caught instanceof BatonError);
  assert.equal(caught.reason, reason, caught.message);
  assert.equal(caught.code, 'BLOB_INVALID');
  assert.equal(caught.status, ERRORS.BLOB_INVALID.status);
  assert.equal(caught.status, 400);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A blob's bytes with one header field rewritten and the CRC made valid again. */
function patched(blob: Buffer, edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(blob);
  edit(b);
  sealBlob(b);
  return b;
}

describe('state blob: round trips', () => {
  for (const make of [migrateV4, takeoverV6, bulkUsecV4]) {
    it(`${make.name} decodes to exactly what was encoded`, () => {
      const blob = encodeStateBlob(make());
      assert.deepStrictEqual(decodeStateBlob(blob), make());
      // Re-encoding a decoded blob is byte-identical: the writer is canonical.
      assert.ok(encodeStateBlob(decodeStateBlob(blob)).equals(blob));
    });
  }

  it('keeps usecTs unknown, false and true apart, and tsRecent absent or present', () => {
    const base = migrateV4();
    for (const usecTs of [undefined, false, true]) {
      for (const tsRecent of [undefined, 0, 0xffffffff]) {
        const tcp = { ...base.tcp };
        delete tcp.usecTs;
        delete tcp.tsRecent;
        if (usecTs !== undefined) tcp.usecTs = usecTs;
        if (tsRecent !== undefined) tcp.tsRecent = tsRecent;
        const d = decodeStateBlob(encodeStateBlob({ ...base, tcp }));
        assert.equal('usecTs' in d.tcp, usecTs !== undefined);
        assert.equal(d.tcp.usecTs, usecTs);
        assert.equal('tsRecent' in d.tcp, tsRecent !== undefined);
        assert.equal(d.tcp.tsRecent, tsRecent);
      }
    }
  });

  it('omits absent optional layers instead of returning undefined members', () => {
    const d = decodeStateBlob(encodeStateBlob(takeoverV6()));
    assert.equal('ip' in d, false);
    assert.equal('flow' in d, false);
    const minimal = decodeStateBlob(encodeStateBlob({ ...takeoverV6(), app: {} }));
    assert.deepStrictEqual(minimal.app, {});
  });

  it('returns Buffers detached from the input', () => {
    const blob = encodeStateBlob(migrateV4());
    const d = decodeStateBlob(blob);
    blob.fill(0);
    assert.deepStrictEqual(d, migrateV4());
  });

  it('decodes from a Uint8Array view at an odd offset', () => {
    const blob = encodeStateBlob(takeoverV6());
    const host = new Uint8Array(blob.length + 3);
    host.set(blob, 3);
    assert.deepStrictEqual(decodeStateBlob(host.subarray(3)), takeoverV6());
  });

  it('writes IPv6 addresses canonically and compares the flow mapping by address bytes', () => {
    const s = migrateV4();
    const v6: StateBlob = {
      ...s,
      tcp: {
        ...s.tcp,
        family: 6,
        local: { ip: '2001:DB8:0::1', port: 80 },
        remote: { ip: '::ffff:198.18.1.1', port: 40000 },
      },
      flow: {
        lb: '2001:db8::2',
        flowId: 1,
        client: { ip: '::ffff:c612:101', port: 40000 },
        vip: { ip: '2001:db8::1', port: 80 },
      },
    };
    const d = decodeStateBlob(encodeStateBlob(v6));
    assert.deepStrictEqual(d.tcp.local, { ip: '2001:db8::1', port: 80 });
    assert.deepStrictEqual(d.tcp.remote, { ip: '::ffff:c612:101', port: 40000 });
    assert.deepStrictEqual(d.flow?.client, d.tcp.remote);
  });

  it('carries an LB address of the other family than the connection', () => {
    const s = migrateV4();
    const d = decodeStateBlob(encodeStateBlob({ ...s, flow: { ...s.flow!, lb: '2001:db8::9' } }));
    assert.equal(d.flow?.lb, '2001:db8::9');
  });

  it('receiveQueueOf puts the data the front end read in front of the queued bytes', () => {
    const s = migrateV4();
    assert.equal(receiveQueueOf(s).toString(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const both = { ...s, tcp: { ...s.tcp, recvQueue: Buffer.from('GET /2') } };
    assert.equal(receiveQueueOf(both).toString(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2');
    assert.equal(receiveQueueOf(takeoverV6()).toString(), 'QUIT\r\n');
  });
});

describe('state blob: golden bytes', () => {
  // migrateV4() in format version 1. If this fails, the wire format changed:
  // either undo the change, or bump BLOB_VERSION and update docs/state-blob.md.
  const GOLDEN = [
    '4254534200010010000000f711eb4453',
    '01010000000801020304050607080102',
    '0000000800000199c82cc07b02010000',
    '0008687474702f312e3103010000000c',
    '000f4240000f424afffffff003020000',
    '000705b405b407090703030000000407',
    '5bcd150304000000043ade68b1030500',
    '000014ffffffe00000faf00000faf000',
    '00fffffffffff003060000000a485454',
    '502f312e312031030700000000030800',
    '00001b474554202f20485454502f312e',
    '310d0a486f73743a20610d0a0d0a0401',
    '0000000e04c6130001005004c6120101',
    '9c400402000000021040050100000017',
    'deadbeef04c612000204c61201019c40',
    '04c61300010050',
  ].join('');

  it('encodes migrateV4 to the pinned bytes', () => {
    assert.equal(encodeStateBlob(migrateV4()).toString('hex'), GOLDEN);
  });

  it('decodes the pinned bytes', () => {
    assert.deepStrictEqual(decodeStateBlob(Buffer.from(GOLDEN, 'hex')), migrateV4());
  });

  it('has the documented header: magic, version 1, header length 16, total length, CRC-32C of the rest', () => {
    const b = Buffer.from(GOLDEN, 'hex');
    assert.equal(b.subarray(0, 4).toString('latin1'), 'BTSB');
    assert.equal(b.readUInt16BE(4), 1);
    assert.equal(BLOB_VERSION, 1);
    assert.equal(b.readUInt16BE(6), 16);
    assert.equal(b.readUInt32BE(8), b.length);
    assert.equal(b.readUInt32BE(12), crc32c(Buffer.concat([b.subarray(0, 12), b.subarray(16)])));
    assert.deepStrictEqual(
      tlvs(b).map(([t]) => t),
      [0x0101, 0x0102, 0x0201, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x0306, 0x0307, 0x0308, 0x0401, 0x0402, 0x0501],
    );
  });
});

describe('state blob: refusals', () => {
  const good = encodeStateBlob(migrateV4());

  it('lists every reason this file exercises', () => {
    // Keeps the list and the tests below in step: a new reason needs a test.
    assert.deepStrictEqual([...BLOB_REFUSAL_REASONS].sort(), [
      'bad_field',
      'bad_header',
      'bad_magic',
      'checksum',
      'missing_field',
      'oversized',
      'truncated',
      'unsupported_field',
      'unsupported_version',
    ]);
  });

  it('truncated: short of the header, short of the declared length, empty', () => {
    refused('truncated', () => decodeStateBlob(Buffer.alloc(0)));
    refused('truncated', () => decodeStateBlob(good.subarray(0, 4)));
    refused('truncated', () => decodeStateBlob(good.subarray(0, 15)), /shorter than its 16-byte header/);
    refused('truncated', () => decodeStateBlob(good.subarray(0, good.length - 1)), /declares 247/);
  });

  it('bad_magic: not a blob, even when shorter than the magic', () => {
    refused('bad_magic', () => decodeStateBlob(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /not "BTSB"/);
    refused('bad_magic', () => decodeStateBlob(Buffer.from('X')));
    refused('bad_magic', () => decodeStateBlob(patched(good, (b) => b.writeUInt8(0x62, 0))));
  });

  it('checksum: any flipped bit in the header or a field', () => {
    for (const at of [4, 6, 10, 13, 16, 40, good.length - 1]) {
      const b = Buffer.from(good);
      b[at] = (b[at] as number) ^ 0x01;
      const r = (() => {
        try {
          decodeStateBlob(b);
        } catch (e) {
          return e;
        }
      })();
      assert.ok(r instanceof BlobError, `byte ${at}`);
      // Bytes 6..11 are lengths, checked before the CRC; all others must be the checksum.
      if (at < 6 || at >= 12) assert.equal(r.reason, 'checksum', `byte ${at}: ${r.message}`);
    }
    refused('checksum', () => decodeStateBlob(patched(good, () => {}).fill(0, 12, 16)), /corrupted/);
  });

  it('unsupported_version: a well-formed blob of a version this reader does not know', () => {
    const v2 = frameFields(tlvs(good), 2);
    refused('unsupported_version', () => decodeStateBlob(v2), /version 2; this baton reads version 1/);
    refused('unsupported_version', () => decodeStateBlob(frameFields(tlvs(good), 0)));
  });

  it('oversized: declared length above the maximum is refused from the header alone', () => {
    const head = Buffer.from(good.subarray(0, 16));
    head.writeUInt32BE(MAX_BLOB_BYTES + 1, HEADER.totalLength);
    refused('oversized', () => decodeStateBlob(head), /refused before reading it/);
    refused('oversized', () => peekBlobHeader(head.subarray(0, 12)));
    assert.equal(peekBlobHeader(head.subarray(0, 12), MAX_BLOB_BYTES + 1), undefined);
  });

  it('oversized: queues above MAX_QUEUE_BYTES, app state above its bound', () => {
    const s = migrateV4();
    const big = Buffer.alloc(MAX_QUEUE_BYTES - s.tcp.sendQueue.length - s.receivedData.length + 1);
    refused('oversized', () => encodeStateBlob({ ...s, tcp: { ...s.tcp, recvQueue: big } }), /cannot be moved/);
    const state = Buffer.alloc(MAX_APP_STATE_BYTES + 1);
    refused('oversized', () => encodeStateBlob({ ...s, app: { state } }));
    const raw = frameFields(added(s, FIELD.APP_STATE, state));
    refused('oversized', () => decodeStateBlob(raw), /app state/);
  });

  it('bad_header: header length below 16 or past the end, trailing bytes', () => {
    refused('bad_header', () => decodeStateBlob(patched(good, (b) => b.writeUInt16BE(8, HEADER.headerLength))));
    refused('bad_header', () => decodeStateBlob(patched(good, (b) => b.writeUInt32BE(15, HEADER.totalLength))));
    refused('bad_header', () =>
      decodeStateBlob(patched(good, (b) => b.writeUInt16BE(good.length + 1, HEADER.headerLength))),
    );
    refused('bad_header', () => decodeStateBlob(Buffer.concat([good, good])), /decode one blob at a time/);
  });

  it('a longer header (a newer writer) is skipped', () => {
    const fields = good.subarray(16);
    const b = Buffer.concat([good.subarray(0, 16), Buffer.from('extra!'), fields]);
    b.writeUInt16BE(22, HEADER.headerLength);
    b.writeUInt32BE(b.length, HEADER.totalLength);
    sealBlob(b);
    assert.deepStrictEqual(decodeStateBlob(b), migrateV4());
  });

  it('missing_field: each required field', () => {
    for (const type of [
      FIELD.MIGRATION_ID,
      FIELD.CREATED_AT,
      FIELD.TCP_SEQ,
      FIELD.TCP_OPTIONS,
      FIELD.TCP_TS_CLOCK,
      FIELD.TCP_WINDOW,
      FIELD.TCP_SEND_QUEUE,
      FIELD.TCP_RECV_QUEUE,
      FIELD.TCP_RECEIVED_DATA,
      FIELD.IP_ENDPOINTS,
    ]) {
      refused(
        'missing_field',
        () => decodeStateBlob(frameFields(without(migrateV4(), type))),
        /lacks the required field/,
      );
    }
    // Optional ones may go.
    for (const type of [FIELD.APP_PROTOCOL, FIELD.TCP_TS_RECENT, FIELD.IP_OPTIONS, FIELD.FLOW_MAPPING]) {
      decodeStateBlob(frameFields(without(migrateV4(), type)));
    }
  });

  it('bad_field: wrong fixed sizes, duplicates, stray bytes, overrunning lengths', () => {
    const s = migrateV4();
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.TCP_SEQ, Buffer.alloc(11)))),
      /must be 12/,
    );
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(s, FIELD.MIGRATION_ID, Buffer.alloc(9)))));
    const dup = fieldsOf(s);
    dup.push(dup[0]!);
    refused('bad_field', () => decodeStateBlob(frameFields(dup)), /twice/);
    // A field header cut short, and a field whose length runs past the end (CRC valid).
    const stray = Buffer.concat([good, Buffer.from([1, 2, 3])]);
    stray.writeUInt32BE(stray.length, HEADER.totalLength);
    refused('bad_field', () => decodeStateBlob(patched(stray, () => {})), /stray bytes/);
    const over = patched(good, (b) => b.writeUInt32BE(0xffff, 16 + 2));
    refused('bad_field', () => decodeStateBlob(over), /declares 65535 bytes/);
  });

  it('bad_field: values out of range or contradicting each other', () => {
    const s = migrateV4();
    const ends = fieldsOf(s).find(([t]) => t === FIELD.IP_ENDPOINTS)![1];
    const famBad = Buffer.from(ends);
    famBad[0] = 5;
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(s, FIELD.IP_ENDPOINTS, famBad))), /family 5/);
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.IP_ENDPOINTS, Buffer.concat([ends, Buffer.alloc(1)])))),
      /after its contents/,
    );
    const mixed = Buffer.concat([ends.subarray(0, 7), Buffer.from([6, ...Buffer.alloc(16, 1), 0, 80])]);
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.IP_ENDPOINTS, mixed))),
      /mixes IPv4 and IPv6/,
    );
    const opts = Buffer.from(fieldsOf(s).find(([t]) => t === FIELD.TCP_OPTIONS)![1]);
    opts[6] = 0x10;
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(s, FIELD.TCP_OPTIONS, opts))), /flags/);
    opts[6] = 0x08; // usec_ts without usec_ts_known
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(s, FIELD.TCP_OPTIONS, opts))));
    const at = Buffer.alloc(8);
    at.writeBigUInt64BE(1n << 60n);
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.CREATED_AT, at))),
      /beyond any real clock/,
    );
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.APP_PROTOCOL, Buffer.from('http 1')))),
      /printable ASCII/,
    );
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(s, FIELD.APP_PROTOCOL, Buffer.alloc(0)))));
    refused(
      'bad_field',
      () => decodeStateBlob(frameFields(replaced(s, FIELD.IP_OPTIONS, Buffer.from([0, 0])))),
      /ip\.ttl/,
    );
    refused('bad_field', () => decodeStateBlob(frameFields(added(s, FIELD.APP_OBJECT, Buffer.alloc(3)))), /too short/);

    // The same checks guard the writer.
    refused('bad_field', () => encodeStateBlob({ ...s, tcp: { ...s.tcp, sndWscale: 15 } }), /window scale/);
    refused('bad_field', () => encodeStateBlob({ ...s, tcp: { ...s.tcp, mssClamp: 0 } }), /mssClamp/);
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, tcp: { ...s.tcp, sndNxt: s.tcp.sndUna + 11 } }),
      /send queue holds only 10/,
    );
    refused('bad_field', () => encodeStateBlob({ ...s, tcp: { ...s.tcp, rcvNxt: 2 ** 32 } }), /rcvNxt/);
    refused('bad_field', () => encodeStateBlob({ ...s, tcp: { ...s.tcp, tsNow: 1.5 } }), /tsNow/);
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, tcp: { ...s.tcp, local: { ip: 'vip', port: 80 } } }),
      /not an IP address/,
    );
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, tcp: { ...s.tcp, local: { ip: '2001:db8::1', port: 80 } } }),
      /IPv6 but the socket is IPv4/,
    );
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, tcp: { ...s.tcp, remote: { ip: '198.18.1.1', port: 0 } } }),
      /port/,
    );
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, tcp: { ...s.tcp, window: { ...s.tcp.window, maxWindow: 1 } } }),
      /maxWindow/,
    );
    refused('bad_field', () => encodeStateBlob({ ...s, migrationId: -1n }), /migrationId/);
    refused('bad_field', () => encodeStateBlob({ ...s, migrationId: 1n << 64n }), /migrationId/);
    refused('bad_field', () => encodeStateBlob({ ...s, createdAtMs: -1 }), /createdAtMs/);
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, app: { object: { id: Buffer.alloc(0), firstByteSeq: 0 } } }),
      /object\.id/,
    );
    refused('bad_field', () => encodeStateBlob({ ...s, app: { protocol: 'h\u00e9' } }), /printable ASCII/);
    refused('bad_field', () => encodeStateBlob({ ...s, flow: { ...s.flow!, flowId: -1 } }), /flowId/);
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, flow: { ...s.flow!, client: { ip: '198.18.1.2', port: 40000 } } }),
      /differs from the socket's remote 198\.18\.1\.1:40000/,
    );
    refused(
      'bad_field',
      () => encodeStateBlob({ ...s, flow: { ...s.flow!, vip: { ip: '198.19.0.1', port: 81 } } }),
      /differs from the socket's local/,
    );
  });

  it('unknown fields are skipped, unknown critical fields refused', () => {
    const fields = fieldsOf(migrateV4());
    // A newer writer's field in the middle and one at the end, and the same unknown type twice.
    const newer = frameFields([
      ...fields.slice(0, 3),
      [0x0299, Buffer.from('future')],
      ...fields.slice(3),
      [0x7fff, Buffer.alloc(1000, 7)],
      [0x7fff, Buffer.alloc(0)],
    ]);
    assert.deepStrictEqual(decodeStateBlob(newer), migrateV4());
    const critical = frameFields([...fields, [FIELD_CRITICAL | 0x0299, Buffer.from('needed')]]);
    refused('unsupported_field', () => decodeStateBlob(critical), /0x8299.*upgrade/);
  });

  it('fields in any order decode the same', () => {
    const fields = fieldsOf(takeoverV6()).reverse();
    assert.deepStrictEqual(decodeStateBlob(frameFields(fields)), takeoverV6());
  });
});

describe('flow-id reservation (FLOW_RESERVATION)', () => {
  const reservation = (): FlowReservation => {
    const b = migrateV4();
    return { migrationId: b.migrationId, createdAtMs: b.createdAtMs, flow: b.flow as FlowReservation['flow'] };
  };

  it('round-trips through decodeChannelBlob, and states still decode as states there', () => {
    const r = reservation();
    const bytes = encodeFlowReservation(r);
    assert.deepStrictEqual(
      tlvs(bytes).map(([t]) => t),
      [FIELD.MIGRATION_ID, FIELD.CREATED_AT, FIELD.FLOW_MAPPING, FIELD.FLOW_RESERVATION],
    );
    assert.ok(FIELD.FLOW_RESERVATION & FIELD_CRITICAL, 'a reader that does not know reservations must refuse one');
    assert.deepStrictEqual(decodeChannelBlob(bytes), { kind: 'reservation', reservation: r });
    assert.deepStrictEqual(decodeChannelBlob(encodeStateBlob(migrateV4())), { kind: 'state', blob: migrateV4() });
  });

  it('is not a state: decodeStateBlob refuses it', () => {
    refused('bad_field', () => decodeStateBlob(encodeFlowReservation(reservation())), /reservation.*decodeChannelBlob/);
  });

  it('refuses a reservation without its mapping, with state fields, or with a value in the marker', () => {
    const fields = tlvs(encodeFlowReservation(reservation()));
    const noMapping = fields.filter(([t]) => t !== FIELD.FLOW_MAPPING);
    refused('missing_field', () => decodeChannelBlob(frameFields(noMapping)), /FLOW_MAPPING/);
    const withState = [...fields, ...fieldsOf(migrateV4()).filter(([t]) => t === FIELD.TCP_SEQ)].sort(
      (x, y) => x[0] - y[0],
    );
    refused('bad_field', () => decodeChannelBlob(frameFields(withState)), /TCP_SEQ/);
    const marker = fields.map(([t, v]): [number, Buffer] => [t, t === FIELD.FLOW_RESERVATION ? Buffer.from([1]) : v]);
    refused('bad_field', () => decodeChannelBlob(frameFields(marker)), /FLOW_RESERVATION/);
  });

  it('refuses a mapping that mixes families or names port 0, on both sides of the wire', () => {
    const r = reservation();
    const mixed = { ...r, flow: { ...r.flow, vip: { ip: '2001:db8::1', port: 80 } } };
    refused('bad_field', () => encodeFlowReservation(mixed), /flow\.vip/);
    const port0 = { ...r, flow: { ...r.flow, client: { ...r.flow.client, port: 0 } } };
    refused('bad_field', () => encodeFlowReservation(port0), /flow\.client\.port/);
    // The same mapping written by hand (what a broken or hostile sender would put on the wire).
    const fields = tlvs(encodeFlowReservation(r));
    const bad = Buffer.from(fields.find(([t]) => t === FIELD.FLOW_MAPPING)?.[1] as Buffer);
    bad.writeUInt16BE(0, bad.length - 2 - 7); // the client port: flow id 4, lb 5, client address 5, then its port
    const hand = fields.map(([t, v]): [number, Buffer] => [t, t === FIELD.FLOW_MAPPING ? bad : v]);
    refused('bad_field', () => decodeChannelBlob(frameFields(hand)), /port/);
  });
});

describe('REPLY_BY', () => {
  it('round-trips when present, is absent otherwise, and is refused beyond a real clock', () => {
    const b = { ...migrateV4(), replyByMs: 1_760_000_002_123 };
    const bytes = encodeStateBlob(b);
    assert.ok(tlvs(bytes).some(([t, v]) => t === FIELD.REPLY_BY && v.readBigUInt64BE(0) === 1_760_000_002_123n));
    assert.deepStrictEqual(decodeStateBlob(bytes), b);
    assert.equal('replyByMs' in decodeStateBlob(encodeStateBlob(migrateV4())), false);
    refused('bad_field', () => encodeStateBlob({ ...migrateV4(), replyByMs: -1 }), /replyByMs/);
    const huge = Buffer.alloc(8, 0xff);
    refused('bad_field', () => decodeStateBlob(frameFields(replaced(b, FIELD.REPLY_BY, huge))), /REPLY_BY/);
  });
});
