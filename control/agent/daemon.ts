/**
 * `baton agent`: configuration -> the secret -> the Agent's listeners; SIGTERM
 * and SIGINT stop taking blobs and apps (connections already handed to apps
 * are the apps' and keep working).
 */
import { ifindexOf, preparePinDir } from '../daemon/pins.js';
import { AgentDatapath } from '../datapath/agent-datapath.js';
import { Agent } from './agent.js';
import { agentHelp, loadAgentConfig } from './config.js';
import { readSecretFile } from './handshake.js';
import { dropHeld, FidReclaimer } from './reclaim.js';

/** How often finished connections' flow-id mappings are looked for. */
const RECLAIM_EVERY_MS = 1000;

export async function agentCommand(
  io: { out: (s: string) => void; err: (s: string) => void },
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(agentHelp());
    return 0;
  }
  const cfg = loadAgentConfig(argv, env);
  const secret = readSecretFile(cfg.peerSecretFile as string, '--peer-secret-file');
  // The datapath first: a blob with a flow-id mapping is only accepted once the program restores and holds.
  let dp: AgentDatapath | undefined;
  if (cfg.interfaces.length > 0) {
    preparePinDir(cfg.pinDir);
    dp = await AgentDatapath.load({ pinDir: cfg.pinDir });
    try {
      const dropped = dropHeld(dp.fids);
      if (dropped > 0)
        io.err(
          `${JSON.stringify({ time: new Date().toISOString(), event: 'agent_held_mappings_dropped', count: dropped })}\n`,
        );
      for (const ifname of cfg.interfaces) {
        const { reused } = dp.attachOrReuse(ifindexOf(ifname));
        io.err(
          `${JSON.stringify({ time: new Date().toISOString(), event: 'agent_xdp_attached', ifname, reused, mappings: dp.fids.size() })}\n`,
        );
      }
    } catch (e) {
      dp.close({ keepPinned: true });
      throw e;
    }
  }
  const agent = new Agent({
    ...(dp ? { fids: dp.fids, datapathCounters: () => (dp as AgentDatapath).readCounters() } : {}),
    secret,
    channel: cfg.listen,
    appSocket: cfg.appSocket,
    metrics: cfg.metrics,
    apps: cfg.apps,
    transparent: cfg.transparent,
  });
  await agent.start();
  const reclaim = dp ? new FidReclaimer(dp.fids, cfg.reclaimLingerMs) : undefined;
  const reclaimer = dp
    ? setInterval(() => {
        const r = reclaim as FidReclaimer;
        const n = r.tick();
        // `tracked`: the mappings the reclaimer knows of (as of its last full pass); counting the table would walk it.
        if (n > 0)
          io.err(
            `${JSON.stringify({ time: new Date().toISOString(), event: 'agent_fids_reclaimed', count: n, tracked: r.tracked })}\n`,
          );
      }, RECLAIM_EVERY_MS)
    : undefined;
  reclaimer?.unref();
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(reclaimer);
  await agent.close();
  // Links and mappings stay pinned: connections already handed to apps keep their flow-id restore.
  dp?.close({ keepPinned: true });
  return 0;
}
