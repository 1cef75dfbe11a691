/** The agent's Prometheus metrics (own registry, own port; no address in any label). */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { FidState } from '../datapath/abi-migrate.js';
import type { CounterRow } from '../datapath/datapath.js';
import type { FlowIdTable } from '../datapath/fid-table.js';

/** What the agent's datapath exports at scrape time (absent: the agent runs without --interface). */
export interface AgentMetricsSources {
  /** The agent program's counters per verdict and reason (AgentDatapath.readCounters). */
  counters?: () => CounterRow[];
  fids?: Pick<FlowIdTable, 'entries'>;
}

export const MIGRATION_OUTCOMES = [
  'restored',
  'blob_invalid',
  'no_app',
  'restore_failed',
  'handoff_failed',
  'shutting_down',
  'flow_id_in_use',
  'fid_table_full',
  'no_datapath',
  'datapath_failed',
  'too_late',
] as const;
export type MigrationOutcome = (typeof MIGRATION_OUTCOMES)[number];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly migrations = new Counter({
    name: 'baton_agent_migrations_total',
    help: 'State blobs received from LBs, by outcome (restored = handed to an app and confirmed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly restoreDuration = new Histogram({
    name: 'baton_agent_restore_duration_seconds',
    help: 'Blob received -> socket restored and handed to the app (confirmed migrations)',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly reservations = new Counter({
    name: 'baton_agent_reservations_total',
    help: 'Flow-id reservations from LBs (a mapping in HOLD ahead of its state), by outcome: held, expired (no state within the TTL), abandoned (the channel closed first)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly handshakesRefused = new Counter({
    name: 'baton_agent_channel_refused_total',
    help: 'Blob-channel connections refused at the handshake (wrong or no shared secret, not baton)',
    registers: [this.registry],
  });
  constructor(sources: AgentMetricsSources = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: 'baton_agent_' });
    const registers = [this.registry];
    const rows = () => sources.counters?.() ?? [];
    // One family per unit, as the LB's baton_datapath_*: held and restored packets are what an operator
    // watches during migrations (held that keeps growing: an LB forwards a flow this agent never restored).
    new Counter({
      name: 'baton_agent_datapath_packets_total',
      help: "Packets the agent's XDP program handled, by verdict (action) and reason (flow_id_restored, flow_id_held, ...), summed over CPUs",
      labelNames: ['action', 'reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const r of rows()) this.inc({ action: r.action, reason: r.reason }, Number(r.packets));
      },
    });
    new Counter({
      name: 'baton_agent_datapath_bytes_total',
      help: "Bytes of the packets the agent's XDP program handled, by verdict (action) and reason, summed over CPUs",
      labelNames: ['action', 'reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const r of rows()) this.inc({ action: r.action, reason: r.reason }, Number(r.bytes));
      },
    });
    new Gauge({
      name: 'baton_agent_flow_id_mappings',
      help: "Flow-id mappings in the agent's table, by state: hold (reserved or being restored), restore (a migrated connection served here)",
      labelNames: ['state'] as const,
      registers,
      collect() {
        let hold = 0;
        let restore = 0;
        for (const e of sources.fids?.entries() ?? []) {
          if (e.mapping.state === FidState.RESTORE) restore++;
          else hold++;
        }
        this.set({ state: 'hold' }, hold);
        this.set({ state: 'restore' }, restore);
      },
    });
    // Every outcome exported from the start (at 0), so rate() and alerts see the series before the first event.
    for (const o of MIGRATION_OUTCOMES) this.migrations.labels(o).inc(0);
    for (const o of ['held', 'expired', 'abandoned']) this.reservations.labels(o).inc(0);
  }
}
