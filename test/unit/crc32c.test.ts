/**
 * CRC-32C against published vectors (the check value of the Castagnoli CRC
 * catalogue, RFC 3720 appendix B.4) and against a bit-at-a-time reference on
 * random data, in one piece and continued over arbitrary splits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32c } from '../../control/tcp/crc32c.js';

/** The definition, one bit at a time: nothing shared with the table-driven code. */
function reference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the published check value and RFC 3720 B.4 vectors', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
  });

  it('equals the bitwise definition on random data, whole and continued over a split', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (data, at) => {
        const whole = crc32c(data);
        assert.equal(whole, reference(data));
        const k = data.length === 0 ? 0 : at % (data.length + 1);
        assert.equal(crc32c(data.subarray(k), crc32c(data.subarray(0, k))), whole);
      }),
      { numRuns: 500 },
    );
  });

  it('reads a Uint8Array view at an unaligned offset like a copy', () => {
    const base = Buffer.from('xx123456789yy');
    assert.equal(crc32c(base.subarray(2, 11)), 0xe3069283);
  });
});
