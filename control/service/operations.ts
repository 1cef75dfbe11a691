/**
 * What every operation that moves a connection shares (splices, handoffs,
 * migrations): refused once the daemon shuts down, counted while under way
 * (so shutdown can wait for them), and timed from the moment the request
 * arrived to its answer for the metrics, with its outcome.
 */
import { BatonError, type ErrorCode } from '../errors.js';
import { toBatonError } from './errors.js';

export type HandoffMode = 'splice' | 'handoff' | 'migrate';
export type HandoffOutcome = 'ok' | ErrorCode;

/** Told about every splice, handoff and migration (the metrics implement it). */
export interface HandoffObserver {
  handoff(mode: HandoffMode, outcome: HandoffOutcome, seconds: number): void;
}

export class Operations {
  private count = 0;
  private closing = false;
  private idle: (() => void) | undefined;

  constructor(private readonly observer?: HandoffObserver) {}

  /** Operations under way. */
  get inFlight(): number {
    return this.count;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Runs `op` as one operation of `mode`; failures come out as BatonErrors. */
  async run<T>(mode: HandoffMode, receivedAt: number, op: () => Promise<T>): Promise<T> {
    if (this.closing) {
      const e = new BatonError(
        'SHUTTING_DOWN',
        'the daemon is shutting down; retry against its successor',
        'shutting_down',
      );
      this.observer?.handoff(mode, e.code, 0);
      throw e;
    }
    this.count++;
    try {
      const out = await op();
      this.observer?.handoff(mode, 'ok', (performance.now() - receivedAt) / 1000);
      return out;
    } catch (e) {
      const be = toBatonError(e);
      this.observer?.handoff(mode, be.code, (performance.now() - receivedAt) / 1000);
      throw be;
    } finally {
      if (--this.count === 0 && this.idle) this.idle();
    }
  }

  /** Refuses new operations from now on; resolves when those under way have finished. */
  async drain(): Promise<void> {
    this.closing = true;
    if (this.count === 0) return;
    await new Promise<void>((resolve) => (this.idle = resolve));
  }
}
