/**
 * baton splice with the e2e tests' pieces: a front end on the VIP in the LB
 * namespace (test/e2e/programs/frontend.ts) reads each new connection's
 * first request, connects to the back end, and an in-process Splicer
 * (test/lib/frontend-driver.ts) joins the two (TCP_REPAIR capture,
 * forwarding entries in the XDP program's table); from then on the XDP
 * program rewrites every segment and no process touches the connection.
 * The datapath is loaded here and attached to the LB's interfaces, where it
 * stays for every variant. (baton-daemon.ts is the same with the daemon and
 * the dispatcher users run.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { applyHostSettingsUnrecorded } from '../../control/daemon/host-settings.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { Splicer } from '../../control/splice/splicer.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { type Testbed, VIP4 } from '../../lab/testbed/index.js';
import { type FrontendDriver, startFrontend } from '../../test/lib/frontend-driver.js';
import { BACKEND_PORT, BATON_FLOWS_CAPACITY } from '../profile.js';
import { VARIANT_PORTS, type Variant, waitForHttp } from './variant.js';

/**
 * After a load ends, how long the closing handshakes (FIN, last ACK) of its
 * connections may take through the datapath before their entries go.
 */
export const CLOSE_GRACE_MS = 300;

/** One handoff's durations, milliseconds. */
export interface HandoffSample {
  /** the control plane's own (block -> release) */
  totalMs: number;
  /** the part spent waiting for both sockets to be quiet, when known */
  quiesceMs?: number;
  /** as the front end saw it (API round trip included), when it reports it */
  frontEndMs?: number;
}

export interface BatonVariant extends Variant {
  /** every handoff completed so far, in completion order (complete after afterRun) */
  handoffs(): readonly HandoffSample[];
  /** splices refused so far (the front end relayed those connections itself) */
  refusedCount(): number;
  /** refusal messages with their numbers masked, counted: what went wrong, not which connection */
  refusals(): Record<string, number>;
  /** resident memory of the process that splices (the daemon), bytes; absent when it is this process */
  rssBytes?(): number | undefined;
  /** sockets that process holds open */
  socketCount?(): number | undefined;
  /** CPU time used so far (microseconds) by the daemon and by this variant's front end, when they are processes of their own */
  cpuUs?(): { daemon?: number; frontEnd?: number };
}

export function groupMessages(messages: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of messages) {
    const k = m.replace(/\d+/g, 'N');
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export async function startBaton(tb: Testbed): Promise<BatonVariant> {
  const port = VARIANT_PORTS.baton;
  const dp = await Datapath.load({ flowsCapacity: BATON_FLOWS_CAPACITY });
  const lb = tb.node('lb');
  const splicer = new Splicer(dp, createSocketOps());
  let fe: FrontendDriver | undefined;
  const url = (path: string) => `http://${VIP4}:${port}${path}`;
  try {
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) dp.attach(i.ifindex);
      applyHostSettingsUnrecorded(lb.ifaces.map((i) => i.name)); // the namespace goes with the testbed
    });
    fe = await startFrontend(tb, splicer, takeSocket, { ip: VIP4, port }, [
      `${tb.node('backend1').v4}:${BACKEND_PORT}`,
    ]);
    // The first splice loads the socket probe; keep that out of the figures.
    await waitForHttp(tb, url('/k1.bin'), 'baton front end', fe.proc);
  } catch (e) {
    fe?.stop();
    dp.close();
    throw e;
  }
  const driver = fe;
  /**
   * Entries of finished connections go after every run. Left in place, an
   * entry keyed by (back end -> LB address, ephemeral port) would catch the
   * next connection any LB process opens from that port to the back end.
   */
  const releaseAll = async () => {
    await Promise.all([...splicer.records.keys()].map((id) => splicer.reclaim(id)));
  };
  return {
    id: 'baton',
    title: 'baton splice',
    describe: `e2e front end on ${VIP4}:${port} with an in-process Splicer, XDP on ${lb.ifaces.map((i) => i.name).join(', ')}; each new connection is spliced after its first request`,
    url,
    handoffs: () => driver.splices.map((s) => ({ totalMs: s.timings.totalMs, quiesceMs: s.timings.quiesceMs })),
    refusedCount: () => driver.failures.length,
    async afterRun() {
      await sleep(CLOSE_GRACE_MS);
      await releaseAll();
    },
    stats: () => ({
      splices: driver.splices.length,
      refused: driver.failures.length,
      fallbacks: driver.fallbacks.length,
    }),
    refusals: () => groupMessages(driver.failures),
    async stop() {
      driver.stop();
      await sleep(CLOSE_GRACE_MS);
      await releaseAll();
      dp.close();
    },
  };
}
