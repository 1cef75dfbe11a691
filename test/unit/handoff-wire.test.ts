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
  decodeSpliceBody,
  encodeHeader,
  encodeReply,
  encodeSplice,
  FRAME_TYPE,
  FrameReader,
  HANDOFF_MAGIC,
  HEADER_BYTES,
  MAX_REPLY_BODY,
  MAX_REQUEST_BODY,
  NO_QUIESCE_TIMEOUT,
  SPLICE_FDS,
  SPLICE_FIXED_BYTES,
  WireError,
} from '../../control/handoff/wire.js';
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
    assert.equal(f.readUInt32LE(16), NO_QUIESCE_TIMEOUT);
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
    assert.equal(decodeHeader(big, 'request').bodyLength, MAX_REQUEST_BODY);
  });
});
