/**
 * The dispatcher's configuration: where it listens, the back-end pools, and
 * the routes (Host header and path prefix) that pick a pool. Given as a JSON
 * file or inline JSON; validated here with messages that name the field.
 *
 *   {
 *     "listen": "198.19.0.1:80",
 *     "pools": { "static": { "backends": ["198.18.2.2:8080"] },
 *                "api":    { "backends": ["198.18.3.2:8080", "198.18.4.2:8080"], "idle": 4 } },
 *     "routes": [ { "host": "static.example", "pool": "static" },
 *                 { "pathPrefix": "/api/", "pool": "api" },
 *                 { "pool": "static" } ],
 *     "api": { "socketPath": "/run/baton/api.sock" }
 *   }
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DEFAULT_AGENT_PORT } from '../agent/config.js';
import { formatAddress, splitAddress } from '../net/addr.js';
import { MAX_PREFIX_BYTES } from '../service/limits.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface PoolConfig {
  /** "ip:port" of each back end's app (migrate pools: where a connection is relayed when its migration fails) */
  backends: string[];
  /** idle pre-connected connections kept per back end (default 2; migrate pools 0) */
  idle?: number;
  /**
   * "splice" (default): baton splices the client to a pooled back-end leg.
   * "migrate": baton moves the client connection itself to the back end's
   * agent (on the back end's IP, port `agentPort`); the back end answers
   * the client directly and the LB only forwards the client's packets.
   */
  mode?: PoolMode;
  /** migrate pools: the agents' blob port (default DEFAULT_AGENT_PORT, baton agent's) */
  agentPort?: number;
}

export { DEFAULT_AGENT_PORT };
export const POOL_MODES = ['splice', 'migrate'] as const;
export type PoolMode = (typeof POOL_MODES)[number];

export interface RouteConfig {
  /** exact host ("a.example") or suffix wildcard ("*.example"), case-insensitive, port ignored */
  host?: string;
  /** the request path starts with this */
  pathPrefix?: string;
  pool: string;
}

export interface DispatcherConfig {
  /** "ip:port" or several */
  listen: string | string[];
  pools: Record<string, PoolConfig>;
  /** first match wins; a route with neither host nor pathPrefix matches everything */
  routes: RouteConfig[];
  /** baton's API (default: BATON_API / BATON_TOKEN, else unix:/run/baton/api.sock) */
  api?: { url?: string; socketPath?: string; token?: string };
  /**
   * How splices are asked for: "channel" (default) over the daemon's local
   * handoff channel (the sockets passed with SCM_RIGHTS, binary frames),
   * falling back to REST while the daemon offers none; "rest" always over
   * POST /v1/splices.
   */
  handoff?: HandoffPath;
  /** the channel's socket (default: handoff.sock beside the API's unix socket; none for a TCP API) */
  handoffSocket?: string;
  /**
   * Connect pooled back-end connections on ports of the daemon's leg range
   * (a LEG_PORT request on the channel leases 16 at once), so that a spliced
   * leg holds no socket in the daemon (default true; a daemon without a
   * range, or REST, leaves the choice to the kernel). false: every spliced
   * leg keeps a placeholder socket in the daemon (a descriptor and a full
   * tcp_sock) for the connection's life; measured on 2 cores
   * (bench/handoff-paths.ts) that is ~6% more splices per second with 8 or
   * 32 clients, for that memory.
   */
  legPorts?: boolean;
  /**
   * When to ask baton to splice: true (default) every connection; "keep-alive"
   * only connections whose first request asks to stay open (a one-shot
   * request is relayed in userspace: a splice costs about a millisecond and
   * only pays off over many requests or many bytes); false never (a baseline).
   */
  splice?: boolean | 'keep-alive';
  /** how long a client may take to send its first request head (ms, default 10,000) */
  headerTimeoutMs?: number;
  /** largest first request head accepted (bytes, default 16 KiB; baton takes at most 64 KiB of prefix) */
  maxHeaderBytes?: number;
  /** passed to baton per splice (ms) */
  quiesceTimeoutMs?: number;
  /**
   * Open each client's back-end leg with the client's TCP option profile
   * (default true; profile.ts): without it only clients whose options match
   * the LB's own defaults are spliced, the rest relayed (a baseline).
   */
  profileLegs?: boolean;
  /**
   * Where to serve Prometheus metrics (GET /metrics, "ip:port", e.g.
   * "127.0.0.1:9301"): connections spliced/relayed/rejected, the relayed
   * ratio, per leg profile outcomes and pool hits (metrics.ts). Off when absent.
   */
  metrics?: string;
}

export const HANDOFF_PATHS = ['channel', 'rest'] as const;
export type HandoffPath = (typeof HANDOFF_PATHS)[number];
export const DEFAULT_HANDOFF_PATH: HandoffPath = 'channel';

export const DEFAULT_IDLE_PER_BACKEND = 2;
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** "198.18.2.2:8080" / "[2001:db8::1]:80" -> { host, port }. */
export function parseHostPort(text: unknown, field: string): HostPort {
  if (typeof text !== 'string') throw new ConfigError(`${field}: expected "ip:port", got ${JSON.stringify(text)}`);
  const parts = splitAddress(text);
  const port = 'error' in parts || !/^\d{1,5}$/.test(parts.port) ? 0 : Number(parts.port);
  if ('error' in parts || !isIP(parts.host) || port < 1 || port > 65535) {
    throw new ConfigError(
      `${field}: ${JSON.stringify(text)} is not "ip:port" (e.g. "198.18.2.2:8080" or "[2001:db8::2]:8080")`,
    );
  }
  return { host: parts.host, port };
}

