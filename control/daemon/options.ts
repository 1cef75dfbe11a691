/**
 * Daemon settings from one table: every setting names its default, flag,
 * environment variable and key in the JSON file, and how its text is parsed.
 * Precedence: defaults < file (--config / the config env) < environment <
 * flags. Every value is validated; a bad one is a CONFIG_INVALID error that
 * names where it came from and what is accepted. `baton lb` (config.ts) and
 * every other daemon share this machinery and these parsers.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BatonError } from '../errors.js';
import { parseEndpoint } from '../service/endpoint.js';

type Source = string; // "--flag", "BATON_X", "config file <path>"

export interface Option<C, K extends keyof C> {
  key: K;
  flag: string;
  short?: string;
  /** A flag without a value (--flag means "true"); env and file take true/false. */
  boolean?: true;
  /** The flag may repeat; its values are joined with commas before parse(). */
  multiple?: true;
  env: string;
  /** Value text -> value; throws a plain Error saying what is expected. */
  parse: (text: string) => C[K];
  /** The same for a JSON file value (defaults to parse(String(v)) for scalars). */
  parseJson?: (v: unknown) => C[K];
  default: C[K];
  help: string;
}

export type OptionTable<C> = { [K in keyof C]: Option<C, K> };

export interface Daemon {
  /** e.g. "baton lb" (messages and help) */
  command: string;
  /** one line: what the daemon does */
  summary: string;
  /** the environment variable naming the config file, e.g. BATON_CONFIG */
  configEnv: string;
}

const CONFIG_FLAG = 'config';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function fail(msg: string): never {
  throw new Error(msg);
}

export function positiveInt(max: number) {
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

export function hostPort(t: string): { host: string; port: number } {
  const ep = parseEndpoint(t.trim(), 'address');
  return { host: ep.ip, port: ep.port };
}

export type Listen = { host: string; port: number } | { path: string };

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

export function bool(t: string): boolean {
  const v = t.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return fail('expected true or false');
}

export const list = (t: string): string[] =>
  t
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function invalid(source: Source, what: string, e: unknown): BatonError {
  return new BatonError('CONFIG_INVALID', `${source}: ${what}: ${(e as Error).message}`, 'invalid_value');
}

function fromJson<C, K extends keyof C>(o: Option<C, K>, v: unknown, source: Source): C[K] {
  try {
    if (o.parseJson) return o.parseJson(v);
    if (v === null || typeof v === 'object') throw new Error('expected a string or a number');
    return o.parse(String(v));
  } catch (e) {
    throw invalid(source, `"${String(o.key)}"`, e);
  }
}

function fromText<C, K extends keyof C>(o: Option<C, K>, text: string, source: Source): C[K] {
  try {
    return o.parse(text);
  } catch (e) {
    throw invalid(source, JSON.stringify(text), e);
  }
}

/** The settings from flags (argv after the command), environment and the config file. */
export function loadOptions<C>(
  table: OptionTable<C>,
  daemon: Daemon,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
): C {
  const options = Object.values(table) as Option<C, keyof C>[];
  const flagSpec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    [CONFIG_FLAG]: { type: 'string', short: 'c' },
  };
  for (const o of options) {
    flagSpec[o.flag] = {
      type: o.boolean ? 'boolean' : 'string',
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  let flags: Record<string, string | boolean | string[] | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options: flagSpec, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | string[] | undefined
    >;
  } catch (e) {
    throw new BatonError('CONFIG_INVALID', `${(e as Error).message}; see ${daemon.command} --help`, 'bad_flag');
  }

  const cfg = Object.fromEntries(options.map((o) => [o.key, o.default])) as unknown as C;
  const set = <K extends keyof C>(k: K, v: C[K]) => {
    cfg[k] = v;
  };

  const file = (flags[CONFIG_FLAG] as string | undefined) ?? env[daemon.configEnv];
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
      const o = (table as Record<string, Option<C, keyof C>>)[k];
      if (!o)
        throw new BatonError(
          'CONFIG_INVALID',
          `${source}: unknown setting "${k}"; known: ${Object.keys(table).join(', ')}`,
          'unknown_setting',
        );
      set(o.key, fromJson(o, v, source));
    }
  }
  for (const o of options) {
    const text = env[o.env];
    if (text !== undefined && text !== '') set(o.key, fromText(o, text, o.env));
  }
  for (const o of options) {
    const v = flags[o.flag];
    if (v === undefined) continue;
    const text = Array.isArray(v) ? v.join(',') : String(v);
    set(o.key, fromText(o, text, `--${o.flag}`));
  }
  return cfg;
}

/** `<command> --help`: generated from the table, so it never disagrees with it. */
export function optionsHelp<C>(table: OptionTable<C>, daemon: Daemon): string {
  const rows = (Object.values(table) as Option<C, keyof C>[]).map((o) => {
    const def = o.default === undefined ? '' : ` (default: ${formatDefault(o.default)})`;
    return `  ${o.short ? `-${o.short}, ` : '    '}--${o.flag}${o.boolean ? '' : ' <value>'}\n        ${o.help}${def}\n        env ${o.env}, config file "${String(o.key)}"`;
  });
  return [
    `${daemon.command}: ${daemon.summary}`,
    '',
    'Settings come from defaults < the JSON config file < BATON_* environment variables < flags.',
    '',
    '  -c, --config <file>',
    `        JSON object of settings (keys below); env ${daemon.configEnv}`,
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
