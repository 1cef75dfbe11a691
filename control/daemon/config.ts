/**
 * `baton lb` configuration: one table (OPTIONS) names every setting, its
 * default, its flag, its environment variable and its key in the JSON file.
 * Precedence: defaults < file (--config / BATON_CONFIG) < environment < flags.
 * Every value is validated here; a bad one is a CONFIG_INVALID error that
 * names where it came from and what is accepted.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_FLOWS_CAPACITY } from '../datapath/datapath.js';
import { BatonError } from '../errors.js';
import { DEFAULT_API_SOCKET } from '../sdk/endpoint.js';
import { parseEndpoint } from '../service/endpoint.js';
import { SWEEPER_DEFAULTS } from '../splice/sweeper.js';

export type Listen = { host: string; port: number } | { path: string };

export interface DaemonConfig {
  /** Interfaces the XDP program is attached to (names in the daemon's network namespace). */
  interfaces: string[];
  /** bpffs directory for pinned maps and links. */
  pinDir: string;
  /** Directory for state that must outlive the daemon but not a reboot: the record of host settings baton changed. */
  stateDir: string;
  api: Listen;
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
  /** A connection idle this long (no segment either way) is reclaimed (ms); 0 never. */
  idleTimeoutMs: number;
  /** API requests per second per client; 0 disables the limit. */
  rateLimit: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** The datapath object file; undefined: xdp_baton.o in bpfDir (control/bpf/objects.ts). */
  objectPath: string | undefined;
  /** The timestamp probe's object file; undefined: tcp_probe.o in bpfDir. */
  probeObjectPath: string | undefined;
  /** Directory of the BPF objects; undefined: build/bpf of baton's package. */
  bpfDir: string | undefined;
}

type Key = keyof DaemonConfig;
type Source = string; // "--flag", "BATON_X", "config file <path>"

