/**
 * The splice service: what the REST routes call. It turns a request (sockets
 * named by {pid, fd} or by addresses) into a splicer operation, answers with
 * the JSON view of docs/api.md, and translates every failure into a
 * catalogue error (control/errors.ts).
 *
 * Descriptors it takes from a front end are duplicates of the front end's.
 * A successful splice takes them over (the splicer closes or holds each);
 * on any failure the service closes its own. Each handoff is timed from the moment the request was
 * received to the moment the sockets are released, for the metrics.
 *
 * Every operation is made for a Caller and authorized here, through
 * control/service/authorize.ts: descriptors only of processes the caller
 * could ptrace (checked before they are taken), connections only of the
 * caller's own uid (each record keeps the uid that created it).
 *
 * The hot path (POST /v1/splices by descriptor) does two pidfd_getfd, a few
 * getsockopt/fstat calls and the splice itself: no map scans, no file reads.
 * The local handoff channel (control/handoff/server.ts) comes in through the
 * same splice() with descriptors the front end passed (SCM_RIGHTS), so
 * admission, drain, limits, metrics and rollback are one code path.
 */
import { CONNECTION_STATES } from '../datapath/connection-plan.js';
import { BatonError } from '../errors.js';
import { Authorizer, type Caller, connectionDecision, isPrivileged, ownerUidOf, seesConnection } from './authorize.js';
import { checkedClientBytes, decodeClientBytes } from './client-bytes.js';
import { canonicalIp, formatEndpoint, parseEndpoint } from './endpoint.js';
import { toBatonError } from './errors.js';
import { BATCH_CONCURRENCY, DEFAULT_LIST_LIMIT } from './limits.js';
import { type HandoffObserver, Operations } from './operations.js';
import {
  assertEstablishedTcp,
  identify,
  type ProcessGate,
  release,
  type TakenSocket,
  takeByAddress,
  takeByDescriptor,
} from './sockets.js';
import {
  type BatchResult,
  type HandoffRequest,
  isByDescriptor,
  isPassed,
  type ListQuery,
  type SpliceByAddress,
  type SpliceByDescriptor,
  type SpliceByPassing,
  type SpliceRequest,
} from './splice-requests.js';
import type { ConnectionState, SpliceRecord, SplicerPort } from './splicer-port.js';
import { type SpliceJson, spliceView } from './view.js';

export type { HandoffMode, HandoffObserver, HandoffOutcome } from './operations.js';

export interface SpliceServiceOptions {
  splicer: SplicerPort;
  observer?: HandoffObserver;
  /** Why the datapath is not ready (not loaded, not attached), or undefined when it is. */
  notReadyReason?: () => string | undefined;
  /** Connection-table capacity, for the metrics. */
  tableCapacity?: number;
  /** Reads callers' and targets' credentials (default: /proc). */
  authorizer?: Authorizer;
  /** Why a new splice is refused now (a drain: control/service/drain.ts), or undefined; handoffs are not. */
  admission?: () => BatonError | undefined;
}

/** Ports one LEG_PORT request leases (a front end keeps the rest for its next connections, briefly). */
export const LEG_PORTS_PER_LEASE = 16;

/** A u64 connection id from its decimal text; NOT_FOUND for anything that cannot be one. */
export function parseId(text: string): bigint {
  if (!/^[0-9]{1,20}$/.test(text))
    throw new BatonError('BAD_REQUEST', `id must be a decimal connection id, got ${JSON.stringify(text)}`, 'bad_id');
  return BigInt(text);
}

export class SpliceService {
  readonly splicer: SplicerPort;
  readonly tableCapacity: number | undefined;
  /** Shared with the other services of the daemon (migrations), so shutdown waits for all of them. */
  readonly operations: Operations;
  private readonly notReady: () => string | undefined;
  private readonly admission: () => BatonError | undefined;
  readonly authorizer: Authorizer;
  constructor(opts: SpliceServiceOptions) {
    this.splicer = opts.splicer;
    this.operations = new Operations(opts.observer);
    this.tableCapacity = opts.tableCapacity;
    this.notReady = opts.notReadyReason ?? (() => undefined);
    this.authorizer = opts.authorizer ?? new Authorizer();
    this.admission = opts.admission ?? (() => undefined);
  }

  /** Splices, handoffs and migrations under way (a drain waits for them too). */
  get inFlightCount(): number {
    return this.operations.inFlight;
  }

  /** Why the service cannot splice right now, or undefined when it can. */
  notReadyReason(): string | undefined {
    return this.operations.shuttingDown ? 'the daemon is shutting down' : this.notReady();
  }

