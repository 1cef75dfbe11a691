/**
 * Framing state blobs on a persistent channel: blobs back to back, in chunks
 * split and coalesced anywhere; framing errors (bad magic, oversized declared
 * length, a lying header, a stream ending mid-blob) refused early and for
 * good; and a real TCP stream over loopback carrying a multi-megabyte blob.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HEADER } from '../../control/tcp/blob/format.js';
import {
  BlobError,
  BlobFramer,
  decodeStateBlob,
  encodeStateBlob,
  frameBlobs,
  MAX_BLOB_BYTES,
} from '../../control/tcp/blob/index.js';
import { bulkUsecV4, migrateV4, takeoverV6 } from '../lib/blob-fixtures.js';

const blobs = [encodeStateBlob(migrateV4()), encodeStateBlob(takeoverV6()), encodeStateBlob(migrateV4())];
const stream = Buffer.concat(blobs);

function refusal(fn: () => unknown): BlobError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BlobError, String(e));
    return e;
  }
  assert.fail('expected a BlobError');
}

describe('state blob framing', () => {
  it('yields each blob whole from chunks cut anywhere', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), stream.length];
        const framer = new BlobFramer();
        const out: Buffer[] = [];
        for (let i = 0; i + 1 < points.length; i++) out.push(...framer.push(stream.subarray(points[i], points[i + 1])));
        framer.end();
        assert.equal(out.length, blobs.length);
        for (const [i, b] of out.entries()) assert.ok(b.equals(blobs[i] as Buffer), `blob ${i}`);
        assert.equal(framer.pending, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('handles one byte at a time, and all blobs in one chunk', () => {
    const framer = new BlobFramer();
    const out: Buffer[] = [];
    for (const byte of stream) out.push(...framer.push(Buffer.from([byte])));
    assert.deepStrictEqual(out, blobs);
    assert.deepStrictEqual(new BlobFramer().push(stream), blobs);
    assert.deepStrictEqual(new BlobFramer().push(Buffer.alloc(0)), []);
  });

  it('refuses a declared length above the maximum as soon as the length is in, before buffering', () => {
    const head = Buffer.from(blobs[0]!.subarray(0, 12));
    head.writeUInt32BE(MAX_BLOB_BYTES + 1, HEADER.totalLength);
    const framer = new BlobFramer();
    assert.deepStrictEqual(framer.push(head.subarray(0, 11)), []);
    assert.equal(refusal(() => framer.push(head.subarray(11))).reason, 'oversized');
    // A channel may set a lower bound of its own.
    const small = new BlobFramer(100);
    assert.equal(refusal(() => small.push(blobs[0]!.subarray(0, 12))).reason, 'oversized');
  });

  it('refuses bad magic on the first wrong byte, and stays failed', () => {
    const framer = new BlobFramer();
    assert.equal(refusal(() => framer.push(Buffer.from('G'))).reason, 'bad_magic');
    assert.equal(refusal(() => framer.push(blobs[0]!)).reason, 'bad_magic');
    assert.equal(refusal(() => framer.end()).reason, 'bad_magic');
    // Out of step after a blob: the next header is checked too.
    const next = new BlobFramer();
    assert.equal(refusal(() => next.push(Buffer.concat([blobs[0]!, Buffer.from('junk')]))).reason, 'bad_magic');
  });

  it('refuses a header whose lengths cannot frame a blob', () => {
    const h = Buffer.from(blobs[0]!.subarray(0, 16));
    h.writeUInt32BE(10, HEADER.totalLength);
    assert.equal(refusal(() => new BlobFramer().push(h)).reason, 'bad_header');
    const h2 = Buffer.from(blobs[0]!.subarray(0, 8));
    h2.writeUInt16BE(4, HEADER.headerLength);
    assert.equal(refusal(() => new BlobFramer().push(h2)).reason, 'bad_header');
  });

  it('a stream that ends inside a blob is truncated', () => {
    const framer = new BlobFramer();
    assert.deepStrictEqual(framer.push(stream.subarray(0, blobs[0]!.length + 5)), [blobs[0]]);
    assert.equal(framer.pending, 5);
    assert.equal(refusal(() => framer.end()).reason, 'truncated');
  });

  it('frames a corrupt blob without decoding it, so the channel can refuse that one and go on', () => {
    const bad = Buffer.from(blobs[1]!);
    bad[40] = (bad[40] as number) ^ 0xff;
    const out = new BlobFramer().push(Buffer.concat([blobs[0]!, bad, blobs[2]!]));
    assert.equal(out.length, 3);
    assert.equal(refusal(() => decodeStateBlob(out[1]!)).reason, 'checksum');
    assert.deepStrictEqual(decodeStateBlob(out[2]!), migrateV4());
  });

  it('frameBlobs reads blobs off a real TCP stream over loopback, a 4 MiB one among them', async () => {
    const big = encodeStateBlob(bulkUsecV4());
    const sent = [blobs[0]!, big, blobs[1]!];
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const accepted = once(server, 'connection') as Promise<[Socket]>;
      const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
      await once(client, 'connect');
      const [peer] = await accepted;
      client.end(Buffer.concat(sent));
      const got: Buffer[] = [];
      for await (const b of frameBlobs(peer)) got.push(b);
      assert.equal(got.length, 3);
      for (const [i, b] of got.entries()) assert.ok(b.equals(sent[i] as Buffer), `blob ${i}`);
      assert.deepStrictEqual(decodeStateBlob(got[1]!), bulkUsecV4());
    } finally {
      server.close();
    }
  });

  it('frameBlobs throws truncated when the peer closes mid-blob', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      yield blobs[0]!;
      yield blobs[1]!.subarray(0, 20);
    }
    const got: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const b of frameBlobs(chunks())) got.push(b);
      })(),
      (e: unknown) => e instanceof BlobError && e.reason === 'truncated',
    );
    assert.equal(got.length, 1);
  });
});
