/**
 * The agent's three listeners, without the daemon plumbing (daemon.ts):
 *   - the blob channel for LBs (TCP): HMAC handshake (handshake.ts), then
 *     state blobs back to back, each answered after its socket exists in an
 *     app (a confirmation naming the migration id) or refused with a code
 *     and a reason (reply.ts); replies come in the order blobs arrived;
 *   - the app socket (unix): apps register for a VIP:port (authorize.ts)
 *     and receive each migrated connection as a descriptor (SCM_RIGHTS)
 *     with a JSON header;
 *   - metrics and health (HTTP): /metrics, /healthz, /readyz.
 */
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FidState } from '../datapath/abi-migrate.js';
import type { CounterRow } from '../datapath/datapath.js';
import { type FlowIdTable, formatFidKey } from '../datapath/fid-table.js';
import { BatonError } from '../errors.js';
import { MAX_MIGRATE_TIMEOUT_MS } from '../service/limits.js';
import { libc } from '../sys/libc.js';
import { peerCred, socketFd } from '../sys/peercred.js';
import { sendWithFds } from '../sys/scm-rights.js';
import {
  BlobError,
  BlobFramer,
  type ChannelBlob,
  decodeChannelBlob,
  type FlowReservation,
  type StateBlob,
} from '../tcp/blob/index.js';
import { type AppRules, mayRegister } from './authorize.js';
import {
  encodeChallenge,
  encodeVerdict,
  HandshakeError,
  newNonce,
  RESPONSE_BYTES,
  verifyResponse,
} from './handshake.js';
import { AgentMetrics, type MigrationOutcome } from './metrics.js';
import {
  type ConnectionHeader,
  encodeMessage,
  MessageReader,
  parseRegisterRequest,
  parseVip,
  type RefusalCode,
  type Reply,
  vipKey,
} from './reply.js';
import { discardRestored, fidOfFlow, restoreMigration } from './restore.js';

export interface AgentOptions {
  secret: Buffer;
  channel: { host: string; port: number };
  appSocket: string;
  /** Mode of the app socket file (default 0o666: authorization is by peer uid, not file access). */
  appSocketMode?: number;
  metrics: { host: string; port: number };
  apps: AppRules;
  /** IP_TRANSPARENT on restored sockets (VIP not configured on this host). */
  transparent?: boolean;
  handshakeTimeoutMs?: number;
  /**
   * The agent datapath's flow-id table (AgentDatapath.fids). Without it a
   * blob carrying a flow-id mapping is refused (no_datapath): the client's
   * flow-id segments would reach this host's stack unrestored and be reset.
   */
  fids?: Pick<FlowIdTable, 'insert' | 'reseed' | 'setState' | 'remove' | 'entries'>;
  /** The agent datapath's counters (AgentDatapath.readCounters), exported as baton_agent_datapath_*. */
  datapathCounters?: () => CounterRow[];
  log?: (event: Record<string, unknown>) => void;
}

/**
 * How long a reservation waits for its state: longer than any LB waits for
 * the agent (MAX_MIGRATE_TIMEOUT_MS), so an expiry never removes the
 * mapping under a migration the LB still runs.
 */
export const RESERVATION_TTL_MS = MAX_MIGRATE_TIMEOUT_MS + 5000;

/** How long before a state's REPLY_BY the agent stops handing it to an app: time for the confirmation to reach the LB (and for clocks a little apart). */
export const REPLY_MARGIN_MS = 100;

type FidOf = NonNullable<ReturnType<typeof fidOfFlow>>;
/** One channel's reservations whose state has not come yet, by migration id. */
type Reservations = Map<string, { fid: FidOf; timer: NodeJS.Timeout }>;

interface AppConn {
  socket: net.Socket;
  fd: number;
  uid: number;
  pid: number;
  vips: Set<string>;
}

