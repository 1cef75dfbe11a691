/** `baton metrics`: scrape the daemon's Prometheus listener and summarise baton_* families. */
import { fetchMetrics, histogramQuantile, type MetricFamily, metricsUrl, parseExposition } from '../sdk/metrics.js';
import { type Io, printJson, table } from './io.js';
import { EXIT } from './usage.js';

/** How many label break-down lines to show per family before "... N more". */
const MAX_BREAKDOWN = 12;

export async function metricsCommand(io: Io, flags: { 'metrics-url'?: string; raw?: boolean }): Promise<number> {
  const url = metricsUrl(flags['metrics-url'], io.env);
  const text = await fetchMetrics(url);
  if (flags.raw) {
    io.out(text);
    return EXIT.OK;
  }
  const families = parseExposition(text).filter((f) => f.name.startsWith('baton_'));
  if (io.json) {
    printJson(io, {
      url,
      families: families.map((f) =>
        f.type === 'histogram'
          ? { ...f, p50: histogramQuantile(f, 0.5) ?? null, p99: histogramQuantile(f, 0.99) ?? null }
          : f,
      ),
    });
    return EXIT.OK;
  }
  if (families.length === 0) {
    io.out(`${url} exposes no baton_* metrics (is this baton's metrics listener?)`);
    return EXIT.OK;
  }
  for (const f of families) io.out(summarise(f));
  return EXIT.OK;
}

function labelText(labels: Record<string, string>, skip: string[] = []): string {
  const parts = Object.entries(labels)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(' ') : '(no labels)';
}

function fmtSeconds(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(2)} ms`;
  return `${s.toFixed(3)} s`;
}

function fmtNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(6);
}

function summarise(f: MetricFamily): string {
  const head = `${f.name} (${f.type})${f.help ? `: ${f.help}` : ''}`;
  if (f.type === 'histogram') {
    const count = f.samples.filter((s) => s.name.endsWith('_count')).reduce((a, s) => a + s.value, 0);
    const sum = f.samples.filter((s) => s.name.endsWith('_sum')).reduce((a, s) => a + s.value, 0);
    const seconds = f.name.endsWith('_seconds');
    const q = (p: number) =>
      seconds ? fmtSeconds(histogramQuantile(f, p)) : fmtNumber(histogramQuantile(f, p) ?? NaN);
    return `${head}\n  count ${count}, mean ${count ? (seconds ? fmtSeconds(sum / count) : fmtNumber(sum / count)) : '-'}, p50 ${q(0.5)}, p99 ${q(0.99)}`;
  }
  const plain = f.samples.filter((s) => !/_(bucket|created)$/.test(s.name));
  const total = plain.reduce((a, s) => a + s.value, 0);
  const lines = [`${head}\n  total ${fmtNumber(total)}`];
  const labelled = plain
    .filter((s) => Object.keys(s.labels).length > 0 && s.value !== 0)
    .sort((a, b) => b.value - a.value);
  if (labelled.length > 0) {
    const shown = labelled.slice(0, MAX_BREAKDOWN);
    lines.push(
      table(
        ['  LABELS', 'VALUE'],
        shown.map((s) => [`  ${labelText(s.labels)}`, fmtNumber(s.value)]),
      )
        .split('\n')
        .slice(1)
        .join('\n'),
    );
    if (labelled.length > shown.length)
      lines.push(`  ... ${labelled.length - shown.length} more (baton metrics --raw)`);
  }
  return lines.join('\n');
}
