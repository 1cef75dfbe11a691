/**
 * Helpers of the API tests: real loopback TCP connections of this process
 * (their fds are what a front end would name), a recording stand-in for the
 * splicer where a real splice would need a testbed, and problem checks.
 */

import assert from 'node:assert/strict';
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import type { FlowKey, Leg, Xlate } from '../../control/datapath/abi.js';
import { BatonError, ERRORS, type ErrorCode } from '../../control/errors.js';
import type { ConnectionStatus, SpliceRecord, SplicerPort } from '../../control/service/splicer-port.js';
import { ConnectionRecords } from '../../control/splice/records.js';
import type { SpliceOptions } from '../../control/splice/splicer.js';

type Handle = { _handle?: { fd?: number } };
export const fdOf = (s: net.Socket | net.Server): number => {
  const fd = (s as unknown as Handle)._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
  return fd;
};

/**
 * Sockets open in this process, to prove that a route took no copy of a
 * socket or leaked one. Only sockets count: a route's copies (pidfd_getfd)
 * are sockets, and everything else comes and goes with the runtime, not
 * with the code under test (the service keeps the pidfds of the front ends
 * it serves; libuv opens io_uring rings and eventfds lazily; the module
 * loader holds files open while it reads them). Counting all descriptors
 * made CI fail with 36 against 28 although nothing reached the splicer.
 */
