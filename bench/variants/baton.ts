/**
 * baton splice: a front end on the VIP in the LB namespace reads each new
 * connection's first request, connects to the back end, and baton joins the
 * two (TCP_REPAIR capture, forwarding entries in the XDP program's table);
 * from then on the XDP program rewrites every segment and no userspace
 * process touches the connection.
 *
 * The front end is test/e2e/programs/frontend.ts driven by an in-process
 * Splicer (test/lib/frontend-driver.ts), as the e2e tests run it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Datapath } from '../../control/datapath/datapath.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { Splicer, type SpliceRecord } from '../../control/splice/splicer.js';
import { startFrontend } from '../../test/lib/frontend-driver.js';
import { VIP4, type Testbed } from '../../test/lib/testbed.js';
import { BACKEND_PORT } from '../profile.js';
import { type Variant, VARIANT_PORTS, waitForHttp } from './variant.js';

/**
 * After a load ends, how long the closing handshakes (FIN, last ACK) of its
 * connections may take through the datapath before their entries go.
 */
const CLOSE_GRACE_MS = 300;

export interface BatonVariant extends Variant {
  /** every splice made so far, in completion order (timings for the handoff histogram) */
  readonly splices: readonly SpliceRecord[];
  readonly failures: readonly string[];
  /** refusal messages with their numbers masked, counted: what went wrong, not which connection */
  refusals(): Record<string, number>;
}

function groupMessages(messages: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of messages) {
    const k = m.replace(/\d+/g, 'N');
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export async function startBaton(tb: Testbed, dp: Datapath): Promise<BatonVariant> {
  const port = VARIANT_PORTS.baton;
  const splicer = new Splicer(dp, createSocketOps());
  const fe = await startFrontend(tb, splicer, takeSocket, { ip: VIP4, port }, [`${tb.node('backend1').v4}:${BACKEND_PORT}`]);
  const url = (path: string) => `http://${VIP4}:${port}${path}`;
  // The first splice loads the timestamp probe; keep that out of the figures.
  await waitForHttp(tb, url('/k1.bin'), 'baton front end');
  /**
   * Entries of finished connections go after every run. Left in place, an
   * entry keyed by (back end -> LB address, ephemeral port) would catch the
   * next connection any LB process opens from that port to the back end.
   */
  const releaseAll = () => {
    for (const id of [...splicer.records.keys()]) splicer.remove(id);
  };
  return {
    id: 'baton',
    title: 'baton splice',
    describe: `front end on ${VIP4}:${port} (Node, one process) reads the first request, baton splices it to the back end; XDP forwards the rest`,
    url,
    splices: fe.splices,
    failures: fe.failures,
    async afterRun() {
      await sleep(CLOSE_GRACE_MS);
      releaseAll();
    },
    stats: () => ({ splices: fe.splices.length, refused: fe.failures.length, fallbacks: fe.fallbacks.length }),
    refusals: () => groupMessages(fe.failures),
    async stop() {
      fe.stop();
      await sleep(CLOSE_GRACE_MS);
      releaseAll();
    },
  };
}
