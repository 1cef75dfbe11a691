/**
 * Reading what no socket option exposes, above all ts_recent (the peer's
 * latest TSval, which PAWS compares incoming segments against and which a
 * splice needs to translate timestamps). bpf/iter_tcp_probe.c is a TCP
 * socket iterator: we put the 4-tuples we want in its query map, run it once
 * (one pass over the namespace's TCP sockets, however many we ask about), and
 * read the values back.
 *
 * Network namespaces: the iterator walks the namespace of the thread that
 * creates the iterator fd, not the one that loaded the program. Sockets of
 * another namespace are probed by passing that namespace's fd (`netnsFd`);
 * captureSockets() finds it from each socket itself (ioctl SIOCGSKNS).
 */
import { resolve } from 'node:path';
import { BpfObject, type BpfMap } from '../bpf/index.js';
import { IterLink } from '../bpf/iter.js';
import { decodeTcpProbe, encodeFlowKey, LAYOUTS, type TcpProbe } from '../datapath/abi.js';
import type { Endpoint, TcpState } from './state.js';

export const DEFAULT_PROBE_OBJECT = resolve(import.meta.dirname, '../../build/bpf/iter_tcp_probe.o');
export const DEFAULT_PROBE_CAPACITY = 4096;
const MAP = 'baton_tcp_query';
const PROG = 'baton_tcp_probe';

export interface TsProbeOptions {
  objectPath?: string;
  /** Sockets one iteration can answer; larger requests run in several passes. */
  capacity?: number;
}

export interface ProbeRunOptions {
  /** Probe the sockets of this network namespace instead of the calling thread's. */
  netnsFd?: number;
}

/** A socket to look up, oriented from its own side. */
export interface ProbeTuple {
  local: Endpoint;
  remote: Endpoint;
}

export type { TcpProbe };

export interface FillResult {
  /** Sockets found in the namespace. */
  found: number;
  /** Of those, sockets whose sequence numbers had moved past their state. */
  stale: number;
}

export class TsProbe {
  private closed = false;

  private constructor(
    private readonly object: BpfObject,
    private readonly query: BpfMap,
    private readonly link: IterLink,
    readonly capacity: number,
  ) {}

  /** Loads the probe program (through the verifier) and attaches its iterator link. */
  static async load(opts: TsProbeOptions = {}): Promise<TsProbe> {
    const capacity = opts.capacity ?? DEFAULT_PROBE_CAPACITY;
    const obj = BpfObject.open(opts.objectPath ?? DEFAULT_PROBE_OBJECT, { maps: { [MAP]: { maxEntries: capacity } } });
    try {
      await obj.load();
      const link = IterLink.attach(obj.program(PROG));
      return new TsProbe(obj, obj.map(MAP), link, capacity);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * What the kernel holds for each tuple, in order; undefined where no full
   * TCP socket with that tuple exists in the namespace (closed, TIME_WAIT,
   * another namespace).
   */
  read(tuples: readonly ProbeTuple[], opts: ProbeRunOptions = {}): Array<TcpProbe | undefined> {
    if (this.closed) throw new Error('TsProbe is closed');
    const out: Array<TcpProbe | undefined> = [];
    for (let at = 0; at < tuples.length; at += this.capacity) {
      out.push(...this.pass(tuples.slice(at, at + this.capacity), opts));
    }
    return out;
  }

  private pass(tuples: readonly ProbeTuple[], opts: ProbeRunOptions): Array<TcpProbe | undefined> {
    const keys = tuples.map((t) => encodeFlowKey({ src: t.local.ip, dst: t.remote.ip, sport: t.local.port, dport: t.remote.port }));
    const zero = Buffer.alloc(LAYOUTS.baton_tcp_probe.size);
    const inserted: Buffer[] = [];
    try {
      for (const k of keys) {
        this.query.update(k, zero, 'ANY');
        inserted.push(k);
      }
      this.link.run(opts.netnsFd === undefined ? {} : { netnsFd: opts.netnsFd });
      return keys.map((k) => {
        const v = this.query.lookup(k);
        if (!v) return undefined;
        const p = decodeTcpProbe(v);
        return p.found ? p : undefined;
      });
    } finally {
      for (const k of inserted) this.query.delete(k);
    }
  }

  /**
   * Sets tsRecent (and usecTs) on each state from one iteration. A state
   * whose socket was not found, or that does not use timestamps, is left
   * with tsRecent undefined. A socket whose sequence numbers no longer match
   * its state (it moved on between capture and probe) is counted as stale
   * and left undefined too: its ts_recent may be newer than the state.
   */
  fill(states: TcpState[], opts: ProbeRunOptions = {}): FillResult {
    const rows = this.read(states, opts);
    const result: FillResult = { found: 0, stale: 0 };
    states.forEach((s, i) => {
      const p = rows[i];
      delete s.tsRecent;
      if (!p) return;
      result.found++;
      if (p.rcvNxt !== s.rcvNxt || p.sndUna !== s.sndUna || p.writeSeq !== ((s.sndUna + s.sendQueue.length) >>> 0)) {
        result.stale++;
        return;
      }
      s.usecTs = p.usecTs;
      if (p.timestamps && s.timestamps) s.tsRecent = p.tsRecent;
    });
    return result;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.link.destroy();
    this.object.close();
  }
}

let shared: Promise<TsProbe> | undefined;

/** The process-wide probe, loaded on first use (the program is loaded once). */
export function sharedTsProbe(): Promise<TsProbe> {
  shared ??= TsProbe.load().catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/** Frees the process-wide probe (tests, shutdown). */
export async function closeSharedTsProbe(): Promise<void> {
  const p = shared;
  shared = undefined;
  if (p) (await p).close();
}

/** Fills tsRecent of many states with one iteration of the shared probe. */
export async function probeTsRecent(states: TcpState[], opts: ProbeRunOptions = {}): Promise<FillResult> {
  return (await sharedTsProbe()).fill(states, opts);
}
