/**
 * Back-end pools with pre-connected idle connections, so a client's first
 * request does not wait for a TCP handshake to a back end: the connection
 * is spliced the moment it is taken. Back ends are chosen round-robin; each
 * keeps `idle` connections open and refills after every take. An idle
 * connection the back end closes, or that receives bytes nobody asked for,
 * is dropped (it could not be spliced byte-exactly).
 *
 * Pools are per back end and per leg profile (issue 13, profile.ts): the
 * LB's defaults (`idle` connections), and one set per client profile that
 * needs other options (PROFILE_IDLE connections each, made the first time
 * a client of that profile comes, for at most MAX_PROFILES profiles per back
 * end; beyond that a profile's legs are connected on demand). Every take
 * counts a hit (idle connection ready) or a miss (connected on the request
 * path) under its profile key.
 */
import net from 'node:net';
import { socketFd } from '../sys/peercred.js';
import { connectTcp, forgetSourceAddress, sourceAddressFor } from '../tcp/connect.js';
import { SocketError } from '../tcp/errors.js';
import { SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT } from '../tcp/kernel.js';
import { getOpt } from '../tcp/socket.js';
import { formatHostPort, type HostPort, type PoolConfig, parseHostPort } from './config.js';
import { type ClientProfile, type LegOptions, legKey, legOptions } from './profile.js';

/** Idle connections kept per back end for each non-default profile seen. */
export const PROFILE_IDLE = 1;
/** Profiles per back end that get idle connections; rarer ones connect on demand. */
export const MAX_PROFILES = 8;

/** Idle connections of one leg profile to one back end. */
interface Lane {
  key: string;
  leg: LegOptions;
  idle: net.Socket[];
  connecting: number;
  target: number;
}

interface Backend {
  addr: HostPort;
  name: string;
  /** by legKey; '' is the LB's defaults */
  lanes: Map<string, Lane>;
  /** tcpi_advmss of a default connection: the MSS the LB advertises to this back end */
  advMss?: number;
  /** consecutive connect failures, for a bounded back-off */
  failures: number;
}

/** Hits and misses of one profile key. */
export interface LaneStats {
  hits: number;
  misses: number;
}

export interface Taken {
  socket: net.Socket;
  backend: string;
  /** true when it came from the idle set (no handshake on the request path) */
  pooled: boolean;
  /** the leg profile's pool key ('' for the LB's defaults) */
  profile: string;
}

/** Where leg ports come from: a port for a connection from `local` to `backend` ("ip:port"), or undefined (the kernel chooses). */
export type LegPortSource = (local: string, backend: string) => Promise<number | undefined>;

/** Leases tried for one connection before it takes a kernel-chosen port. */
const LEG_PORT_LEASES = 4;

/** A bind or connect refused because the tuple is held (a live socket, a TIME_WAIT): lease another port. */
function portTaken(e: unknown): boolean {
  const code = e instanceof SocketError ? e.code : (e as { cause?: { code?: unknown } }).cause?.code;
  return code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL';
}

