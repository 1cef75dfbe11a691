/** `baton doctor`: host checks, rendered as a list or JSON; exit 1 when any check fails. */
import { type Check, DEFAULT_PIN_DIR, runDoctor, runDoctorInNetns } from '../doctor/index.js';
import { type Io, printJson } from './io.js';
import { EXIT } from './usage.js';

export interface DoctorFlags {
  iface?: string[];
  'pin-dir'?: string;
  netns?: string;
}

const MARK: Record<Check['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export async function doctorCommand(io: Io, f: DoctorFlags): Promise<number> {
  const ifaces = f.iface ?? [];
  const pinDir = f['pin-dir'] ?? DEFAULT_PIN_DIR;
  const checks = f.netns
    ? runDoctorInNetns(f.netns, ['doctor', '--json', '--pin-dir', pinDir, ...ifaces.flatMap((i) => ['--iface', i])])
    : await runDoctor({ ifaces, pinDir });
  const count = (s: Check['status']) => checks.filter((c) => c.status === s).length;
  const summary = { ok: count('ok'), warn: count('warn'), fail: count('fail'), skip: count('skip') };
  if (io.json) {
    printJson(io, { ...(f.netns ? { netns: f.netns } : {}), checks, summary });
  } else {
    if (f.netns) io.out(`checks in network namespace ${f.netns}:`);
    const width = Math.max(...checks.map((c) => c.id.length));
    for (const c of checks) {
      io.out(`${MARK[c.status]}  ${c.id.padEnd(width)}  ${c.detail}`);
      if (c.fix && c.status !== 'ok') io.out(`${' '.repeat(width + 8)}-> ${c.fix}`);
    }
    if (ifaces.length === 0) io.out('\n(no --iface given: interface checks skipped; pass the interfaces `baton lb` will attach to)');
    io.out(
      summary.fail
        ? `\n${summary.fail} failed, ${summary.warn} warnings: fix the failures before starting \`baton lb\``
        : `\nno failures${summary.warn ? ` (${summary.warn} warnings)` : ''}: ready for \`baton lb${ifaces.map((i) => ` --iface ${i}`).join('')}\``,
    );
  }
  return summary.fail ? EXIT.FAILED : EXIT.OK;
}
