/**
 * `baton lb` configuration: one table (OPTIONS) names every setting, its
 * default, its flag, its environment variable and its key in the JSON file
 * (the machinery and the parsers: options.ts). Precedence: defaults < file
 * (--config / BATON_CONFIG) < environment < flags.
 */

import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { OWNER_PORT_DEFAULT } from '../datapath/abi-owner.js';
import { DEFAULT_FLOWS_CAPACITY } from '../datapath/datapath.js';
import { BatonError } from '../errors.js';
import { DEFAULT_API_SOCKET, HANDOFF_SOCKET_NAME } from '../sdk/endpoint.js';
import { canonicalIp, formatEndpoint } from '../service/endpoint.js';
import { DEFAULT_LEG_PORTS, type PortRange, parsePortRange } from '../splice/leg-ports.js';
import { SWEEPER_DEFAULTS } from '../splice/sweeper.js';
import { parseStoreUrl } from '../store/redis-url.js';
import { STORE_LIMITS } from '../store/store.js';
import { checkApiAuth } from './api-auth.js';
import {
  bool,
  type Daemon,
  fail,
  hostPort,
  type Listen,
  LOG_LEVELS,
  type LogLevel,
  list,
  loadOptions,
  type OptionTable,
  optionsHelp,
  parseDuration,
  parseListen,
  positiveInt,
} from './options.js';

export { checkApiAuth } from './api-auth.js';
export type { Listen } from './options.js';

export interface DaemonConfig {
  /** Interfaces the XDP program is attached to (names in the daemon's network namespace). */
  interfaces: string[];
  /** bpffs directory for pinned maps and links. */
  pinDir: string;
  /** Directory for state that must outlive the daemon but not a reboot: the record of host settings baton changed. */
  stateDir: string;
  api: Listen;
  /**
   * The local handoff channel's unix socket (control/handoff/server.ts);
   * undefined: handoff.sock beside the API's unix socket (none with a TCP
   * --api); false: no channel.
   */
  handoffSocket: string | false | undefined;
  /** Group (name or gid) given the API's unix socket and its directory; undefined: root's. */
  apiGroup: string | undefined;
  /** Let a TCP API run without a token (every TCP caller acts as root): labs only. */
  insecureNoAuth: boolean;
  /** Metrics listener; false disables it. */
  metrics: { host: string; port: number } | false;
  /** Bearer token for the API; undefined: no authentication. */
  token: string | undefined;
  /** Connection-table entries (two or more per spliced connection). */
  tableCapacity: number;
  /**
   * Local ports of back-end legs that hold no socket once spliced
   * (control/splice/leg-ports.ts): reserved in the daemon's namespace at
   * start and handed to front ends on request; false: every leg holds a socket.
   */
  legPorts: PortRange | false;
  /** A connection idle this long (no segment either way) is reclaimed (ms); 0 never. */
  idleTimeoutMs: number;
  /** API requests per second per client; 0 disables the limit. */
  rateLimit: number;
  logLevel: LogLevel;
  /** The datapath object file; undefined: xdp_baton.o in bpfDir (control/bpf/objects.ts). */
  objectPath: string | undefined;
  /** The socket probe's object file; undefined: tcp_probe.o in bpfDir. */
  probeObjectPath: string | undefined;
  /** Directory of the BPF objects; undefined: build/bpf of baton's package. */
  bpfDir: string | undefined;
  /** The shared store (redis://, rediss://, unix://) that makes this LB a cluster member; undefined: alone. */
  store: string | undefined;
  /** This LB's id in the cluster (unique per LB). */
  clusterId: string;
  /** The address peers send owner headers to and accept them from; required with store. */
  clusterAddress: string | undefined;
  /** UDP port of the owner header. */
  ownerPort: number;
  /** The VIPs this LB serves: a segment for one that matches nothing goes to a peer (second chance), never to the stack. */
  vips: string[];
  /** A registration not refreshed for this long expires (ms): how fast a dead LB disappears. */
  peerTtlMs: number;
  /** Migrate mode: the back ends' agents ("ip:port", canonical) this LB may migrate connections to; empty: none. */
  agents: string[];
  /** The secret this LB proves to its agents (the agents' --peer-secret-file); required with agents. */
  agentSecretFile: string | undefined;
  /** This LB's address in the flow-id mappings it sends (default: clusterAddress). */
  migrateAddress: string | undefined;
}

