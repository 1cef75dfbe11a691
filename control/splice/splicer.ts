/**
 * The splicer: the connections baton joined, and the operations on them.
 * Each operation lives in its own module; this class holds the state they
 * share and runs every change to a connection as a task on that
 * connection's queue (connection-queue.ts), so no two overlap:
 *
 *   splice()   first-splice.ts   block, quiesce, capture, forward, release;
 *                                then the background step (pending bytes)
 *   handoff()  handoff.ts        to another back end at a request boundary
 *   abort()    teardown.ts       entries gone, a RST to each end (preempts)
 *   reclaim()  teardown.ts       entries gone, sockets released (the sweeper; preempts)
 *   adopt()    recovery.ts       records rebuilt from a pinned table
 *   status()   connection-plan   what the datapath saw
 */
import { type ConnectionStatus, connectionStatus } from '../datapath/connection-plan.js';
import type { Datapath } from '../datapath/datapath.js';
import type { FlowTable } from '../datapath/flow-table.js';
import { BatonError } from '../errors.js';
import type { Endpoint } from '../tcp/state.js';
import { ConnectionQueue } from './connection-queue.js';
import { notFound, type SpliceContext } from './context.js';
import { firstSplice, holdAfterAck } from './first-splice.js';
import { handoffConnection, type RetireFailure } from './handoff.js';
import { nextFreePort, type PortRange } from './leg-ports.js';
import {
  ConnectionRecords,
  currentLeg,
  DEFAULT_HANDOFF_QUIESCE_MS,
  type HandoffOptions,
  liveLegs,
  type SpliceOptions,
  type SpliceRecord,
} from './records.js';
import { holdTuplesAgain, recoverFromTable } from './recovery.js';
import type { SocketOps } from './socket-port.js';
import type { ReclaimReason } from './sweeper.js';
import { abortConnection, removeConnection } from './teardown.js';

export type { ConnectionState, ConnectionStatus, TrafficView } from '../datapath/connection-plan.js';
export type { HandoffOptions, LegRecord, SpliceOptions, SpliceRecord } from './records.js';

/** Ports a lease looks at before it gives up (each a table lookup, a few µs). */
export const LEASE_SCAN = 64;

export class Splicer {
  private nextId = 1n;
  readonly records = new ConnectionRecords();
  /** Retired legs that could not be closed with a FIN (for logs and tests); the most recent 100. */
  readonly retireFailures: RetireFailure[] = [];
  private readonly queue = new ConnectionQueue();
  private readonly ctx: SpliceContext;
  private readonly table: FlowTable;
  private legPortCursor = 0;

  /**
   * `legPorts`: the range whose back-end legs hold no socket (leg-ports.ts).
   * Pass it only once the range is reserved in the LB's namespace
   * (reserveLegPorts): otherwise the kernel could hand a released tuple's
   * port to a new connection. Without it every leg holds its socket, and
   * handoff legs take kernel-chosen ports. Ports of the range must only be
   * bound to one that legPort() chose.
   */
  constructor(dp: Pick<Datapath, 'table'>, ops: SocketOps, opts: { legPorts?: PortRange } = {}) {
    this.table = dp.table;
    this.ctx = {
      table: dp.table,
      ops,
      records: this.records,
      queue: this.queue,
      legPorts: opts.legPorts ? Object.freeze({ ...opts.legPorts }) : undefined,
      legPortFor: (localIp, backend) => this.legPort(localIp, backend),
      reclaimIfFinished: (id) => this.reclaimIfFinished(id),
    };
  }

  /**
   * A local port of the leg range for a new connection from `localIp` to
   * `backend`: one whose tuple no spliced connection holds (no back-end
   * entry). The caller binds it (SO_REUSEADDR) and connects; a bind or
   * connect that fails with EADDRINUSE / EADDRNOTAVAIL (a live socket on the
   * same tuple) asks again. Spliced on such a port, the leg holds no socket.
   */
  legPort(localIp: string, backend: Endpoint): number {
    const r = this.legRange();
    const port = nextFreePort(r, this.legPortCursor, (p) => this.legOwner(localIp, backend, p) !== undefined);
    if (port === undefined) throw legPortsExhausted(r, localIp, backend, 'every port');
    this.legPortCursor = port;
    return port;
  }

