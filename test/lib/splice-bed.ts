/**
 * The in-process splice testbed of the end-to-end tests: a star topology
 * with a VIP, baton's datapath attached on the LB's interfaces, nginx on each
 * back end, and the test front end (test/e2e/programs/frontend.ts) whose
 * splice requests a Splicer in this process answers.
 */
import { applyHostSettingsUnrecorded } from '../../control/daemon/host-settings.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { DEFAULT_LEG_PORTS, reserveLegPorts } from '../../control/splice/leg-ports.js';
import { Splicer } from '../../control/splice/splicer.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { type FrontendDriver, startFrontend } from './frontend-driver.js';
import { type NginxBackend, startNginx } from './nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4, VIP6 } from './testbed.js';

export interface SpliceBedOptions {
  backends: number;
  /** Files each back end's nginx serves (name -> size or content), or a function of the node name. */
  files: Record<string, number | string> | ((node: string) => Record<string, number | string>);
  /** Back ends the front end splices to, in turn (default: backend1). */
  frontendBackends?: string[];
  flowsCapacity?: number;
  /** IP version of the VIP and of the back-end connections (default 4). */
  family?: 4 | 6;
}

export interface SpliceBed {
  tb: Testbed;
  dp: Datapath;
  splicer: Splicer;
  fe: FrontendDriver;
  nginx: Record<string, NginxBackend>;
  destroy(): Promise<void>;
}

export const BACKEND_PORT = 8080;

export async function startSpliceBed(opts: SpliceBedOptions): Promise<SpliceBed> {
  const tb = await createTestbed(starTopology({ backends: opts.backends, vip: true }), {
    passXdp: (node) => node !== 'lb',
  });
  const nginx: Record<string, NginxBackend> = {};
  let dp: Datapath | undefined;
  let fe: FrontendDriver | undefined;
  const destroy = async () => {
    fe?.stop();
    for (const n of Object.values(nginx)) await n.stop();
    dp?.close();
    await tb.destroy();
  };
  try {
    const d = await Datapath.load({ flowsCapacity: opts.flowsCapacity ?? 1024 });
    dp = d;
    const lb = tb.node('lb');
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) d.attach(i.ifindex);
      // The namespace goes with the testbed: nothing to record or restore.
      applyHostSettingsUnrecorded(lb.ifaces.map((i) => i.name));
      reserveLegPorts(DEFAULT_LEG_PORTS);
    });
    for (let k = 1; k <= opts.backends; k++) {
      const node = `backend${k}`;
      nginx[node] = await startNginx(
        tb,
        node,
        BACKEND_PORT,
        typeof opts.files === 'function' ? opts.files(node) : opts.files,
      );
    }
    const splicer = new Splicer(d, createSocketOps(), { legPorts: DEFAULT_LEG_PORTS }); // reserved above
    const v6 = opts.family === 6;
    const targets = (opts.frontendBackends ?? ['backend1']).map((n) =>
      v6 ? `[${tb.node(n).v6}]:${BACKEND_PORT}` : `${tb.node(n).v4}:${BACKEND_PORT}`,
    );
    // Back-end legs from the splicer's leg range (no socket held once spliced), from the LB's address on each link.
    const legLocal = new Map(lb.ifaces.map((i) => [v6 ? i.peer.v6 : i.peer.v4, v6 ? i.v6 : i.v4]));
    fe = await startFrontend(tb, splicer, takeSocket, { ip: v6 ? VIP6 : VIP4, port: 80 }, targets, {
      legLocalIp: (ip) => legLocal.get(ip),
    });
    return { tb, dp: d, splicer, fe, nginx, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}