export const formatHostPort = (a: HostPort): string => formatAddress(a.host, a.port);

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function positiveInt(v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new ConfigError(`${field}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks a parsed config; returns it typed, or throws ConfigError naming the field. */
export function validateConfig(raw: unknown): DispatcherConfig {
  if (!isObject(raw)) throw new ConfigError('the configuration must be a JSON object');
  const known = new Set([
    'listen',
    'pools',
    'routes',
    'api',
    'handoff',
    'handoffSocket',
    'legPorts',
    'splice',
    'headerTimeoutMs',
    'maxHeaderBytes',
    'quiesceTimeoutMs',
    'profileLegs',
    'metrics',
  ]);
  for (const k of Object.keys(raw))
    if (!known.has(k)) throw new ConfigError(`unknown field ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
  const listen = Array.isArray(raw.listen) ? raw.listen : [raw.listen];
  if (listen.length === 0) throw new ConfigError('listen: at least one "ip:port"');
  for (const [i, l] of listen.entries()) parseHostPort(l, `listen[${i}]`);
  if (!isObject(raw.pools) || Object.keys(raw.pools).length === 0)
    throw new ConfigError('pools: expected an object of named pools, e.g. {"web": {"backends": ["198.18.2.2:8080"]}}');
  for (const [name, p] of Object.entries(raw.pools)) {
    if (!isObject(p) || !Array.isArray(p.backends) || p.backends.length === 0)
      throw new ConfigError(`pools.${name}: expected {"backends": ["ip:port", ...]}`);
    for (const [i, b] of p.backends.entries()) parseHostPort(b, `pools.${name}.backends[${i}]`);
    positiveInt(p.idle, `pools.${name}.idle`);
    if (p.mode !== undefined && !(POOL_MODES as readonly unknown[]).includes(p.mode))
      throw new ConfigError(`pools.${name}.mode: expected ${POOL_MODES.map((m) => JSON.stringify(m)).join(' or ')}`);
    const ap = positiveInt(p.agentPort, `pools.${name}.agentPort`);
    if (ap !== undefined && (ap < 1 || ap > 65535)) throw new ConfigError(`pools.${name}.agentPort: expected 1..65535`);
    if (ap !== undefined && p.mode !== 'migrate')
      throw new ConfigError(`pools.${name}.agentPort: only migrate pools have agents (add "mode": "migrate")`);
  }
  if (!Array.isArray(raw.routes) || raw.routes.length === 0)
    throw new ConfigError('routes: expected a list, e.g. [{"pathPrefix": "/api/", "pool": "api"}, {"pool": "web"}]');
  raw.routes.forEach((r, i) => {
    if (!isObject(r) || typeof r.pool !== 'string')
      throw new ConfigError(`routes[${i}]: expected {"pool": "<name>", "host"?: ..., "pathPrefix"?: ...}`);
    if (!(r.pool in (raw.pools as object)))
      throw new ConfigError(
        `routes[${i}].pool: no pool named ${JSON.stringify(r.pool)} (pools: ${Object.keys(raw.pools as object).join(', ')})`,
      );
    if (r.host !== undefined && typeof r.host !== 'string')
      throw new ConfigError(`routes[${i}].host: expected a string`);
    if (r.pathPrefix !== undefined && (typeof r.pathPrefix !== 'string' || !r.pathPrefix.startsWith('/')))
      throw new ConfigError(`routes[${i}].pathPrefix: expected a path starting with "/"`);
  });
  if (raw.api !== undefined && !isObject(raw.api))
    throw new ConfigError('api: expected {"url": ...} or {"socketPath": ...}');
  if (raw.handoff !== undefined && !(HANDOFF_PATHS as readonly unknown[]).includes(raw.handoff))
    throw new ConfigError(`handoff: expected ${HANDOFF_PATHS.map((m) => JSON.stringify(m)).join(' or ')}`);
  if (raw.legPorts !== undefined && typeof raw.legPorts !== 'boolean')
    throw new ConfigError('legPorts: expected true or false');
  if (raw.handoffSocket !== undefined && (typeof raw.handoffSocket !== 'string' || !raw.handoffSocket.startsWith('/')))
    throw new ConfigError('handoffSocket: expected an absolute path (e.g. "/run/baton/handoff.sock")');
  if (raw.splice !== undefined && typeof raw.splice !== 'boolean' && raw.splice !== 'keep-alive')
    throw new ConfigError('splice: expected true, false or "keep-alive"');
  if (raw.profileLegs !== undefined && typeof raw.profileLegs !== 'boolean')
    throw new ConfigError('profileLegs: expected true or false');
  if (raw.metrics !== undefined) parseHostPort(raw.metrics, 'metrics');
  positiveInt(raw.headerTimeoutMs, 'headerTimeoutMs');
  positiveInt(raw.quiesceTimeoutMs, 'quiesceTimeoutMs');
  const mh = positiveInt(raw.maxHeaderBytes, 'maxHeaderBytes');
  if (mh !== undefined && (mh < 64 || mh > MAX_PREFIX_BYTES)) {
    throw new ConfigError(
      `maxHeaderBytes: 64..${MAX_PREFIX_BYTES} (a splice carries at most ${MAX_PREFIX_BYTES} client bytes)`,
    );
  }
  return raw as unknown as DispatcherConfig;
}

/** A path to a JSON file, or the JSON itself (starts with "{"). */
export function loadConfig(arg: string): DispatcherConfig {
  let text = arg;
  if (!arg.trimStart().startsWith('{')) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read ${arg}: ${(e as Error).message}`);
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`not valid JSON: ${(e as Error).message}`);
  }
  return validateConfig(raw);
}
