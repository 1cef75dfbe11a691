/**
 * Several LBs as users run them (issue 12), on the ECMP bed
 * (lab/testbed/ecmp.ts): a real redis-server in the router namespace, one
 * `baton lb --store redis://...` per LB joining the cluster, and a
 * dispatcher on each LB splicing the VIP to the back ends' nginx. Shared by
 * the demo's cluster block and the cluster benchmark.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseExposition, sumSamples } from '../../control/sdk/metrics.js';
import { type EcmpBed, VIP4 } from '../testbed/index.js';
import { batonIn } from './baton-cli.js';
import { type DaemonProc, startDaemon } from './daemon.js';
import { type DispatcherProc, startDispatcher } from './dispatcher.js';

export const CLUSTER_METRICS = '127.0.0.1:9300';
export const REDIS_PORT = 6379;

export interface ClusterStack {
  /** redis://<router's address toward lb1>:6379 */
  store: string;
  daemons: Map<string, DaemonProc>;
  dispatchers: Map<string, DispatcherProc>;
  /** The LB's /metrics, parsed. */
  scrape(lb: string): Promise<ReturnType<typeof parseExposition>>;
  /** The sum of a metric's samples matching `labels` at `lb`. */
  metric(lb: string, name: string, labels?: Record<string, string>): Promise<number>;
  /** Stops dispatchers, daemons and Redis; `baton down` on each LB. */
  close(): Promise<void>;
}

/** `backends`: "ip:port" of the back ends' servers every dispatcher splices to. */
export async function startClusterStack(bed: EcmpBed, backends: string[]): Promise<ClusterStack> {
  const tb = bed.tb;
  const daemons = new Map<string, DaemonProc>();
  const dispatchers = new Map<string, DispatcherProc>();
  let redis: ChildProcess | undefined;
  const close = async () => {
    for (const d of dispatchers.values()) await d.stop().catch(() => {});
    for (const d of daemons.values()) await d.stop().catch(() => {});
    if (redis?.pid) process.kill(-redis.pid, 'SIGTERM');
    for (const lb of bed.lbs) await batonIn(tb, lb, ['down']).catch(() => {});
  };
  const redisAddr = tb.iface(bed.lbs[0] as string, 'router').peer.v4;
  const store = `redis://${redisAddr}:${REDIS_PORT}`;
  try {
    redis = tb.spawn(
      'router',
      'redis-server',
      ['--port', String(REDIS_PORT), '--bind', redisAddr, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      { stdio: 'ignore' },
    );
    for (let i = 0; ; i++) {
      const r = await tb.exec(bed.lbs[0] as string, 'bash', ['-c', `exec 3<>/dev/tcp/${redisAddr}/${REDIS_PORT}`], {
        check: false,
      });
      if (r.code === 0) break;
      if (i > 100) throw new Error('redis-server did not answer within 5 s');
      await sleep(50);
    }
    for (const lb of bed.lbs) {
      const d = await startDaemon(
        tb,
        lb,
        tb.node(lb).ifaces.map((i) => i.name),
        // metrics on the LB's loopback (each LB is its own namespace)
        [
          '--store',
          store,
          '--cluster-id',
          lb,
          '--cluster-address',
          bed.lbAddress(lb, 4),
          '--vip',
          VIP4,
          '--metrics',
          CLUSTER_METRICS,
        ],
      );
      daemons.set(lb, d);
      // The router's neighbour entry: the owner header's next hop toward the peer.
      await tb.exec(lb, 'ping', ['-4', '-c', '1', '-W', '1', tb.iface(lb, 'router').peer.v4]);
    }
    for (const [lb, d] of daemons) {
      dispatchers.set(
        lb,
        await startDispatcher(
          tb,
          {
            listen: `${VIP4}:80`,
            api: { socketPath: d.socketPath },
            pools: { web: { backends } },
            routes: [{ pool: 'web' }],
          },
          { node: lb },
        ),
      );
    }
  } catch (e) {
    await close();
    throw e;
  }
  const scrape = async (lb: string) =>
    parseExposition(
      (await tb.exec(lb, 'curl', ['-sS', '--max-time', '5', `http://${CLUSTER_METRICS}/metrics`])).stdout,
    );
  return {
    store,
    daemons,
    dispatchers,
    scrape,
    async metric(lb, name, labels = {}) {
      const f = (await scrape(lb)).find((x) => x.name === name);
      return f ? sumSamples(f, labels) : 0;
    },
    close,
  };
}