export const OPTIONS: OptionTable<DaemonConfig> = {
  interfaces: {
    key: 'interfaces',
    flag: 'interface',
    short: 'i',
    multiple: true,
    env: 'BATON_INTERFACES',
    default: [],
    parse: (t) => {
      const names = list(t);
      for (const n of names)
        if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(n)) throw new Error(`${JSON.stringify(n)} is not an interface name`);
      return names;
    },
    parseJson: (v) => {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
        throw new Error('expected an array of interface names');
      return OPTIONS.interfaces.parse(v.join(','));
    },
    help: 'interfaces to attach the XDP program to (repeat the flag, or a comma list)',
  },
  pinDir: {
    key: 'pinDir',
    flag: 'pin-dir',
    env: 'BATON_PIN_DIR',
    default: '/sys/fs/bpf/baton',
    parse: (t) => (t.startsWith('/') ? t.replace(/\/+$/, '') || '/' : fail('expected an absolute path on a bpffs')),
    help: 'bpffs directory where maps and links are pinned (and reused on restart)',
  },
  stateDir: {
    key: 'stateDir',
    flag: 'state-dir',
    env: 'BATON_STATE_DIR',
    default: '/run/baton',
    parse: (t) =>
      t.startsWith('/')
        ? t.replace(/\/+$/, '') || '/'
        : fail('expected an absolute path (a tmpfs such as /run: the state is per boot)'),
    help: 'directory where baton records the host settings (sysctls) it changed, so that baton down restores them',
  },
  api: {
    key: 'api',
    flag: 'api',
    env: 'BATON_API',
    default: { path: DEFAULT_API_SOCKET },
    parse: parseListen,
    help: 'REST API listen address: unix:/path (callers known by their uid) or host:port (needs --token)',
  },
  handoffSocket: {
    key: 'handoffSocket',
    flag: 'handoff-socket',
    env: 'BATON_HANDOFF_SOCKET',
    default: undefined,
    parse: (t) => {
      const v = t.trim();
      if (v === 'off') return false;
      const path = v.startsWith('unix:') ? v.slice('unix:'.length) : v;
      return path.startsWith('/') ? path : fail('expected an absolute path (unix:/path or /path) or off');
    },
    parseJson: (v) =>
      v === false
        ? false
        : typeof v === 'string'
          ? (OPTIONS.handoffSocket.parse(v) as string | false)
          : fail('expected a path or false'),
    help: `local handoff channel for front ends on this host (splices with the sockets passed over SCM_RIGHTS; the same rules as the unix --api): a unix socket path, or off (default: ${HANDOFF_SOCKET_NAME} beside the unix --api socket; none with a TCP --api)`,
  },
  apiGroup: {
    key: 'apiGroup',
    flag: 'api-group',
    env: 'BATON_API_GROUP',
    default: undefined,
    parse: (t) =>
      /^(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$/.test(t.trim())
        ? t.trim()
        : fail('expected a group name or a numeric gid'),
    help: 'group of the API unix socket (mode 0660) and of the directory it creates (0750): its members may call the API (unset: root only)',
  },
  insecureNoAuth: {
    key: 'insecureNoAuth',
    flag: 'insecure-no-auth',
    boolean: true,
    env: 'BATON_INSECURE_NO_AUTH',
    default: false,
    parse: bool,
    parseJson: (v) => (typeof v === 'boolean' ? v : fail('expected true or false')),
    help: 'serve a TCP --api without a token: every TCP caller acts as root (labs only; logged and shown in /readyz)',
  },
  metrics: {
    key: 'metrics',
    flag: 'metrics',
    env: 'BATON_METRICS',
    default: { host: '127.0.0.1', port: 9300 },
    parse: (t) => {
      if (t.trim() === 'off') return false;
      try {
        return hostPort(t);
      } catch {
        throw new Error('expected host:port (e.g. 127.0.0.1:9300) or off');
      }
    },
    help: 'metrics listen address (GET /metrics), or off',
  },
  token: {
    key: 'token',
    flag: 'token',
    env: 'BATON_TOKEN',
    default: undefined,
    parse: (t) => (t.length >= 16 ? t : fail('expected at least 16 characters (e.g. openssl rand -hex 32)')),
    help: 'bearer token the API requires (every route but /healthz); needed for a TCP --api, whose token holders act as root',
  },
  tableCapacity: {
    key: 'tableCapacity',
    flag: 'table-capacity',
    env: 'BATON_TABLE_CAPACITY',
    default: DEFAULT_FLOWS_CAPACITY,
    parse: positiveInt(1 << 26),
    help: 'connection-table entries (two per spliced connection, one more per later handoff)',
  },
  legPorts: {
    key: 'legPorts',
    flag: 'leg-ports',
    env: 'BATON_LEG_PORTS',
    default: DEFAULT_LEG_PORTS,
    parse: (t) => {
      if (t.trim() === 'off') return false;
      try {
        return parsePortRange(t);
      } catch (e) {
        throw new Error(`${(e as Error).message}, or off`);
      }
    },
    parseJson: (v) =>
      v === false ? false : typeof v === 'string' ? OPTIONS.legPorts.parse(v) : fail('expected "lo-hi" or false'),
    help: `local ports of back-end legs that hold no socket once spliced, "lo-hi" (added to net.ipv4.ip_local_reserved_ports at start, so the kernel never picks them), or off: every spliced leg keeps a socket (default ${DEFAULT_LEG_PORTS.lo}-${DEFAULT_LEG_PORTS.hi})`,
  },
  idleTimeoutMs: {
    key: 'idleTimeoutMs',
    flag: 'idle-timeout',
    env: 'BATON_IDLE_TIMEOUT',
    default: SWEEPER_DEFAULTS.idleMs,
    parse: parseDuration,
    help: 'reclaim a connection after this long without a segment either way (e.g. 30m; 0: never)',
  },
  rateLimit: {
    key: 'rateLimit',
    flag: 'rate-limit',
    env: 'BATON_RATE_LIMIT',
    default: 50_000,
    parse: (t) =>
      /^[0-9]+$/.test(t.trim()) ? Number(t) : fail('expected requests per second per client (0: no limit)'),
    help: 'API requests per second per client; 0 disables the limit',
  },
  logLevel: {
    key: 'logLevel',
    flag: 'log-level',
    env: 'BATON_LOG_LEVEL',
    default: 'info',
    parse: (t) =>
      (LOG_LEVELS as readonly string[]).includes(t)
        ? (t as DaemonConfig['logLevel'])
        : fail(`expected one of ${LOG_LEVELS.join(', ')}`),
    help: 'log level (pino)',
  },
  objectPath: {
    key: 'objectPath',
    flag: 'object',
    env: 'BATON_OBJECT',
    default: undefined,
    parse: (t) => (t.length > 0 ? t : fail('expected a path')),
    help: 'datapath object file (default: xdp_baton.o in the BPF object directory)',
  },
  probeObjectPath: {
    key: 'probeObjectPath',
    flag: 'probe-object',
    env: 'BATON_PROBE_OBJECT',
    default: undefined,
    parse: (t) => (t.length > 0 ? t : fail('expected a path')),
    help: 'socket probe object file (default: tcp_probe.o in the BPF object directory)',
  },
  bpfDir: {
    key: 'bpfDir',
    flag: 'bpf-dir',
    env: 'BATON_BPF_DIR',
    default: undefined,
    parse: (t) => (t.length > 0 ? t : fail('expected a directory')),
    help: "directory of baton's BPF objects (default: build/bpf of the baton package, found from the running module)",
  },
  store: {
    key: 'store',
    flag: 'store',
    env: 'BATON_STORE',
    default: undefined,
    // Checked here for its form (parseStoreUrl), so a typo fails at start, not at first use.
    parse: (t) => {
      parseStoreUrl(t);
      return t;
    },
    help: 'join a cluster of LBs through this store: redis://[user:password@]host[:port][/db], rediss://... (TLS), unix:///path',
  },
  clusterId: {
    key: 'clusterId',
    flag: 'cluster-id',
    env: 'BATON_CLUSTER_ID',
    default: hostname(),
    parse: (t) => (/^[\x21-\x7e]{1,64}$/.test(t) ? t : fail('expected 1..64 printable ASCII characters, no blank')),
    help: "this LB's id in the cluster, unique per LB",
  },
  clusterAddress: {
    key: 'clusterAddress',
    flag: 'cluster-address',
    env: 'BATON_CLUSTER_ADDRESS',
    default: undefined,
    parse: (t) => canonicalIp(t.trim())?.ip ?? fail('expected an IPv4 or IPv6 address'),
    help: 'the address other LBs forward packets of connections owned here to (required with --store)',
  },
  ownerPort: {
    key: 'ownerPort',
    flag: 'owner-port',
    env: 'BATON_OWNER_PORT',
    default: OWNER_PORT_DEFAULT,
    parse: positiveInt(65535),
    help: 'UDP port of the owner header between LBs',
  },
  vips: {
    key: 'vips',
    flag: 'vip',
    multiple: true,
    env: 'BATON_VIPS',
    default: [],
    parse: (t) => list(t).map((a) => canonicalIp(a)?.ip ?? fail(`${JSON.stringify(a)} is not an IP address`)),
    parseJson: (v) => {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
        throw new Error('expected an array of addresses');
      return OPTIONS.vips.parse(v.join(','));
    },
    help: 'with --store: the VIPs this LB serves (repeatable); their segments that match no connection go to a peer, never to a RST',
  },
  peerTtlMs: {
    key: 'peerTtlMs',
    flag: 'peer-ttl',
    env: 'BATON_PEER_TTL',
    default: 3000,
    parse: (t) => {
      const ms = parseDuration(t);
      if (ms < STORE_LIMITS.minTtlMs || ms > STORE_LIMITS.maxTtlMs)
        fail(`expected ${STORE_LIMITS.minTtlMs} ms .. ${STORE_LIMITS.maxTtlMs / 60_000} min`);
      return ms;
    },
    help: "how long a peer's registration lives without a refresh: how fast a dead LB is forgotten",
  },
  agents: {
    key: 'agents',
    flag: 'agent',
    multiple: true,
    env: 'BATON_AGENTS',
    default: [],
    parse: (t) =>
      list(t).map((a) => {
        const ep = hostPort(a);
        return formatEndpoint({ ip: ep.host, port: ep.port });
      }),
    parseJson: (v) => {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
        throw new Error('expected an array of "ip:port" agent addresses');
      return OPTIONS.agents.parse(v.join(','));
    },
    help: "migrate mode: a back end's agent (ip:port of its blob endpoint; the IP is the back end's) this LB may migrate connections to (repeatable)",
  },
  agentSecretFile: {
    key: 'agentSecretFile',
    flag: 'agent-secret-file',
    env: 'BATON_AGENT_SECRET_FILE',
    default: undefined,
    parse: (t) => (t.startsWith('/') ? t : fail('expected an absolute path')),
    help: 'file with the secret shared with the agents (their --peer-secret-file; mode 0600); required with --agent',
  },
  migrateAddress: {
    key: 'migrateAddress',
    flag: 'migrate-address',
    env: 'BATON_MIGRATE_ADDRESS',
    default: undefined,
    parse: (t) => canonicalIp(t.trim())?.ip ?? fail('expected an IPv4 or IPv6 address'),
    help: "this LB's address in the flow-id mappings its migrations carry (default: --cluster-address; required with --agent otherwise)",
  },
};

