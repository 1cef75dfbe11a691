/**
 * A content-aware HTTP dispatcher on baton: it accepts a client connection,
 * reads the first request head, picks a back-end pool by Host and path,
 * takes a pre-connected back-end connection from it and asks baton to splice
 * the two (control/sdk splice()). From then on the connection's bytes never
 * enter this process: the XDP datapath carries them. When baton refuses, the
 * dispatcher relays the connection in userspace instead, losing nothing.
 *
 * Every decision is reported as an event (main.ts prints them as JSON
 * lines), so a demo or a test can see which back end served which client.
 * Routing is per connection: later requests on a keep-alive connection go
 * to the back end its first request picked.
 */
import net from 'node:net';
import { type BatonClient, createClient } from '../sdk/client.js';
import { BatonApiError } from '../sdk/errors.js';
import { BatonPath, channelPathOf } from './baton-path.js';
import {
  DEFAULT_AGENT_PORT,
  DEFAULT_HANDOFF_PATH,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_PER_BACKEND,
  DEFAULT_MAX_HEADER_BYTES,
  type DispatcherConfig,
  formatHostPort,
  parseHostPort,
} from './config.js';
import type { DispatchEvent, DispatcherStats } from './events.js';
import { BackendPool, MarkDenied, type Taken } from './pool.js';
import { type ClientProfile, describeProfile, readProfile } from './profile.js';
import { HeadError, type RequestHead, readRequestHead } from './request-head.js';
import { pickRoute } from './router.js';

export type { DispatchEvent, DispatcherStats };

export interface Dispatcher {
  listen(): Promise<string[]>;
  close(): Promise<void>;
  stats(): DispatcherStats;
  /** resolves when every pool has its idle connections (false on timeout) */
  warm(timeoutMs?: number): Promise<boolean>;
}

export interface DispatcherDeps {
  onEvent?: (e: DispatchEvent) => void;
  /** API client (default: from config.api, then BATON_API / BATON_TOKEN) */
  client?: BatonClient;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
};

const SPLICE_DISABLED = { code: 'SPLICE_DISABLED', detail: 'splice: false in the configuration' } as const;

/** What a relayed event says of the splice or migration baton refused (or the SDK could not ask for). */
function whyNot(e: unknown): { code: string; reason?: string; detail: string } {
  const err = e instanceof BatonApiError ? e : undefined;
  return {
    code: err?.code ?? 'SDK_ERROR',
    ...(err?.reason ? { reason: err.reason } : {}),
    detail: err?.detail || (e as Error).message,
  };
}