interface Option<K extends Key> {
  key: K;
  flag: string;
  short?: string;
  /** A flag without a value (--flag means "true"); env and file take true/false. */
  boolean?: true;
  env: string;
  /** Value text -> value; throws a plain Error saying what is expected. */
  parse: (text: string) => DaemonConfig[K];
  /** The same for a JSON file value (defaults to parse(String(v)) for scalars). */
  parseJson?: (v: unknown) => DaemonConfig[K];
  default: DaemonConfig[K];
  help: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function positiveInt(max: number) {
  return (t: string): number => {
    if (!/^[0-9]+$/.test(t.trim()) || Number(t) < 1 || Number(t) > max)
      throw new Error(`expected an integer 1..${max}`);
    return Number(t);
  };
}

/** "300000", "250ms", "30s", "5m", "1h" -> milliseconds. */
export function parseDuration(t: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$/.exec(t);
  if (!m) throw new Error('expected a duration: milliseconds, or a number with ms, s, m or h (e.g. 30s, 5m)');
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
  if (!Number.isFinite(n) || n > 2 ** 31) throw new Error('duration too long');
  return Math.round(n);
}

function hostPort(t: string): { host: string; port: number } {
  const ep = parseEndpoint(t.trim(), 'address');
  return { host: ep.ip, port: ep.port };
}

/** "127.0.0.1:7300", "[::1]:7300", "unix:/run/baton.sock" or an absolute path. */
export function parseListen(t: string): Listen {
  const s = t.trim();
  if (s.startsWith('unix:')) return { path: s.slice(5) || fail('expected a path after unix:') };
  if (s.startsWith('/')) return { path: s };
  try {
    return hostPort(s);
  } catch {
    throw new Error(
      'expected host:port (e.g. 127.0.0.1:7300, [::1]:7300) or a unix socket path (unix:/run/baton.sock)',
    );
  }
}

function fail(msg: string): never {
  throw new Error(msg);
}

function bool(t: string): boolean {
  const v = t.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return fail('expected true or false');
}

const list = (t: string): string[] =>
  t
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export const OPTIONS: { [K in Key]: Option<K> } = {
  interfaces: {
    key: 'interfaces',
    flag: 'interface',
    short: 'i',
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
    help: 'timestamp probe object file (default: tcp_probe.o in the BPF object directory)',
  },
  bpfDir: {
    key: 'bpfDir',
    flag: 'bpf-dir',
    env: 'BATON_BPF_DIR',
    default: undefined,
    parse: (t) => (t.length > 0 ? t : fail('expected a directory')),
    help: "directory of baton's BPF objects (default: build/bpf of the baton package, found from the running module)",
  },
};

const CONFIG_FLAG = 'config';
const CONFIG_ENV = 'BATON_CONFIG';

function invalid(source: Source, what: string, e: unknown): BatonError {
  return new BatonError('CONFIG_INVALID', `${source}: ${what}: ${(e as Error).message}`, 'invalid_value');
}

function fromJson<K extends Key>(o: Option<K>, v: unknown, source: Source): DaemonConfig[K] {
  try {
    if (o.parseJson) return o.parseJson(v);
    if (v === null || typeof v === 'object') throw new Error('expected a string or a number');
    return o.parse(String(v));
  } catch (e) {
    throw invalid(source, `"${o.key}"`, e);
  }
}

function fromText<K extends Key>(o: Option<K>, text: string, source: Source): DaemonConfig[K] {
  try {
    return o.parse(text);
  } catch (e) {
    throw invalid(source, JSON.stringify(text), e);
  }
}

/** The configuration from flags (argv after `baton lb`), environment and the config file. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): DaemonConfig {
  const flagSpec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    [CONFIG_FLAG]: { type: 'string', short: 'c' },
  };
  for (const o of Object.values(OPTIONS) as Option<Key>[]) {
    flagSpec[o.flag] = {
      type: o.boolean ? 'boolean' : 'string',
      ...(o.short ? { short: o.short } : {}),
      ...(o.key === 'interfaces' ? { multiple: true } : {}),
    };
  }
  let flags: Record<string, string | boolean | string[] | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options: flagSpec, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | string[] | undefined
    >;
  } catch (e) {
    throw new BatonError('CONFIG_INVALID', `${(e as Error).message}; see baton lb --help`, 'bad_flag');
  }

  const cfg = Object.fromEntries(Object.values(OPTIONS).map((o) => [o.key, o.default])) as unknown as DaemonConfig;
  const set = <K extends Key>(k: K, v: DaemonConfig[K]) => {
    cfg[k] = v;
  };

  const file = (flags[CONFIG_FLAG] as string | undefined) ?? env[CONFIG_ENV];
  if (file) {
    const source = `config file ${file}`;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new BatonError(
        'CONFIG_INVALID',
        `${source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
        'bad_file',
      );
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      throw new BatonError('CONFIG_INVALID', `${source}: expected a JSON object of settings`, 'bad_file');
    for (const [k, v] of Object.entries(json)) {
      const o = (OPTIONS as Record<string, Option<Key>>)[k];
      if (!o)
        throw new BatonError(
          'CONFIG_INVALID',
          `${source}: unknown setting "${k}"; known: ${Object.keys(OPTIONS).join(', ')}`,
          'unknown_setting',
        );
      set(o.key, fromJson(o, v, source));
    }
  }
  for (const o of Object.values(OPTIONS) as Option<Key>[]) {
    const text = env[o.env];
    if (text !== undefined && text !== '') set(o.key, fromText(o, text, o.env));
  }
  for (const o of Object.values(OPTIONS) as Option<Key>[]) {
    const v = flags[o.flag];
    if (v === undefined) continue;
    const text = Array.isArray(v) ? v.join(',') : String(v);
    set(o.key, fromText(o, text, `--${o.flag}`));
  }
  return cfg;
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
  checkApiAuth(cfg);
}

/**
 * The API's listener and its authentication must fit: on a unix socket the
 * kernel names every caller (SO_PEERCRED); on TCP only a token can, so a TCP
 * listener without one is refused unless --insecure-no-auth says so.
 */
export function checkApiAuth(cfg: Pick<DaemonConfig, 'api' | 'token' | 'insecureNoAuth' | 'apiGroup'>): void {
  if ('path' in cfg.api) {
    if (cfg.insecureNoAuth) {
      throw new BatonError(
        'CONFIG_INVALID',
        '--insecure-no-auth applies to a TCP --api only; on the unix socket callers are known by their uid: drop it',
        'insecure_on_unix',
      );
    }
    return;
  }
  const where = `${cfg.api.host.includes(':') ? `[${cfg.api.host}]` : cfg.api.host}:${cfg.api.port}`;
  if (cfg.apiGroup !== undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      `--api-group applies to a unix socket API, but --api is TCP (${where}): drop --api-group, or listen on unix:/run/baton/api.sock`,
      'group_on_tcp',
    );
  }
  if (cfg.token === undefined && !cfg.insecureNoAuth) {
    throw new BatonError(
      'CONFIG_INVALID',
      `the API would listen on TCP ${where} without a token, and anyone who reaches it could take over every connection: set a token (BATON_TOKEN=$(openssl rand -hex 32), or --token), or listen on the unix socket (--api unix:${DEFAULT_API_SOCKET}, the default); for a lab only, --insecure-no-auth`,
      'tcp_without_token',
    );
  }
  if (cfg.token !== undefined && cfg.insecureNoAuth) {
    throw new BatonError(
      'CONFIG_INVALID',
      '--insecure-no-auth and a token contradict each other: drop --insecure-no-auth (the token authenticates TCP callers)',
      'insecure_with_token',
    );
  }
}

/** `baton lb --help`: generated from the table, so it never disagrees with it. */
export function configHelp(): string {
  const rows = (Object.values(OPTIONS) as Option<Key>[]).map((o) => {
    const def = o.default === undefined ? '' : ` (default: ${formatDefault(o.default)})`;
    return `  ${o.short ? `-${o.short}, ` : '    '}--${o.flag}${o.boolean ? '' : ' <value>'}\n        ${o.help}${def}\n        env ${o.env}, config file "${o.key}"`;
  });
  return [
    'baton lb: load and attach the datapath, serve the REST API and the metrics',
    '',
    'Settings come from defaults < the JSON config file < BATON_* environment variables < flags.',
    '',
    '  -c, --config <file>',
    `        JSON object of settings (keys below); env ${CONFIG_ENV}`,
    ...rows,
  ].join('\n');
}

function formatDefault(v: unknown): string {
  if (Array.isArray(v)) return v.length ? v.join(',') : 'none';
  if (v && typeof v === 'object')
    return 'path' in v
      ? `unix:${(v as { path: string }).path}`
      : `${(v as { host: string }).host}:${(v as { port: number }).port}`;
  return String(v);
}