const LB: Daemon = {
  command: 'baton lb',
  summary: 'load and attach the datapath, serve the REST API and the metrics',
  configEnv: 'BATON_CONFIG',
};

/** The configuration from flags (argv after `baton lb`), environment and the config file. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): DaemonConfig {
  return loadOptions(OPTIONS, LB, argv, env);
}

/** What `baton lb` needs beyond well-formed values. */
export function checkRunnable(cfg: DaemonConfig): void {
  if (cfg.interfaces.length === 0) {
    throw new BatonError(
      'CONFIG_INVALID',
      'no interface to attach to: name the LB\'s interfaces with --interface eth0 (repeatable), BATON_INTERFACES=eth0,eth1 or "interfaces" in the config file',
      'no_interfaces',
    );
  }
  if (cfg.store !== undefined && cfg.clusterAddress === undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      "--store makes this LB a cluster member, and its peers need the address to forward packets to: set --cluster-address <this LB's IP on the network between LBs> (BATON_CLUSTER_ADDRESS)",
      'no_cluster_address',
    );
  }
  if (cfg.agents.length > 0 && cfg.agentSecretFile === undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      '--agent names back ends to migrate connections to, and their agents accept only LBs that prove the shared secret: set --agent-secret-file <the file given to the agents as --peer-secret-file> (BATON_AGENT_SECRET_FILE)',
      'no_agent_secret',
    );
  }
  if (cfg.agents.length > 0 && (cfg.migrateAddress ?? cfg.clusterAddress) === undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      "--agent needs this LB's address for the flow-id mappings it sends: set --migrate-address <this LB's IP toward the back ends> (or --cluster-address)",
      'no_migrate_address',
    );
  }
  checkApiAuth(cfg);
  if ('path' in cfg.api && handoffSocketPath(cfg) === cfg.api.path) {
    throw new BatonError(
      'CONFIG_INVALID',
      `--handoff-socket names the API's own socket (${cfg.api.path}): give the handoff channel another path, or leave it unset (${HANDOFF_SOCKET_NAME} beside the API socket)`,
      'handoff_is_api',
    );
  }
}

/** Where the handoff channel listens for this configuration, or undefined when it has none. */
export function handoffSocketPath(cfg: Pick<DaemonConfig, 'api' | 'handoffSocket'>): string | undefined {
  if (cfg.handoffSocket === false) return undefined;
  if (cfg.handoffSocket !== undefined) return cfg.handoffSocket;
  return 'path' in cfg.api ? join(dirname(cfg.api.path), HANDOFF_SOCKET_NAME) : undefined;
}

/** `baton lb --help`: generated from the table, so it never disagrees with it. */
export function configHelp(): string {
  return optionsHelp(OPTIONS, LB);
}
