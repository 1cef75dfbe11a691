/**
 * `baton agent` configuration: one table names every setting, its default,
 * flag, environment variable and JSON key, loaded by the same machinery as
 * `baton lb`'s (control/daemon/options.ts). Precedence: defaults < file
 * (--config / BATON_AGENT_CONFIG) < environment < flags.
 */
import {
  bool,
  type Daemon,
  hostPort,
  loadOptions,
  type OptionTable,
  optionsHelp,
  parseDuration,
} from '../daemon/options.js';
import { DEFAULT_RECLAIM_LINGER_MS } from '../datapath/flow-id.js';
import { BatonError } from '../errors.js';
import { parseEndpoint } from '../service/endpoint.js';
import type { AppRules } from './authorize.js';
import { vipKey } from './reply.js';

export interface AgentConfig {
  /** Where LBs deliver state blobs (TCP). */
  listen: { host: string; port: number };
  /** File holding the shared secret LBs must prove (HMAC handshake); required. */
  peerSecretFile: string | undefined;
  /** The unix socket apps connect to. */
  appSocket: string;
  /** Metrics, /healthz and /readyz. */
  metrics: { host: string; port: number };
  /** VIP:port -> uids (besides root) allowed to register for it. */
  apps: AppRules;
  /** IP_TRANSPARENT on restored sockets: for a VIP not configured on this host's lo. */
  transparent: boolean;
  /** Interfaces the agent's XDP program (flow-id restore and hold) attaches to; none: no datapath. */
  interfaces: string[];
  /** bpffs directory of the agent's pinned maps and links (its own: never the LB's). */
  pinDir: string;
  /** A finished connection's flow-id mapping is removed after this long without a segment (ms). */
  reclaimLingerMs: number;
}

/** Where LBs deliver blobs unless told otherwise (the dispatcher's migrate pools assume it too). */
export const DEFAULT_AGENT_PORT = 7400;
export const DEFAULT_AGENT_LISTEN = { host: '0.0.0.0', port: DEFAULT_AGENT_PORT };
export const DEFAULT_AGENT_METRICS = { host: '127.0.0.1', port: 9400 };
export const DEFAULT_APP_SOCKET = '/run/baton/agent.sock';
export const DEFAULT_AGENT_PIN_DIR = '/sys/fs/bpf/baton-agent';

function interfaceNames(t: string): string[] {
  const names = t.split(/[\s,]+/).filter(Boolean);
  for (const n of names)
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(n)) throw new Error(`${JSON.stringify(n)} is not an interface name`);
  return names;
}

/**
 * App rules from "VIP:PORT=UID[+UID...]" entries separated by commas or
 * blanks (pure), e.g. "198.19.0.1:80=1000+1001,[2001:db8::1]:443=1002".
 */
export function parseAppRules(text: string): AppRules {
  const out: Record<string, number[]> = {};
  for (const entry of text.split(/[\s,]+/).filter(Boolean)) {
    const eq = entry.lastIndexOf('=');
    if (eq < 0) throw new Error(`${JSON.stringify(entry)}: expected VIP:PORT=UID[+UID...]`);
    const ep = parseEndpoint(entry.slice(0, eq), 'app VIP');
    if (ep.port === 0) throw new Error(`${JSON.stringify(entry)}: the VIP needs a port 1..65535`);
    const uids = entry
      .slice(eq + 1)
      .split('+')
      .map((u) => {
        if (!/^[0-9]{1,10}$/.test(u) || Number(u) > 0xfffffffe) throw new Error(`${JSON.stringify(u)} is not a uid`);
        return Number(u);
      });
    const key = vipKey(ep);
    out[key] = [...(out[key] ?? []), ...uids];
  }
  return out;
}

function appRulesJson(v: unknown): AppRules {
  if (typeof v === 'string') return parseAppRules(v);
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new Error('expected an object {"VIP:PORT": [uid, ...]} or a string');
  const parts: string[] = [];
  for (const [vip, uids] of Object.entries(v)) {
    if (!Array.isArray(uids) || uids.length === 0) throw new Error(`"${vip}": expected a non-empty array of uids`);
    parts.push(`${vip}=${uids.map(String).join('+')}`);
  }
  return parseAppRules(parts.join(','));
}

function absolutePath(t: string): string {
  if (!t.startsWith('/')) throw new Error('expected an absolute path');
  return t;
}

