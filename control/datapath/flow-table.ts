/**
 * The connection table (map baton_flows) behind one typed surface. Nothing
 * else touches the raw map: every entry kind (splice legs today; migrated
 * flows, owner entries and roam translations later) is inserted, replaced,
 * read and removed here, and map errors leave as catalogue errors.
 *
 * In-place changes that must keep an entry's per-direction track exact
 * (state, a leg appended) go through the control program (SEC("syscall")
 * baton_ctl): a userspace update replaces the whole value, so a packet in
 * flight on another CPU would lose its track update.
 */
import { BpfError, type BpfMap, type BpfProgram, runSyscallProgram } from '../bpf/index.js';
import { BatonError } from '../errors.js';
import { type Family, formatAddress } from '../net/addr.js';
import {
  CtlOp,
  decodeCtlResult,
  decodeFlow,
  decodeFlowConnId,
  decodeFlowKey,
  decodeFlowState,
  decodeTrack,
  encodeCtl,
  encodeFlow,
  encodeFlowKey,
  type Flow,
  type FlowKey,
  type Leg,
  MAX_LEGS,
  type Track,
} from './abi.js';

export type FlowStateValue = Flow['state'];

/** What insert() and replace() take: an entry without its track (the datapath keeps that). */
export type FlowEntry = Omit<Flow, 'track'>;

/** "ip:port -> ip:port" of a key, IPv6 in brackets (one formatter: control/net/addr). */
export const formatKey = (k: FlowKey): string => `${formatAddress(k.src, k.sport)} -> ${formatAddress(k.dst, k.dport)}`;

export class FlowTable {
  /** Encoded keys, once per key object: records keep theirs and polls look them up every millisecond. */
  private readonly keyBufs = new WeakMap<FlowKey, Buffer>();

  constructor(
    private readonly map: BpfMap,
    private readonly ctlProgram: BpfProgram,
  ) {}

  /** Entries the table can hold. */
  get capacity(): number {
    return this.map.maxEntries;
  }

  /** Key and value sizes and the map's fd (for memory accounting in the benchmarks). */
  get layout(): { fd: number; keyBytes: number; valueBytes: number } {
    return { fd: this.map.fd, keyBytes: this.map.keySize, valueBytes: this.map.valueSize };
  }

  /**
   * A new entry. ALREADY_SPLICED when the key is taken (live entries are
   * never overwritten), TABLE_FULL when the table is.
   */
  insert(k: FlowKey, entry: FlowEntry): void {
    try {
      this.map.update(this.kb(k), encodeFlow(entry), 'NOEXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'EEXIST') {
        throw new BatonError(
          'ALREADY_SPLICED',
          `${formatKey(k)} is already in the connection table, held by a connection that is not over; list them with GET /v1/splices`,
          'duplicate',
          { cause: e },
        );
      }
      if (e instanceof BpfError && e.code === 'E2BIG') throw tableFull(this.capacity, e);
      throw e;
    }
  }

  /**
   * Replaces an existing entry whole (its track restarts). Only for entries
   * no packet is being forwarded through yet (a blocked splice becoming a
   * forwarding one); live entries change through setState/appendLeg.
   */
  replace(k: FlowKey, entry: FlowEntry): void {
    try {
      this.map.update(this.kb(k), encodeFlow(entry), 'EXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'ENOENT') throw gone(k, e);
      throw e;
    }
  }

  /** The connection id of the entry at `k`, or undefined when absent. */
  ownerOf(k: FlowKey): bigint | undefined {
    const v = this.map.lookup(this.kb(k));
    return v ? decodeFlowConnId(v) : undefined;
  }

  /** Deletes an entry; false when it was not there. */
  remove(k: FlowKey): boolean {
    return this.map.delete(this.kb(k));
  }

  /** The entry's per-direction track (what the datapath forwarded), or undefined when absent. */
  track(k: FlowKey): Track | undefined {
    const v = this.map.lookup(this.kb(k));
    return v ? decodeTrack(v) : undefined;
  }

  /** The entry's state and track in one lookup, or undefined when absent. */
  stateAndTrack(k: FlowKey): { state: FlowStateValue; track: Track } | undefined {
    const v = this.map.lookup(this.kb(k));
    return v ? { state: decodeFlowState(v), track: decodeTrack(v) } : undefined;
  }

  /** Sets an entry's state in place (the track stays exact). */
  setState(k: FlowKey, state: FlowStateValue): void {
    this.control(k, () => ({ op: CtlOp.SET_STATE, key: k, state }));
  }

  /**
   * Appends a leg to an entry's list and sets its state, in place. Returns
   * how many legs the entry holds afterwards. HANDOFFS_EXHAUSTED when the
   * list is full.
   */
  appendLeg(k: FlowKey, leg: Leg, state: FlowStateValue): number {
    return this.control(k, () => ({ op: CtlOp.APPEND_LEG, key: k, state, leg }));
  }

  /** Every entry, decoded (recovery after a restart, inspection). */
  *entries(): Generator<{ key: FlowKey & { family: Family }; flow: Flow & { track: Track } }> {
    for (const [kb, vb] of this.map.entries()) {
      const key = decodeFlowKey(kb);
      yield { key, flow: decodeFlow(vb, key.family) };
    }
  }

  /** How many entries the table holds now (walks the keys). */
  size(): number {
    let n = 0;
    for (const _ of this.map.keys()) n++;
    return n;
  }

  /** Deletes every entry (tests, `baton down`). */
  clear(): void {
    for (const k of [...this.map.keys()]) this.map.delete(k);
  }

  private control(k: FlowKey, req: () => Parameters<typeof encodeCtl>[0]): number {
    const { ctx } = runSyscallProgram(this.ctlProgram, encodeCtl(req()));
    const { result, nLegs } = decodeCtlResult(ctx);
    if (result === 0) return nLegs;
    const e = new BpfError('flow_control', -result, `of ${formatKey(k)}`);
    if (e.code === 'ENOENT') throw gone(k, e);
    if (e.code === 'E2BIG') {
      throw new BatonError(
        'HANDOFFS_EXHAUSTED',
        `${formatKey(k)} already holds ${MAX_LEGS} back-end legs; a new client connection is needed to move it again`,
        'handoffs_exhausted',
        { cause: e },
      );
    }
    throw e;
  }

  private kb(k: FlowKey): Buffer {
    const cached = this.keyBufs.get(k);
    if (cached) return cached;
    const b = encodeFlowKey(k);
    this.keyBufs.set(k, b);
    return b;
  }
}

function tableFull(capacity: number, cause: unknown): BatonError {
  return new BatonError(
    'TABLE_FULL',
    `the connection table is full (${capacity} entries); raise --table-capacity or wait for connections to end`,
    'table_full',
    { cause },
  );
}

function gone(k: FlowKey, cause: unknown): BatonError {
  return new BatonError(
    'NOT_FOUND',
    `${formatKey(k)} is no longer in the connection table (the connection was reclaimed or aborted)`,
    'entry_gone',
    { cause },
  );
}