export function createDispatcher(cfg: DispatcherConfig, deps: DispatcherDeps = {}): Dispatcher {
  const emit = deps.onEvent ?? (() => {});
  const api = deps.client ?? createClient({ ...cfg.api });
  const batonPath = new BatonPath(
    api,
    (cfg.handoff ?? DEFAULT_HANDOFF_PATH) === 'channel' ? channelPathOf(cfg) : undefined,
  );
  const pools = new Map(
    Object.entries(cfg.pools).map(([name, p]) => [
      name,
      // Migrate pools connect to a back end only to relay a connection whose migration failed.
      p.mode === 'migrate' || cfg.legPorts === false
        ? new BackendPool(name, p, p.idle ?? (p.mode === 'migrate' ? 0 : DEFAULT_IDLE_PER_BACKEND))
        : // Spliced legs on ports of baton's leg range hold no socket in the daemon.
          new BackendPool(name, p, p.idle ?? DEFAULT_IDLE_PER_BACKEND, (local, backend) =>
            batonPath.legPort(local, backend),
          ),
    ]),
  );
  const listens = (Array.isArray(cfg.listen) ? cfg.listen : [cfg.listen]).map((l, i) =>
    parseHostPort(l, `listen[${i}]`),
  );
  const maxHeader = cfg.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const headerTimeout = cfg.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const stats: DispatcherStats = {
    accepted: 0,
    spliced: 0,
    migrated: 0,
    relayed: 0,
    rejected: 0,
    byBackend: {},
    relayedFraction: 0,
    byProfile: {},
  };
  const outcome: Record<string, { spliced: number; relayed: number }> = {};
  const count = (profile: string, what: 'spliced' | 'relayed') => {
    const o = outcome[profile] ?? { spliced: 0, relayed: 0 };
    outcome[profile] = o;
    o[what]++;
    stats[what]++;
  };
  const served = (backend: string) => {
    stats.byBackend[backend] = (stats.byBackend[backend] ?? 0) + 1;
  };
  const servers: net.Server[] = [];
  const open = new Set<net.Socket>();
  let seq = 0;

  async function handle(client: net.Socket): Promise<void> {
    const conn = ++seq;
    stats.accepted++;
    const peer = formatHostPort({ host: client.remoteAddress ?? '?', port: client.remotePort ?? 0 });
    client.on('error', () => {});
    let head: RequestHead;
    try {
      head = await readRequestHead(client, maxHeader, headerTimeout);
    } catch (e) {
      return reject(conn, peer, client, e instanceof HeadError ? e.status : 400, (e as Error).message);
    }
    const route = pickRoute(cfg.routes, head.host, head.path);
    if (!route)
      return reject(
        conn,
        peer,
        client,
        404,
        `no route for host ${JSON.stringify(head.host)} path ${JSON.stringify(head.path)}`,
      );
    // The config is validated so that every route names a pool.
    const pool = pools.get(route.pool) as BackendPool;
    const poolCfg = cfg.pools[route.pool];
    if (poolCfg?.mode === 'migrate')
      return migrateOrRelay(conn, peer, client, head, pool, poolCfg.agentPort ?? DEFAULT_AGENT_PORT);
    // The back-end leg is opened with the client's option profile, so the
    // two legs agree and baton can splice them (profile.ts).
    let profile: ClientProfile | undefined;
    try {
      profile = readProfile(client);
    } catch {
      profile = undefined; // the client is gone already; the splice or relay below finds out
    }
    let up: Taken;
    try {
      try {
        up = await pool.take(cfg.profileLegs === false ? undefined : profile);
      } catch (e) {
        // Without the privilege to mark sockets: a default leg, relayed if baton refuses it.
        if (!(e instanceof MarkDenied)) throw e;
        up = await pool.take();
      }
    } catch (e) {
      return reject(conn, peer, client, 502, (e as Error).message);
    }
    const where = {
      conn,
      client: peer,
      host: head.host,
      path: head.path,
      pool: pool.name,
      backend: up.backend,
      profile: up.profile,
    };
    if (cfg.splice === 'keep-alive' && !head.keepAlive) {
      emit({
        event: 'relayed',
        ...where,
        code: 'ONE_SHOT_REQUEST',
        detail: 'the client asked to close after this request (splice: "keep-alive" in the configuration)',
      });
    } else if (cfg.splice !== false) {
      const t0 = performance.now();
      try {
        const { splice: s, via } = await batonPath.splice(client, up.socket, {
          prefix: head.bytes,
          ...(cfg.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: cfg.quiesceTimeoutMs } : {}),
        });
        count(up.profile, 'spliced');
        served(up.backend);
        emit({
          event: 'spliced',
          ...where,
          pooled: up.pooled,
          id: s.id,
          via,
          ms: +(performance.now() - t0).toFixed(3),
          ...(typeof s.durationUs === 'number' ? { daemonUs: s.durationUs } : {}),
        });
        return;
      } catch (e) {
        // splice() gives both sockets back untouched on every error, so relaying is always safe.
        emit({
          event: 'relayed',
          ...where,
          ...(profile ? { clientProfile: describeProfile(profile) } : {}),
          ...whyNot(e),
        });
      }
    } else {
      emit({ event: 'relayed', ...where, ...SPLICE_DISABLED });
    }
    if (up.socket.destroyed || !up.socket.writable) {
      // The back end closed the connection meanwhile (e.g. the reason baton refused): a fresh one.
      try {
        up = await pool.take();
      } catch (e) {
        return reject(conn, peer, client, 502, (e as Error).message);
      }
    }
    relay(conn, peer, client, up, where.profile, head.bytes);
  }

  /**
   * Migrate pools: baton moves the client connection to the next back end's
   * agent, whose app reads the first request from the socket and answers
   * the client directly. When baton cannot (agent down or refusing, the
   * socket not capturable), the connection is still ours, untouched: it is
   * relayed to the same back end's app.
   */
  async function migrateOrRelay(
    conn: number,
    peer: string,
    client: net.Socket,
    head: RequestHead,
    pool: BackendPool,
    agentPort: number,
  ): Promise<void> {
    const b = pool.pick();
    const agent = formatHostPort({ host: b.host, port: agentPort });
    const where = { conn, client: peer, host: head.host, path: head.path, pool: pool.name, backend: b.name };
    if (cfg.splice !== false) {
      const t0 = performance.now();
      try {
        const { migration: m, via } = await batonPath.migrate(client, {
          agent,
          received: head.bytes,
          appProtocol: 'http/1.1',
        });
        stats.migrated++;
        served(b.name);
        emit({
          event: 'migrated',
          ...where,
          agent,
          id: m.id,
          flowId: m.flowId,
          via,
          ms: +(performance.now() - t0).toFixed(3),
          phasesUs: m.phasesUs,
        });
        return;
      } catch (e) {
        // migrate() gives the socket back untouched on every error, so relaying is always safe.
        emit({ event: 'relayed', ...where, profile: '', ...whyNot(e) });
      }
    } else {
      emit({ event: 'relayed', ...where, profile: '', ...SPLICE_DISABLED });
    }
    let up: Taken;
    try {
      up = await pool.take(undefined, b.name);
    } catch (e) {
      return reject(conn, peer, client, 502, (e as Error).message);
    }
    relay(conn, peer, client, up, '', head.bytes);
  }

  function reject(conn: number, peer: string, client: net.Socket, status: number, why: string): void {
    stats.rejected++;
    emit({ event: 'rejected', conn, client: peer, status, why });
    const body = `${why}\n`;
    client.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  /** Userspace fallback: the request bytes read so far, then both directions piped until either side ends. */
  function relay(conn: number, peer: string, client: net.Socket, taken: Taken, profile: string, prefix: Buffer): void {
    count(profile, 'relayed');
    served(taken.backend);
    const up = taken.socket;
    const counts = { toBackend: prefix.length, toClient: 0 };
    open.add(client).add(up);
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    client.on('data', (d: Buffer) => (counts.toBackend += d.length));
    up.on('data', (d: Buffer) => (counts.toClient += d.length));
    let closed = 0;
    const onClose = () => {
      open.delete(client);
      open.delete(up);
      if (++closed === 2) emit({ event: 'closed', conn, client: peer, relayedBytes: counts });
    };
    client.once('close', onClose);
    up.once('close', onClose);
    up.write(prefix);
    client.pipe(up);
    up.pipe(client);
    client.resume();
    up.resume();
  }

  return {
    async listen() {
      const bound: string[] = [];
      for (const l of listens) {
        const server = net.createServer({ noDelay: true }, (c) => {
          handle(c).catch((e: unknown) => {
            emit({
              event: 'rejected',
              conn: -1,
              client: '?',
              status: 500,
              why: `dispatcher bug: ${(e as Error).message}`,
            });
            c.destroy();
          });
        });
        await new Promise<void>((resolve, rej) => {
          server.once('error', rej);
          server.listen(l.port, l.host, () => resolve());
        });
        servers.push(server);
        const a = server.address() as net.AddressInfo;
        bound.push(formatHostPort({ host: a.address, port: a.port }));
      }
      emit({
        event: 'ready',
        listen: bound,
        pools: Object.fromEntries([...pools].map(([n, p]) => [n, p.idleCounts()])),
      });
      return bound;
    },
    async close() {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      for (const p of pools.values()) p.close();
      for (const s of open) s.destroy();
      batonPath.close();
      if (!deps.client) api.close();
    },
    stats: () => {
      const out = structuredClone(stats);
      const done = out.spliced + out.migrated + out.relayed;
      out.relayedFraction = done ? out.relayed / done : 0;
      const row = (k: string) => {
        const r = out.byProfile[k] ?? { hits: 0, misses: 0, spliced: 0, relayed: 0 };
        out.byProfile[k] = r;
        return r;
      };
      for (const p of pools.values())
        for (const [k, l] of p.laneStats) {
          const o = row(k);
          o.hits += l.hits;
          o.misses += l.misses;
        }
      for (const [k, o] of Object.entries(outcome)) {
        const e = row(k);
        e.spliced += o.spliced;
        e.relayed += o.relayed;
      }
      return out;
    },
    async warm(timeoutMs = 5000) {
      const r = await Promise.all([...pools.values()].map((p) => p.warm(timeoutMs)));
      return r.every(Boolean);
    },
  };
}
