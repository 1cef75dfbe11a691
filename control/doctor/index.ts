/**
 * `baton doctor`: runs every check in this process's network namespace, or
 * re-runs itself inside another (`--netns`) through `ip netns exec`, which
 * is how the daemon would be started there too (and, like it, sees a fresh
 * /sys without bpffs unless one is mounted).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  checkAgentConntrack,
  checkAgentRpFilter,
  checkAgentXdp,
  checkArp,
  checkVips,
  loAddresses,
} from './agent-checks.js';
import type { Check } from './check.js';
import { checkBpffs, checkBtf, checkKernel, checkLibbpf, checkObjects, checkPrivileges } from './host-checks.js';
import { checkHostSettings, checkInterface } from './interface-checks.js';
import { checkConntrack, checkForwarding, checkTcpOptions, checkTcpRepair } from './tcp-checks.js';

export type { Check, CheckStatus } from './check.js';

/**
 * Where `baton lb` pins maps and links unless told otherwise. The source of
 * truth is control/daemon/config.ts (OPTIONS.pinDir); this copy serves only
 * hosts where that module cannot load, and a unit test keeps the two equal.
 */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/baton';

export interface DoctorOptions {
  ifaces?: string[];
  pinDir?: string;
  /** config.ts stateDir; undefined: the daemon's configuration could not load, the host-settings check is skipped */
  stateDir?: string;
  /** Object overrides from the daemon's configuration (--object, --probe-object, --bpf-dir). */
  objects?: { objectPath?: string | undefined; probeObjectPath?: string | undefined; bpfDir?: string | undefined };
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<Check[]> {
  const checks: Check[] = [
    checkKernel(),
    checkBtf(),
    checkBpffs(opts.pinDir ?? DEFAULT_PIN_DIR),
    checkPrivileges(),
    await checkLibbpf(),
    checkObjects({
      datapath: { path: opts.objects?.objectPath, dir: opts.objects?.bpfDir },
      probe: { path: opts.objects?.probeObjectPath, dir: opts.objects?.bpfDir },
    }),
  ];
  for (const dev of opts.ifaces ?? []) checks.push(...checkInterface(dev));
  checks.push(...(await checkHostSettings(opts.ifaces ?? [], opts.pinDir ?? DEFAULT_PIN_DIR, opts.stateDir)));
  checks.push(checkForwarding(), checkConntrack(), await checkTcpRepair(), checkTcpOptions());
  return checks;
}

export interface AgentDoctorOptions {
  /** interfaces the agent's XDP program attaches to (its --interface) */
  ifaces: string[];
  /** VIPs the back end serves (canonical addresses, no ports) */
  vips: string[];
  /** the agent restores with IP_TRANSPARENT: the VIPs need not be on lo */
  transparent: boolean;
  /** the agent's --pin-dir */
  pinDir: string;
  bpfDir?: string | undefined;
}

/** `baton doctor --role agent`: the checks for a back end in migrate mode (agent-checks.ts). */
export async function runAgentDoctor(opts: AgentDoctorOptions): Promise<Check[]> {
  const onLo = loAddresses();
  const checks: Check[] = [
    checkKernel(),
    checkBtf(),
    checkBpffs(opts.pinDir),
    checkPrivileges('agent'),
    await checkLibbpf(),
    checkObjects({ agent: { dir: opts.bpfDir } }, ['agent']),
    ...checkVips(opts.vips, onLo, opts.transparent),
    ...checkArp(
      opts.ifaces,
      opts.vips.some((v) => !v.includes(':') && onLo?.has(v)),
    ),
  ];
  for (const dev of opts.ifaces) checks.push(...(await checkAgentXdp(dev)));
  checks.push(...checkAgentRpFilter(opts.ifaces), checkAgentConntrack(), await checkTcpRepair());
  return checks;
}

/**
 * Runs `argv` (a `baton doctor ... --json` command line for this same
 * entry point) inside network namespace `netns` and returns its checks.
 */
export function runDoctorInNetns(netns: string, doctorArgv: string[]): Check[] {
  // The CLI entry beside this module: control/cli.ts under tsx, dist/control/cli.js when built.
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(fromSource ? '../cli.ts' : '../cli.js', import.meta.url));
  const node = [process.execPath, ...(fromSource ? ['--import', 'tsx'] : []), entry];
  const r = spawnSync('ip', ['netns', 'exec', netns, ...node, ...doctorArgv], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
  });
  if (r.error) throw new Error(`ip netns exec ${netns} failed: ${r.error.message} (is iproute2 installed?)`);
  try {
    return (JSON.parse(r.stdout) as { checks: Check[] }).checks;
  } catch {
    const why = r.stderr.trim() || r.stdout.trim() || `exit code ${r.status}`;
    throw new Error(
      `could not run the checks in network namespace ${JSON.stringify(netns)}: ${why}${/No such file|Cannot open network namespace/.test(why) ? ' (ip netns list shows the names)' : ''}`,
    );
  }
}
