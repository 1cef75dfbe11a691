/**
 * Reading a socket's TCP state from the kernel's tcp_sock: what no socket
 * option exposes (above all ts_recent, the peer's latest TSval, which PAWS
 * compares incoming segments against and which a splice needs to translate
 * timestamps) and everything else a capture needs (sequence numbers,
 * windows, scales, MSS, options, queue lengths). bpf/tcp_probe.c looks each
 * socket up by its 4-tuple; it runs through BPF_PROG_TEST_RUN on a query
 * frame of up to PROBE_BATCH struct baton_sk_query, one system call for all.
 *
 * Network namespaces: the lookup happens in the namespace of the thread that
 * runs the test. Sockets of another namespace are probed by passing that
 * namespace's fd (`netnsFd`); captureSockets() finds it from each socket
 * itself (control/tcp/socket.ts NetnsFds).
 */
import { BpfObject, type BpfProgram, testRun } from '../bpf/index.js';
import { resolveBpfObject } from '../bpf/objects.js';
import { encodeFlowKey, LAYOUTS } from '../datapath/abi.js';
import { decodeTcpProbe, PROBE_BATCH, type TcpProbe } from '../datapath/abi-probe.js';
import { withNetnsFd } from '../net/netns.js';
import type { Endpoint } from './state.js';

const PROG = 'baton_tcp_probe';
/** Ethernet header the test run needs in front of the query (type IPv4; otherwise unused). */
const ETH = Buffer.from('000000000000000000000000' + '0800', 'hex');
const Q = LAYOUTS.baton_sk_query;

export interface SocketProbeOptions {
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

export class SocketProbe {
  private closed = false;

  private constructor(
    private readonly object: BpfObject,
    private readonly program: BpfProgram,
  ) {}

  /** Loads the probe program (through the verifier). */
  static async load(opts: SocketProbeOptions = {}): Promise<SocketProbe> {
    const obj = BpfObject.open(resolveBpfObject('probe', { path: opts.objectPath, dir: opts.bpfDir }));
    try {
      await obj.load();
      return new SocketProbe(obj, obj.program(PROG));
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * What the kernel holds for each tuple, in order; undefined where no full
   * TCP socket with that tuple exists in the namespace (closed, TIME_WAIT,
   * another namespace). One test run per PROBE_BATCH tuples.
   */
  read(tuples: readonly ProbeTuple[], opts: ProbeRunOptions = {}): Array<TcpProbe | undefined> {
    if (this.closed) throw new Error('SocketProbe is closed');
    const run = () => {
      const rows: Array<TcpProbe | undefined> = [];
      for (let i = 0; i < tuples.length; i += PROBE_BATCH) rows.push(...this.batch(tuples.slice(i, i + PROBE_BATCH)));
      return rows;
    };
    return opts.netnsFd === undefined ? run() : withNetnsFd(opts.netnsFd, run);
  }

  private batch(tuples: readonly ProbeTuple[]): Array<TcpProbe | undefined> {
    const frame = Buffer.alloc(ETH.length + Q.size * tuples.length);
    ETH.copy(frame);
    tuples.forEach((t, i) => {
      encodeFlowKey({ src: t.local.ip, dst: t.remote.ip, sport: t.local.port, dport: t.remote.port }).copy(
        frame,
        ETH.length + i * Q.size + Q.fields.key,
      );
    });
    const out = testRun(this.program, { packet: frame }).packet;
    return tuples.map((_, i) => {
      const p = decodeTcpProbe(out.subarray(ETH.length + i * Q.size + Q.fields.result));
      return p.found ? p : undefined;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.object.close();
  }
}

let shared: Promise<SocketProbe> | undefined;
/** The shared probe once loaded: captures take it without awaiting (a microtask trip per splice). */
let loaded: SocketProbe | undefined;
export const loadedSocketProbe = (): SocketProbe | undefined => loaded;

/**
 * The process-wide probe, loaded on first use (the program is loaded once).
 * The first caller's options choose the object (the daemon calls it at start
 * with its configured --probe-object / --bpf-dir); later callers share it.
 */
export function sharedSocketProbe(opts: SocketProbeOptions = {}): Promise<SocketProbe> {
  shared ??= SocketProbe.load(opts).then(
    (p) => {
      loaded = p;
      return p;
    },
    (e: unknown) => {
      shared = undefined;
      throw e;
    },
  );
  return shared;
}

/** Frees the process-wide probe (tests, shutdown). */
export async function closeSharedSocketProbe(): Promise<void> {
  const p = shared;
  shared = undefined;
  loaded = undefined;
  if (p) (await p).close();
}
