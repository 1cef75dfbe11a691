/** What the figures were measured on: machine, kernel, and the versions of everything in the path. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { ROOT } from '../lab/paths.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  /** systemd-detect-virt's answer, and whether the CPU reports running under a hypervisor */
  virtualization: string;
  versions: Record<string, string>;
  baton: { commit: string; dirty: boolean };
}

/** stdout and stderr of a command together (some tools print their version on stderr, wrk -v exits 1), '' if it cannot run. */
function outputOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  return r.error ? '' : `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

/** The first capture of `pick` in a command's output, or "unavailable". */
function version(cmd: string, args: string[], pick: RegExp): string {
  return pick.exec(outputOf(cmd, args))?.[1]?.trim() ?? 'unavailable';
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const hyper = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  const virt = outputOf('systemd-detect-virt', []).trim();
  return {
    cpu,
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    virtualization: [virt || 'unknown', hyper ? 'hypervisor flag set' : 'no hypervisor flag'].join(', '),
    versions: {
      node: process.version,
      haproxy: version('haproxy', ['-v'], /^HAProxy version (\S+)/m),
      nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
      clang: version('clang', ['--version'], /clang version (\S+)/),
      wrk: version('wrk', ['-v'], /^wrk (\S+)/m),
      curl: version('curl', ['--version'], /^curl (\S+)/m),
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not a template.
      libbpf: version('dpkg-query', ['-W', '-f', '${Version}', 'libbpf1'], /^(\S+)/),
    },
    baton: {
      commit: version('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], /^(\w+)/),
      dirty: outputOf('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']).trim() !== '',
    },
  };
}