  /**
   * Joins a front end's client and back-end sockets. `receivedAt` is
   * performance.now() when the request arrived (the handoff clock starts there).
   */
  async splice(caller: Caller, req: SpliceRequest, receivedAt = performance.now()): Promise<SpliceJson> {
    // Passed descriptors are ours already: identified now, so that every way
    // out below (a shutdown or a drain refusing before the work starts too) closes them.
    const passed = isPassed(req) ? identifyPassed(req) : undefined;
    let spliced = false;
    try {
      return await this.timed('splice', receivedAt, async () => {
        // Before any descriptor is taken: a refused splice leaves the front end's sockets alone.
        const refused = this.admission();
        if (refused) throw refused;
        const prefix = isPassed(req)
          ? checkedClientBytes(req.prefixBytes, 'prefix')
          : decodeClientBytes(req.prefix, 'prefix');
        const { client, backend } = isPassed(req)
          ? this.checkPassed(caller, passed ?? identifyPassed(req))
          : await this.take(caller, req);
        let rec: SpliceRecord | undefined;
        try {
          if (client.ino === backend.ino && client.dev === backend.dev) {
            throw new BatonError('BAD_REQUEST', 'client and backend name the same socket', 'same_socket');
          }
          rec = await this.splicer.splice(client.fd, backend.fd, {
            ...(prefix ? { prefix } : {}),
            ...(req.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: req.quiesceTimeoutMs } : {}),
            ownerUid: ownerUidOf(caller),
          });
          spliced = true;
        } finally {
          // A splice takes both descriptors over (it closes or holds them, some
          // after it answers); a failed one leaves them to us, though it may
          // have closed one already: release() closes only what still names
          // the same socket.
          if (!rec) for (const s of [client, backend]) release(s);
        }
        return this.view(rec);
      });
    } finally {
      if (passed && !spliced) for (const s of passed) release(s);
    }
  }

  /**
   * Local ports of the LB's leg range for a front end's next connections
   * from `local` (an IP: the source address toward the back end) to
   * `backend` ("ip:port"): spliced, such a connection's leg then holds no
   * socket (control/splice/leg-ports.ts). Up to LEG_PORTS_PER_LEASE at once
   * ({port, ports}: `port` the first, for front ends that take one), so
   * that a front end under one-shot load asks once per that many
   * connections, not once per connection. Who may splice passed sockets may
   * ask. CONFIG_INVALID (no_leg_ports) when the daemon has no leg range: the
   * front end then lets the kernel choose.
   */
  async legPort(caller: Caller, req: { local: string; backend: string }): Promise<{ port: number; ports: number[] }> {
    this.authorizer.checkPassedBy(caller);
    const local = canonicalIp(req.local);
    if (!local) {
      throw new BatonError(
        'BAD_REQUEST',
        `local: ${JSON.stringify(req.local)} is not an IP address; give the source address toward the back end`,
        'bad_address',
      );
    }
    const backend = parseEndpoint(req.backend, 'backend');
    if (backend.family !== local.family) {
      throw new BatonError(
        'BAD_REQUEST',
        `local ${req.local} and backend ${req.backend} are of different address families`,
        'family_mismatch',
      );
    }
    const ports = await this.splicer.leaseLegPorts(local.ip, backend, LEG_PORTS_PER_LEASE);
    return { port: ports[0] as number, ports };
  }

  /**
   * Every item independently (each authorized on its own), at most
   * BATCH_CONCURRENCY at a time; results in item order.
   */
  async spliceBatch(caller: Caller, items: SpliceRequest[], receivedAt = performance.now()): Promise<BatchResult[]> {
    const results = new Array<BatchResult>(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const at = next++;
        results[at] = await this.splice(caller, items[at] as SpliceRequest, receivedAt).then(
          (splice): BatchResult => ({ ok: true, splice }),
          (e: unknown): BatchResult => ({ ok: false, error: toBatonError(e) }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, worker));
    return results;
  }

  /** Moves the connection's next client bytes to another back end. */
  async handoff(
    caller: Caller,
    idText: string,
    req: HandoffRequest,
    receivedAt = performance.now(),
  ): Promise<SpliceJson> {
    return this.timed('handoff', receivedAt, async () => {
      const id = parseId(idText);
      const backend = parseEndpoint(req.backend, 'backend');
      const rec = this.record(caller, id);
      if (backend.family !== rec.family) {
        throw new BatonError(
          'SPLICE_REFUSED',
          `connection ${id} is IPv${rec.family}; the new back end ${req.backend} must be IPv${rec.family} too`,
          'family_mismatch',
        );
      }
      const next = await this.splicer.handoff(
        id,
        { ip: backend.ip, port: backend.port },
        req.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: req.quiesceTimeoutMs } : {},
      );
      return this.view(next);
    });
  }

  get(caller: Caller, idText: string): SpliceJson {
    return this.view(this.record(caller, parseId(idText)));
  }

  /** Resets both ends and removes the connection. */
  async abort(caller: Caller, idText: string): Promise<void> {
    const id = parseId(idText);
    this.record(caller, id);
    let found: boolean;
    try {
      found = await this.splicer.abort(id);
    } catch (e) {
      throw toBatonError(e);
    }
    if (!found) throw notFound(id);
  }

  /**
   * Connections ordered by id, after `cursor`, filtered; `next` is the
   * cursor of the following page. A caller sees only its own uid's
   * connections (privileged callers all).
   */
  list(caller: Caller, q: ListQuery = {}): { items: SpliceJson[]; next: string | null } {
    const everyone = isPrivileged(caller);
    const limit = q.limit ?? DEFAULT_LIST_LIMIT;
    const after = q.cursor === undefined ? -1n : parseId(q.cursor);
    const backend = q.backend === undefined ? undefined : formatEndpoint(parseEndpoint(q.backend, 'backend'));
    let ids: bigint[] = [];
    let sorted = true;
    let prev = -1n;
    for (const id of this.splicer.records.keys()) {
      if (id <= after) continue;
      if (id < prev) sorted = false;
      prev = id;
      ids.push(id);
    }
    // Ids are handed out in increasing order; only adopted records can break it.
    if (!sorted) ids = ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const items: SpliceJson[] = [];
    const now = process.hrtime.bigint();
    let i = 0;
    for (; i < ids.length && items.length < limit; i++) {
      const rec = this.splicer.records.get(ids[i] as bigint);
      if (!rec || (!everyone && !seesConnection(caller, rec.ownerUid))) continue;
      const v = spliceView(rec, this.splicer.status(rec.id), now);
      if (q.state && v.state !== q.state) continue;
      if (backend && v.handoffs.at(-1)?.backend !== backend) continue;
      items.push(v);
    }
    const more = i < ids.length && items.length === limit;
    return { items, next: more ? (items.at(-1)?.id ?? null) : null };
  }

  /** Connections by state, for the metrics (one status read per connection). */
  countByState(): Record<ConnectionState, number> {
    const counts = Object.fromEntries(CONNECTION_STATES.map((s) => [s, 0])) as Record<ConnectionState, number>;
    for (const id of this.splicer.records.keys()) counts[this.splicer.status(id)?.state ?? 'closed']++;
    return counts;
  }

  /** Datapath entries of the known connections: one per client side, one per live back-end leg. */
  tableEntries(): number {
    let n = 0;
    for (const rec of this.splicer.records.values()) {
      n++;
      for (const h of rec.legs) if (!h.retired) n++;
    }
    return n;
  }

  /** Refuses new work from now on; resolves when the operations under way have finished. */
  async drain(): Promise<void> {
    await this.operations.drain();
  }

  /** The record of connection `id`, if it exists and `caller` may act on it. */
  private record(caller: Caller, id: bigint): SpliceRecord {
    const rec = this.splicer.records.get(id);
    if (!rec) throw notFound(id);
    const refusal = connectionDecision(caller, id, rec.ownerUid);
    if (refusal) throw refusal;
    return rec;
  }

  private view(rec: SpliceRecord): SpliceJson {
    return spliceView(rec, this.splicer.status(rec.id), process.hrtime.bigint());
  }

  /**
   * Passed descriptors: TCP and established, like taken ones. A descriptor
   * the caller passes is one it holds, which is what naming its own pid on
   * REST asks for: the same rule 1 decides, on the peer's own process.
   */
  private checkPassed(caller: Caller, [client, backend]: [TakenSocket, TakenSocket]) {
    this.authorizer.checkPassedBy(caller);
    assertEstablishedTcp(client.fd, 'client');
    assertEstablishedTcp(backend.fd, 'back-end');
    return { client, backend };
  }

  private async take(
    caller: Caller,
    req: SpliceByDescriptor | SpliceByAddress,
  ): Promise<{ client: TakenSocket; backend: TakenSocket }> {
    // Privileged callers skip the gate: no /proc read on their hot path.
    const gate: ProcessGate | undefined = isPrivileged(caller)
      ? undefined
      : (pid) => this.authorizer.checkProcess(caller, pid);
    if (isByDescriptor(req)) {
      const client = takeByDescriptor(req.client.pid, req.client.fd, 'client', gate);
      try {
        return { client, backend: takeByDescriptor(req.backend.pid, req.backend.fd, 'back-end', gate) };
      } catch (e) {
        release(client);
        throw e;
      }
    }
    const q = {
      client: parseEndpoint(req.client, 'client'),
      vip: parseEndpoint(req.vip, 'vip'),
      backend: parseEndpoint(req.backend, 'backend'),
      ...(req.local !== undefined ? { local: parseEndpoint(req.local, 'local') } : {}),
    };
    return takeByAddress(req.pid, q, gate);
  }

  private timed<T>(mode: 'splice' | 'handoff', receivedAt: number, op: () => Promise<T>): Promise<T> {
    return this.operations.run(mode, receivedAt, op);
  }
}

/** The two passed descriptors as TakenSockets (fstat: what they must still name to be closed by us). */
function identifyPassed(req: SpliceByPassing): [TakenSocket, TakenSocket] {
  return [identify(req.passed.client), identify(req.passed.backend)];
}

function notFound(id: bigint): BatonError {
  return new BatonError(
    'NOT_FOUND',
    `no spliced connection has id ${id}; list them with GET /v1/splices`,
    'unknown_id',
  );
}
