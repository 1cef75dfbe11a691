/**
 * baton as users run it: the daemon (`baton lb`, control/daemon) in the LB
 * namespace owns the datapath and serves the REST API on a unix socket; the
 * dispatcher (control/dispatcher) listens on the VIP, reads each new
 * connection's first request, takes a pre-connected back-end connection
 * from its pool and asks the daemon to splice the two. From then on the XDP
 * program rewrites every segment and no process touches the connection.
 *
 * Started before the other variants: the daemon attaches the XDP program to
 * the LB's interfaces, and it stays attached for every variant. A second
 * dispatcher of the same daemon asks over REST instead of the local handoff
 * channel, so the handoff benchmark shows both paths in one run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BatonClient, createClient } from '../../control/sdk/client.js';
import { type DaemonProc, startDaemon } from '../../lab/launch/daemon.js';
import { type DispatcherProc, startDispatcher } from '../../lab/launch/dispatcher.js';
import { type Testbed, VIP4 } from '../../lab/testbed/index.js';
import { BACKEND_PORT, BATON_FLOWS_CAPACITY } from '../profile.js';
import { type BatonVariant, CLOSE_GRACE_MS, groupMessages, type HandoffSample } from './baton.js';
import { VARIANT_PORTS, waitForHttp } from './variant.js';

/** Pre-connected back-end connections the dispatcher keeps, above the loads' concurrency. */
const DISPATCHER_IDLE = 16;
/** Where the second dispatcher (splices over REST) listens: the handoff benchmark runs it beside the channel's. */
export const REST_FRONT_END_PORT = 8004;

/** baton's variant, and the same daemon's second front end whose splices go over REST. */
export interface BatonDaemonVariant extends BatonVariant {
  rest: BatonVariant;
}

export async function startBatonDaemon(tb: Testbed): Promise<BatonDaemonVariant> {
  const lb = tb.node('lb');
  const daemon = await startDaemon(
    tb,
    'lb',
    lb.ifaces.map((i) => i.name),
    ['--table-capacity', String(BATON_FLOWS_CAPACITY), '--rate-limit', '0', '--metrics', 'off'],
  );
  const api = createClient({ socketPath: daemon.socketPath, timeoutMs: 10_000 });
  const started: DispatcherProc[] = [];
  try {
    const channel = await frontEnd(tb, daemon, api, VARIANT_PORTS.baton, 'channel', started);
    const rest = await frontEnd(tb, daemon, api, REST_FRONT_END_PORT, 'rest', started);
    return {
      ...channel,
      rest,
      rssBytes: () => daemon.rssBytes(),
      socketCount: () => daemon.socketCount(),
      async stop() {
        for (const fe of started) await fe.stop();
        api.close();
        await daemon.stop();
      },
    };
  } catch (e) {
    for (const fe of started) await fe.stop();
    api.close();
    await daemon.stop();
    throw e;
  }
}

/** One dispatcher on `port` whose splices take `handoff`; stopping it is the caller's (it goes into `started`). */
async function frontEnd(
  tb: Testbed,
  daemon: DaemonProc,
  api: BatonClient,
  port: number,
  handoff: 'channel' | 'rest',
  started: DispatcherProc[],
): Promise<BatonVariant> {
  const lb = tb.node('lb');
  const fe = await startDispatcher(tb, {
    listen: `${VIP4}:${port}`,
    pools: { web: { backends: [`${tb.node('backend1').v4}:${BACKEND_PORT}`], idle: DISPATCHER_IDLE } },
    routes: [{ pool: 'web' }],
    api: { socketPath: daemon.socketPath },
    handoff,
    // BENCH_LEG_PORTS=0: legs keep a placeholder socket in the daemon (the dispatcher's legPorts false), for A/B runs.
    ...(process.env.BENCH_LEG_PORTS === '0' ? { legPorts: false } : {}),
  });
  started.push(fe);
  const samples: HandoffSample[] = [];
  /** Dispatcher events already turned into samples or refusals. */
  let seen = 0;
  const refusals: string[] = [];
  const url = (path: string) => `http://${VIP4}:${port}${path}`;

  /**
   * After a load: one sample per splice the front end reported (its call,
   * and the daemon's own duration from the daemon's answer), then remove
   * the daemon's records (DELETE aborts; the connections are already
   * closed) so each load starts from an empty table. The front end's events
   * are the count: with leg ports the daemon reclaims finished connections
   * as it leases their ports again, so its list holds at most a range's
   * worth (~4,500), and counting it capped every row near 830/s.
   */
  const collectAndRelease = async () => {
    await sleep(CLOSE_GRACE_MS);
    for (const e of fe.events.slice(seen)) {
      if (e.event === 'spliced') samples.push({ totalMs: (e.daemonUs ?? Number.NaN) / 1000, frontEndMs: e.ms });
      else if (e.event === 'relayed') refusals.push(`${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.detail}`);
    }
    seen = fe.events.length;
    for (const s of await api.allSplices()) await api.deleteSplice(s.id).catch(() => {});
  };
  await waitForHttp(tb, url('/k1.bin'), `baton dispatcher (${handoff})`, fe.proc);
  await collectAndRelease();
  const how =
    handoff === 'channel'
      ? 'splices over the local handoff channel (descriptors passed with SCM_RIGHTS)'
      : 'splices over REST (POST /v1/splices, {pid, fd})';

  return {
    id: 'baton',
    title: handoff === 'channel' ? 'baton splice' : 'baton splice (REST)',
    describe: `baton lb daemon (XDP on ${lb.ifaces.map((i) => i.name).join(', ')}, API on a unix socket) + dispatcher on ${VIP4}:${port} (pool of ${DISPATCHER_IDLE} pre-connected back-end connections; ${how}); each new connection is spliced after its first request`,
    url,
    handoffs: () => samples,
    refusedCount: () => refusals.length,
    refusals: () => groupMessages(refusals),
    afterRun: collectAndRelease,
    stats: () => ({ splices: samples.length, refused: refusals.length }),
    cpuUs: () => {
      const d = daemon.cpuUs();
      const f = fe.cpuUs();
      return { ...(d === undefined ? {} : { daemon: d }), ...(f === undefined ? {} : { frontEnd: f }) };
    },
    stop: () => fe.stop(),
  };
}
