/** `baton doctor`: host checks, rendered as a list or JSON; exit 1 when any check fails. */
import { type Check, DEFAULT_PIN_DIR, runAgentDoctor, runDoctor, runDoctorInNetns } from '../doctor/index.js';
import { type Io, printJson } from './io.js';
import { EXIT, UsageError } from './usage.js';

export interface DoctorFlags {
  interface?: string[];
  /** alias of --interface */
  iface?: string[];
  'pin-dir'?: string;
  'state-dir'?: string;
  config?: string;
  netns?: string;
  /** lb (default) or agent */
  role?: string;
  /** --role agent: VIPs the back end serves (besides those of the agent's --app entries) */
  vip?: string[];
  transparent?: boolean;
}

/**
 * The interfaces and pin directory `baton lb` would use: the same flags,
 * BATON_* variables and config file, through the daemon's own loader. On a
 * host where that module cannot load (no libbpf), the flags alone; the
 * libbpf check then says why.
 */
type Objects = NonNullable<import('../doctor/index.js').DoctorOptions['objects']>;

async function targets(
  f: DoctorFlags,
  env: NodeJS.ProcessEnv,
): Promise<{ ifaces: string[]; pinDir: string; stateDir?: string; objects?: Objects }> {
  const ifaces = [...(f.interface ?? []), ...(f.iface ?? [])];
  const argv = [
    ...ifaces.flatMap((i) => ['--interface', i]),
    ...(f['pin-dir'] ? ['--pin-dir', f['pin-dir']] : []),
    ...(f['state-dir'] ? ['--state-dir', f['state-dir']] : []),
    ...(f.config ? ['--config', f.config] : []),
  ];
  let loadConfig: typeof import('../daemon/config.js').loadConfig;
  try {
    ({ loadConfig } = await import('../daemon/config.js'));
  } catch {
    return { ifaces, pinDir: f['pin-dir'] ?? DEFAULT_PIN_DIR };
  }
  const cfg = loadConfig(argv, env); // CONFIG_INVALID is the user's to fix: reported by main
  return {
    ifaces: cfg.interfaces,
    pinDir: cfg.pinDir,
    stateDir: cfg.stateDir,
    objects: { objectPath: cfg.objectPath, probeObjectPath: cfg.probeObjectPath, bpfDir: cfg.bpfDir },
  };
}

const MARK: Record<Check['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

/** --role agent: the agent's own settings (flags, BATON_AGENT_* and its --config), the VIPs of its --app entries. */
async function agentChecks(io: Io, f: DoctorFlags): Promise<{ checks: Check[]; ifaces: string[] }> {
  const [{ loadAgentSettings }, { parseVip }, { canonicalIp }] = await Promise.all([
    import('../agent/config.js'),
    import('../agent/reply.js'),
    import('../service/endpoint.js'),
  ]);
  const cfg = loadAgentSettings(
    [
      ...[...(f.interface ?? []), ...(f.iface ?? [])].flatMap((i) => ['--interface', i]),
      ...(f['pin-dir'] ? ['--pin-dir', f['pin-dir']] : []),
      ...(f.config ? ['--config', f.config] : []),
      ...(f.transparent ? ['--transparent'] : []),
    ],
    io.env,
  );
  const vips = new Set<string>();
  for (const v of f.vip ?? []) {
    const ip = canonicalIp(v)?.ip ?? parseVip(v)?.ip;
    if (!ip) throw new UsageError(`--vip ${JSON.stringify(v)} is not an IP address (or ip:port)`, 'doctor');
    vips.add(ip);
  }
  for (const key of Object.keys(cfg.apps)) {
    const ip = parseVip(key)?.ip;
    if (ip) vips.add(ip);
  }
  const checks = f.netns
    ? runDoctorInNetns(f.netns, [
        'doctor',
        '--json',
        '--role',
        'agent',
        '--pin-dir',
        cfg.pinDir,
        ...cfg.interfaces.flatMap((i) => ['--interface', i]),
        ...[...vips].flatMap((v) => ['--vip', v]),
        ...(cfg.transparent ? ['--transparent'] : []),
      ])
    : await runAgentDoctor({
        ifaces: cfg.interfaces,
        vips: [...vips],
        transparent: cfg.transparent,
        pinDir: cfg.pinDir,
      });
  return { checks, ifaces: cfg.interfaces };
}

export async function doctorCommand(io: Io, f: DoctorFlags): Promise<number> {
  const role = f.role ?? 'lb';
  if (role !== 'lb' && role !== 'agent')
    throw new UsageError(
      `--role ${JSON.stringify(role)}: use lb (the default) or agent (a migrate-mode back end)`,
      'doctor',
    );
  if (role === 'lb' && (f.vip || f.transparent))
    throw new UsageError('--vip and --transparent are for --role agent', 'doctor');
  if (role === 'agent') {
    const { checks, ifaces } = await agentChecks(io, f);
    return render(io, f, checks, ifaces, 'baton agent');
  }
  const { ifaces, pinDir, stateDir, objects } = await targets(f, io.env);
  const checks = f.netns
    ? runDoctorInNetns(f.netns, [
        'doctor',
        '--json',
        '--pin-dir',
        pinDir,
        ...(stateDir ? ['--state-dir', stateDir] : []),
        ...ifaces.flatMap((i) => ['--interface', i]),
      ])
    : await runDoctor({ ifaces, pinDir, ...(stateDir ? { stateDir } : {}), ...(objects ? { objects } : {}) });
  return render(io, f, checks, ifaces, 'baton lb');
}

function render(io: Io, f: DoctorFlags, checks: Check[], ifaces: string[], daemon: string): number {
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
    if (ifaces.length === 0)
      io.out(
        `\n(no interface configured: interface checks skipped; pass the ones \`${daemon}\` will attach to with --interface)`,
      );
    io.out(
      summary.fail
        ? `\n${summary.fail} failed, ${summary.warn} warnings: fix the failures before starting \`${daemon}\``
        : `\nno failures${summary.warn ? ` (${summary.warn} warnings)` : ''}: ready for \`${daemon}${ifaces.map((i) => ` --interface ${i}`).join('')}\``,
    );
  }
  return summary.fail ? EXIT.FAILED : EXIT.OK;
}
