/**
 * Renders results.md and the charts from a results.json, so the report can
 * be regenerated without rerunning the loads:
 *   node --import tsx bench/render.ts bench/results/<date>
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeCharts } from './charts.js';
import { renderReport } from './report.js';
import { RESULTS_SCHEMA, type Results } from './results.js';

export async function writeRendered(r: Results, dir: string): Promise<string[]> {
  writeFileSync(join(dir, 'results.md'), renderReport(r));
  return ['results.md', ...(await writeCharts(r, dir))];
}

export function readResults(dir: string): Results {
  const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
  if (r.schema !== RESULTS_SCHEMA)
    throw new Error(`${dir}/results.json has schema ${r.schema}; this renderer reads schema ${RESULTS_SCHEMA}`);
  return r;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: bench/render.ts <results directory>\n');
    process.exit(2);
  }
  const files = await writeRendered(readResults(dir), dir);
  process.stdout.write(`wrote ${files.map((f) => join(dir, f)).join(', ')}\n`);
}
