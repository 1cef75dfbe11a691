/**
 * The loaded datapath: baton's XDP program, its maps and its attachments.
 * This is what the daemon, the demo and the tests hold; it hides object
 * files, map names and counter layout behind a small typed surface.
 */
import { join } from 'node:path';
import { type BpfMap, BpfObject, XdpLink } from '../bpf/index.js';
import { resolveBpfObject } from '../bpf/objects.js';
import { ABI_VERSION, type Action, DIRECTIONS, type Direction, REASONS, type ReasonName } from './abi.js';
import { FLOWS_MAP, FlowTable, LEG_LISTS_MAP } from './flow-table.js';
import { OWNER_MAP_NAMES, type OwnerMaps, ownerMaps } from './owner.js';

export const DEFAULT_FLOWS_CAPACITY = 65536;

export interface DatapathOptions {
  /** The object file; default: resolveBpfObject('datapath', { dir: bpfDir }). */
  objectPath?: string;
  /** Directory of the objects when objectPath is not given (control/bpf/objects.ts). */
  bpfDir?: string;
  /** Connection-table entries (two or more per spliced connection). */
  flowsCapacity?: number;
  /** bpffs directory: maps are pinned (or reused) here, links pinned here. */
  pinDir?: string;
}

export interface CounterRow {
  action: Action;
  reason: ReasonName;
  packets: bigint;
  bytes: bigint;
}

export class Datapath {
  /** The connection table: the only way to its entries. */
  readonly table: FlowTable;
  readonly counters: BpfMap;
  /** Owner forwarding (004): peers, VIPs, second chance, configuration. */
  readonly owner: OwnerMaps;
  private readonly links: XdpLink[] = [];

  private constructor(
    readonly object: BpfObject,
    readonly options: Required<Omit<DatapathOptions, 'pinDir' | 'bpfDir'>> & { pinDir?: string },
  ) {
    this.table = FlowTable.of(object);
    this.counters = object.map('baton_counters');
    this.owner = ownerMaps((name) => object.map(name));
  }

  static async load(options: DatapathOptions = {}): Promise<Datapath> {
    const objectPath = resolveBpfObject('datapath', { path: options.objectPath, dir: options.bpfDir });
    const flowsCapacity = options.flowsCapacity ?? DEFAULT_FLOWS_CAPACITY;
    const pin = (name: string) => (options.pinDir ? { pinPath: join(options.pinDir, `${name}_v${ABI_VERSION}`) } : {});
    const obj = BpfObject.open(objectPath, {
      maps: {
        [FLOWS_MAP]: { maxEntries: flowsCapacity, ...pin(FLOWS_MAP) },
        // One list per CLIENT entry at most, and a connection has two entries or more.
        [LEG_LISTS_MAP]: { maxEntries: Math.max(1, Math.floor(flowsCapacity / 2)), ...pin(LEG_LISTS_MAP) },
        baton_counters: pin('baton_counters'),
        ...Object.fromEntries(OWNER_MAP_NAMES.map((n) => [n, pin(n)])),
      },
    });
    try {
      await obj.load();
      return new Datapath(obj, { objectPath, flowsCapacity, ...(options.pinDir ? { pinDir: options.pinDir } : {}) });
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * Attaches the XDP program to an interface (native mode), in the calling
   * thread's network namespace. It changes no host setting: the sysctls the
   * datapath needs on that interface (control/daemon/host-settings.ts) are
   * the caller's to apply, and to restore.
   */
  attach(ifindex: number): XdpLink {
    const link = XdpLink.attach(this.object.program('baton_xdp'), ifindex);
    this.links.push(link);
    if (this.options.pinDir) link.pin(join(this.options.pinDir, `link_xdp_${ifindex}`));
    return link;
  }

  /** Per-reason totals, summed over CPUs. */
  readCounters(): CounterRow[] {
    return readCounters(this.counters);
  }

  /** Per reason and direction, summed over CPUs (the metrics' labels). */
  readCountersByDirection(): Array<CounterRow & { direction: Direction }> {
    return readCountersByDirection(this.counters);
  }

  /** Detaches what this process attached (unless pinned and `keepPinned`) and frees the object. */
  close(opts: { keepPinned?: boolean } = {}): void {
    for (const l of this.links.splice(0)) {
      if (opts.keepPinned && this.options.pinDir) {
        l.release();
        continue;
      }
      if (this.options.pinDir) l.unpin();
      l.detach();
    }
    this.object.close();
  }
}

/** Per-reason totals of a baton_counters map (enum baton_reason order), summed over CPUs and directions. */
export function readCounters(counters: BpfMap): CounterRow[] {
  const byDir = readCountersByDirection(counters);
  return REASONS.map(([action, reason], i) => {
    const rows = byDir.slice(i * DIRECTIONS.length, (i + 1) * DIRECTIONS.length);
    return {
      action,
      reason,
      packets: rows.reduce((a, r) => a + r.packets, 0n),
      bytes: rows.reduce((a, r) => a + r.bytes, 0n),
    };
  });
}

/** Every counter slot: per reason and direction (which way the packet went), summed over CPUs. */
export function readCountersByDirection(counters: BpfMap): Array<CounterRow & { direction: Direction }> {
  const k = Buffer.alloc(4);
  return REASONS.flatMap(([action, reason], i) =>
    DIRECTIONS.map((direction, d) => {
      k.writeUInt32LE(i * DIRECTIONS.length + d);
      const v = counters.lookup(k);
      const [packets = 0n, bytes = 0n] = v ? counters.sumU64(v) : [];
      return { action, reason, direction, packets, bytes };
    }),
  );
}
