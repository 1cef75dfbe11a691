/** The agent's Prometheus metrics (own registry, own port; no address in any label). */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

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
  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'baton_agent_' });
    // Every outcome exported from the start (at 0), so rate() and alerts see the series before the first event.
    for (const o of MIGRATION_OUTCOMES) this.migrations.labels(o).inc(0);
    for (const o of ['held', 'expired', 'abandoned']) this.reservations.labels(o).inc(0);
  }
}
