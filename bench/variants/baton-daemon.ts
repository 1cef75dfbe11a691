/**
 * baton as users run it: the daemon (`baton lb`, control/daemon) in the LB
 * namespace owns the datapath and serves the REST API on a unix socket; the
 * dispatcher (control/dispatcher) listens on the VIP, reads each new
 * connection's first request, takes a pre-connected back-end connection
 * from its pool and asks the daemon to splice the two. From then on the XDP
 * program rewrites every segment and no process touches the connection.
 *
 * Started before the other variants: the daemon attaches the XDP program to
 * the LB's interfaces, and it stays attached for every variant.
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../control/sdk/client.js';
import { startDaemon } from '../../test/cli/baton-proc.js';
import { ROOT } from '../../test/lib/env.js';
import { VIP4, type Testbed } from '../../test/lib/testbed.js';
import { BACKEND_PORT, BATON_FLOWS_CAPACITY } from '../profile.js';
import { type BatonVariant, CLOSE_GRACE_MS, groupMessages, type HandoffSample } from './baton.js';
import { VARIANT_PORTS, waitForHttp } from './variant.js';

/** Pre-connected back-end connections the dispatcher keeps, above the loads' concurrency. */
const DISPATCHER_IDLE = 16;
const DISPATCHER_MAIN = resolve(ROOT, 'control/dispatcher/main.ts');

interface SplicedEvent {
  event: 'spliced';
  id: string;
  ms: number;
  pooled: boolean;
}
interface RelayedEvent {
  event: 'relayed';
  code: string;
  reason?: string;
  detail: string;
}

export async function startBatonDaemon(tb: Testbed): Promise<BatonVariant> {
  const port = VARIANT_PORTS.baton;
  const lb = tb.node('lb');
  const daemon = await startDaemon(tb, 'lb', lb.ifaces.map((i) => i.name), ['--table-capacity', String(BATON_FLOWS_CAPACITY), '--rate-limit', '0', '--metrics', 'off']);
  let dispatcher: ChildProcess | undefined;
  const api = createClient({ socketPath: daemon.socketPath, timeoutMs: 10_000 });
  try {
    const config = {
      listen: `${VIP4}:${port}`,
      pools: { web: { backends: [`${tb.node('backend1').v4}:${BACKEND_PORT}`], idle: DISPATCHER_IDLE } },
      routes: [{ pool: 'web' }],
      api: { socketPath: daemon.socketPath },
    };
    const proc = tb.spawn('lb', process.execPath, ['--import', 'tsx', DISPATCHER_MAIN, '--config', JSON.stringify(config)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    dispatcher = proc;
    /** front end's view of each splice (API round trip included), by splice id, until the daemon's view is read */
    const frontEndMs = new Map<string, { ms: number; pooled: boolean }>();
    const samples: HandoffSample[] = [];
    const refusals: string[] = [];
    let ready: () => void = () => {};
    const readyP = new Promise<void>((r) => (ready = r));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      let e: { event?: string };
      try {
        e = JSON.parse(line) as { event?: string };
      } catch {
        return;
      }
      if (e.event === 'ready') ready();
      else if (e.event === 'spliced') {
        const s = e as SplicedEvent;
        frontEndMs.set(s.id, { ms: s.ms, pooled: s.pooled });
      } else if (e.event === 'relayed') {
        const r = e as RelayedEvent;
        refusals.push(`${r.code}${r.reason ? ` (${r.reason})` : ''}: ${r.detail}`);
      }
    });
    await Promise.race([readyP, sleep(15_000).then(() => Promise.reject(new Error('dispatcher did not report ready within 15 s')))]);
    const url = (path: string) => `http://${VIP4}:${port}${path}`;

    /**
     * After a load: read the daemon's duration of every splice, then remove
     * them all (DELETE aborts; the connections are already closed). Left in
     * place until the sweeper's grace ran out, an entry keyed by (back end ->
     * LB address, ephemeral port) would catch the next connection any LB
     * process opens from that port, the other variants' included.
     */
    const collectAndRelease = async () => {
      await sleep(CLOSE_GRACE_MS);
      const all = await api.allSplices();
      for (const s of all) {
        const fe = frontEndMs.get(s.id);
        frontEndMs.delete(s.id);
        samples.push({ totalMs: (s.durationUs ?? Number.NaN) / 1000, ...(fe ? { frontEndMs: fe.ms } : {}) });
      }
      for (const s of all) await api.deleteSplice(s.id).catch(() => {});
    };
    await waitForHttp(tb, url('/k1.bin'), 'baton dispatcher', proc);
    await collectAndRelease();

    return {
      id: 'baton',
      title: 'baton splice',
      describe: `baton lb daemon (XDP on ${lb.ifaces.map((i) => i.name).join(', ')}, API on a unix socket) + dispatcher on ${VIP4}:${port} (pool of ${DISPATCHER_IDLE} pre-connected back-end connections); each new connection is spliced after its first request`,
      url,
      handoffs: () => samples,
      refusedCount: () => refusals.length,
      refusals: () => groupMessages(refusals),
      afterRun: collectAndRelease,
      stats: () => ({ splices: samples.length, refused: refusals.length }),
      async stop() {
        proc.kill('SIGTERM');
        await sleep(100);
        api.close();
        await daemon.stop();
      },
    };
  } catch (e) {
    dispatcher?.kill('SIGTERM');
    api.close();
    await daemon.stop();
    throw e;
  }
}
