/**
 * How the dispatcher asks baton to splice or migrate: over the daemon's
 * local handoff channel (control/sdk/handoff-channel.ts: descriptors passed
 * with SCM_RIGHTS, binary frames; the default) when the daemon offers it,
 * and over REST (POST /v1/splices, POST /v1/migrations) otherwise. The channel is opened at start
 * and again after it breaks; while it cannot be opened (an older daemon, a
 * daemon started with --handoff-socket off, a TCP API on another host)
 * requests go over REST, and the channel is tried again every
 * CHANNEL_RETRY_MS. A request that failed on the channel is never repeated
 * over REST: its outcome is the daemon's answer, as on REST.
 */
import type net from 'node:net';
import { type BatonClient, resolveEndpoint } from '../sdk/client.js';
import { BatonApiError } from '../sdk/errors.js';
import { HandoffChannel, handoffSocketFor } from '../sdk/handoff-channel.js';
import { type MigrateOptions, migrate, splice } from '../sdk/splice.js';
import type { Migration, Splice } from '../sdk/types.js';
import type { DispatcherConfig, HandoffPath } from './config.js';

/** How often an unavailable channel is tried again (ms). */
export const CHANNEL_RETRY_MS = 1000;

/**
 * How long leased leg ports are kept for later connections (ms). A lease
 * reserves nothing (the kernel refuses a port a socket holds, and a stale
 * one is leased again), so they are used soon or dropped: the daemon's
 * cursor comes round the range again after a few thousand leases.
 */
export const LEG_PORT_KEEP_MS = 250;

export interface SpliceVia {
  splice: Splice;
  via: HandoffPath;
}

export interface MigrationVia {
  migration: Migration;
  via: HandoffPath;
}

export interface SpliceAsk {
  prefix: Buffer;
  quiesceTimeoutMs?: number;
}

/** The channel's socket for a configuration: handoffSocket, else beside the API's unix socket; undefined for a TCP API. */
export function channelPathOf(cfg: Pick<DispatcherConfig, 'api' | 'handoffSocket'>): string | undefined {
  if (cfg.handoffSocket) return cfg.handoffSocket;
  const ep = resolveEndpoint({ ...cfg.api });
  return ep.socketPath !== undefined ? handoffSocketFor(ep.socketPath) : undefined;
}

export class BatonPath {
  private channel: HandoffChannel | undefined;
  private opening: Promise<HandoffChannel | undefined> | undefined;
  private lastFailure = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(
    private readonly api: BatonClient,
    /** undefined: REST only */
    private readonly channelPath: string | undefined,
  ) {
    if (channelPath) void this.ready();
  }

  async splice(client: net.Socket, backend: net.Socket, ask: SpliceAsk): Promise<SpliceVia> {
    const opts = {
      prefix: ask.prefix,
      ...(ask.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: ask.quiesceTimeoutMs } : {}),
    };
    const channel = await this.ready();
    if (channel) return { splice: await channel.splice(client, backend, opts), via: 'channel' };
    return { splice: await splice(client, backend, { ...opts, client: this.api }), via: 'rest' };
  }

  async migrate(client: net.Socket, ask: Omit<MigrateOptions, 'client' | 'channel'>): Promise<MigrationVia> {
    const channel = await this.ready();
    if (channel) return { migration: await channel.migrate(client, ask), via: 'channel' };
    return { migration: await migrate(client, { ...ask, client: this.api }), via: 'rest' };
  }

  /**
   * A port of the daemon's leg range for a new back-end connection from
   * `local` to `backend` ("ip:port"), so that its leg holds no socket in
   * the daemon once spliced; undefined when there is none to be had (REST
   * only, or a daemon without a leg range: the kernel chooses, as before).
   * Over the channel only: a REST front end's legs keep their socket. The
   * daemon leases several at once; the rest serve the next connections for
   * LEG_PORT_KEEP_MS.
   */
  async legPort(local: string, backend: string): Promise<number | undefined> {
    const channel = await this.ready();
    if (!channel || this.noLegPorts === channel) return undefined;
    const key = `${local}|${backend}`;
    for (;;) {
      const kept = this.keptLegPorts.get(key);
      if (kept?.channel === channel && performance.now() - kept.at < LEG_PORT_KEEP_MS && kept.ports.length > 0)
        return kept.ports.shift();
      // One lease at a time per back end: the connections waiting for it share its ports.
      let leasing = this.leasing.get(key);
      if (!leasing) {
        leasing = this.lease(channel, key, local, backend);
        this.leasing.set(key, leasing);
      }
      if (!(await leasing)) return undefined;
    }
  }

  /** Leases ports into keptLegPorts; false when the daemon gave none (the kernel chooses then). */
  private lease(channel: HandoffChannel, key: string, local: string, backend: string): Promise<boolean> {
    return channel
      .legPorts(local, backend)
      .then(
        (ports) => {
          this.keptLegPorts.set(key, { channel, at: performance.now(), ports });
          return true;
        },
        (e: unknown) => {
          // This daemon has no range (--leg-ports off): ask again only on a new channel.
          if (e instanceof BatonApiError && e.code === 'CONFIG_INVALID') this.noLegPorts = channel;
          return false;
        },
      )
      .finally(() => this.leasing.delete(key));
  }

  /** The channel whose daemon said it has no leg range. */
  private noLegPorts: HandoffChannel | undefined;
  /** Leases under way, by "local|backend": true once their ports are kept. */
  private readonly leasing = new Map<string, Promise<boolean>>();
  /** Leased ports not used yet, by "local|backend". */
  private readonly keptLegPorts = new Map<string, { channel: HandoffChannel; at: number; ports: number[] }>();

  /** The open channel, one being opened, or undefined (REST) while it cannot be had. */
  private ready(): Promise<HandoffChannel | undefined> | HandoffChannel | undefined {
    if (!this.channelPath || this.closed) return undefined;
    if (this.channel?.usable) return this.channel;
    if (this.opening) return this.opening;
    if (performance.now() - this.lastFailure < CHANNEL_RETRY_MS) return undefined;
    const path = this.channelPath;
    this.opening = HandoffChannel.open(path).then(
      (c) => {
        this.opening = undefined;
        if (this.closed) {
          c.close();
          return undefined;
        }
        this.channel = c;
        return c;
      },
      () => {
        this.opening = undefined;
        this.lastFailure = performance.now();
        return undefined;
      },
    );
    return this.opening;
  }

  close(): void {
    this.closed = true;
    this.channel?.close();
  }
}
