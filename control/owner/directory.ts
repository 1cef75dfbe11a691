/**
 * The owner directory (source document 004; design.md §4 "Owner
 * forwarding"): every LB publishes the connections it owns and withdraws
 * them when they end; every LB follows the directory and installs its peers'
 * connections as owner entries, so a packet that the router's hash sends to
 * the wrong LB is forwarded to the owner instead of being answered with a RST.
 *
 * Publishing is event-driven and batched: own()/release() queue a change and
 * everything queued in one event-loop turn (or within batchMs) goes to the
 * store as one publish and one withdraw. A connection released before its
 * publish went out is never published. Store trouble keeps the queued
 * changes and retries with backoff; the directory never loses a change
 * because the store was away for a while.
 *
 * Where peers' entries go is a port (OwnerEntries), so the same directory
 * serves the datapath's owner entries and tests.
 */
import { BatonError } from '../errors.js';
import { STORE_LIMITS, type Store, type Subscription } from '../store/store.js';
import { decodeOwnedConnection, encodeOwnedConnection, flowRef, type OwnedConnection } from './owned-connection.js';

/** Where peers' connections are installed (the datapath's owner entries). */
export interface OwnerEntries {
  /** Installs or re-points the entry of `ref` to `owner` (a peer id). */
  install(ref: string, conn: OwnedConnection, owner: string): void;
  remove(ref: string): void;
}

export interface DirectoryObserver {
  /** changes this LB sent to the store */
  published(count: number): void;
  withdrawn(count: number): void;
  /** peers' entries this LB installed or removed */
  installed(count: number): void;
  removed(count: number): void;
  /** peers' entries refused (malformed, newer version) */
  refused(count: number): void;
  /** from a peer's publish to its entry installed here, seconds */
  propagation(seconds: number): void;
}

export interface OwnerDirectoryOptions {
  store: Store;
  /** this LB's peer id (its owner name in the directory) */
  self: string;
  entries: OwnerEntries;
  /** how long own()/release() may wait to be batched with others (default 0: the same event-loop turn) */
  batchMs?: number;
  /** delay before a publish that failed is tried again (default 500 ms, doubling to 8 s) */
  retryMs?: number;
  observer?: Partial<DirectoryObserver>;
  onError?: (err: BatonError) => void;
  now?: () => number;
}

interface Installed {
  owner: string;
  conn: OwnedConnection;
}

export class OwnerDirectory {
  private readonly o: Required<Pick<OwnerDirectoryOptions, 'batchMs' | 'retryMs'>> & OwnerDirectoryOptions;
  private readonly now: () => number;
  /** refs to publish, with their connection */
  private readonly toPublish = new Map<string, OwnedConnection>();
  /** refs to withdraw (published earlier) */
  private readonly toWithdraw = new Set<string>();
  /** refs this LB has in the store */
  private readonly published = new Set<string>();
  private readonly peersEntries = new Map<string, Installed>();
  private flushTimer: { cancel(): void } | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private feed: Subscription | undefined;
  private closed = false;

  constructor(options: OwnerDirectoryOptions) {
    this.o = { batchMs: 0, retryMs: 500, ...options };
    this.now = options.now ?? Date.now;
  }

  /** This LB owns `conn` now (a splice was made, a connection adopted). */
  own(conn: OwnedConnection): void {
    const ref = flowRef(conn);
    this.toWithdraw.delete(ref);
    this.toPublish.set(ref, conn);
    this.schedule();
  }

  /** This LB no longer owns `conn` (reclaimed, aborted). */
  release(conn: OwnedConnection): void {
    const ref = flowRef(conn);
    this.toPublish.delete(ref);
    if (this.published.has(ref)) {
      this.toWithdraw.add(ref);
      this.schedule();
    }
  }

  /** Peers' connections installed here, by ref. */
  peerEntries(): ReadonlyMap<string, Readonly<Installed>> {
    return this.peersEntries;
  }

  /** How many connections this LB has in the store, and how many changes wait to go there. */
  get ownedCount(): number {
    return this.published.size;
  }
  get pendingCount(): number {
    return this.toPublish.size + this.toWithdraw.size;
  }

  /** Follows the directory: peers' entries are installed and removed as they change. */
  start(): void {
    if (this.feed) return;
    this.feed = this.o.store.followDirectory(
      (event) => {
        if (event.kind === 'snapshot') this.replaceAll(event.state);
        else for (const c of event.changes) this.apply(c.op, c.owner, c.entries);
      },
      { ...(this.o.onError ? { onError: this.o.onError } : {}) },
    );
  }

