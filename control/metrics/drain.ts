/**
 * The drain's metrics (control/service/drain.ts): which state the LB is in
 * (one series per state, 1 for the current one, so an alert can match
 * state="drained"), and how many connections it still holds.
 */
import { Gauge, type Registry } from 'prom-client';
import { DRAIN_STATES, type DrainView } from '../service/drain.js';

export function drainMetrics(registry: Registry, view: () => DrainView): void {
  const registers = [registry];
  new Gauge({
    name: 'baton_drain_state',
    help: 'Drain state of this LB: 1 for the current one of serving, draining (refuses new splices, serves what it holds), drained (holds nothing)',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const now = view().state;
      for (const state of DRAIN_STATES) this.set({ state }, state === now ? 1 : 0);
    },
  });
  new Gauge({
    name: 'baton_drain_connections_left',
    help: 'Connections this LB still holds (spliced, and splices under way): what a drain waits for',
    registers,
    collect() {
      this.set(view().connectionsLeft);
    },
  });
}
