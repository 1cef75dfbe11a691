/**
 * baton's Prometheus metrics, in a registry of their own (served on a
 * separate port, control/metrics/server.ts).
 *
 * Datapath figures are read at scrape time (collect()): the per-CPU counters
 * summed over CPUs, and every known connection's state and traffic. Handoffs
 * and API requests are counted as they happen (this class is the service's
 * HandoffObserver and the API's ApiObserver). Labels are bounded: actions and
 * reasons of the ABI, catalogue codes, route patterns; never an address.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ApiObserver } from '../api/app.js';
import type { Direction as CounterDirection } from '../datapath/abi.js';
import { CONNECTION_STATES } from '../datapath/connection-plan.js';
import type { CounterRow } from '../datapath/datapath.js';
import type { HandoffMode, HandoffObserver, HandoffOutcome, SpliceService } from '../service/splice-service.js';
import type { TrafficView } from '../service/splicer-port.js';
import type { ReclaimReason } from '../splice/sweeper.js';

/** Leg latency buckets (seconds): 50 µs up to 5 s; the target is a p50 under 200 µs. */
export const HANDOFF_BUCKETS = [
  0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
];
/** How long one pass over the connections serves scrape-time families (one scrape reads it three times). */
const SCAN_REUSE_MS = 100;
export const HANDOFF_MODES: readonly HandoffMode[] = ['splice', 'handoff', 'migrate'];

export interface MetricsSources {
  /** Datapath totals per reason and direction (Datapath.readCountersByDirection). */
  counters?: () => Array<CounterRow & { direction: CounterDirection }>;
  /** Known connections and table occupancy. */
  service?: SpliceService;
  /** Connection-table capacity (entries). */
  tableCapacity?: number;
  /** Migrate mode: forwarded migrations whose entry is still in the table. */
  migrations?: { readonly forwarded: number };
}

export interface MetricsOptions {
  /** Node process metrics (process_*, nodejs_*); on by default. */
  processMetrics?: boolean;
}

/** The directions a connection's traffic goes (the datapath's, without 'none'). */
type TrafficDirection = Exclude<CounterDirection, 'none'>;
type Totals = Record<TrafficDirection, { packets: number; bytes: number }>;
const zero = (): Totals => ({ to_backend: { packets: 0, bytes: 0 }, to_client: { packets: 0, bytes: 0 } });

export class BatonMetrics implements HandoffObserver, ApiObserver {
  readonly registry = new Registry();
  private readonly handoffs: Counter<'mode' | 'outcome'>;
  private readonly handoffSeconds: Histogram<'mode'>;
  private readonly apiRequests: Counter<'method' | 'route' | 'status'>;
  private readonly reclaims: Counter<'reason'>;
  /**
   * Traffic of connections that are gone, and each live connection's totals at
   * the last scrape: the per-direction counters are the sum of both, so they
   * never go down when a connection is removed.
   */
  private readonly gone = zero();
  private lastSeen = new Map<bigint, Totals>();
  private scan: { at: number; states: Record<string, number>; traffic: Totals } | undefined;

  constructor(
    private readonly sources: MetricsSources = {},
    opts: MetricsOptions = {},
  ) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    const rows = () => sources.counters?.() ?? [];
    const entries = () => (sources.service?.tableEntries() ?? 0) + (sources.migrations?.forwarded ?? 0);
    new Counter({
      name: 'baton_datapath_packets_total',
      help: 'Packets the XDP program handled, by direction (to_backend, to_client, or none: no connection matched), verdict (action) and reason, summed over CPUs',
      labelNames: ['direction', 'action', 'reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const r of rows())
          this.inc({ direction: r.direction, action: r.action, reason: r.reason }, Number(r.packets));
      },
    });
    new Counter({
      name: 'baton_datapath_bytes_total',
      help: 'Bytes of the packets the XDP program handled, by direction, verdict (action) and reason, summed over CPUs',
      labelNames: ['direction', 'action', 'reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const r of rows())
          this.inc({ direction: r.direction, action: r.action, reason: r.reason }, Number(r.bytes));
      },
    });

