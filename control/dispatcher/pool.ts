/**
 * Back-end pools with pre-connected idle connections, so a client's first
 * request does not wait for a TCP handshake to a back end: the connection
 * is spliced the moment it is taken. Back ends are chosen round-robin; each
 * keeps `idle` connections open and refills after every take. An idle
 * connection the back end closes, or that receives bytes nobody asked for,
 * is dropped (it could not be spliced byte-exactly).
 */
import net from 'node:net';
import { formatHostPort, type HostPort, type PoolConfig, parseHostPort } from './config.js';

interface Backend {
  addr: HostPort;
  name: string;
  idle: net.Socket[];
  connecting: number;
  /** consecutive connect failures, for a bounded back-off */
  failures: number;
}

export interface Taken {
  socket: net.Socket;
  backend: string;
  /** true when it came from the idle set (no handshake on the request path) */
  pooled: boolean;
}

/** Longest pause between reconnect attempts to a failing back end (ms). */
const MAX_BACKOFF_MS = 2000;
const CONNECT_TIMEOUT_MS = 3000;

export class BackendPool {
  private readonly backends: Backend[];
  private next = 0;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** the listener that drops an idle socket, to detach when it is taken */
  private readonly idleWatch = new WeakMap<net.Socket, () => void>();

  constructor(
    readonly name: string,
    cfg: PoolConfig,
    private readonly idlePerBackend: number,
  ) {
    this.backends = cfg.backends.map((b, i) => {
      const addr = parseHostPort(b, `pools.${name}.backends[${i}]`);
      return { addr, name: formatHostPort(addr), idle: [], connecting: 0, failures: 0 };
    });
    for (const b of this.backends) this.refill(b);
  }

  /** Idle connections ready now, per back end. */
  idleCounts(): Record<string, number> {
    return Object.fromEntries(this.backends.map((b) => [b.name, b.idle.length]));
  }

  /** Resolves once every back end has its idle connections (or `timeoutMs` passed). */
  async warm(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.backends.every((b) => b.idle.length >= this.idlePerBackend)) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  /**
   * A connected socket to the next back end, with nothing of the pool's
   * attached and reads not consumed by anyone: hand it to splice() (or a
   * relay) at once.
   */
  async take(): Promise<Taken> {
    // The config guarantees at least one back end per pool.
    const b = this.backends[this.next++ % this.backends.length] as Backend;
    const s = b.idle.shift();
    this.refill(b);
    if (s) {
      const drop = this.idleWatch.get(s);
      if (drop) {
        s.off('data', drop);
        s.off('end', drop);
        s.off('close', drop);
      }
      s.pause();
      return { socket: s, backend: b.name, pooled: true };
    }
    return { socket: await this.connect(b), backend: b.name, pooled: false };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const b of this.backends) for (const s of b.idle.splice(0)) s.destroy();
  }

  private connect(b: Backend): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: b.addr.host, port: b.addr.port, noDelay: true });
      const timer = setTimeout(
        () => s.destroy(new Error(`connect to ${b.name} timed out after ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.on('error', () => {}); // later errors surface as 'close' to whoever holds it
        b.failures = 0;
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        b.failures++;
        reject(new Error(`back end ${b.name}: ${(e as Error).message}`));
      });
    });
  }

  private refill(b: Backend): void {
    if (this.closed) return;
    while (b.idle.length + b.connecting < this.idlePerBackend) {
      b.connecting++;
      const delay = b.failures ? Math.min(MAX_BACKOFF_MS, 50 * 2 ** b.failures) : 0;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.connect(b).then(
          (s) => {
            b.connecting--;
            if (this.closed) return void s.destroy();
            const drop = () => {
              const i = b.idle.indexOf(s);
              if (i >= 0) b.idle.splice(i, 1);
              s.destroy();
              this.refill(b);
            };
            s.on('data', drop); // unsolicited bytes: this connection cannot be spliced byte-exactly
            s.on('end', drop);
            s.on('close', drop);
            this.idleWatch.set(s, drop);
            b.idle.push(s);
          },
          () => {
            b.connecting--;
            this.refill(b);
          },
        );
      }, delay);
      this.timers.add(t);
    }
  }
}
