/**
 * `baton agent` configuration, in the manner of `baton lb`
 * (control/daemon/config.ts): one table names every setting, its default,
 * flag, environment variable and JSON key. Precedence: defaults < file
 * (--config / BATON_AGENT_CONFIG) < environment < flags. Every value is
 * validated; a bad one is CONFIG_INVALID naming where it came from.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
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
}

type Key = keyof AgentConfig;

interface Option<K extends Key> {
  key: K;
  flag: string;
  env: string;
  boolean?: true;
  /** Repeated flag; env/file values are comma/space separated or a JSON value. */
  multiple?: true;
  parse: (text: string) => AgentConfig[K];
  parseJson?: (v: unknown) => AgentConfig[K];
  default: AgentConfig[K];
  help: string;
}

export const DEFAULT_AGENT_LISTEN = { host: '0.0.0.0', port: 7400 };
export const DEFAULT_AGENT_METRICS = { host: '127.0.0.1', port: 9400 };
export const DEFAULT_APP_SOCKET = '/run/baton/agent.sock';

function hostPort(t: string): { host: string; port: number } {
  const ep = parseEndpoint(t.trim(), 'address');
  return { host: ep.ip, port: ep.port };
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

function bool(t: string): boolean {
  const v = t.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new Error('expected true or false');
}

function absolutePath(t: string): string {
  if (!t.startsWith('/')) throw new Error('expected an absolute path');
  return t;
}

export const AGENT_OPTIONS: { [K in Key]: Option<K> } = {
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
};

const CONFIG_FLAG = 'config';
export const AGENT_CONFIG_ENV = 'BATON_AGENT_CONFIG';

const invalid = (source: string, what: string, e: unknown): BatonError =>
  new BatonError('CONFIG_INVALID', `${source}: ${what}: ${(e as Error).message}`, 'invalid_value');

/** The configuration from flags (argv after `baton agent`), environment and the config file. */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): AgentConfig {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    [CONFIG_FLAG]: { type: 'string', short: 'c' },
  };
  for (const o of Object.values(AGENT_OPTIONS) as Option<Key>[])
    spec[o.flag] = { type: o.boolean ? 'boolean' : 'string', ...(o.multiple ? { multiple: true } : {}) };
  let flags: Record<string, string | boolean | string[] | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options: spec, strict: true, allowPositionals: false }).values as typeof flags;
  } catch (e) {
    throw new BatonError('CONFIG_INVALID', `${(e as Error).message}; see baton agent --help`, 'bad_flag');
  }
  const cfg = Object.fromEntries(Object.values(AGENT_OPTIONS).map((o) => [o.key, o.default])) as unknown as AgentConfig;
  const set = <K extends Key>(k: K, v: AgentConfig[K]): void => {
    cfg[k] = v;
  };
  const file = (flags[CONFIG_FLAG] as string | undefined) ?? env[AGENT_CONFIG_ENV];
  if (file) {
    const source = `config file ${file}`;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      const msg = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      throw new BatonError('CONFIG_INVALID', `${source}: ${msg}`, 'bad_file');
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      throw new BatonError('CONFIG_INVALID', `${source}: expected a JSON object of settings`, 'bad_file');
    for (const [k, v] of Object.entries(json)) {
      const o = (AGENT_OPTIONS as Record<string, Option<Key>>)[k];
      if (!o)
        throw new BatonError(
          'CONFIG_INVALID',
          `${source}: unknown setting "${k}"; known: ${Object.keys(AGENT_OPTIONS).join(', ')}`,
          'unknown_setting',
        );
      try {
        set(o.key, o.parseJson ? o.parseJson(v) : o.parse(String(v)));
      } catch (e) {
        throw invalid(source, `"${k}"`, e);
      }
    }
  }
  for (const o of Object.values(AGENT_OPTIONS) as Option<Key>[]) {
    const text = env[o.env];
    if (text === undefined || text === '') continue;
    try {
      set(o.key, o.parse(text));
    } catch (e) {
      throw invalid(o.env, JSON.stringify(text), e);
    }
  }
  for (const o of Object.values(AGENT_OPTIONS) as Option<Key>[]) {
    const v = flags[o.flag];
    if (v === undefined) continue;
    const text = Array.isArray(v) ? v.join(',') : String(v);
    try {
      set(o.key, o.parse(text));
    } catch (e) {
      throw invalid(`--${o.flag}`, JSON.stringify(text), e);
    }
  }
  if (!cfg.peerSecretFile)
    throw new BatonError(
      'CONFIG_INVALID',
      'no --peer-secret-file: the agent accepts live connections only from LBs that prove a shared secret; create one (openssl rand -hex 32 > /etc/baton/peer.secret, mode 0600) and give the same file to the LBs',
      'no_secret',
    );
  return cfg;
}

export function agentHelp(): string {
  const lines = [
    'usage: baton agent [options]',
    '',
    'The back-end agent of migrate mode: receives state blobs from LBs, restores the sockets and hands them to registered apps.',
    '',
  ];
  lines.push('  -c, --config FILE'.padEnd(34) + `JSON settings file (also ${AGENT_CONFIG_ENV})`);
  for (const o of Object.values(AGENT_OPTIONS) as Option<Key>[]) {
    lines.push(`      --${o.flag}${o.boolean ? '' : ' VALUE'}`.padEnd(34) + `${o.help} [${o.env}]`);
  }
  lines.push(
    '',
    'Precedence: defaults < config file < environment < flags.',
    'App authorization (SO_PEERCRED): root may register for any VIP; another uid only for a VIP an --app entry names it under.',
  );
  return `${lines.join('\n')}\n`;
}