    // One pass over the connections serves the three families below: the
    // scan is reused within one scrape (metrics() starts a fresh one; a
    // direct registry.metrics() reuses it for SCAN_REUSE_MS at most).
    const scanned = () => {
      const now = performance.now();
      if (!this.scan || now - this.scan.at > SCAN_REUSE_MS) this.scan = { at: now, ...this.scanConnections() };
      return this.scan;
    };
    new Gauge({
      name: 'baton_connections',
      help: 'Spliced connections baton knows, by state',
      labelNames: ['state'] as const,
      registers,
      collect() {
        for (const [state, n] of Object.entries(scanned().states)) this.set({ state }, n);
      },
    });
    for (const unit of ['packets', 'bytes'] as const) {
      new Counter({
        name: `baton_connection_${unit}_total`,
        help: `${unit === 'packets' ? 'Packets' : 'Bytes'} the datapath forwarded on spliced connections, by direction (to_backend: client to back end)`,
        labelNames: ['direction'] as const,
        registers,
        collect() {
          this.reset();
          for (const d of ['to_backend', 'to_client'] as const) this.inc({ direction: d }, scanned().traffic[d][unit]);
        },
      });
    }
    new Gauge({
      name: 'baton_table_entries',
      help: 'Connection-table entries in use (one per client side and per live back-end leg of spliced connections, one per forwarded migration)',
      registers,
      collect() {
        this.set(entries());
      },
    });
    new Gauge({
      name: 'baton_migrated_connections',
      help: "Connections migrated to a back end's agent whose client packets the LB still forwards (one table entry each)",
      registers,
      collect() {
        this.set(sources.migrations?.forwarded ?? 0);
      },
    });
    new Gauge({
      name: 'baton_table_capacity_entries',
      help: 'Connection-table capacity (entries); a full table answers TABLE_FULL',
      registers,
      collect() {
        this.set(sources.tableCapacity ?? 0);
      },
    });
    new Gauge({
      name: 'baton_table_pressure_ratio',
      help: 'Connection-table entries in use over capacity (0..1)',
      registers,
      collect() {
        const cap = sources.tableCapacity ?? 0;
        this.set(cap > 0 ? entries() / cap : 0);
      },
    });

    this.handoffs = new Counter({
      name: 'baton_handoffs_total',
      help: 'Splice requests (mode="splice"), later handoffs to another back end (mode="handoff") and migrations to a back end\'s agent (mode="migrate"), by outcome: ok or the error code',
      labelNames: ['mode', 'outcome'] as const,
      registers,
    });
    this.handoffSeconds = new Histogram({
      name: 'baton_handoff_duration_seconds',
      help: 'Successful handoffs, request received to sockets released',
      labelNames: ['mode'] as const,
      buckets: HANDOFF_BUCKETS,
      registers,
    });
    this.apiRequests = new Counter({
      name: 'baton_api_requests_total',
      help: 'REST API requests answered, by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'] as const,
      registers,
    });
    this.reclaims = new Counter({
      name: 'baton_reclaimed_connections_total',
      help: 'Connections whose entries the sweeper removed, by reason: closed (both FINs acknowledged), reset, idle',
      labelNames: ['reason'] as const,
      registers,
    });
    for (const reason of ['closed', 'reset', 'idle'] as const) this.reclaims.inc({ reason }, 0);
    for (const mode of HANDOFF_MODES) {
      this.handoffs.inc({ mode, outcome: 'ok' }, 0);
      this.handoffSeconds.zero({ mode });
    }
  }

  /** Connections and table occupancy come from this service from now on (it is built after the metrics it reports to). */
  watch(service: SpliceService): void {
    this.sources.service = service;
  }

  watchMigrations(m: NonNullable<MetricsSources['migrations']>): void {
    this.sources.migrations = m;
  }

  handoff(mode: HandoffMode, outcome: HandoffOutcome, seconds: number): void {
    this.handoffs.inc({ mode, outcome: outcome.toLowerCase() });
    if (outcome === 'ok') this.handoffSeconds.observe({ mode }, seconds);
  }

  reclaimed(reason: ReclaimReason): void {
    this.reclaims.inc({ reason });
  }

  request(method: string, route: string, status: number, _seconds: number): void {
    this.apiRequests.inc({ method, route, status: String(status) });
  }

  /** The exposition text (what GET /metrics answers). */
  metrics(): Promise<string> {
    this.scan = undefined;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private scanConnections(): { states: Record<string, number>; traffic: Totals } {
    const states: Record<string, number> = Object.fromEntries(CONNECTION_STATES.map((s) => [s, 0]));
    const service = this.sources.service;
    const live = zero();
    const seen = new Map<bigint, Totals>();
    if (service) {
      for (const id of service.splicer.records.keys()) {
        const st = service.splicer.status(id);
        states[st?.state ?? 'closed'] = (states[st?.state ?? 'closed'] ?? 0) + 1;
        if (!st) continue;
        const t: Totals = { to_backend: totals(st.toBackend), to_client: totals(st.toClient) };
        seen.set(id, t);
        for (const d of ['to_backend', 'to_client'] as const) {
          live[d].packets += t[d].packets;
          live[d].bytes += t[d].bytes;
        }
      }
    }
    for (const [id, t] of this.lastSeen) {
      if (seen.has(id)) continue;
      for (const d of ['to_backend', 'to_client'] as const) {
        this.gone[d].packets += t[d].packets;
        this.gone[d].bytes += t[d].bytes;
      }
    }
    this.lastSeen = seen;
    const traffic = zero();
    for (const d of ['to_backend', 'to_client'] as const) {
      traffic[d].packets = this.gone[d].packets + live[d].packets;
      traffic[d].bytes = this.gone[d].bytes + live[d].bytes;
    }
    return { states, traffic };
  }
}

const totals = (t: TrafficView) => ({ packets: Number(t.packets), bytes: Number(t.bytes) });
