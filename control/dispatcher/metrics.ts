/**
 * The dispatcher's Prometheus metrics (issue 13: "the dispatcher's relayed
 * fraction is a metric"). Everything is read from Dispatcher.stats() at
 * scrape time, so the request path pays nothing for them and the figures
 * are the ones the SIGUSR2 stats event prints.
 *
 * Labels are bounded: `outcome` is spliced/migrated/relayed/rejected, `result`
 * hit/miss, and `leg_profile` is the back-end leg's pool key (profile.ts
 * legKey: '' for the LB's defaults, else "no-ts", "no-sack", "mss-N" joined
 * by commas), i.e. at most four flag combinations times the distinct client
 * MSS values seen. Never an address.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { DispatcherStats } from './dispatcher.js';

/** The leg profile label of the LB's own defaults (legKey ''). */
export const DEFAULT_LEG_PROFILE = 'default';

const legProfile = (key: string): string => key || DEFAULT_LEG_PROFILE;

export class DispatcherMetrics {
  readonly registry = new Registry();

  constructor(stats: () => DispatcherStats, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // Counters rebuilt from the running totals at each scrape (reset + inc keeps them monotonic: the totals are).
    new Counter({
      name: 'baton_dispatcher_connections_total',
      help: "Client connections by outcome: spliced by baton, migrated to a back end's agent, relayed in userspace by the dispatcher, rejected (bad request head)",
      labelNames: ['outcome'] as const,
      registers,
      collect() {
        const s = stats();
        this.reset();
        this.labels('spliced').inc(s.spliced);
        this.labels('migrated').inc(s.migrated);
        this.labels('relayed').inc(s.relayed);
        this.labels('rejected').inc(s.rejected);
      },
    });
    new Gauge({
      name: 'baton_dispatcher_relayed_ratio',
      help: 'Relayed / (spliced + migrated + relayed) since start; 0 before any connection. Above 0 means some clients get no benefit from baton: see baton_dispatcher_profile_connections_total',
      registers,
      collect() {
        this.set(stats().relayedFraction);
      },
    });
    new Counter({
      name: 'baton_dispatcher_profile_connections_total',
      help: "Connections by the back-end leg's TCP option profile (matching the client's) and outcome",
      labelNames: ['leg_profile', 'outcome'] as const,
      registers,
      collect() {
        this.reset();
        for (const [k, p] of Object.entries(stats().byProfile)) {
          this.labels(legProfile(k), 'spliced').inc(p.spliced);
          this.labels(legProfile(k), 'relayed').inc(p.relayed);
        }
      },
    });
    new Counter({
      name: 'baton_dispatcher_pool_takes_total',
      help: 'Back-end legs taken per leg profile: hit = a pre-connected leg was idle, miss = connected on demand',
      labelNames: ['leg_profile', 'result'] as const,
      registers,
      collect() {
        this.reset();
        for (const [k, p] of Object.entries(stats().byProfile)) {
          this.labels(legProfile(k), 'hit').inc(p.hits);
          this.labels(legProfile(k), 'miss').inc(p.misses);
        }
      },
    });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'baton_dispatcher_' });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