export class Agent {
  readonly metrics: AgentMetrics;
  private channelServer?: net.Server;
  private appServer?: net.Server;
  private httpServer?: HttpServer;
  private readonly apps = new Map<string, AppConn>();
  private readonly channels = new Set<net.Socket>();
  private closing = false;
  private readonly log: (e: Record<string, unknown>) => void;
  channelAddress?: net.AddressInfo;
  metricsAddress?: net.AddressInfo;

  constructor(readonly opts: AgentOptions) {
    this.metrics = new AgentMetrics({
      ...(opts.datapathCounters ? { counters: opts.datapathCounters } : {}),
      ...(opts.fids ? { fids: opts.fids } : {}),
    });
    this.log =
      opts.log ?? ((e) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`));
  }

  async start(): Promise<void> {
    this.appServer = net.createServer((s) => this.onApp(s));
    // /run/baton does not survive a reboot: make it (baton agent down removes it again when empty).
    mkdirSync(dirname(this.opts.appSocket), { recursive: true, mode: 0o755 });
    try {
      unlinkSync(this.opts.appSocket);
    } catch {}
    await listen(this.appServer, { path: this.opts.appSocket });
    chmodSync(this.opts.appSocket, this.opts.appSocketMode ?? 0o666);

    this.channelServer = net.createServer((s) => this.onChannel(s));
    await listen(this.channelServer, this.opts.channel);
    this.channelAddress = this.channelServer.address() as net.AddressInfo;

    this.httpServer = createHttpServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.metrics.registry.metrics().then(
          (t) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(t),
          (e: unknown) => res.writeHead(500).end(`collecting metrics failed: ${(e as Error).message}\n`),
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
      } else if (path === '/readyz') {
        const ready = !this.closing;
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ ready, apps: [...this.apps.keys()] })}\n`);
      } else res.writeHead(404, { 'content-type': 'text/plain' }).end('routes: /metrics /healthz /readyz\n');
    });
    await listen(this.httpServer, this.opts.metrics);
    this.metricsAddress = this.httpServer.address() as net.AddressInfo;
    this.log({
      event: 'agent_started',
      channel: this.channelAddress,
      appSocket: this.opts.appSocket,
      metrics: this.metricsAddress,
    });
  }

  /** Stops taking blobs and apps. Sockets already handed to apps are theirs and keep working. */
  async close(): Promise<void> {
    this.closing = true;
    for (const c of this.channels) c.destroy();
    for (const a of new Set(this.apps.values())) a.socket.destroy();
    await Promise.all(
      [this.channelServer, this.appServer, this.httpServer].map(
        (s) => new Promise<void>((r) => (s ? s.close(() => r()) : r())),
      ),
    );
  }

  // ------------------------------------------------------------ blob channel

  private onChannel(s: net.Socket): void {
    const remote = `${s.remoteAddress}:${s.remotePort}`;
    this.channels.add(s);
    s.on('close', () => this.channels.delete(s));
    s.on('error', (e) => this.log({ event: 'channel_error', remote, error: e.message }));
    s.setNoDelay(true);
    const nonce = newNonce();
    s.write(encodeChallenge(nonce));
    const timer = setTimeout(() => refuse('no handshake response in time'), this.opts.handshakeTimeoutMs ?? 5000);
    let head = Buffer.alloc(0);
    let framer: BlobFramer | undefined;
    const reservations: Reservations = new Map();
    let refused = false;
    const refuse = (why: string): void => {
      clearTimeout(timer);
      refused = true;
      this.metrics.handshakesRefused.inc();
      this.log({ event: 'channel_refused', remote, reason: why });
      s.end(encodeVerdict(false));
      // Whatever the refused peer sends next is not read; give it a moment to read the verdict, then cut.
      setTimeout(() => s.destroy(), 1000).unref();
    };
    s.on('data', (chunk: Buffer) => {
      if (refused) return;
      if (!framer) {
        head = Buffer.concat([head, chunk]);
        if (head.length < RESPONSE_BYTES) return;
        clearTimeout(timer);
        let ok = false;
        try {
          ok = verifyResponse(this.opts.secret, nonce, head.subarray(0, RESPONSE_BYTES));
        } catch (e) {
          if (!(e instanceof HandshakeError)) throw e;
          return refuse(e.message);
        }
        if (!ok) return refuse('the response does not prove the shared secret (--peer-secret-file differs)');
        s.write(encodeVerdict(true));
        this.log({ event: 'channel_accepted', remote });
        framer = new BlobFramer();
        chunk = head.subarray(RESPONSE_BYTES);
        if (chunk.length === 0) return;
      }
      let blobs: Buffer[];
      try {
        blobs = framer.push(chunk);
      } catch (e) {
        this.log({ event: 'channel_out_of_step', remote, error: (e as Error).message });
        s.destroy();
        return;
      }
      for (const b of blobs) s.write(encodeMessage(this.onBlob(b, reservations)));
    });
    // Reservations whose state never came: the LB gave up on them (or died); their mappings go.
    s.on('close', () => {
      for (const id of [...reservations.keys()]) this.dropReservation(reservations, id, 'abandoned');
    });
  }

  /** One blob of a channel -> the reply. Synchronous: mapping, restore and hand-off are system calls. */
  private onBlob(bytes: Buffer, reservations: Reservations): Reply {
    let decoded: ChannelBlob;
    try {
      decoded = decodeChannelBlob(bytes);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      return this.refused('0', 'blob_invalid', e.message);
    }
    return decoded.kind === 'reservation'
      ? this.reserve(decoded.reservation, reservations)
      : this.migrate(decoded.blob, reservations);
  }

  /**
   * A reservation: the LB is capturing the socket now and will switch its
   * entry to FORWARD once this answers "held", before it sends the state.
   * So the client's segments (its ACKs of the app's first answer above all)
   * never go to the LB's captured socket while the app already serves: they
   * reach this host, dropped in HOLD until the socket is restored. Checked
   * here what can be checked without the state (an app, the datapath, a
   * free flow id), so a refusal comes before the LB did anything visible.
   */
  private reserve(r: FlowReservation, reservations: Reservations): Reply {
    const id = r.migrationId.toString();
    if (this.closing) return this.refused(id, 'shutting_down', 'the agent is shutting down');
    const vip = vipKey(r.flow.vip);
    if (!this.apps.has(vip))
      return this.refused(id, 'no_app', `no application is registered for ${vip} on this back end`);
    if (reservations.has(id))
      return this.refused(id, 'blob_invalid', `migration ${id} is reserved already on this channel`);
    const fid = fidOfFlow(r.migrationId, r.flow);
    const refusal = this.insertHeld(id, fid);
    if (refusal) return refusal;
    const timer = setTimeout(() => this.dropReservation(reservations, id, 'expired'), RESERVATION_TTL_MS);
    timer.unref();
    reservations.set(id, { fid, timer });
    this.metrics.reservations.labels('held').inc();
    return { migrationId: id, ok: true, held: true };
  }

  /** Removes a reservation whose state did not follow, and its HOLD mapping. */
  private dropReservation(reservations: Reservations, id: string, why: 'expired' | 'abandoned'): void {
    const r = reservations.get(id);
    if (!r) return;
    clearTimeout(r.timer);
    reservations.delete(id);
    this.opts.fids?.remove(r.fid.key);
    this.metrics.reservations.labels(why).inc();
    this.log({ event: 'reservation_dropped', migrationId: id, why });
  }

  /** The mapping in HOLD, or the refusal that says why it cannot be. */
  private insertHeld(id: string, fid: FidOf, rcvNxt?: number): Reply | undefined {
    const fids = this.opts.fids;
    if (!fids)
      return this.refused(
        id,
        'no_datapath',
        'the blob carries a flow-id mapping but this agent runs no datapath; start it with --interface on the interfaces the LBs forward to',
      );
    try {
      fids.insert(fid.key, fid.mapping, rcvNxt === undefined ? {} : { rcvNxt });
    } catch (e) {
      if (e instanceof BatonError && e.code === 'FLOW_ID_IN_USE') return this.refused(id, 'flow_id_in_use', e.message);
      if (e instanceof BatonError && e.code === 'TABLE_FULL') return this.refused(id, 'fid_table_full', e.message);
      return this.refused(id, 'datapath_failed', `installing the flow-id mapping failed: ${(e as Error).message}`);
    }
    return undefined;
  }

  /** One state -> the reply. */
  private migrate(blob: StateBlob, reservations: Reservations): Reply {
    const t0 = performance.now();
    const id = blob.migrationId.toString();
    const reserved = reservations.get(id);
    if (reserved) {
      clearTimeout(reserved.timer);
      reservations.delete(id);
    }
    const fid = blob.flow ? fidOfFlow(blob.migrationId, blob.flow) : undefined;
    const undoFid = (): void => {
      if (fid) this.opts.fids?.remove(fid.key);
    };
    if (reserved && (!fid || formatFidKey(fid.key) !== formatFidKey(reserved.fid.key))) {
      this.opts.fids?.remove(reserved.fid.key);
      return this.refused(
        id,
        'blob_invalid',
        `the state of migration ${id} names another flow-id mapping than its reservation`,
      );
    }
    const refuse = (code: RefusalCode, reason: string): Reply => {
      undoFid();
      return this.refused(id, code, reason);
    };
    if (this.closing) return refuse('shutting_down', 'the agent is shutting down');
    const vip = vipKey(blob.tcp.local);
    const app = this.apps.get(vip);
    if (!app) return refuse('no_app', `no application is registered for ${vip} on this back end`);
    // The flow-id mapping is in HOLD from here until the app holds the socket: the client's segments forwarded
    // by the LB are dropped (counted flow_id_held) instead of reaching a stack without the socket, which would
    // answer them with a RST; the client retransmits them once the mapping is RESTORE. Reserved: in since the
    // reservation, now seeded with the socket's rcv_nxt. Not reserved (an LB that sends the state alone): now.
    if (fid && reserved) {
      try {
        this.opts.fids?.reseed(fid.key, fid.mapping, { rcvNxt: blob.tcp.rcvNxt });
      } catch (e) {
        return refuse('datapath_failed', `seeding the reserved flow-id mapping failed: ${(e as Error).message}`);
      }
    } else if (fid) {
      const refusal = this.insertHeld(id, fid, blob.tcp.rcvNxt);
      if (refusal) return refusal;
    }
    let restored: ReturnType<typeof restoreMigration>;
    try {
      restored = restoreMigration(blob, { transparent: this.opts.transparent });
    } catch (e) {
      return refuse('restore_failed', (e as Error).message);
    }
    // The last moment to refuse cleanly: past the sender's REPLY_BY (less the way back) it serves the
    // connection itself, and a copy handed to the app now would answer a client that is not listening to it.
    if (blob.replyByMs !== undefined && Date.now() > blob.replyByMs - REPLY_MARGIN_MS) {
      discardRestored(restored.fd);
      return refuse(
        'too_late',
        `the state arrived too late: its LB stops waiting at ${new Date(blob.replyByMs).toISOString()} (less ${REPLY_MARGIN_MS} ms for the answer to travel); it serves the connection itself (if this repeats, check this host's load and both hosts' clocks)`,
      );
    }
    // RESTORE before the hand-off: the app may answer at once, and the client's ACKs of that answer must reach
    // the socket. Were the mapping still in HOLD they would be dropped here, and the app's first flight would
    // wait for a retransmission timeout. In place (the control program): the track seeded at insert stays exact.
    if (fid) {
      try {
        this.opts.fids?.setState(fid.key, FidState.RESTORE);
      } catch (e) {
        discardRestored(restored.fd);
        return refuse('datapath_failed', `switching the flow-id mapping to RESTORE failed: ${(e as Error).message}`);
      }
    }
    const header: ConnectionHeader = {
      type: 'connection',
      migrationId: id,
      client: blob.tcp.remote,
      vip: blob.tcp.local,
      queuedBytes: restored.queuedBytes,
    };
    const msg = encodeMessage(header);
    const n = sendWithFds(app.fd, msg, [restored.fd]);
    if (n !== msg.length) {
      // Nothing (or a torn message) reached the app: the socket goes away silently (repair mode, no packet),
      // then its mapping, and the LB serves on its own socket. The client is waiting for an answer and sends
      // nothing new in the microseconds the mapping was RESTORE; what it retransmits meanwhile is data the
      // LB's socket has too.
      discardRestored(restored.fd);
      undoFid();
      if (n > 0) app.socket.destroy();
      return this.refused(
        id,
        'handoff_failed',
        `the app (pid ${app.pid}) could not take the socket (${n < 0 ? `errno ${-n}` : 'partial write'})`,
      );
    }
    // The app holds its own descriptor now; ours is a second reference.
    discardOurCopy(restored.fd);
    this.metrics.migrations.labels('restored').inc();
    this.metrics.restoreDuration.observe((performance.now() - t0) / 1000);
    return { migrationId: id, ok: true, queuedBytes: restored.queuedBytes };
  }

  private refused(migrationId: string, code: RefusalCode, reason: string): Reply {
    this.metrics.migrations.labels(code as MigrationOutcome).inc();
    this.log({ event: 'migration_refused', migrationId, code, reason });
    return { migrationId, ok: false, code, reason };
  }

  // ------------------------------------------------------------ app socket

  private onApp(s: net.Socket): void {
    const fd = socketFd(s);
    if (fd === undefined) return void s.destroy();
    const cred = peerCred(fd);
    const app: AppConn = { socket: s, fd, uid: cred.uid, pid: cred.pid, vips: new Set() };
    const reader = new MessageReader();
    const send = (m: unknown): void => {
      const b = encodeMessage(m);
      if (sendWithFds(fd, b) !== b.length) s.destroy();
    };
    s.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = reader.push(chunk);
      } catch (e) {
        this.log({ event: 'app_protocol_error', pid: cred.pid, error: (e as Error).message });
        return void s.destroy();
      }
      for (const m of msgs) {
        let vip: string;
        try {
          vip = parseRegisterRequest(m).vip;
        } catch (e) {
          send({ type: 'refused', code: 'bad_request', reason: (e as Error).message });
          continue;
        }
        const ep = parseVip(vip);
        if (!ep) {
          send({
            type: 'refused',
            code: 'bad_request',
            reason: `${JSON.stringify(vip)} is not ip:port or [ipv6]:port`,
          });
          continue;
        }
        const key = vipKey(ep);
        if (!mayRegister(cred.uid, key, this.opts.apps)) {
          this.log({ event: 'app_forbidden', pid: cred.pid, uid: cred.uid, vip: key });
          send({
            type: 'refused',
            code: 'forbidden',
            reason: `uid ${cred.uid} may not serve ${key}: root may serve any VIP, other uids only those the agent's --app lists for them`,
          });
          continue;
        }
        const holder = this.apps.get(key);
        if (holder && holder !== app) {
          send({ type: 'refused', code: 'vip_taken', reason: `${key} is served by pid ${holder.pid}` });
          continue;
        }
        this.apps.set(key, app);
        app.vips.add(key);
        this.log({ event: 'app_registered', pid: cred.pid, uid: cred.uid, vip: key });
        send({ type: 'registered', vip: key });
      }
    });
    const drop = (): void => {
      for (const v of app.vips) if (this.apps.get(v) === app) this.apps.delete(v);
    };
    s.on('close', drop);
    s.on('error', drop);
  }
}

/** Closes the agent's descriptor of a socket an app now also holds (the socket lives on in the app). */
function discardOurCopy(fd: number): void {
  libc.close(fd);
}

function listen(server: net.Server | HttpServer, at: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
