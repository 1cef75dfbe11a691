/**
 * Reading what no socket option exposes, above all ts_recent (the peer's
 * latest TSval, which PAWS compares incoming segments against and which a
 * splice needs to translate timestamps). bpf/tcp_probe.c looks one socket up
 * by its 4-tuple and reports its state; it runs through BPF_PROG_TEST_RUN on
 * a query frame (struct baton_sk_query), a few microseconds per socket.
 *
 * Network namespaces: the lookup happens in the namespace of the thread that
 * runs the test. Sockets of another namespace are probed by passing that
 * namespace's fd (`netnsFd`); captureSockets() finds it from each socket
 * itself (ioctl SIOCGSKNS).
 */
import { BpfObject, type BpfProgram, testRun } from '../bpf/index.js';
import { resolveBpfObject } from '../bpf/objects.js';
import { decodeTcpProbe, encodeFlowKey, LAYOUTS, type TcpProbe } from '../datapath/abi.js';
import { withNetnsFd } from '../net/netns.js';
import type { Endpoint, TcpState } from './state.js';

const PROG = 'baton_tcp_probe';
/** Ethernet header the test run needs in front of the query (type IPv4; otherwise unused). */
const ETH = Buffer.from('000000000000000000000000' + '0800', 'hex');
const Q = LAYOUTS.baton_sk_query;

export interface TsProbeOptions {
  /** The object file; default: resolveBpfObject('probe', { dir: bpfDir }). */
  objectPath?: string | undefined;
  /** Directory of the objects when objectPath is not given. */
  bpfDir?: string | undefined;
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
    private readonly program: BpfProgram,
  ) {}

  /** Loads the probe program (through the verifier). */
  static async load(opts: TsProbeOptions = {}): Promise<TsProbe> {
    const obj = BpfObject.open(resolveBpfObject('probe', { path: opts.objectPath, dir: opts.bpfDir }));
    try {
      await obj.load();
      return new TsProbe(obj, obj.program(PROG));
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
    const run = () => tuples.map((t) => this.one(t));
    return opts.netnsFd === undefined ? run() : withNetnsFd(opts.netnsFd, run);
  }

  private one(t: ProbeTuple): TcpProbe | undefined {
    const frame = Buffer.alloc(ETH.length + Q.size);
    ETH.copy(frame);
    encodeFlowKey({ src: t.local.ip, dst: t.remote.ip, sport: t.local.port, dport: t.remote.port }).copy(
      frame,
      ETH.length + Q.fields.key,
    );
    const out = testRun(this.program, { packet: frame }).packet;
    const p = decodeTcpProbe(out.subarray(ETH.length + Q.fields.result));
    return p.found ? p : undefined;
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
      if (p.rcvNxt !== s.rcvNxt || p.sndUna !== s.sndUna || p.writeSeq !== (s.sndUna + s.sendQueue.length) >>> 0) {
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
    this.object.close();
  }
}

let shared: Promise<TsProbe> | undefined;

/**
 * The process-wide probe, loaded on first use (the program is loaded once).
 * The first caller's options choose the object (the daemon calls it at start
 * with its configured --probe-object / --bpf-dir); later callers share it.
 */
export function sharedTsProbe(opts: TsProbeOptions = {}): Promise<TsProbe> {
  shared ??= TsProbe.load(opts).catch((e: unknown) => {
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
