import { join } from 'node:path';
import { attachOrReusePinned, type BpfMap, BpfObject, XdpLink } from '../bpf/index.js';

import { resolveBpfObject } from '../bpf/objects.js';
import { ABI_VERSION, type Direction } from './abi.js';
import { type CounterRow, readCounters, readCountersByDirection } from './datapath.js';
import { FlowIdTable } from './fid-table.js';

export const DEFAULT_FIDS_CAPACITY = 65536;

/**
 * What the agent pins under its --pin-dir (the one place these names are
 * made): maps as agent_<map>_v<ABI>, XDP links as agent_link_xdp_<ifindex>.
 * `baton agent down` (control/agent/down.ts) removes exactly these.
 */
export const agentMapPin = (pinDir: string, map: string): string => join(pinDir, `agent_${map}_v${ABI_VERSION}`);
export const agentLinkPin = (pinDir: string, ifindex: number): string => join(pinDir, `agent_link_xdp_${ifindex}`);
export const AGENT_LINK_PIN = /^agent_link_xdp_(\d+)$/;
export const AGENT_MAP_PIN = /^agent_[a-z0-9_]+_v\d+$/;

export interface AgentDatapathOptions {
  /** The object file; default: resolveBpfObject('agent', { dir: bpfDir }). */
  objectPath?: string;
  bpfDir?: string;
  /** Flow-id mappings (one per migrated connection held by this back end). */
  fidsCapacity?: number;
  /** bpffs directory: maps are pinned (or reused) here, links pinned here. */
  pinDir?: string;
}

export class AgentDatapath {
  /** The flow-id mapping table: the only way to its entries. */
  readonly fids: FlowIdTable;
  readonly counters: BpfMap;
  private readonly links: XdpLink[] = [];

  private constructor(
    readonly object: BpfObject,
    private readonly pinDir: string | undefined,
  ) {
    this.fids = new FlowIdTable(object.map('baton_fids'), object.program('baton_agent_ctl'));
    this.counters = object.map('baton_counters');
  }

  static async load(options: AgentDatapathOptions = {}): Promise<AgentDatapath> {
    const objectPath = resolveBpfObject('agent', { path: options.objectPath, dir: options.bpfDir });
    // Pinned names carry the role: an agent and an LB on one host never share a map.
    const pin = (name: string) => (options.pinDir ? { pinPath: agentMapPin(options.pinDir, name) } : {});
    const obj = BpfObject.open(objectPath, {
      maps: {
        baton_fids: { maxEntries: options.fidsCapacity ?? DEFAULT_FIDS_CAPACITY, ...pin('baton_fids') },
        baton_counters: pin('baton_counters'),
      },
    });
    try {
      await obj.load();
      return new AgentDatapath(obj, options.pinDir);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Attaches the agent's XDP program (native mode) in the calling thread's network namespace. */
  attach(ifindex: number): XdpLink {
    const link = XdpLink.attach(this.object.program('baton_agent_xdp'), ifindex);
    this.links.push(link);
    if (this.pinDir) link.pin(agentLinkPin(this.pinDir, ifindex));
    return link;
  }

  /**
   * Attaches like attach(), or, when an earlier agent left its link pinned
   * (it stopped with keepPinned), switches that link to this program in one
   * atomic update: the interface is never without the program, so restored
   * connections keep their flow-id restore across an agent restart.
   */
  attachOrReuse(ifindex: number): { link: XdpLink; reused: boolean } {
    if (!this.pinDir) return { link: this.attach(ifindex), reused: false };
    const r = attachOrReusePinned(this.object.program('baton_agent_xdp'), ifindex, agentLinkPin(this.pinDir, ifindex));
    this.links.push(r.link);
    return r;
  }

  /** Per-reason totals, summed over CPUs. */
  readCounters(): CounterRow[] {
    return readCounters(this.counters);
  }

  /** Per reason and direction (mapped segments count as to_backend), summed over CPUs. */
  readCountersByDirection(): Array<CounterRow & { direction: Direction }> {
    return readCountersByDirection(this.counters);
  }

  /** Detaches what this process attached (unless pinned and `keepPinned`) and frees the object. */
  close(opts: { keepPinned?: boolean } = {}): void {
    for (const l of this.links.splice(0)) {
      if (opts.keepPinned && this.pinDir) {
        l.release();
        continue;
      }
      if (this.pinDir) l.unpin();
      l.detach();
    }
    this.object.close();
  }
}
