/**
 * Draining an LB (issue 12, operations): the operator takes an LB out of
 * service without breaking a connection. While draining, the LB keeps
 * serving every connection it holds (spliced ones keep flowing in its
 * datapath, peers keep forwarding their segments to it in the owner
 * header) and refuses new splices with DRAINING, which front ends answer by
 * relaying the connection themselves (the dispatcher does on any refusal).
 * The router stops sending it new flows once the operator removes its next
 * hop; the LB reports "drained" when it holds nothing any more, and the
 * host can then be stopped.
 *
 * The state is this process's: a daemon restart serves again (drain it
 * again, or keep its next hop out of the router until then).
 */
import { BatonError } from '../errors.js';

export const DRAIN_STATES = ['serving', 'draining', 'drained'] as const;
export type DrainState = (typeof DRAIN_STATES)[number];

/** What GET /v1/drain answers (and status shows). */
export interface DrainView {
  state: DrainState;
  /** when the drain started (ISO 8601); null while serving */
  since: string | null;
  /** when the LB first held nothing while draining; null before */
  drainedAt: string | null;
  /** connections this LB still holds (spliced, and splices under way) */
  connectionsLeft: number;
}

/** The state (pure): draining with nothing left is drained. */
export function drainState(draining: boolean, connectionsLeft: number): DrainState {
  if (!draining) return 'serving';
  return connectionsLeft === 0 ? 'drained' : 'draining';
}

export interface DrainOptions {
  /** connections this LB holds now (records, plus splices under way) */
  held: () => number;
  now?: () => number;
  /** told once per drain, when the LB first holds nothing */
  onDrained?: (view: DrainView) => void;
}

export class Drain {
  private startedAt: number | undefined;
  private drainedAt: number | undefined;
  private readonly now: () => number;

  constructor(private readonly o: DrainOptions) {
    this.now = o.now ?? Date.now;
  }

  get draining(): boolean {
    return this.startedAt !== undefined;
  }

  /** Starts draining (idempotent: a second call keeps the first start time). */
  start(): DrainView {
    this.startedAt ??= this.now();
    return this.check();
  }

  /** Serves again: new splices are accepted from now on. */
  cancel(): DrainView {
    this.startedAt = undefined;
    this.drainedAt = undefined;
    return this.view();
  }

  /**
   * The view, noting the moment the LB first holds nothing (call it when a
   * connection goes, too: the daemon does from the records' listener).
   */
  check(): DrainView {
    const left = this.o.held();
    if (this.startedAt !== undefined && left === 0 && this.drainedAt === undefined) {
      this.drainedAt = this.now();
      this.o.onDrained?.(this.view(left));
    }
    return this.view(left);
  }

  view(left = this.o.held()): DrainView {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    return {
      state: drainState(this.draining, left),
      since: iso(this.startedAt),
      drainedAt: this.draining && left === 0 ? iso(this.drainedAt ?? this.now()) : null,
      connectionsLeft: left,
    };
  }

  /** What a new splice meets: DRAINING while draining, else nothing. */
  refusal(): BatonError | undefined {
    if (this.startedAt === undefined) return undefined;
    return new BatonError(
      'DRAINING',
      'this LB is draining (baton lb drain): it serves the connections it holds and takes no new splice; relay this connection, or send new flows to another LB (remove this one from the router)',
      'draining',
    );
  }
}