/** A connected descriptor made by hand, as a Node socket. */
function adopt(fd: number): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: true });
  s.setNoDelay(true);
  s.on('error', () => {}); // later errors surface as 'close' to whoever holds it
  return s;
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
    /** Ports of baton's leg range for new connections (BatonPath.legPort); none: the kernel chooses. */
    private readonly legPorts?: LegPortSource,
  ) {
    this.backends = cfg.backends.map((b, i) => {
      const addr = parseHostPort(b, `pools.${name}.backends[${i}]`);
      const lanes = new Map<string, Lane>([
        ['', { key: '', leg: {}, idle: [], connecting: 0, target: idlePerBackend }],
      ]);
      return { addr, name: formatHostPort(addr), lanes, failures: 0 };
    });
    for (const b of this.backends) this.refill(b, this.lane(b, ''));
  }

  /** hits and misses per profile key, over all back ends */
  readonly laneStats = new Map<string, LaneStats>();
  /**
   * Set when SO_MARK was refused (EPERM: the dispatcher runs without
   * CAP_NET_ADMIN or CAP_NET_RAW): from then on every leg has the LB's
   * defaults, and clients whose options differ are relayed, with baton's
   * refusal saying why.
   */
  profileLegsDenied: string | undefined;

  /** Idle connections ready now with the LB's defaults, per back end. */
  idleCounts(): Record<string, number> {
    return Object.fromEntries(this.backends.map((b) => [b.name, this.lane(b, '').idle.length]));
  }

  private lane(b: Backend, key: string): Lane {
    return b.lanes.get(key) as Lane;
  }

  /** Resolves once every back end has its idle connections (or `timeoutMs` passed). */
  async warm(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.backends.every((b) => this.lane(b, '').idle.length >= this.idlePerBackend)) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  /**
   * A connected socket to the next back end whose options match `profile`
   * (the LB's defaults without one), with nothing of the pool's attached and
   * reads not consumed by anyone: hand it to splice() (or a relay) at once.
   */
  async take(profile?: ClientProfile, at?: string): Promise<Taken> {
    // The config guarantees at least one back end per pool.
    const b = this.backends.find((x) => x.name === at) ?? this.nextBackend();
    const leg = profile && !this.profileLegsDenied ? legOptions(profile, b.advMss) : {};
    const key = legKey(leg);
    let lane = b.lanes.get(key);
    if (!lane && b.lanes.size <= MAX_PROFILES) {
      lane = { key, leg, idle: [], connecting: 0, target: PROFILE_IDLE };
      b.lanes.set(key, lane);
    }
    const st = this.laneStats.get(key) ?? { hits: 0, misses: 0 };
    this.laneStats.set(key, st);
    const s = lane?.idle.shift();
    if (lane) this.refill(b, lane);
    if (s) {
      st.hits++;
      const drop = this.idleWatch.get(s);
      if (drop) {
        s.off('data', drop);
        s.off('end', drop);
        s.off('close', drop);
      }
      s.pause();
      return { socket: s, backend: b.name, pooled: true, profile: key };
    }
    st.misses++;
    return { socket: await this.connect(b, leg), backend: b.name, pooled: false, profile: key };
  }

  /** The next back end in turn (round robin), for callers that choose before they take (migrate pools). */
  pick(): { name: string; host: string } {
    const b = this.nextBackend();
    return { name: b.name, host: b.addr.host };
  }

  private nextBackend(): Backend {
    return this.backends[this.next++ % this.backends.length] as Backend;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const b of this.backends) for (const l of b.lanes.values()) for (const s of l.idle.splice(0)) s.destroy();
  }

  private connect(b: Backend, leg: LegOptions): Promise<net.Socket> {
    const p = leg.mark !== undefined ? this.connectWith(b, leg.mark) : this.connectDefault(b);
    return p.then(
      (s) => {
        b.failures = 0;
        if (b.advMss === undefined && leg.mark === undefined) b.advMss = advMssOf(s);
        return s;
      },
      (e: unknown) => {
        // A refused mark says nothing about the back end: no back-off for it.
        if (!(e instanceof MarkDenied)) b.failures++;
        throw e;
      },
    );
  }

  private async connectDefault(b: Backend): Promise<net.Socket> {
    // libuv binds with SO_REUSEADDR, and the handshake is event-driven.
    const leased = await this.onLegPort(b, (localAddress, localPort) =>
      this.connectByNode(b, { localAddress, localPort }),
    );
    return leased ?? this.connectByNode(b);
  }

  /**
   * `connect(local, port)` on a port of baton's leg range (its leg then
   * holds no socket in the daemon once spliced), or undefined when no port
   * is to be had (no lease source, a back end named by host name, a daemon
   * without a range): the caller connects on a kernel-chosen port. A port
   * that a live socket or a TIME_WAIT holds toward this back end
   * (EADDRINUSE, EADDRNOTAVAIL) is leased again, up to LEG_PORT_LEASES times.
   */
  private async onLegPort<T>(b: Backend, connect: (local: string, port: number) => Promise<T>): Promise<T | undefined> {
    if (!this.legPorts || !net.isIP(b.addr.host)) return undefined;
    const remote = { ip: b.addr.host, port: b.addr.port };
    const local = sourceAddressFor(remote, net.isIPv6(b.addr.host) ? 6 : 4);
    for (let i = 0; i < LEG_PORT_LEASES; i++) {
      const port = await this.legPorts(local, b.name);
      if (port === undefined) return undefined;
      try {
        return await connect(local, port);
      } catch (e) {
        if (!portTaken(e)) throw e;
        forgetSourceAddress(remote); // EADDRNOTAVAIL may mean the address is gone: look it up again
      }
    }
    return undefined;
  }

  private connectByNode(b: Backend, bind: { localAddress?: string; localPort?: number } = {}): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: b.addr.host, port: b.addr.port, noDelay: true, ...bind });
      const timer = setTimeout(
        () => s.destroy(new Error(`connect to ${b.name} timed out after ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.on('error', () => {}); // later errors surface as 'close' to whoever holds it
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`back end ${b.name}: ${(e as Error).message}`, { cause: e }));
      });
    });
  }

  /**
   * A leg with a client's options (profile.ts): the socket is made by hand
   * so SO_MARK is set before its SYN, then handed to Node.
   * SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW): without it the connect
   * fails with EPERM and the caller relays that client.
   */
  private async connectWith(b: Backend, mark: number): Promise<net.Socket> {
    const family = net.isIPv6(b.addr.host) ? 6 : 4;
    const remote = { ip: b.addr.host, port: b.addr.port };
    const opts = { timeoutMs: CONNECT_TIMEOUT_MS, mark };
    let fd: number;
    try {
      fd =
        (await this.onLegPort(b, (_local, port) => connectTcp(remote, family, { ...opts, localPort: () => port }))) ??
        (await connectTcp(remote, family, opts));
    } catch (e) {
      if (e instanceof SocketError && e.code === 'EPERM') {
        this.profileLegsDenied = `SO_MARK refused (${e.message}): the dispatcher needs CAP_NET_ADMIN or CAP_NET_RAW to open back-end legs with a client's TCP options`;
        throw new MarkDenied(this.profileLegsDenied);
      }
      throw new Error(`back end ${b.name} (leg ${legKey({ mark })}): ${(e as Error).message}`);
    }
    return adopt(fd);
  }

  private refill(b: Backend, lane: Lane): void {
    if (this.closed || (lane.key && this.profileLegsDenied)) return;
    while (lane.idle.length + lane.connecting < lane.target) {
      lane.connecting++;
      const delay = b.failures ? Math.min(MAX_BACKOFF_MS, 50 * 2 ** b.failures) : 0;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.connect(b, lane.leg).then(
          (s) => {
            lane.connecting--;
            if (this.closed) return void s.destroy();
            const drop = () => {
              const i = lane.idle.indexOf(s);
              if (i >= 0) lane.idle.splice(i, 1);
              s.destroy();
              this.refill(b, lane);
            };
            s.on('data', drop); // unsolicited bytes: this connection cannot be spliced byte-exactly
            s.on('end', drop);
            s.on('close', drop);
            this.idleWatch.set(s, drop);
            lane.idle.push(s);
          },
          () => {
            lane.connecting--;
            this.refill(b, lane);
          },
        );
      }, delay);
      this.timers.add(t);
    }
  }
}

/** SO_MARK was refused: the take is retried with the LB's defaults. */
export class MarkDenied extends Error {
  override readonly name = 'MarkDenied';
}

/** tcpi_advmss of a connected socket (undefined without a descriptor). */
function advMssOf(s: net.Socket): number | undefined {
  const fd = socketFd(s);
  if (fd === undefined) return undefined;
  return getOpt(fd, SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT.size, 'tcp_info').readUInt32LE(
    TCP_INFO_LAYOUT.fields.tcpi_advmss,
  );
}