  /** Sends what is queued now (and waits for a flush already under way). */
  async flush(): Promise<void> {
    this.unschedule();
    while (this.flushing) await this.flushing;
    if (this.pendingCount === 0) return;
    this.flushing = this.send().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  /**
   * Stops following; withdraw (default true) removes this LB's entries from
   * the store first (a clean stop: peers stop forwarding to it at once).
   */
  async close(options: { withdraw?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unschedule();
    await this.feed?.close();
    this.feed = undefined;
    if (options.withdraw !== false) {
      this.toPublish.clear();
      for (const ref of this.published) this.toWithdraw.add(ref);
      await this.send().catch((err: unknown) => this.o.onError?.(asStoreError(err)));
    }
  }

  private schedule(delayMs = this.o.batchMs): void {
    if (this.closed || this.flushTimer) return;
    const run = () => {
      this.flushTimer = undefined;
      this.flush().catch((err: unknown) => this.o.onError?.(asStoreError(err)));
    };
    if (delayMs > 0) {
      const t = setTimeout(run, delayMs);
      t.unref();
      this.flushTimer = { cancel: () => clearTimeout(t) };
    } else {
      const i = setImmediate(run);
      this.flushTimer = { cancel: () => clearImmediate(i) };
    }
  }

  private unschedule(): void {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
  }

  /** One publish and one withdraw per batch of at most STORE_LIMITS.batchEntries; failures requeue. */
  private async send(): Promise<void> {
    const publishing = [...this.toPublish].slice(0, STORE_LIMITS.batchEntries);
    const withdrawing = [...this.toWithdraw].slice(0, STORE_LIMITS.batchEntries);
    for (const [ref] of publishing) this.toPublish.delete(ref);
    for (const ref of withdrawing) this.toWithdraw.delete(ref);
    try {
      if (publishing.length) {
        const at = this.now();
        await this.o.store.publish(
          this.o.self,
          publishing.map(([ref, conn]) => ({ ref, value: encodeOwnedConnection(conn, at) })),
        );
        for (const [ref] of publishing) this.published.add(ref);
        this.o.observer?.published?.(publishing.length);
      }
      if (withdrawing.length) {
        await this.o.store.withdraw(this.o.self, withdrawing);
        for (const ref of withdrawing) this.published.delete(ref);
        this.o.observer?.withdrawn?.(withdrawing.length);
      }
      this.failures = 0;
    } catch (err) {
      // Put back what did not go, unless a newer change for the same ref came meanwhile.
      for (const [ref, conn] of publishing) {
        if (!this.toWithdraw.has(ref) && !this.toPublish.has(ref)) this.toPublish.set(ref, conn);
      }
      for (const ref of withdrawing) if (!this.toPublish.has(ref) && this.published.has(ref)) this.toWithdraw.add(ref);
      this.failures++;
      if (!this.closed) this.schedule(Math.min(this.o.retryMs * 2 ** (this.failures - 1), 8000));
      throw err;
    }
    if (this.pendingCount > 0) this.schedule();
  }

  private replaceAll(entries: readonly { ref: string; owner: string; value: Buffer }[]): void {
    const seen = new Set<string>();
    for (const e of entries) {
      if (e.owner === this.o.self) continue;
      seen.add(e.ref);
      this.installOne(e.ref, e.owner, e.value, false);
    }
    let removed = 0;
    for (const ref of [...this.peersEntries.keys()]) {
      if (!seen.has(ref)) {
        this.peersEntries.delete(ref);
        this.o.entries.remove(ref);
        removed++;
      }
    }
    if (removed) this.o.observer?.removed?.(removed);
  }

  private apply(op: 'publish' | 'withdraw', owner: string, entries: readonly { ref: string; value: Buffer }[]): void {
    if (op === 'publish') {
      for (const e of entries) {
        if (owner !== this.o.self) this.installOne(e.ref, owner, e.value, true);
        else if (this.peersEntries.has(e.ref)) this.removeOne(e.ref); // the connection moved here
      }
      return;
    }
    for (const e of entries) if (this.peersEntries.get(e.ref)?.owner === owner) this.removeOne(e.ref);
  }

  private installOne(ref: string, owner: string, value: Buffer, live: boolean): void {
    let decoded: ReturnType<typeof decodeOwnedConnection>;
    try {
      decoded = decodeOwnedConnection(value);
      if (flowRef(decoded) !== ref) {
        throw new BatonError('STORE_REFUSED', `owner-directory entry ${ref} describes ${flowRef(decoded)}`, 'bad_ref');
      }
    } catch (err) {
      this.o.observer?.refused?.(1);
      this.o.onError?.(asStoreError(err));
      return;
    }
    const had = this.peersEntries.get(ref);
    if (had?.owner === owner) return;
    const { publishedAtMs, ...conn } = decoded;
    this.peersEntries.set(ref, { owner, conn });
    this.o.entries.install(ref, conn, owner);
    this.o.observer?.installed?.(1);
    if (live) this.o.observer?.propagation?.(Math.max(0, this.now() - publishedAtMs) / 1000);
  }

  private removeOne(ref: string): void {
    this.peersEntries.delete(ref);
    this.o.entries.remove(ref);
    this.o.observer?.removed?.(1);
  }
}

function asStoreError(err: unknown): BatonError {
  return err instanceof BatonError
    ? err
    : new BatonError('INTERNAL', `owner directory: ${(err as Error).message}`, 'directory', { cause: err });
}
