/**
 * What the dispatcher reports: one event per decision (main.ts prints them
 * as JSON lines, so a demo or a test can see which back end served which
 * client) and the running totals behind its stats and metrics.
 */

import type { HandoffPath } from './config.js';
import type { LaneStats } from './pool.js';

/** What every event about a routed connection says: which connection, and where it was sent. */
interface RoutedConnection {
  conn: number;
  client: string;
  host: string;
  path: string;
  pool: string;
  backend: string;
}

export type DispatchEvent =
  | { event: 'ready'; listen: string[]; pools: Record<string, Record<string, number>> }
  | ({
      event: 'spliced';
      pooled: boolean;
      /** the back-end leg's profile key ('' = the LB's defaults), see profile.ts */
      profile: string;
      id: string;
      /** how baton was asked: the local handoff channel or REST (baton-path.ts) */
      via: HandoffPath;
      ms: number;
      /** the daemon's own part (block entries to sockets released, µs), from its answer */
      daemonUs?: number;
    } & RoutedConnection)
  | ({
      event: 'migrated';
      /** the back end's agent that took the connection */
      agent: string;
      /** migration id, as the agent's app sees it */
      id: string;
      flowId: number;
      /** how baton was asked: the local handoff channel or REST (baton-path.ts) */
      via: HandoffPath;
      ms: number;
      /** where the daemon's time went (µs; POST /v1/migrations phasesUs) */
      phasesUs: Record<string, number>;
    } & RoutedConnection)
  | ({
      event: 'relayed';
      profile: string;
      /** the client's TCP options, as people name them */
      clientProfile?: string;
      code: string;
      reason?: string;
      detail: string;
    } & RoutedConnection)
  | { event: 'rejected'; conn: number; client: string; status: number; why: string }
  | { event: 'closed'; conn: number; client: string; relayedBytes: { toBackend: number; toClient: number } };

export interface DispatcherStats {
  accepted: number;
  spliced: number;
  /** moved to a back end's agent (migrate pools) */
  migrated: number;
  relayed: number;
  rejected: number;
  /** connections served per back end ("ip:port"), spliced or relayed */
  byBackend: Record<string, number>;
  /** relayed / (spliced + migrated + relayed); 0 before any connection */
  relayedFraction: number;
  /** per back-end leg profile key ('' = the LB's defaults): pool hits/misses, spliced, relayed */
  byProfile: Record<string, LaneStats & { spliced: number; relayed: number }>;
}