  /**
   * legPort() for a front end's next `count` connections (the LEG_PORT
   * request): the ports after the cursor in turn, at most LEASE_SCAN of
   * them, those whose tuple no connection holds, or whose connection is over
   * and is reclaimed now (at least one, or LEG_PORTS_EXHAUSTED). A lease
   * reserves nothing: the front end's bind and connect do (the kernel
   * refuses a tuple a socket holds), then the splice's back-end entry. A
   * port a live socket holds toward the back end is skipped (the socket
   * probe looks): that socket, spliced, would leave an entry the front
   * end's new connection would meet. Under a steady load of short
   * connections most ports of the range belong to connections that ended
   * within the sweeper's grace period; waiting for the sweeper would exhaust
   * the range (4,536 ports per back end by default) at a few hundred
   * connections per second.
   */
  async leaseLegPorts(localIp: string, backend: Endpoint, count = 1): Promise<number[]> {
    const r = this.legRange();
    const ports: number[] = [];
    let scanned = 0;
    while (scanned < LEASE_SCAN && ports.length < count) {
      const free: number[] = [];
      for (; scanned < LEASE_SCAN && ports.length + free.length < count; scanned++) {
        const port = nextFreePort(r, this.legPortCursor, () => false) as number; // the next one, wrapping
        this.legPortCursor = port;
        const owner = this.legOwner(localIp, backend, port);
        if (owner === undefined || (await this.reclaimIfFinished(owner))) free.push(port);
      }
      // No entry holds them; a socket still may (another front end's pooled
      // connection, not spliced yet, on a port it leased a range ago).
      const inUse = this.ctx.ops.tuplesInUse(free.map((port) => ({ local: { ip: localIp, port }, remote: backend })));
      ports.push(...free.filter((_, i) => !inUse[i]));
    }
    if (ports.length === 0) throw legPortsExhausted(r, localIp, backend, `the next ${LEASE_SCAN} ports`);
    return ports;
  }

  private legRange(): PortRange {
    const r = this.ctx.legPorts;
    if (r) return r;
    throw new BatonError(
      'CONFIG_INVALID',
      'this splicer has no leg port range; create it with legPorts (after reserveLegPorts in the LB namespace)',
      'no_leg_ports',
    );
  }

  /** The connection whose back-end entry holds the tuple backend -> localIp:port, if any. */
  private legOwner(localIp: string, backend: Endpoint, port: number): bigint | undefined {
    return this.table.ownerOf({ src: backend.ip, dst: localIp, sport: backend.port, dport: port });
  }

  /** Joins the front end's client socket and back-end socket (fds in this process). */
  splice(clientFd: number, backendFd: number, opts: SpliceOptions = {}): Promise<SpliceRecord> {
    const id = this.nextId++;
    return this.queue.run(id, async () => {
      const { rec, pending } = await firstSplice(this.ctx, id, clientFd, backendFd, opts);
      // Queued now, so it runs before any later operation on the connection.
      if (pending) void this.queue.run(id, (signal) => holdAfterAck(this.ctx, rec, pending, signal)).catch(() => {});
      return rec;
    });
  }

  /**
   * Moves a spliced connection to another back end at its next request
   * boundary. The timeout covers the wait for earlier operations too.
   */
  handoff(id: bigint, backend: Endpoint, opts: HandoffOptions = {}): Promise<SpliceRecord> {
    const rec = this.get(id);
    const timeoutMs = opts.quiesceTimeoutMs ?? DEFAULT_HANDOFF_QUIESCE_MS;
    const deadline = performance.now() + timeoutMs;
    const waited = new BatonError(
      'NOT_QUIESCENT',
      `connection ${id} was still busy with an earlier operation (the back end has not acknowledged the request ` +
        `sent at splice time) after ${timeoutMs} ms; retry, or raise quiesceTimeoutMs`,
      'busy',
    );
    return this.queue
      .run(id, () => handoffConnection(this.ctx, rec, backend, deadline, (f) => this.noteRetireFailure(f)), {
        signal: AbortSignal.timeout(timeoutMs),
      })
      .catch((e: unknown) => {
        throw e instanceof DOMException && e.name === 'TimeoutError' ? waited : e;
      });
  }

