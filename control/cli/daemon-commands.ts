/**
 * `baton lb` and `baton down` run control/daemon in this process. Imported
 * lazily: the daemon pulls in fastify, prom-client and the libbpf binding,
 * which the other commands (and hosts that only query the API) do not need.
 */
import type { RestoreAction } from '../daemon/host-settings-plan.js';
import { type Io, printJson } from './io.js';
import { EXIT } from './usage.js';

export async function lbCommand(io: Io, argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    const { configHelp } = await import('../daemon/config.js');
    io.out(
      `${configHelp()}\n\nExamples:\n  baton lb --interface eth0 --interface eth1\n  baton lb -i eth0 --api unix:/run/baton/api.sock --token "$(cat /etc/baton/token)"\n  BATON_CONFIG=/etc/baton/lb.json baton lb\n\nBefore the first start: baton doctor --interface eth0. Stop with SIGTERM (the datapath stays attached and\nspliced connections keep flowing; a restart adopts them); remove everything with baton down.`,
    );
    return EXIT.OK;
  }
  const { runDaemon } = await import('../daemon/daemon.js');
  // It serves until SIGTERM/SIGINT (closeWithGrace exits the process); returning leaves the listeners running.
  await runDaemon(argv, io.env, { handleSignals: true });
  return EXIT.OK;
}

/** How `baton down` reports each host setting it had changed (host-settings.ts RestoreAction). */
const RESTORE_TEXT: Record<RestoreAction, (old: string, set: string, current: string | undefined) => string> = {
  restore: (old, set) => `restored to ${old} (baton had set ${set})`,
  unchanged: (old) => `already back at ${old}`,
  kept: (old, set, current) => `left at ${current}: changed since baton set ${set} (it was ${old})`,
  gone: () => 'interface gone: nothing to restore',
  replaced: () => "interface recreated since: its value is not baton's, left as it is",
};

export async function downCommand(io: Io, argv: string[]): Promise<number> {
  const { loadConfig, configHelp } = await import('../daemon/config.js');
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`Usage: baton down [--pin-dir <dir>] [--config <file>] [--json]

Detaches every XDP link \`baton lb\` pinned under the pin directory and removes its
pinned maps: every spliced connection stops being forwarded (their clients see
resets or time out). Then restores the host settings (sysctls) baton lb changed,
from the record in the state directory; a value changed since is left alone.
Stop the daemon first (SIGTERM). Talks to: the kernel (bpffs, procfs).
Takes the same settings as baton lb (only the pin and state directories matter):

${configHelp()
  .split('\n')
  .filter((l) =>
    /pin-dir|BATON_PIN_DIR|bpffs directory|state-dir|BATON_STATE_DIR|records the host settings|--config|BATON_CONFIG|JSON object/.test(
      l,
    ),
  )
  .join('\n')}`);
    return EXIT.OK;
  }
  const { teardown } = await import('../daemon/daemon.js');
  const args = argv.filter((a) => a !== '--json');
  const cfg = loadConfig(args, io.env);
  const r = teardown(cfg);
  if (io.json) {
    printJson(io, {
      pinDir: cfg.pinDir,
      detached: r.detached,
      unpinned: r.unpinned,
      sysctls: r.sysctls.map((s) => ({
        name: s.entry.name,
        action: s.action,
        current: s.current ?? null,
        old: s.entry.old,
        set: s.entry.set,
      })),
    });
    return EXIT.OK;
  }
  if (r.detached.length === 0 && r.unpinned.length === 0)
    io.out(`nothing pinned under ${cfg.pinDir}: baton is not attached here`);
  else
    io.out(
      `baton removed from ${cfg.pinDir}: XDP detached from ifindex ${r.detached.join(', ') || '(none)'}; ${r.unpinned.length} pinned map(s) removed`,
    );
  for (const s of r.sysctls)
    io.out(`  ${s.entry.name}: ${RESTORE_TEXT[s.action](s.entry.old, s.entry.set, s.current)}`);
  return EXIT.OK;
}

/** `baton agent down` (control/agent/down.ts): what `baton down` is for the LB, for a back end's agent. */
export async function agentDownCommand(io: Io, argv: string[]): Promise<number> {
  const { agentDownHelp, loadAgentSettings } = await import('../agent/config.js');
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(agentDownHelp());
    return EXIT.OK;
  }
  const { describeTeardown, teardownAgent } = await import('../agent/down.js');
  const cfg = loadAgentSettings(
    argv.filter((a) => a !== '--json'),
    io.env,
  );
  const r = teardownAgent({ pinDir: cfg.pinDir, appSocket: cfg.appSocket });
  if (io.json) printJson(io, r);
  else io.out(describeTeardown(r));
  return EXIT.OK;
}
