/**
 * The migrate service: what POST /v1/migrations calls on an LB (migrate
 * mode, design.md §4 "Migrate"). A front end that has read a client's first
 * request names the client socket ({pid, fd}), the agent of the back end
 * that will serve it, and the bytes it read; the service takes a duplicate
 * of the socket (pidfd_getfd, authorized like a splice) and migrates it
 * (control/migrate/migrate.ts): flow id and MIGRATED entry in BLOCK ->
 * capture -> blob -> the agent restores and confirms -> FORWARD -> the LB's
 * socket released in repair mode. The front end's own descriptor then
 * names a disconnected socket: closing it sends nothing.
 *
 * Before the agent confirms, every failure leaves the client's socket as it
 * was (out of repair mode, no entry, the flow id free): the front end still
 * holds the connection and relays it or answers it itself.
 *
 * Agents are named by the operator (`baton lb --agent ip:port`), never by
 * the caller alone: the LB proves its secret only to those, and the flow-id
 * entry sends the client's packets to the agent's IP (the back end's). One
 * persistent channel per agent carries every migration to it, reconnected
 * on the next request after it fails. Forwarded entries of connections
 * that ended are reclaimed periodically (FlowIdSwitch.reclaim).
 */
import { BatonError } from '../errors.js';
import { AgentChannel } from '../migrate/channel.js';
import type { FlowIdSwitch } from '../migrate/flow-switch.js';
import { type MigratePhases, migrateSocket } from '../migrate/migrate.js';
import { Authorizer, type Caller, isPrivileged } from './authorize.js';
import { checkedClientBytes, decodeClientBytes } from './client-bytes.js';
import { formatEndpoint, parseEndpoint } from './endpoint.js';
import { DEFAULT_MIGRATE_TIMEOUT_MS, MAX_MIGRATE_TIMEOUT_MS } from './limits.js';
import type { Operations } from './operations.js';
import {
  assertEstablishedTcp,
  identify,
  type ProcessGate,
  release,
  type TakenSocket,
  takeByDescriptor,
} from './sockets.js';

export interface MigrationRequest {
  client: { pid: number; fd: number };
  /** The agent's blob endpoint, "ip:port"; one of the LB's --agent addresses. */
  agent: string;
  /** Base64 of the client bytes the front end has read (the first request): they go back into the restored receive queue. */
  received?: string;
  /** The application protocol the agent's app is told (e.g. "http/1.1"). */
  appProtocol?: string;
  /** How long the agent may take to confirm (ms). */
  timeoutMs?: number;
}

/**
 * The local handoff channel's MIGRATE (control/handoff/server.ts): the
 * client socket passed by the front end (SCM_RIGHTS), already this
 * process's descriptor and the service's from the call on: migrated and
 * released, or closed on any failure (the front end keeps its own, usable).
 */
export interface MigrationByPassing {
  passed: number;
  agent: string;
  /** The client bytes themselves (the channel carries bytes, not base64). */
  receivedBytes?: Buffer;
  appProtocol?: string;
  timeoutMs?: number;
}

const isPassed = (r: MigrationRequest | MigrationByPassing): r is MigrationByPassing => 'passed' in r;

export interface MigrationJson {
  /** Decimal u64: the migration id the agent's app sees in its header. */
  id: string;
  client: string;
  vip: string;
  agent: string;
  /** Where the client's segments go from now on (the agent's IP). */
  backend: string;
  flowId: number;
  /** Received bytes the agent queued in the restored socket. */
  queuedBytes: number;
  /** Request received to the LB's socket released. */
  durationUs: number;
  /** Where that time went (control/migrate/migrate.ts MigratePhases), plus take (the socket from the front end, and the channel). */
  phasesUs: MigratePhases & { take: number };
}

/** How often forwarded entries of ended migrations are looked for (ms). */
const RECLAIM_EVERY_MS = 1000;

