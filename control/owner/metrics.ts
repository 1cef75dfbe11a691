/**
 * The owner-forwarding metrics of a clustered LB (design.md §3 Metrics: units
 * in names, no address labels): peers, connections owned here and forwarded
 * to others, directory changes by kind, and how long a peer's publish takes
 * to be installed here.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DirectoryObserver } from './directory.js';

export const DIRECTORY_CHANGES = ['published', 'withdrawn', 'installed', 'removed', 'refused'] as const;

/** Propagation buckets (s): the goal is p99 <= 5 ms on one machine; a WAN store is slower. */
const PROPAGATION_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

export function ownerMetrics(
  registry: Registry,
  source: { peers(): number; owned(): number; forwarded(): number; pending(): number },
): DirectoryObserver {
  const registers = [registry];
  new Gauge({
    name: 'baton_cluster_peers',
    help: 'Other LBs registered in the store (live, not expired)',
    registers,
    collect() {
      this.set(source.peers());
    },
  });
  new Gauge({
    name: 'baton_owner_connections',
    help: 'Connections in the owner directory: owned by this LB, or owned by a peer (forwarded there)',
    labelNames: ['kind'],
    registers,
    collect() {
      this.set({ kind: 'owned' }, source.owned());
      this.set({ kind: 'forwarded' }, source.forwarded());
    },
  });
  new Gauge({
    name: 'baton_owner_directory_pending',
    help: "This LB's directory changes not yet in the store (batched, or waiting for the store)",
    registers,
    collect() {
      this.set(source.pending());
    },
  });
  const changes = new Counter({
    name: 'baton_owner_directory_changes_total',
    help: 'Owner-directory changes: published/withdrawn by this LB, installed/removed from peers, refused (malformed)',
    labelNames: ['change'],
    registers,
  });
  for (const change of DIRECTORY_CHANGES) changes.inc({ change }, 0);
  const propagation = new Histogram({
    name: 'baton_owner_directory_propagation_seconds',
    help: "From a peer's publish to its entry installed here (clocks of the two hosts)",
    buckets: PROPAGATION_BUCKETS,
    registers,
  });
  const count = (change: (typeof DIRECTORY_CHANGES)[number]) => (n: number) => changes.inc({ change }, n);
  return {
    published: count('published'),
    withdrawn: count('withdrawn'),
    installed: count('installed'),
    removed: count('removed'),
    refused: count('refused'),
    propagation: (s) => propagation.observe(s),
  };
}

/**
 * Packets (and bytes) this LB sent in the owner header, per peer they went
 * to (the datapath's baton_peer_stats, read at scrape time). The one family
 * labelled by an address: the label set is bounded by the live peers (the
 * map holds only them, at most BATON_PEERS_MAX), never by clients.
 */
export function peerTrafficMetrics(
  registry: Registry,
  read: () => ReadonlyMap<string, { packets: bigint; bytes: bigint }>,
): void {
  for (const unit of ['packets', 'bytes'] as const) {
    new Counter({
      name: `baton_owner_forwarded_${unit}_total`,
      help: `${unit === 'packets' ? 'Packets' : 'Bytes (as sent, owner header included)'} this LB sent in the owner header, by peer address (to an owner or on a second chance); live peers only`,
      labelNames: ['peer'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [peer, t] of read()) this.inc({ peer }, Number(t[unit]));
      },
    });
  }
}