  /**
   * Aborts a connection: entries gone, a RST to each end. A connection
   * that is over already (both FINs or a RST seen) is only removed: both
   * ends have closed, and a RST costs a socket rebuilt per end. False when
   * the id is unknown.
   */
  async abort(id: bigint): Promise<boolean> {
    const rec = this.records.get(id);
    if (!rec) return false;
    return this.queue.run(
      id,
      async () => {
        if (this.records.get(id) !== rec) return false; // removed while this waited
        if (this.status(id)?.state === 'closed') removeConnection(this.ctx, rec);
        else abortConnection(this.ctx, rec);
        return true;
      },
      { preempt: true },
    );
  }

  /** Removes a finished connection (entries and held sockets; no RST). False when already gone. */
  reclaim(id: bigint): Promise<boolean> {
    const rec = this.records.get(id);
    if (!rec) return Promise.resolve(false);
    return this.queue.run(
      id,
      async () => {
        if (this.records.get(id) !== rec) return false;
        removeConnection(this.ctx, rec);
        return true;
      },
      { preempt: true },
    );
  }

  /**
   * Rebuilds the records of the connections in a pinned table (after a
   * restart; see recovery.ts). Call it once, before any splice. `netns` is
   * the network namespace of the LB's sockets (an fd; default: this
   * process's), where aborts recreate them. Returns how many were adopted.
   */
  async adopt(opts: { netns?: number } = {}): Promise<number> {
    const { records, maxId } = recoverFromTable(this.ctx, opts);
    if (maxId >= this.nextId) this.nextId = maxId + 1n;
    await Promise.all(
      records.map((rec) => {
        this.records.set(rec.id, rec);
        return this.queue.run(rec.id, async () => holdTuplesAgain(this.ctx, rec));
      }),
    );
    return records.length;
  }

  /** What the datapath saw of a connection, or undefined when unknown. */
  status(id: bigint): ConnectionStatus | undefined {
    const rec = this.records.get(id);
    if (!rec) return undefined;
    const tracks = liveLegs(rec).flatMap((h) => this.table.track(h.backendKey) ?? []);
    return connectionStatus(
      this.table.stateAndTrack(rec.clientKey),
      tracks,
      this.table.track(currentLeg(rec).backendKey),
    );
  }

  /** Told of every connection the splicer reclaims itself (the sweeper forwards it to its own onReclaim). */
  onReclaim?: (id: bigint, reason: ReclaimReason) => void;

  private async reclaimIfFinished(id: bigint): Promise<boolean> {
    const st = this.status(id);
    if (st?.state !== 'closed' || !(await this.reclaim(id))) return false;
    this.onReclaim?.(id, st.toBackend.rst || st.toClient.rst ? 'reset' : 'closed');
    return true;
  }

  /** Resolves when every operation queued so far, background steps included, is done (tests, shutdown). */
  settled(): Promise<void> {
    return this.queue.idle();
  }

  private get(id: bigint): SpliceRecord {
    const rec = this.records.get(id);
    if (!rec) throw notFound(id);
    return rec;
  }

  private noteRetireFailure(f: RetireFailure): void {
    if (this.retireFailures.push(f) > 100) this.retireFailures.shift();
  }
}

function legPortsExhausted(r: PortRange, localIp: string, backend: Endpoint, which: string): BatonError {
  return new BatonError(
    'TABLE_FULL',
    `${which} of the leg range ${r.lo}-${r.hi} toward ${backend.ip}:${backend.port} from ${localIp}: held by spliced connections; widen the range or add LB addresses`,
    'leg_ports_exhausted',
  );
}
