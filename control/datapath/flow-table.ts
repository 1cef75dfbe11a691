/**
 * The connection table (map baton_flows) behind one typed surface. Nothing
 * else touches the raw map: every entry kind (splice legs today; migrated
 * flows, owner entries and roam translations later) is inserted, replaced,
 * read and removed here, and map errors leave as catalogue errors.
 *
 * A CLIENT entry handed off again keeps its leg list out of line, in map
 * baton_legs under its conn_id (abi.h, struct baton_leg_list): written
 * before the entry, removed with it, read with it.
 *
 * In-place changes that must keep an entry's per-direction track exact
 * (state, a leg appended) go through the control program (SEC("syscall")
 * baton_ctl): a userspace update replaces the whole value, so a packet in
 * flight on another CPU would lose its track update.
 */
import { BpfError, type BpfMap, type BpfObject, type BpfProgram, runSyscallProgram } from '../bpf/index.js';
import { BatonError } from '../errors.js';
import { type Family, formatAddress } from '../net/addr.js';
import { IPPROTO_TCP } from '../tcp/kernel.js';
import {
  CtlOp,
  decodeFlow,
  decodeFlowConnId,
  decodeFlowKey,
  decodeFlowLegCount,
  decodeFlowState,
  decodeTrack,
  encodeConnId,
  encodeFlow,
  encodeFlowKey,
  encodeLegList,
  type Flow,
  type FlowKey,
  FlowKind,
  LAYOUTS,
  type Leg,
  MAX_LEGS,
  type Track,
} from './abi.js';
import { decodeCtlResult, encodeCtl } from './abi-ctl.js';
import { decodeOwnerFlow, encodeFlowKeyProto, encodeOwnerFlow, IPPROTO_UDP, type OwnerRef } from './abi-owner.js';

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
    private readonly legLists: BpfMap,
    private readonly ctlProgram: BpfProgram,
  ) {}

  /** The table of a loaded datapath object (bpf/xdp_baton.c). */
  static of(object: Pick<BpfObject, 'map' | 'program'>): FlowTable {
    return new FlowTable(object.map(FLOWS_MAP), object.map(LEG_LISTS_MAP), object.program('baton_ctl'));
  }

  /** Entries the table can hold. */
  get capacity(): number {
    return this.map.maxEntries;
  }

  /** Key and value sizes and the maps' fds (for memory accounting in the benchmarks). */
  get layout(): { fd: number; keyBytes: number; valueBytes: number; legListsFd: number } {
    return {
      fd: this.map.fd,
      keyBytes: this.map.keySize,
      valueBytes: this.map.valueSize,
      legListsFd: this.legLists.fd,
    };
  }

  /**
   * A new entry. ALREADY_SPLICED when the key is taken (live entries are
   * never overwritten), TABLE_FULL when the table is.
   */
  insert(k: FlowKey, entry: FlowEntry): void {
    try {
      writeFlow(this.map, this.legLists, this.kb(k), entry, 'NOEXIST');
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
      writeFlow(this.map, this.legLists, this.kb(k), entry, 'EXIST');
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
    const v = this.map.lookupAndDelete(this.kb(k));
    if (v && decodeFlowLegCount(v) > 1) this.legLists.delete(encodeConnId(decodeFlowConnId(v)));
    return v !== undefined;
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
    // The second leg moves the list out of line: its (empty) entry must
    // exist for the control program to fill, which it cannot create itself.
    const v = this.map.lookup(this.kb(k));
    let created: Buffer | undefined;
    if (v && decodeFlowLegCount(v) === 1) {
      const listKey = encodeConnId(decodeFlowConnId(v));
      try {
        this.legLists.update(listKey, EMPTY_LEG_LIST, 'NOEXIST');
        created = listKey;
      } catch (e) {
        if (!(e instanceof BpfError && e.code === 'EEXIST')) {
          if (e instanceof BpfError && e.code === 'E2BIG') throw tableFull(this.legLists.maxEntries, e, 'leg-list');
          throw e;
        }
      }
    }
    try {
      return this.control(k, () => ({ op: CtlOp.APPEND_LEG, key: k, state, leg }));
    } catch (e) {
      // The entry went meanwhile (or refused the leg): no list left behind.
      if (created) this.legLists.delete(created);
      throw e;
    }
  }

  /** Every entry, decoded (recovery after a restart, inspection). */
  *entries(): Generator<{ key: FlowKey & { family: Family }; flow: Flow & { track: Track } }> {
    for (const [kb, vb] of this.map.entries()) {
      const key = decodeFlowKey(kb);
      yield { key, flow: this.decode(vb, key.family) };
    }
  }

  /** How many entries the table holds now (walks the keys). */
  size(): number {
    let n = 0;
    for (const _ of this.map.keys()) n++;
    return n;
  }

  /** The entry at `k`, decoded with all its legs, or undefined when absent. */
  get(k: FlowKey & { family: Family }): (Flow & { track: Track }) | undefined {
    const v = this.map.lookup(this.kb(k));
    return v ? this.decode(v, k.family) : undefined;
  }

  /** Deletes every entry (tests, `baton down`). */
  clear(): void {
    for (const k of [...this.map.keys()]) this.map.delete(k);
    for (const k of [...this.legLists.keys()]) this.legLists.delete(k);
  }

  private decode(v: Buffer, family: Family): Flow & { track: Track } {
    const list = decodeFlowLegCount(v) > 1 ? this.legLists.lookup(encodeConnId(decodeFlowConnId(v))) : undefined;
    return decodeFlow(v, family, list);
  }

  // ------------------------------------------------------------ BEGIN owner forwarding (004)

  /**
   * An OWNER entry: the flow `k` (client -> VIP, TCP or UDP) is held by the
   * peer LB `ref.owner`, so the datapath forwards its packets there in the
   * owner header. Replaces an OWNER entry already at `k` (the directory
   * moved the flow to another owner); OWNER_ENTRY_CONFLICT when `k` holds an
   * entry of another kind (a connection this LB holds itself is never
   * overwritten), TABLE_FULL when the table is full.
   */
  insertOwner(k: FlowKey, ref: OwnerRef, opts: { proto?: 'tcp' | 'udp'; connId?: bigint } = {}): void {
    const kb = ownerKey(k, opts.proto);
    const value = encodeOwnerFlow(opts.connId ?? 0n, ref);
    const existing = this.map.lookup(kb);
    try {
      if (!existing) {
        this.map.update(kb, value, 'NOEXIST');
        return;
      }
      if (!decodeOwnerFlow(existing)) throw ownerConflict(k, existing);
      this.map.update(kb, value, 'EXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'E2BIG') throw tableFull(this.capacity, e);
      // Raced with another writer between lookup and update: say so rather than guess.
      if (e instanceof BpfError && (e.code === 'EEXIST' || e.code === 'ENOENT')) {
        throw new BatonError(
          'OWNER_ENTRY_CONFLICT',
          `${formatKey(k)} changed in the connection table while its owner entry was written; retry`,
          'owner_race',
          { cause: e },
        );
      }
      throw e;
    }
  }

  /** The owner of `k` if it holds an OWNER entry, else undefined. */
  ownerEntry(k: FlowKey, proto: 'tcp' | 'udp' = 'tcp'): (OwnerRef & { connId: bigint }) | undefined {
    const v = this.map.lookup(ownerKey(k, proto));
    return v ? decodeOwnerFlow(v) : undefined;
  }

  /**
   * Removes the OWNER entry at `k`; false when there was none. An entry of
   * another kind is left alone (OWNER_ENTRY_CONFLICT): the splicer's own
   * entries are removed by the splicer only.
   */
  removeOwner(k: FlowKey, proto: 'tcp' | 'udp' = 'tcp'): boolean {
    const kb = ownerKey(k, proto);
    const v = this.map.lookup(kb);
    if (!v) return false;
    if (!decodeOwnerFlow(v)) throw ownerConflict(k, v);
    return this.map.delete(kb);
  }

  // ------------------------------------------------------------ END owner forwarding

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

export const FLOWS_MAP = 'baton_flows';
export const LEG_LISTS_MAP = 'baton_legs';

const EMPTY_LEG_LIST = Buffer.alloc(LAYOUTS.baton_leg_list.size);

/**
 * Writes an entry with map update `mode`: for more than one leg its list
 * first (the datapath reads the list once n_legs > 1), then the entry. A
 * list written for an entry that then failed is removed again.
 */
export function writeFlow(flows: BpfMap, legLists: BpfMap, key: Buffer, flow: Flow, mode: 'NOEXIST' | 'EXIST'): void {
  const list = encodeLegList(flow.legs);
  const listKey = list ? encodeConnId(flow.connId) : undefined;
  if (list && listKey) legLists.update(listKey, list, 'ANY');
  try {
    flows.update(key, encodeFlow(flow), mode);
  } catch (e) {
    if (listKey) legLists.delete(listKey);
    throw e;
  }
}

const ownerKey = (k: FlowKey, proto: 'tcp' | 'udp' = 'tcp'): Buffer =>
  encodeFlowKeyProto(k, proto === 'udp' ? IPPROTO_UDP : IPPROTO_TCP);

function ownerConflict(k: FlowKey, value: Buffer): BatonError {
  const kind =
    value.readUInt8(LAYOUTS.baton_flow.fields.kind) === FlowKind.CLIENT
      ? 'a spliced client connection'
      : 'a connection of this LB';
  return new BatonError(
    'OWNER_ENTRY_CONFLICT',
    `${formatKey(k)} is ${kind} held by this LB, not a peer's; the owner directory disagrees with the table (remove the local connection first if it moved)`,
    'owner_conflict',
  );
}

function tableFull(capacity: number, cause: unknown, which = 'connection'): BatonError {
  return new BatonError(
    'TABLE_FULL',
    `the ${which} table is full (${capacity} entries); raise --table-capacity or wait for connections to end`,
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
