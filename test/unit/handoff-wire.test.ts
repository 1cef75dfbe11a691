/**
 * The handoff channel's wire format (control/handoff/wire.ts): round trips,
 * the exact header layout, a stream cut anywhere, and every malformed
 * header or body refused with its stable reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeHeader,
  decodeReplyBody,
  encodeHeader,
  encodeReply,
  FRAME_TYPE,
  FrameReader,
  HANDOFF_MAGIC,
  HEADER_BYTES,
  LEG_PORT_FIXED_BYTES,
  MAX_AGENT_BYTES,
  MAX_APP_PROTOCOL_BYTES,
  MAX_ENDPOINT_BYTES,
  MAX_REPLY_BODY,
  MAX_REQUEST_BODY,
  MIGRATE_FDS,
  MIGRATE_FIXED_BYTES,
  NO_TIMEOUT,
  SPLICE_FDS,
  SPLICE_FIXED_BYTES,
  WireError,
} from '../../control/handoff/wire.js';
import {
  decodeLegPortBody,
  decodeMigrateBody,
  decodeSpliceBody,
  encodeLegPort,
  encodeMigrate,
  encodeSplice,
} from '../../control/handoff/wire-requests.js';
import { MAX_PREFIX_BYTES } from '../../control/service/limits.js';

const reason = (r: string) => (e: unknown) => e instanceof WireError && e.reason === r;

describe('handoff wire format', () => {
  test('a splice frame: the documented bytes, and back', () => {
    const f = encodeSplice({ id: 0x01020304, quiesceTimeoutMs: 250, prefix: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
    assert.equal(f.length, HEADER_BYTES + SPLICE_FIXED_BYTES + 18);
    assert.equal(f.readUInt16LE(0), HANDOFF_MAGIC);
    assert.equal(f[2], 1, 'version');
    assert.equal(f[3], FRAME_TYPE.SPLICE);
    assert.equal(f.readUInt32LE(4), 0x01020304);
    assert.equal(f.readUInt32LE(8), SPLICE_FIXED_BYTES + 18);
    assert.equal(f[12], SPLICE_FDS);
    assert.deepEqual([...f.subarray(13, 16)], [0, 0, 0]);
    assert.equal(f.readUInt32LE(16), 250);
    assert.equal(f.readUInt32LE(20), 18);
    const h = decodeHeader(f, 'request');
    assert.deepEqual(h, { type: FRAME_TYPE.SPLICE, id: 0x01020304, bodyLength: 26, fds: 2 });
    assert.deepEqual(decodeSpliceBody(f.subarray(HEADER_BYTES)), {
      quiesceTimeoutMs: 250,
      prefix: Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    });
  });

  test('no prefix and no timeout: an 8-byte body, the timeout field "unset"', () => {
    const f = encodeSplice({ id: 7 });
    assert.equal(f.length, HEADER_BYTES + SPLICE_FIXED_BYTES);
    assert.equal(f.readUInt32LE(16), NO_TIMEOUT);
    assert.deepEqual(decodeSpliceBody(f.subarray(HEADER_BYTES)), {});
  });

  test('replies carry the JSON documents of the REST contract', () => {
    const doc = { id: '42', state: 'forwarding', durationUs: 180 };
    const f = encodeReply(FRAME_TYPE.SPLICED, 9, doc);
    assert.deepEqual(decodeHeader(f, 'reply'), {
      type: FRAME_TYPE.SPLICED,
      id: 9,
      bodyLength: f.length - HEADER_BYTES,
      fds: 0,
    });
    assert.deepEqual(decodeReplyBody(f.subarray(HEADER_BYTES)), doc);
    assert.throws(() => decodeReplyBody(Buffer.from('{"id":')), reason('bad_json'));
  });

  test('a stream of frames cut at every byte gives the same frames, in order', () => {
    const frames = [
      encodeSplice({ id: 1, prefix: Buffer.alloc(300, 0x61) }),
      encodeSplice({ id: 2 }),
      encodeSplice({ id: 3, quiesceTimeoutMs: 0 }),
    ];
    const stream = Buffer.concat(frames);
    for (let cut = 0; cut <= stream.length; cut += 7) {
      const r = new FrameReader('request');
      const got = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))];
      assert.deepEqual(
        got.map((f) => f.id),
        [1, 2, 3],
        `cut at ${cut}`,
      );
      assert.equal(r.midFrame, false);
      assert.deepEqual(got[0]?.body, frames[0]?.subarray(HEADER_BYTES));
    }
    const r = new FrameReader('request');
    assert.deepEqual(r.push(stream.subarray(0, HEADER_BYTES + 3)), []);
    assert.equal(r.midFrame, true, 'a truncated frame is visible as such');
  });

  test('malformed headers are refused with their reason', () => {
    const good = encodeSplice({ id: 5 });
    const bad = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      edit(b);
      return b;
    };
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt16LE(0x1234, 0)),
          'request',
        ),
      reason('bad_magic'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(2, 2)),
          'request',
        ),
      reason('bad_version'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(0x07, 3)),
          'request',
        ),
      reason('bad_type'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(FRAME_TYPE.SPLICED, 3)),
          'request',
        ),
      reason('bad_type'),
      'a reply type is not a request',
    );
    assert.throws(() => decodeHeader(good, 'reply'), reason('bad_type'), 'nor a request a reply');
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(1, 14)),
          'request',
        ),
      reason('bad_reserved'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(1, 12)),
          'request',
        ),
      reason('bad_fds'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt8(3, 12)),
          'request',
        ),
      reason('bad_fds'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt32LE(MAX_REQUEST_BODY + 1, 8)),
          'request',
        ),
      reason('too_large'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt32LE(0xffffffff, 8)),
          'request',
        ),
      reason('too_large'),
    );
    assert.throws(
      () =>
        decodeHeader(
          bad((b) => b.writeUInt32LE(4, 8)),
          'request',
        ),
      reason('bad_length'),
    );
    const reply = encodeHeader({ type: FRAME_TYPE.ERROR, id: 1, bodyLength: MAX_REPLY_BODY + 1, fds: 0 });
    assert.throws(() => decodeHeader(reply, 'reply'), reason('too_large'));
    // The largest legal request body passes.
    const max = bad((b) => b.writeUInt32LE(MAX_REQUEST_BODY, 8));
    assert.equal(decodeHeader(max, 'request').bodyLength, MAX_REQUEST_BODY);
  });

  test('a body whose prefix length lies is refused, either way', () => {
    const body = encodeSplice({ id: 1, prefix: Buffer.from('abcd') }).subarray(HEADER_BYTES);
    const longer = Buffer.from(body);
    longer.writeUInt32LE(5, 4);
    assert.throws(() => decodeSpliceBody(longer), reason('bad_length'));
    const shorter = Buffer.from(body);
    shorter.writeUInt32LE(3, 4);
    assert.throws(() => decodeSpliceBody(shorter), reason('bad_length'));
    assert.throws(() => decodeSpliceBody(Buffer.alloc(4)), reason('bad_length'));
  });

  test('the reader stops at the first malformed header', () => {
    const r = new FrameReader('request');
    const junk = Buffer.alloc(HEADER_BYTES, 0xff);
    assert.throws(() => r.push(Buffer.concat([encodeSplice({ id: 1 }), junk])), reason('bad_magic'));
  });

  test('the encoder refuses what the decoder would', () => {
    assert.throws(() => encodeSplice({ id: 1, prefix: Buffer.alloc(MAX_PREFIX_BYTES + 1) }), RangeError);
    assert.throws(() => encodeSplice({ id: 1, quiesceTimeoutMs: -1 }), RangeError);
    const big = encodeSplice({ id: 1, prefix: Buffer.alloc(MAX_PREFIX_BYTES) });
    assert.equal(decodeHeader(big, 'request').bodyLength, SPLICE_FIXED_BYTES + MAX_PREFIX_BYTES);
  });

  test('a migrate frame: the documented bytes, and back', () => {
    const received = Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
    const f = encodeMigrate({ id: 7, agent: '198.18.3.2:7070', appProtocol: 'http/1.1', received, timeoutMs: 900 });
    const a = '198.18.3.2:7070'.length;
    const p = 'http/1.1'.length;
    assert.equal(f.length, HEADER_BYTES + MIGRATE_FIXED_BYTES + a + p + received.length);
    assert.equal(f[3], FRAME_TYPE.MIGRATE);
    assert.equal(f.readUInt32LE(4), 7);
    assert.equal(f[12], MIGRATE_FDS);
    const body = f.subarray(HEADER_BYTES);
    assert.equal(body.readUInt32LE(0), 900);
    assert.equal(body[4], a);
    assert.equal(body[5], p);
    assert.equal(body.readUInt16LE(6), 0);
    assert.equal(body.readUInt32LE(8), received.length);
    assert.equal(body.toString('latin1', MIGRATE_FIXED_BYTES, MIGRATE_FIXED_BYTES + a), '198.18.3.2:7070');
    const [frame] = new FrameReader('request').push(f);
    assert.deepEqual(decodeMigrateBody((frame as { body: Buffer }).body), {
      agent: '198.18.3.2:7070',
      appProtocol: 'http/1.1',
      received,
      timeoutMs: 900,
    });
    // Only the agent: no protocol, no bytes, the daemon's timeout.
    const bare = encodeMigrate({ id: 8, agent: '[2001:db8::2]:7070' });
    assert.equal(bare.subarray(HEADER_BYTES).readUInt32LE(0), NO_TIMEOUT);
    assert.deepEqual(decodeMigrateBody(bare.subarray(HEADER_BYTES)), { agent: '[2001:db8::2]:7070' });
    // The largest one is the largest request body.
    const big = encodeMigrate({
      id: 9,
      agent: 'a'.repeat(MAX_AGENT_BYTES),
      appProtocol: 'p'.repeat(MAX_APP_PROTOCOL_BYTES),
      received: Buffer.alloc(MAX_PREFIX_BYTES),
    });
    assert.equal(decodeHeader(big, 'request').bodyLength, MAX_REQUEST_BODY);
  });

  test('a malformed migrate frame is refused with its reason', () => {
    const f = encodeMigrate({ id: 1, agent: '198.18.3.2:7070', received: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
    const wrongFds = Buffer.from(f);
    wrongFds[12] = 2;
    assert.throws(() => decodeHeader(wrongFds, 'request'), reason('bad_fds'));
    const short = encodeHeader({ type: FRAME_TYPE.MIGRATE, id: 1, bodyLength: MIGRATE_FIXED_BYTES - 1, fds: 1 });
    assert.throws(() => decodeHeader(short, 'request'), reason('bad_length'));
    assert.throws(() => decodeHeader(f, 'reply'), reason('bad_type'));
    const body = f.subarray(HEADER_BYTES);
    const longer = Buffer.from(body);
    longer.writeUInt32LE(body.readUInt32LE(8) + 1, 8);
    assert.throws(() => decodeMigrateBody(longer), reason('bad_length'));
    const reserved = Buffer.from(body);
    reserved.writeUInt16LE(1, 6);
    assert.throws(() => decodeMigrateBody(reserved), reason('bad_reserved'));
    const noAgent = Buffer.alloc(MIGRATE_FIXED_BYTES);
    assert.throws(() => decodeMigrateBody(noAgent), reason('bad_field'));
    const control = Buffer.from(body);
    control[MIGRATE_FIXED_BYTES] = 0x0a; // a newline in the agent
    assert.throws(() => decodeMigrateBody(control), reason('bad_field'));
    assert.throws(() => decodeMigrateBody(Buffer.alloc(4)), reason('bad_length'));
  });

  test('the migrate encoder refuses what the decoder would', () => {
    assert.throws(() => encodeMigrate({ id: 1, agent: '' }), RangeError);
    assert.throws(() => encodeMigrate({ id: 1, agent: 'a'.repeat(MAX_AGENT_BYTES + 1) }), RangeError);
    assert.throws(() => encodeMigrate({ id: 1, agent: 'x:1', appProtocol: 'http 1.1' }), RangeError);
    assert.throws(
      () => encodeMigrate({ id: 1, agent: 'x:1', received: Buffer.alloc(MAX_PREFIX_BYTES + 1) }),
      RangeError,
    );
    assert.throws(() => encodeMigrate({ id: 1, agent: 'x:1', timeoutMs: -1 }), RangeError);
  });

  test('a leg port frame: the documented bytes, no descriptor, and back; its reply a reply type', () => {
    const f = encodeLegPort({ id: 11, local: '198.18.2.1', backend: '198.18.3.10:8080' });
    assert.equal(f.length, HEADER_BYTES + LEG_PORT_FIXED_BYTES + '198.18.2.1'.length + '198.18.3.10:8080'.length);
    assert.equal(f[3], FRAME_TYPE.LEG_PORT);
    assert.equal(f.readUInt32LE(4), 11);
    assert.equal(f[12], 0);
    const body = f.subarray(HEADER_BYTES);
    assert.equal(body[0], '198.18.2.1'.length);
    assert.equal(body[1], '198.18.3.10:8080'.length);
    assert.equal(body.readUInt16LE(2), 0);
    const [frame] = new FrameReader('request').push(f);
    assert.deepEqual(decodeLegPortBody((frame as { body: Buffer }).body), {
      local: '198.18.2.1',
      backend: '198.18.3.10:8080',
    });
    const six = encodeLegPort({ id: 12, local: '2001:db8:2::1', backend: '[2001:db8:3::10]:8080' });
    assert.deepEqual(decodeLegPortBody(six.subarray(HEADER_BYTES)), {
      local: '2001:db8:2::1',
      backend: '[2001:db8:3::10]:8080',
    });
    const r = encodeReply(FRAME_TYPE.LEG_PORT_CHOSEN, 11, { port: 61234 });
    const [reply] = new FrameReader('reply').push(r);
    assert.equal(reply?.type, FRAME_TYPE.LEG_PORT_CHOSEN);
    assert.deepEqual(decodeReplyBody((reply as { body: Buffer }).body), { port: 61234 });
    assert.throws(() => new FrameReader('request').push(r), reason('bad_type'));
  });

  test('a malformed leg port frame is refused with its reason; the encoder refuses what the decoder would', () => {
    const f = encodeLegPort({ id: 1, local: '198.18.2.1', backend: '198.18.3.10:8080' });
    const withFd = Buffer.from(f);
    withFd[12] = 1;
    assert.throws(() => decodeHeader(withFd, 'request'), reason('bad_fds'));
    const short = encodeHeader({ type: FRAME_TYPE.LEG_PORT, id: 1, bodyLength: LEG_PORT_FIXED_BYTES - 1, fds: 0 });
    assert.throws(() => decodeHeader(short, 'request'), reason('bad_length'));
    const body = f.subarray(HEADER_BYTES);
    const longer = Buffer.from(body);
    longer[1] = (body[1] as number) + 1;
    assert.throws(() => decodeLegPortBody(longer), reason('bad_length'));
    const reserved = Buffer.from(body);
    reserved.writeUInt16LE(1, 2);
    assert.throws(() => decodeLegPortBody(reserved), reason('bad_reserved'));
    assert.throws(() => decodeLegPortBody(Buffer.alloc(LEG_PORT_FIXED_BYTES)), reason('bad_field'));
    const control = Buffer.from(body);
    control[LEG_PORT_FIXED_BYTES] = 0x0a; // a newline in the local address
    assert.throws(() => decodeLegPortBody(control), reason('bad_field'));
    assert.throws(() => decodeLegPortBody(Buffer.alloc(2)), reason('bad_length'));
    assert.throws(() => encodeLegPort({ id: 1, local: '', backend: 'x:1' }), RangeError);
    assert.throws(
      () => encodeLegPort({ id: 1, local: '1.2.3.4', backend: 'a'.repeat(MAX_ENDPOINT_BYTES + 1) }),
      RangeError,
    );
    assert.throws(() => encodeLegPort({ id: 1, local: '1.2.3.4 ', backend: 'x:1' }), RangeError);
  });

  test('a MIGRATED reply is a reply type, with no descriptors', () => {
    const r = encodeReply(FRAME_TYPE.MIGRATED, 5, { id: '12', flowId: 3 });
    const [frame] = new FrameReader('reply').push(r);
    assert.equal(frame?.type, FRAME_TYPE.MIGRATED);
    assert.deepEqual(decodeReplyBody((frame as { body: Buffer }).body), { id: '12', flowId: 3 });
    assert.throws(() => new FrameReader('request').push(r), reason('bad_type'));
  });
});