export interface MigrateServiceOptions {
  /** The LB's MIGRATED entries and flow ids; undefined: migrate mode is off (MIGRATE_DISABLED). */
  flowSwitch?: FlowIdSwitch;
  /** The operator's --agent addresses, canonical "ip:port". */
  agents: readonly string[];
  secret?: Buffer;
  /** Shared with the splice service: shutdown refuses and waits for both. */
  operations: Operations;
  authorizer?: Authorizer;
  /** Why new migrations are refused right now (a drain: DRAINING), checked before any descriptor is taken. */
  admission?: () => BatonError | undefined;
  /** Connects a channel (tests inject their own). */
  connect?: (agent: { ip: string; port: number }, secret: Buffer) => Promise<AgentChannel>;
}

export class MigrateService {
  private readonly agents: ReadonlySet<string>;
  private readonly channels = new Map<string, Promise<AgentChannel>>();
  private readonly authorizer: Authorizer;
  private readonly connect: NonNullable<MigrateServiceOptions['connect']>;
  /** Migration ids: unique across restarts of this LB (the agent's app sees them). */
  private nextId = BigInt(Date.now()) << 20n;
  private reclaimTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: MigrateServiceOptions) {
    this.agents = new Set(opts.agents);
    this.authorizer = opts.authorizer ?? new Authorizer();
    this.connect =
      opts.connect ?? ((a, secret) => AgentChannel.connect({ host: a.ip, port: a.port, secret, timeoutMs: 2000 }));
    if (opts.flowSwitch) {
      const sw = opts.flowSwitch;
      this.reclaimTimer = setInterval(() => sw.reclaim(), RECLAIM_EVERY_MS);
      this.reclaimTimer.unref();
    }
  }

  get enabled(): boolean {
    return this.opts.flowSwitch !== undefined && this.opts.secret !== undefined && this.agents.size > 0;
  }

  /** Confirmed migrations whose entries are not reclaimed yet (how many the LB still forwards); confirmed ones are counted by the metrics' handoffs. */
  get forwarded(): number {
    return this.opts.flowSwitch?.forwardedCount ?? 0;
  }

  async migrate(
    caller: Caller,
    req: MigrationRequest | MigrationByPassing,
    receivedAt = performance.now(),
  ): Promise<MigrationJson> {
    // A passed descriptor is ours already: identified now, so that every way out (a refusal before the work
    // starts too) closes it.
    const passed = isPassed(req) ? identify(req.passed) : undefined;
    let migrated = false;
    try {
      const m = await this.migrateTaken(caller, req, passed, receivedAt);
      migrated = true;
      return m;
    } finally {
      if (passed && !migrated) release(passed);
    }
  }

  private migrateTaken(
    caller: Caller,
    req: MigrationRequest | MigrationByPassing,
    passed: TakenSocket | undefined,
    receivedAt: number,
  ): Promise<MigrationJson> {
    return this.opts.operations.run('migrate', receivedAt, async () => {
      if (!this.enabled)
        throw new BatonError(
          'MIGRATE_DISABLED',
          'this LB was started without agents: give baton lb --agent <ip:port of each back end agent> and --agent-secret-file <their --peer-secret-file>, or splice instead (POST /v1/splices)',
          'no_agents',
        );
      const refused = this.opts.admission?.();
      if (refused) throw refused;
      const agent = parseEndpoint(req.agent, 'agent');
      const agentText = formatEndpoint(agent);
      if (!this.agents.has(agentText))
        throw new BatonError(
          'AGENT_UNKNOWN',
          `${agentText} is not one of this LB's agents (${[...this.agents].join(', ')}); add it with baton lb --agent ${agentText}`,
          'unknown_agent',
        );
      const received =
        (isPassed(req)
          ? checkedClientBytes(req.receivedBytes, 'received')
          : decodeClientBytes(req.received, 'received')) ?? Buffer.alloc(0);
      if (req.timeoutMs !== undefined && (req.timeoutMs < 1 || req.timeoutMs > MAX_MIGRATE_TIMEOUT_MS))
        throw new BatonError(
          'BAD_REQUEST',
          `timeoutMs must be 1-${MAX_MIGRATE_TIMEOUT_MS} ms, got ${req.timeoutMs}`,
          'bad_timeout',
        );
      const timeoutMs = req.timeoutMs ?? DEFAULT_MIGRATE_TIMEOUT_MS;
      const t0 = performance.now();
      const taken = passed ? this.checkPassed(caller, passed) : this.take(caller, req as MigrationRequest);
      let done = false;
      try {
        const channel = await this.channel(agentText, agent);
        const migrationId = this.nextId++;
        const take = Math.round((performance.now() - t0) * 1000);
        const r = await migrateSocket(taken.fd, {
          channel,
          receivedData: received,
          migrationId,
          ...(req.appProtocol ? { appProtocol: req.appProtocol } : {}),
          datapath: { switch: this.opts.flowSwitch as FlowIdSwitch, backend: agent.ip },
          timeoutMs,
        });
        if (!r.migrated) throw r.error;
        done = true; // migrateSocket released and closed our duplicate
        return {
          id: migrationId.toString(),
          client: formatEndpoint(r.state.remote),
          vip: formatEndpoint(r.state.local),
          agent: agentText,
          backend: agent.ip,
          flowId: r.flowId as number,
          queuedBytes: r.queuedBytes,
          durationUs: Math.round((performance.now() - receivedAt) * 1000),
          phasesUs: { take, ...r.phasesUs },
        };
      } finally {
        // A passed descriptor is released by migrate() (once); a taken duplicate here.
        if (!done && !passed) release(taken);
      }
    });
  }

  /** The front end's client socket, duplicated from its process (pidfd_getfd), authorized like a splice. */
  private take(caller: Caller, req: MigrationRequest): TakenSocket {
    const gate: ProcessGate | undefined = isPrivileged(caller)
      ? undefined
      : (pid) => this.authorizer.checkProcess(caller, pid);
    return takeByDescriptor(req.client.pid, req.client.fd, 'client', gate);
  }

  /** A passed socket: its sender may act on its own sockets (as for a passed splice), and it is a TCP connection. */
  private checkPassed(caller: Caller, passed: TakenSocket): TakenSocket {
    this.authorizer.checkPassedBy(caller);
    assertEstablishedTcp(passed.fd, 'client');
    return passed;
  }

  /**
   * Connects every agent's channel now, so the first migration to each pays
   * no connect and handshake (a few ms); an agent that is down is tried
   * again by the next migration to it.
   */
  warm(): void {
    if (!this.enabled) return;
    for (const text of this.agents) {
      const agent = parseEndpoint(text, 'agent');
      this.channel(text, agent).catch(() => {});
    }
  }

  /** Stops the reclaim timer and closes the channels (the migrated connections live on at the back ends). */
  close(): void {
    clearInterval(this.reclaimTimer);
    for (const ch of this.channels.values()) ch.then((c) => c.close()).catch(() => {});
    this.channels.clear();
  }

  /** The agent's channel: the open one, or a new one when there is none or it failed. */
  private async channel(text: string, agent: { ip: string; port: number }): Promise<AgentChannel> {
    const cached = this.channels.get(text);
    if (cached) {
      const ch = await cached.catch(() => undefined);
      if (ch?.open) return ch;
      if (this.channels.get(text) === cached) this.channels.delete(text);
    }
    // Concurrent migrations to one agent share one connect.
    let pending = this.channels.get(text);
    if (!pending) {
      pending = this.connect(agent, this.opts.secret as Buffer);
      this.channels.set(text, pending);
      pending.catch(() => {
        if (this.channels.get(text) === pending) this.channels.delete(text);
      });
    }
    return pending;
  }
}