export const AGENT_OPTIONS: OptionTable<AgentConfig> = {
  listen: {
    key: 'listen',
    flag: 'listen',
    env: 'BATON_AGENT_LISTEN',
    parse: hostPort,
    default: DEFAULT_AGENT_LISTEN,
    help: 'host:port where LBs deliver state blobs (TCP)',
  },
  peerSecretFile: {
    key: 'peerSecretFile',
    flag: 'peer-secret-file',
    env: 'BATON_AGENT_PEER_SECRET_FILE',
    parse: absolutePath,
    default: undefined,
    help: 'file with the secret LBs share with this agent (at least 16 bytes; required)',
  },
  appSocket: {
    key: 'appSocket',
    flag: 'app-socket',
    env: 'BATON_AGENT_APP_SOCKET',
    parse: absolutePath,
    default: DEFAULT_APP_SOCKET,
    help: 'unix socket where apps register and receive migrated connections',
  },
  metrics: {
    key: 'metrics',
    flag: 'metrics',
    env: 'BATON_AGENT_METRICS',
    parse: hostPort,
    default: DEFAULT_AGENT_METRICS,
    help: 'host:port of /metrics, /healthz and /readyz',
  },
  apps: {
    key: 'apps',
    flag: 'app',
    env: 'BATON_AGENT_APPS',
    multiple: true,
    parse: parseAppRules,
    parseJson: appRulesJson,
    default: {},
    help: 'VIP:PORT=UID[+UID]: uids besides root that may serve this VIP (repeatable)',
  },
  transparent: {
    key: 'transparent',
    flag: 'transparent',
    env: 'BATON_AGENT_TRANSPARENT',
    boolean: true,
    parse: bool,
    parseJson: (v) => (typeof v === 'boolean' ? v : bool(String(v))),
    default: false,
    help: "restore sockets with IP_TRANSPARENT (the VIP is not on this host's lo)",
  },
  interfaces: {
    key: 'interfaces',
    flag: 'interface',
    short: 'i',
    multiple: true,
    env: 'BATON_AGENT_INTERFACES',
    default: [],
    parse: interfaceNames,
    parseJson: (v) => {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
        throw new Error('expected an array of interface names');
      return interfaceNames(v.join(','));
    },
    help: "interfaces the LBs' flow-id segments arrive on: the agent's XDP program attaches there (repeatable; none = no datapath, blobs with a flow-id mapping are refused)",
  },
  pinDir: {
    key: 'pinDir',
    flag: 'pin-dir',
    env: 'BATON_AGENT_PIN_DIR',
    default: DEFAULT_AGENT_PIN_DIR,
    parse: (t) => {
      if (!t.startsWith('/')) throw new Error('expected an absolute path on a bpffs');
      return t.replace(/\/+$/, '') || '/';
    },
    help: "bpffs directory of the agent's pinned maps and links (reused on restart; not the LB's --pin-dir)",
  },
  reclaimLingerMs: {
    key: 'reclaimLingerMs',
    flag: 'reclaim-linger',
    env: 'BATON_AGENT_RECLAIM_LINGER',
    parse: parseDuration,
    parseJson: (v) => parseDuration(String(v)),
    default: DEFAULT_RECLAIM_LINGER_MS,
    help: "how long a migrated connection's flow-id mapping stays after the client's FIN or RST and its last segment (e.g. 60s)",
  },
};

export const AGENT_CONFIG_ENV = 'BATON_AGENT_CONFIG';

const AGENT: Daemon = {
  command: 'baton agent',
  summary:
    'the back-end agent of migrate mode: receives state blobs from LBs, restores the sockets and hands them to registered apps',
  configEnv: AGENT_CONFIG_ENV,
};

/**
 * The settings without the start-up requirements (no secret needed): what
 * `baton agent down` and `baton doctor --role agent` read, so they look at
 * the same pin directory, app socket, interfaces and VIPs the agent uses.
 */
export function loadAgentSettings(argv: readonly string[], env: NodeJS.ProcessEnv = {}): AgentConfig {
  return loadOptions(AGENT_OPTIONS, AGENT, argv, env);
}

/** `baton agent down --help`: the settings it reads, from the table. */
export function agentDownHelp(): string {
  const keep = [AGENT_OPTIONS.pinDir, AGENT_OPTIONS.appSocket];
  return `Usage: baton agent down [--pin-dir <dir>] [--app-socket <path>] [--config <file>] [--json]

Detaches the XDP links \`baton agent\` pinned under its pin directory, removes its
pinned maps (the flow-id mappings), the pin directory when empty, and the app
socket file (and its directory when empty). Connections migrated to this host
and still open stop getting their segments restored: stop the apps' traffic first.
Refuses while an agent answers on the app socket (stop it with SIGTERM first).
Idempotent: a second run reports nothing to remove. Takes the agent's settings:

${keep.map((o) => `  --${o.flag} (${o.env}; default ${String(o.default)}): ${o.help}`).join('\n')}
  --config <file> (${AGENT_CONFIG_ENV}): the agent's JSON configuration
`;
}

/** The configuration from flags (argv after `baton agent`), environment and the config file. */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): AgentConfig {
  const cfg = loadAgentSettings(argv, env);
  if (!cfg.peerSecretFile)
    throw new BatonError(
      'CONFIG_INVALID',
      'no --peer-secret-file: the agent accepts live connections only from LBs that prove a shared secret; create one (openssl rand -hex 32 > /etc/baton/peer.secret, mode 0600) and give the same file to the LBs',
      'no_secret',
    );
  return cfg;
}

/** `baton agent --help`: generated from the table, with the app rule. */
export function agentHelp(): string {
  return `${optionsHelp(AGENT_OPTIONS, AGENT)}

App authorization (SO_PEERCRED): root may register for any VIP; another uid only for a VIP an --app entry names it under.

Before the first start: baton doctor --role agent --interface <dev> --vip <ip>. Stop with SIGTERM (the XDP
program and the flow-id mappings stay pinned: migrated connections keep working; a restart reuses them);
remove everything with baton agent down.
`;
}