export const openFds = (): number =>
  readdirSync('/proc/self/fd').filter((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`).startsWith('socket:');
    } catch {
      return false; // the directory's own descriptor, gone already
    }
  }).length;

/**
 * How many of this process's descriptors refer to these sockets: a copy taken
 * with pidfd_getfd points at the same socket inode as the original, so this
 * counts copies, whatever else the process opens meanwhile (libuv, fastify).
 */
export const descriptorsOf = (...sockets: Array<net.Socket | net.Server>): number => {
  const targets = new Set(sockets.map((s) => readlinkSync(`/proc/self/fd/${fdOf(s)}`)));
  return readdirSync('/proc/self/fd').filter((n) => {
    try {
      return targets.has(readlinkSync(`/proc/self/fd/${n}`));
    } catch {
      return false; // the directory's own descriptor, gone already
    }
  }).length;
};

export interface TcpPair {
  server: net.Server;
  /** The accepted socket (what a front end's client socket is: local = listen address). */
  accepted: net.Socket;
  /** The connecting socket. */
  connected: net.Socket;
  close(): Promise<void>;
}

/** An established loopback TCP connection, both ends in this process. */
export async function tcpPair(host = '127.0.0.1', server?: net.Server): Promise<TcpPair> {
  const srv = server ?? net.createServer({ pauseOnConnect: true });
  if (!server) await new Promise<void>((r) => srv.listen(0, host, r));
  const acceptedP = new Promise<net.Socket>((r) => srv.once('connection', r));
  const { port } = srv.address() as net.AddressInfo;
  const connected = net.connect({ host, port });
  await new Promise<void>((r, j) => connected.once('connect', r).once('error', j));
  const accepted = await acceptedP;
  return {
    server: srv,
    accepted,
    connected,
    async close() {
      accepted.destroy();
      connected.destroy();
      if (!server) await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

const ZERO_X: Xlate = {
  out: { src: '198.18.2.1', dst: '198.18.2.2', sport: 40000, dport: 80 },
  seqDelta: 1,
  ackDelta: 2,
  tsvalDelta: 3,
  tsecrDelta: 4,
  wscaleIn: 7,
  wscaleOut: 7,
  timestamps: true,
};

/** A record as the splicer makes one, for tests of listing and views. */
export function fakeRecord(
  id: bigint,
  opts: { client?: string; backend?: string; recovered?: boolean; legs?: number; ownerUid?: number } = {},
): SpliceRecord {
  const clientIp = opts.client ?? '198.18.1.1';
  const backendIp = opts.backend ?? '198.18.2.2';
  const clientKey: FlowKey = { src: clientIp, dst: '198.19.0.1', sport: 40000 + Number(id % 20000n), dport: 80 };
  const n = opts.legs ?? 1;
  const legs = Array.from({ length: n }, (_, index) => {
    const x: Xlate = { ...ZERO_X, out: { src: '198.18.2.1', dst: backendIp, sport: 50000 + index, dport: 80 } };
    const toBackend: Leg = { seqStart: 1000 * index, ackFloor: 0, x };
    return {
      index,
      backend: { ip: backendIp, port: 80 },
      local: { ip: '198.18.2.1', port: 50000 + index },
      backendKey: { src: backendIp, dst: '198.18.2.1', sport: 80, dport: 50000 + index },
      toBackend,
      toClient: { ...x, out: { src: '198.19.0.1', dst: clientIp, sport: 80, dport: clientKey.sport } },
      retired: index < n - 1,
      createdAt: Date.now(),
    };
  });
  return {
    id,
    family: clientIp.includes(':') ? 6 : 4,
    client: { ip: clientIp, port: clientKey.sport },
    vip: { ip: '198.19.0.1', port: 80 },
    clientKey,
    legs,
    capturedAt: performance.now(),
    createdAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    recovered: opts.recovered ?? false,
    ownerUid: opts.ownerUid ?? 0,
    timings: { quiesceMs: 0.1, captureMs: 0.05, installMs: 0.05, totalMs: 0.25 },
  };
}

export const traffic = (packets: number, lastSeenNs = 0n) => ({
  packets: BigInt(packets),
  bytes: BigInt(packets * 100),
  fin: false,
  rst: false,
  lastSeenNs,
});

/**
 * A stand-in splicer: records from `fakeRecord`, a status per record, and
 * splice/handoff/abort answers chosen by the test. It never touches a socket.
 */
export class StubSplicer implements SplicerPort {
  readonly records = new ConnectionRecords();
  readonly states = new Map<bigint, ConnectionStatus>();
  readonly calls: string[] = [];
  spliceImpl: (clientFd: number, backendFd: number, opts: SpliceOptions) => Promise<SpliceRecord> = async () => {
    throw new Error('StubSplicer.splice not set');
  };
  handoffImpl: (id: bigint) => Promise<SpliceRecord> = async (id) => this.records.get(id) as SpliceRecord;

  add(rec: SpliceRecord, state: ConnectionStatus['state'] = 'forwarding'): SpliceRecord {
    this.records.set(rec.id, rec);
    this.states.set(rec.id, {
      state,
      toBackend: traffic(10, process.hrtime.bigint() - 5_000_000n),
      toClient: traffic(12),
    });
    return rec;
  }

  /** Like the splicer, a successful splice takes both descriptors over (here: closes them). */
  async splice(clientFd: number, backendFd: number, opts: SpliceOptions = {}): Promise<SpliceRecord> {
    this.calls.push(`splice ${clientFd} ${backendFd}`);
    const rec = await this.spliceImpl(clientFd, backendFd, opts);
    closeSync(clientFd);
    closeSync(backendFd);
    return rec;
  }

  /** Ports a lease hands out, up to `count` (none: the splicer has no leg range). */
  legPorts: number[] = [];
  async leaseLegPorts(localIp: string, backend: { ip: string; port: number }, count = 1): Promise<number[]> {
    this.calls.push(`legPort ${localIp} ${backend.ip}:${backend.port}`);
    const ports = this.legPorts.splice(0, count);
    if (ports.length === 0) throw new BatonError('CONFIG_INVALID', 'no leg port range', 'no_leg_ports');
    return ports;
  }

  handoff(id: bigint, backend: { ip: string; port: number }): Promise<SpliceRecord> {
    this.calls.push(`handoff ${id} ${backend.ip}:${backend.port}`);
    return this.handoffImpl(id);
  }

  async abort(id: bigint): Promise<boolean> {
    this.calls.push(`abort ${id}`);
    return this.records.delete(id);
  }

  status(id: bigint): ConnectionStatus | undefined {
    return this.states.get(id);
  }
}

/** Asserts an RFC 9457 problem document with this status and code; returns it. */
export function assertProblem(
  res: LightMyRequestResponse,
  status: number,
  code: ErrorCode,
  reason?: string,
): Record<string, unknown> {
  assert.equal(res.statusCode, status, `status of ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const p = res.json() as Record<string, unknown>;
  assert.equal(p.code, code, res.body);
  assert.equal(p.status, status);
  assert.equal(p.title, ERRORS[code].title);
  assert.equal(p.type, `https://baton.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`);
  assert.equal(typeof p.detail, 'string');
  assert.ok((p.detail as string).length > 10, 'detail says what happened');
  if (reason !== undefined) assert.equal(p.reason, reason, res.body);
  return p;
}
