/**
 * Reading the daemon's Prometheus exposition (text format 0.0.4): fetch,
 * parse into samples, and estimate quantiles from histogram buckets the way
 * Prometheus's histogram_quantile() does (linear within a bucket).
 */

import { ERRORS } from '../errors.js';
import { DEFAULT_METRICS_URL, ENV_METRICS, ENV_METRICS_URL } from './endpoint.js';
import { BatonApiError } from './errors.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** --metrics-url, else BATON_METRICS_URL, else the daemon's BATON_METRICS listen address, else the default. */
export function metricsUrl(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  const url = env[ENV_METRICS_URL]?.trim();
  if (url) return url;
  const listen = env[ENV_METRICS]?.trim();
  if (listen && listen !== 'off') return `http://${listen}/metrics`;
  return DEFAULT_METRICS_URL;
}

/** GET the exposition text. Throws BatonApiError API_UNREACHABLE with what to do. */
export async function fetchMetrics(url: string, timeoutMs = 10_000): Promise<string> {
  let res: Awaited<ReturnType<typeof fetch>>;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    throw new BatonApiError(
      {
        code: 'API_UNREACHABLE',
        ...ERRORS.API_UNREACHABLE,
        detail: `could not scrape ${url} (${cause?.code ?? (e as Error).message}): is the daemon running? Start it with \`baton lb --interface <dev>\`, or pass --metrics-url / ${ENV_METRICS_URL}`,
      },
      { cause: e },
    );
  }
  const text = await res.text();
  if (!res.ok)
    throw new BatonApiError({
      code: 'BAD_RESPONSE',
      ...ERRORS.BAD_RESPONSE,
      detail: `${url} answered ${res.status}: ${text.slice(0, 200)}`,
    });
  return text;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y;

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL_RE.lastIndex = 0;
  while (LABEL_RE.lastIndex < s.length) {
    const m = LABEL_RE.exec(s);
    if (!m) throw new SyntaxError(`bad labels in exposition line: ${line}`);
    out[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** Families in exposition order; samples of a histogram/summary stay in their family (name_bucket etc.). */
export function parseExposition(text: string): MetricFamily[] {
  const families = new Map<string, MetricFamily>();
  const family = (name: string) => {
    const known = families.get(name);
    if (known) return known;
    const f: MetricFamily = { name, type: 'untyped', help: '', samples: [] };
    families.set(name, f);
    return f;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      const [, kind, name = '', text = ''] = m ?? [];
      if (kind === 'HELP') family(name).help = text;
      else if (kind === 'TYPE') family(name).type = text;
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new SyntaxError(`bad exposition line: ${line}`);
    const name = m[1] ?? '';
    const base = name.replace(/_(bucket|sum|count|total|created)$/, '');
    const owner = families.get(name) ?? families.get(base) ?? family(name);
    owner.samples.push({ name, labels: m[2] ? parseLabels(m[2], line) : {}, value: parseValue(m[3] ?? '') });
  }
  return [...families.values()];
}

/**
 * q-quantile (0..1) of a histogram family, over the samples whose labels
 * include `match`, summed across other labels. undefined when it has no
 * observations.
 */
export function histogramQuantile(f: MetricFamily, q: number, match: Record<string, string> = {}): number | undefined {
  const buckets = new Map<number, number>();
  for (const s of f.samples) {
    if (!s.name.endsWith('_bucket') || s.labels.le === undefined) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const le = parseValue(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return prevLe; // the highest finite bound is all we know
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(count - prevCount, 1e-12);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** Sum of a family's plain samples (not _bucket/_sum/_count), optionally filtered by labels. */
export function sumSamples(f: MetricFamily, match: Record<string, string> = {}): number {
  return f.samples
    .filter((s) => !/_(bucket|sum|count)$/.test(s.name) || f.type === 'counter' || f.type === 'gauge')
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
