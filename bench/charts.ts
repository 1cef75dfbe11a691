/**
 * SVG charts from results.json, drawn with Vega-Lite compiled to Vega and
 * rendered headless (Vega's SVG renderer needs no canvas or browser).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import { compile } from 'vega-lite';
import { DATAPATH_PATH_SHORT, DATAPATH_PATHS } from './datapath.js';
import { HANDOFF_BUCKETS_MS } from './handoff.js';
import { CHART_FILES, TARGETS } from './report.js';
import { cell, type Results, ratio } from './results.js';
import { VARIANT_ORDER } from './variants/variant.js';

const WIDTH = 640;
const HEIGHT = 260;
/** Text is measured without a canvas (estimated widths), so no label limits: nothing gets cut short. */
const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 0 },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'bottom', labelLimit: 0, titleLimit: 0 },
  title: { fontSize: 14 },
} as const;

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

type WorkloadMeta = Results['workloads'][number];
type VariantMeta = Results['variants'][number];

function variantValues(r: Results, value: (w: WorkloadMeta, v: VariantMeta) => number) {
  const variants = VARIANT_ORDER.flatMap((id) => r.variants.filter((v) => v.id === id));
  const values = r.workloads
    .flatMap((w) => variants.map((v) => ({ workload: w.short, variant: v.title, value: value(w, v) })))
    .filter((d) => Number.isFinite(d.value));
  const color = { field: 'variant', type: 'nominal' as const, sort: variants.map((v) => v.title), title: null };
  return { variants, values, color };
}

/** Bars grouped by workload, one per variant, on one scale (ratios), with a dashed reference line. */
function groupedBars(
  r: Results,
  title: string,
  yTitle: string,
  value: (w: WorkloadMeta, v: VariantMeta) => number,
  rule: number,
): TopLevelSpec {
  const { variants, values, color } = variantValues(r, value);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    config: CONFIG,
    data: { values },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x: {
            field: 'workload',
            type: 'nominal',
            sort: r.workloads.map((w) => w.short),
            title: null,
            axis: { labelAngle: 0 },
          },
          xOffset: { field: 'variant', type: 'nominal', sort: variants.map((v) => v.title) },
          y: { field: 'value', type: 'quantitative', title: yTitle },
          color,
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 4], color: '#444' }, encoding: { y: { datum: rule } } },
    ],
  } as TopLevelSpec;
}

/** One small panel per workload, each with its own scale: absolute figures that differ by orders of magnitude between workloads. */
function panels(
  r: Results,
  title: string,
  yTitle: string,
  value: (w: WorkloadMeta, v: VariantMeta) => number,
): TopLevelSpec {
  const { variants, values, color } = variantValues(r, value);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    background: 'white',
    config: CONFIG,
    data: { values },
    facet: {
      column: {
        field: 'workload',
        type: 'nominal',
        sort: r.workloads.map((w) => w.short),
        title: null,
        header: { labelFontSize: 11 },
      },
    },
    spec: {
      width: Math.floor(WIDTH / r.workloads.length) - 16,
      height: HEIGHT - 40,
      mark: 'bar',
      encoding: {
        x: { field: 'variant', type: 'nominal', sort: variants.map((v) => v.title), axis: null },
        y: { field: 'value', type: 'quantitative', title: yTitle },
        color,
      },
    },
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

export function chartSpecs(r: Results): Record<keyof typeof CHART_FILES, TopLevelSpec> {
  const sizeLabel = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
  const sizes = [...new Set(r.datapath.rows.map((d) => d.connections))];
  const buckets = [...HANDOFF_BUCKETS_MS.map((b) => `≤ ${b}`), `> ${HANDOFF_BUCKETS_MS.at(-1)}`];
  const runLabel = (h: Results['handoff'][number]) =>
    `${h.concurrency === 1 ? 'sequential' : `${h.concurrency} at once`}${h.path ? ` (${h.path === 'rest' ? 'REST' : 'channel'})` : ''}`;
  const handoffValues = r.handoff.flatMap((h) => {
    const total = h.histogram.reduce((a, b) => a + b.count, 0) || 1;
    return h.histogram.map((b, i) => ({ bucket: buckets[i], run: runLabel(h), share: (100 * b.count) / total }));
  });
  return {
    throughput: groupedBars(
      r,
      `Requests/s relative to plain routing (${r.date}, ${r.machine.cores} cores)`,
      'x plain routing',
      (w, v) => ratio(r, w.id, v.id, 'plain'),
      1,
    ),
    latency: panels(
      r,
      'p99 latency per request (per download for 64 MiB)',
      'p99 ms',
      (w, v) => (cell(r, w.id, v.id)?.summary.p99Us ?? Number.NaN) / 1000,
    ),
    cpu: panels(
      r,
      'Whole-machine CPU per request (per download for 64 MiB)',
      'CPU µs per request',
      (w, v) => cell(r, w.id, v.id)?.summary.cpuUsPerRequest ?? Number.NaN,
    ),
    datapath: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Datapath ns per packet by path and table size (goal ≤ ${TARGETS.rewriteNsPerPacket} ns for rewrites)`,
      width: WIDTH,
      height: HEIGHT,
      background: 'white',
      config: CONFIG,
      data: {
        values: r.datapath.rows.map((d) => ({
          path: DATAPATH_PATH_SHORT[d.path],
          connections: sizeLabel(d.connections),
          ns: d.nsPerPacket,
        })),
      },
      layer: [
        {
          mark: 'bar',
          encoding: {
            x: {
              field: 'path',
              type: 'nominal',
              sort: DATAPATH_PATHS.map((p) => DATAPATH_PATH_SHORT[p]),
              title: null,
              axis: { labelAngle: 0 },
            },
            xOffset: { field: 'connections', type: 'nominal', sort: sizes.map(sizeLabel) },
            y: { field: 'ns', type: 'quantitative', title: 'ns per packet' },
            color: { field: 'connections', type: 'nominal', sort: sizes.map(sizeLabel), title: 'connections in table' },
          },
        },
        {
          mark: { type: 'rule', strokeDash: [4, 4], color: '#444' },
          encoding: { y: { datum: TARGETS.rewriteNsPerPacket } },
        },
      ],
    } as TopLevelSpec,
    handoff: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Leg (splice) duration',
      width: WIDTH,
      height: HEIGHT,
      background: 'white',
      config: CONFIG,
      data: { values: handoffValues },
      mark: 'bar',
      encoding: {
        x: { field: 'bucket', type: 'ordinal', sort: buckets, title: 'milliseconds', axis: { labelAngle: 0 } },
        xOffset: {
          field: 'run',
          type: 'nominal',
          sort: r.handoff.map(runLabel),
        },
        y: { field: 'share', type: 'quantitative', title: '% of handoffs' },
        color: {
          field: 'run',
          type: 'nominal',
          sort: r.handoff.map(runLabel),
          title: null,
        },
      },
    } as TopLevelSpec,
  };
}

/** Writes every chart into `dir`; returns the file names. */
export async function writeCharts(r: Results, dir: string): Promise<string[]> {
  const specs = chartSpecs(r);
  const written: string[] = [];
  for (const [name, spec] of Object.entries(specs) as Array<[keyof typeof CHART_FILES, TopLevelSpec]>) {
    writeFileSync(join(dir, CHART_FILES[name]), await renderSvg(spec));
    written.push(CHART_FILES[name]);
  }
  return written;
}
