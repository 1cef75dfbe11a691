/**
 * Summarizes V8 CPU profiles (.cpuprofile, written by node --cpu-prof; see
 * BATON_CPU_PROF_DIR in lab/launch/baton-cli.ts): where a process spent its
 * samples, by function (self time) and by where the code lives (baton's
 * rooms, node_modules packages, Node's internals, native and GC).
 *
 *   node --import tsx lab/cpu-profile.ts [--top N] FILE.cpuprofile...
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a baton room (control/tcp), a package, node internals, or the runtime. */
export function codeArea(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const room = /\/(control|lab|bench|examples)\/([^/]+)\//.exec(url);
  if (room) return `${room[1]}/${room[2]}`;
  return basename(url);
}

/** Self time (ms) per function and per code area, from the samples and their time deltas. */
export function summarize(p: CpuProfile): {
  totalMs: number;
  byFunction: Map<string, number>;
  byArea: Map<string, number>;
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalMs = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    if (!n) return;
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    totalMs += ms;
    const f = n.callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    const fn = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    const area = codeArea(f.url, f.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
  });
  return { totalMs, byFunction, byArea };
}

function main(argv: string[]): void {
  let top = 25;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') top = Number(argv[++i]);
    else files.push(argv[i] as string);
  }
  if (files.length === 0) {
    process.stderr.write('usage: node --import tsx lab/cpu-profile.ts [--top N] FILE.cpuprofile...\n');
    process.exit(2);
  }
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const s = summarize(p);
    const busy = s.totalMs - (s.byArea.get('(idle)') ?? 0);
    const pct = (ms: number) => `${((100 * ms) / Math.max(busy, 1e-9)).toFixed(1)}%`.padStart(6);
    const sorted = (m: Map<string, number>) => [...m].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
    process.stdout.write(
      `${file}: ${(s.totalMs / 1000).toFixed(2)} s sampled, ${(busy / 1000).toFixed(2)} s busy (not idle)\n  by area:\n`,
    );
    for (const [k, ms] of sorted(s.byArea).slice(0, top))
      process.stdout.write(`  ${pct(ms)} ${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
    process.stdout.write('  by function (self):\n');
    for (const [k, ms] of sorted(s.byFunction).slice(0, top))
      process.stdout.write(`  ${pct(ms)} ${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Piped into head: stop quietly once the reader has had enough.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  main(process.argv.slice(2));
}
