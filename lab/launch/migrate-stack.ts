/**
 * Migrate mode as users deploy it, on the routed bed (lab/testbed/routed.ts):
 * `baton agent` on both back ends, a Node http.Server app behind the SDK on
 * each (also listening on the back end's own address, where the dispatcher
 * relays what it could not migrate), `baton lb --agent ...` and the
 * dispatcher with a migrate pool on the VIP. Shared by the e2e test, the
 * demo and the benchmarks.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { HandoffPath } from '../../control/dispatcher/config.js';
import { withNetns } from '../../control/net/netns.js';
import { type AgentConnection, connectAgent } from '../../control/sdk/agent.js';
import { SO_REUSEADDR, SOL_SOCKET } from '../../control/tcp/kernel.js';
import { bindTo, listenOn, openTcpSocket, setInt } from '../../control/tcp/socket.js';
import { ROUTED_BACKENDS, type Testbed, VIP4 } from '../testbed/index.js';
import { type AgentProc, startAgentIn } from './agent.js';
import { type DaemonProc, startDaemon } from './daemon.js';
import { type DispatcherProc, startDispatcher } from './dispatcher.js';

export const MIGRATE_AGENT_PORT = 7400;
export type RoutedBackend = (typeof ROUTED_BACKENDS)[number]['node'];

export interface MigrateStack {
  daemon: DaemonProc;
  dispatcher: DispatcherProc;
  agents: Map<RoutedBackend, AgentProc>;
  apps: Map<RoutedBackend, http.Server>;
  /** (Re)starts the agent on `b` (after agents.get(b).stop()). */
  startAgent(b: RoutedBackend): Promise<void>;
  /** Stops and starts `baton lb` again, on the same API socket (the dispatcher's). */
  restartLb(): Promise<void>;
  /** Stops the dispatcher and starts one that asks baton over `handoff` (the local channel or REST). */
  restartDispatcher(handoff: HandoffPath): Promise<void>;
  close(): Promise<void>;
}

export interface MigrateStackOptions {
  /** Each back end's request handler (the app). */
  serve: (backend: RoutedBackend) => http.RequestListener;
  /** The served port, on the VIP and on each back end's address (default 80). */
  port?: number;
  /** The back ends in the dispatcher's migrate pool (default both; agents and apps run on both either way). */
  pool?: RoutedBackend[];
  /** How the dispatcher asks baton (default: its own default, the local handoff channel). */
  handoff?: HandoffPath;
}

export async function startMigrateStack(tb: Testbed, dir: string, opts: MigrateStackOptions): Promise<MigrateStack> {
  const port = opts.port ?? 80;
  const secretFile = join(dir, 'peer.secret');
  writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const appSocket = (b: RoutedBackend) => join(dir, `${b}.sock`);
  const agents = new Map<RoutedBackend, AgentProc>();
  const apps = new Map<RoutedBackend, http.Server>();
  const sdks: AgentConnection[] = [];
  const startAgent = async (b: RoutedBackend) => {
    const addr = ROUTED_BACKENDS.find((x) => x.node === b) as (typeof ROUTED_BACKENDS)[number];
    agents.set(
      b,
      await startAgentIn(tb, b, { listen: `${addr.ip}:${MIGRATE_AGENT_PORT}`, secretFile, appSocket: appSocket(b) }),
    );
  };
  const lb = tb.node('lb');
  const startLb = () =>
    startDaemon(
      tb,
      'lb',
      lb.ifaces.map((i) => i.name),
      [
        ...ROUTED_BACKENDS.flatMap((b) => ['--agent', `${b.ip}:${MIGRATE_AGENT_PORT}`]),
        '--agent-secret-file',
        secretFile,
        '--migrate-address',
        lb.v4,
      ],
      { socketPath: join(dir, 'lb-api.sock') },
    );
  const startFrontEnd = (handoff: HandoffPath | undefined) =>
    startDispatcher(tb, {
      listen: `${VIP4}:${port}`,
      pools: {
        app: {
          mode: 'migrate',
          backends: ROUTED_BACKENDS.filter((b) => opts.pool?.includes(b.node) ?? true).map((b) => `${b.ip}:${port}`),
          agentPort: MIGRATE_AGENT_PORT,
        },
      },
      routes: [{ pool: 'app' }],
      api: { socketPath: join(dir, 'lb-api.sock') },
      ...(handoff ? { handoff } : {}),
    });
  const stack: Partial<MigrateStack> & { agents: typeof agents; apps: typeof apps } = { agents, apps };
  const close = async () => {
    await stack.dispatcher?.stop();
    await stack.daemon?.stop();
    for (const a of agents.values()) await a.stop();
    for (const s of sdks) await s.close().catch(() => {});
    for (const a of apps.values()) a.close();
  };
  try {
    for (const { node } of ROUTED_BACKENDS) await startAgent(node);
    for (const { node, ip } of ROUTED_BACKENDS) {
      const app = http.createServer(opts.serve(node));
      app.keepAliveTimeout = 60_000; // connections stay open across restarts in the tests
      apps.set(node, app);
      const sdk = await connectAgent({ socketPath: appSocket(node) });
      sdks.push(sdk);
      await sdk.attach(app, { vip: `${VIP4}:${port}` });
      // The same app on the back end's own address: where the dispatcher relays what it could not migrate.
      const fd = withNetns(tb.ns(node), () => {
        const l = openTcpSocket(4);
        setInt(l, SOL_SOCKET, SO_REUSEADDR, 1, 'listen');
        bindTo(l, { ip, port }, 4);
        listenOn(l, 511);
        return l;
      });
      await new Promise<void>((r) => app.listen({ fd }, r));
    }
    stack.daemon = await startLb();
    stack.dispatcher = await startFrontEnd(opts.handoff);
    // The LB's FIB lookups toward the back ends need neighbour entries.
    for (const b of ROUTED_BACKENDS) await tb.exec('lb', 'ping', ['-c', '1', '-W', '2', b.ip], { timeoutMs: 5000 });
  } catch (e) {
    await close();
    throw e;
  }
  return Object.assign(stack as MigrateStack, {
    startAgent,
    close,
    async restartLb() {
      await stack.daemon?.stop();
      stack.daemon = await startLb();
    },
    async restartDispatcher(handoff: HandoffPath) {
      await stack.dispatcher?.stop();
      stack.dispatcher = await startFrontEnd(handoff);
    },
  });
}
