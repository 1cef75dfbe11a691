/**
 * The one owner of per-connection concurrency: every change to a connection
 * (first splice, the background step after it, handoffs, aborts, the
 * sweeper's reclaim, recovery) runs as a task on that connection's queue,
 * one at a time, in arrival order. Different connections never wait for
 * each other.
 *
 * A task may be long (the background step waits up to 30 s for the back end
 * to acknowledge pending bytes). Two ways keep that from blocking others:
 *   - a task queued with `preempt` (abort, reclaim) aborts the signal (a
 *     TaskSignal) of the task running now and of those queued before it;
 *     tasks that wait on something watch their signal and stop early,
 *     leaving things in a state the preempting task can finish;
 *   - a caller with a deadline passes `signal`: if it aborts before the
 *     task's turn, the task never runs and the call rejects with its reason.
 */
export interface QueueTaskOptions {
  /** Abort the tasks running or queued before this one (they should wind down quickly). */
  preempt?: boolean;
  /** Give up waiting for this task's turn when it aborts (the task does not run). */
  signal?: AbortSignal;
}

/**
 * What a task sees of preemption: `aborted` turns true when a later task
 * preempts it (tasks look at it where they wait). Not an AbortSignal: a
 * task only polls it, and an AbortController per task (two per splice) was
 * a measurable share of the daemon's CPU per splice.
 */
export interface TaskSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
}

class Preemption implements TaskSignal {
  aborted = false;
  reason: unknown;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
  }
}

interface Slot {
  /** Aborted when a later task preempts. */
  readonly preemption: Preemption;
  readonly done: Promise<unknown>;
}

export class ConnectionQueue<Id = bigint> {
  private readonly slots = new Map<Id, Slot[]>();

  /** Runs `task` after every task queued for `id` before it. */
  run<T>(id: Id, task: (signal: TaskSignal) => Promise<T>, opts: QueueTaskOptions = {}): Promise<T> {
    const queue = this.slots.get(id) ?? [];
    if (opts.preempt) for (const s of queue) s.preemption.abort(new Error('preempted by a later operation'));
    const previous = queue.at(-1)?.done;
    const preemption = new Preemption();
    let settle: () => void = noop;
    const slot: Slot = { preemption, done: new Promise<void>((r) => (settle = r)) };
    // In the queue before the task starts: a task that queues another for
    // its connection puts that one behind itself.
    queue.push(slot);
    this.slots.set(id, queue);
    let result: Promise<T>;
    if (previous === undefined && !opts.signal) {
      // Nothing to wait for (a new connection's first splice): the task
      // starts now, not a few microtask trips later.
      try {
        result = task(preemption);
      } catch (e) {
        result = Promise.reject(e);
      }
      result.then(settle, settle);
    } else {
      const before = previous ?? Promise.resolve();
      const turn = opts.signal ? untilAborted(before, opts.signal) : before.then(noop, noop);
      result = turn.then(() => task(preemption));
      // Done when both this task and everything before it are: a task that
      // gave up waiting must not let the next one overtake the one running.
      void Promise.allSettled([before, result]).then(settle);
    }
    void slot.done.then(() => {
      const q = this.slots.get(id);
      if (!q) return;
      q.splice(q.indexOf(slot), 1);
      if (q.length === 0) this.slots.delete(id);
    });
    return result;
  }

  /** Tasks running or waiting for `id` (tests, shutdown). */
  pending(id: Id): number {
    return this.slots.get(id)?.length ?? 0;
  }

  /** Resolves when every task queued so far, for every connection, has finished. */
  async idle(): Promise<void> {
    while (this.slots.size > 0) await Promise.all([...this.slots.values()].flatMap((q) => q.map((s) => s.done)));
  }
}

const noop = (): void => undefined;

/** Resolves when `before` settles; rejects with the signal's reason if it aborts first. */
function untilAborted(before: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    before.then(noop, noop).then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
