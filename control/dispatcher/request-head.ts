/**
 * The first request of a client connection: read until the end of the
 * header block, then the method, path and Host the router needs. Whatever
 * arrived with it (the start of a body, a pipelined request) stays in the
 * returned bytes: all of it goes to the back end.
 */
import type net from 'node:net';

export interface RequestHead {
  /** every byte read from the client so far */
  bytes: Buffer;
  method: string;
  /** path part of the request target (no query) */
  path: string;
  /** Host header (or absolute-form authority), lower-case, without port; '' when absent */
  host: string;
  /**
   * The client intends more requests on this connection: HTTP/1.1 unless it
   * sent `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
   */
  keepAlive: boolean;
}

export class HeadError extends Error {
  constructor(
    readonly status: 400 | 408 | 431,
    message: string,
  ) {
    super(message);
  }
}

const END = Buffer.from('\r\n\r\n');

/**
 * Resolves once the head is complete. Leaves the socket paused with no
 * 'data' listener of ours attached, so nothing more is consumed.
 */
export function readRequestHead(socket: net.Socket, maxBytes: number, timeoutMs: number): Promise<RequestHead> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (outcome: Error | RequestHead) => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      clearTimeout(timer);
      socket.pause();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const onData = (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const end = buf.indexOf(END);
      if (end < 0) {
        if (buf.length >= maxBytes) done(new HeadError(431, `request head larger than ${maxBytes} bytes`));
        return;
      }
      try {
        done(parseHead(buf, end));
      } catch (e) {
        done(e as Error);
      }
    };
    const onEnd = () => done(new HeadError(400, 'client closed before sending a complete request head'));
    const timer = setTimeout(
      () => done(new HeadError(408, `no complete request head within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

export function parseHead(bytes: Buffer, end: number): RequestHead {
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
  if (!m) throw new HeadError(400, `not an HTTP/1.x request line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  let target = m[2] ?? '';
  let host = '';
  const abs = /^https?:\/\/([^/?#]+)(.*)$/i.exec(target);
  if (abs) {
    host = abs[1] ?? '';
    target = abs[2] || '/';
  }
  if (!host) {
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0 && l.slice(0, c).trim().toLowerCase() === 'host') {
        host = l.slice(c + 1).trim();
        break;
      }
    }
  }
  const q = target.search(/[?#]/);
  return {
    bytes,
    method: m[1] ?? '',
    path: q < 0 ? target : target.slice(0, q),
    host: stripPort(host.toLowerCase()),
    keepAlive: keepAlive(m[3] === '1', lines.slice(1)),
  };
}

/** RFC 9112 §9.3: persistent by default in HTTP/1.1; the Connection header's tokens decide otherwise. */
function keepAlive(http11: boolean, headerLines: string[]): boolean {
  const tokens = headerLines
    .filter((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase() === 'connection')
    .flatMap((l) =>
      l
        .slice(l.indexOf(':') + 1)
        .split(',')
        .map((t) => t.trim().toLowerCase()),
    );
  if (tokens.includes('close')) return false;
  return http11 || tokens.includes('keep-alive');
}

function stripPort(h: string): string {
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const c = h.lastIndexOf(':');
  return c > 0 ? h.slice(0, c) : h;
}
