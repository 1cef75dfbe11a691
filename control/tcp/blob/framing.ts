/**
 * Framing for a persistent channel that carries blobs back to back (an LB's
 * TLS connection to an agent, an agent-to-agent stream): bytes in, complete
 * blobs out, using only the fixed header's total length. The framer does not
 * decode; the caller decodes each blob and can refuse one blob while the
 * channel stays usable. A framing error (bad magic, a header that lies, a
 * declared length above the maximum) means the stream is out of step: the
 * framer stays failed and the caller must close the channel.
 */
import { peekBlobHeader } from './decode.js';
import { BlobError } from './errors.js';
import { HEADER_BYTES, MAX_BLOB_BYTES } from './format.js';

export class BlobFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: BlobError | undefined;

  /** `maxBytes`: the largest blob accepted; a larger declared length is refused from its header alone. */
  constructor(readonly maxBytes = MAX_BLOB_BYTES) {}

  /** Bytes held for a blob not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  /**
   * Adds bytes from the stream and returns the blobs they complete, in order
   * (possibly none). Returned Buffers may share memory with the chunks
   * pushed. Throws BlobError on a framing error, and again on every later call.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.buffered += chunk.length;
    }
    const out: Buffer[] = [];
    try {
      for (;;) {
        const total = this.nextLength();
        if (total === undefined || this.buffered < total) break;
        out.push(this.take(total));
      }
    } catch (e) {
      if (e instanceof BlobError) {
        this.failed = e;
        this.chunks = [];
        this.buffered = 0;
      }
      throw e;
    }
    return out;
  }

  /** The stream ended: throws 'truncated' if part of a blob is still held. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered > 0) {
      const held = this.buffered;
      this.chunks = [];
      this.buffered = 0;
      throw new BlobError(
        'truncated',
        `the channel closed in the middle of a state blob (${held} bytes received); the sender must resend it on a new connection`,
      );
    }
  }

  /** The total length of the blob at the head of the buffer, once its header is in; checks what is there. */
  private nextLength(): number | undefined {
    if (this.buffered === 0) return undefined;
    const head = this.peek(HEADER_BYTES);
    return peekBlobHeader(head, this.maxBytes)?.totalLength;
  }

  /** Up to n leading bytes, copying only when the first chunk is shorter. */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n || this.chunks.length === 1) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.buffered));
  }

  /** Removes exactly n leading bytes (n <= buffered) and returns them as one Buffer. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    let blob: Buffer;
    if (first.length >= n) {
      blob = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      blob = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0] as Buffer;
        const k = Math.min(c.length, n - off);
        c.copy(blob, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return blob;
  }
}

/**
 * Yields each complete blob of a byte stream (a net.Socket, a TLSSocket, any
 * async iterable of chunks). Throws BlobError on a framing error or when the
 * stream ends inside a blob.
 */
export async function* frameBlobs(
  source: AsyncIterable<Uint8Array>,
  maxBytes = MAX_BLOB_BYTES,
): AsyncGenerator<Buffer> {
  const framer = new BlobFramer(maxBytes);
  for await (const chunk of source) yield* framer.push(chunk);
  framer.end();
}
