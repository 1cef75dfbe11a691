/**
 * The agent's flow-id mapping table (map baton_fids of bpf/xdp_agent.c)
 * behind one typed surface, as flow-table.ts is for the LB's connection
 * table. Migrate mode (source document 002): the LB forwards a migrated
 * connection's client segments with the flow id in the TCP port fields;
 * each mapping here turns (client IP, flow id) back into (client port, VIP,
 * VIP port) on the back end.
 *
 * Use by the agent daemon, per migration:
 *
 *   const fids = agentDatapath.fids;
 *   const key = { client: '198.18.0.10', flowId };              // from the blob's flow-id mapping
 *   fids.insert(key, { connId, clientPort, vip, vipPort, state: FidState.HOLD });
 *   //   -> FLOW_ID_IN_USE (409) when taken, TABLE_FULL (507) when full; the
 *   //      blob is then refused, nothing restored.
 *   ...restore the socket (TCP_REPAIR), hand it to the app...
 *   fids.setState(key, FidState.RESTORE);                       // in place: the track stays exact
 *   ...
 *   fids.finished(key)     // true once a FIN or an exact RST of the client went through
 *   fids.remove(key)       // reclaim (after the socket is closed); then the LB may reuse the id
 *
 * Insert in HOLD before the socket exists: segments of the flow are then
 * dropped (counter flow_id_held) instead of reaching a stack that would
 * answer them with a RST. Pass `rcvNxt` (the restored socket's rcv_nxt) to
 * seed the track, so the client's first exact RST is recognised
 * (bpf/lib/flowid.h, fid_rst_kind). A RST is recorded only when exact; the
 * daemon should still confirm from the socket itself before reclaiming.
 */
import { BpfError, type BpfMap, type BpfProgram, runSyscallProgram } from '../bpf/index.js';
import { BatonError } from '../errors.js';
import { type Family, familyOf } from '../net/addr.js';
import { TRACK_F_FIN, TRACK_F_RST, TRACK_F_SEEN, type Track } from './abi.js';
import {
  decodeFidCtlResult,
  decodeFidKey,
  decodeFidMapping,
  encodeFidCtl,
  encodeFidKey,
  encodeFidMapping,
  type FidKey,
  type FidMapping,
  type FidStateValue,
} from './abi-migrate.js';

/** "flow id 0x0001002a from 198.18.0.10" (hex: it reads as the two ports it rides in). */
export const formatFidKey = (k: FidKey): string =>
  `flow id 0x${(k.flowId >>> 0).toString(16).padStart(8, '0')} from ${k.client}`;

export interface FidInsertOptions {
  /** The restored socket's rcv_nxt: seeds the client direction's track (seqEnd, TRACK_F_SEEN). */
  rcvNxt?: number;
}

export class FlowIdTable {
  constructor(
    private readonly map: BpfMap,
    private readonly ctlProgram: BpfProgram,
  ) {}

  /** Mappings the table can hold. */
  get capacity(): number {
    return this.map.maxEntries;
  }

  /**
   * A new mapping (BPF_NOEXIST: a live mapping is never overwritten).
   * FLOW_ID_IN_USE when (client, flow id) is mapped already, TABLE_FULL when
   * the table is full, a TypeError/RangeError for a malformed mapping.
   */
  insert(k: FidKey, m: FidMapping, opts: FidInsertOptions = {}): void {
    const value = encodeFidMapping(familyOf(k.client), m, trackOf(opts));
    try {
      this.map.update(encodeFidKey(k), value, 'NOEXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'EEXIST') {
        throw new BatonError(
          'FLOW_ID_IN_USE',
          `${formatFidKey(k)} is already mapped (held by a migration that was not reclaimed); the LB must allocate another flow id, or the old mapping must be removed first`,
          'duplicate',
          { cause: e },
        );
      }
      if (e instanceof BpfError && e.code === 'E2BIG') {
        throw new BatonError(
          'TABLE_FULL',
          `the agent's flow-id table is full (${this.capacity} mappings); raise its capacity or wait for migrated connections to end`,
          'table_full',
          { cause: e },
        );
      }
      throw e;
    }
  }

  /**
   * Rewrites a mapping that is still in HOLD (BPF_EXIST), e.g. to seed the
   * track of a reservation once its state arrived: nothing was restored
   * through it yet, so its track holds nothing worth keeping. NOT_FOUND
   * when absent (a reservation removed meanwhile).
   */
  reseed(k: FidKey, m: FidMapping, opts: FidInsertOptions = {}): void {
    try {
      this.map.update(encodeFidKey(k), encodeFidMapping(familyOf(k.client), m, trackOf(opts)), 'EXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'ENOENT') throw gone(k, e);
      throw e;
    }
  }

  /** Deletes a mapping; false when it was not there. After this the flow's segments pass untouched. */
  remove(k: FidKey): boolean {
    return this.map.delete(encodeFidKey(k));
  }

  /** The mapping and its track, or undefined when absent. */
  get(k: FidKey): (FidMapping & { track: Track }) | undefined {
    const v = this.map.lookup(encodeFidKey(k));
    return v ? decodeFidMapping(v, familyOf(k.client)) : undefined;
  }

  /** True once the client's FIN or an exact RST went through (the mapping may be reclaimed once the socket closed). */
  finished(k: FidKey): boolean {
    const m = this.get(k);
    if (!m) throw gone(k);
    return (m.track.flags & (TRACK_F_FIN | TRACK_F_RST)) !== 0;
  }

  /** HOLD -> RESTORE (or back), in place via the control program so the track stays exact. NOT_FOUND when absent. */
  setState(k: FidKey, state: FidStateValue): void {
    const { ctx } = runSyscallProgram(this.ctlProgram, encodeFidCtl(k, state));
    const result = decodeFidCtlResult(ctx);
    if (result === 0) return;
    const e = new BpfError('fid_control', -result, `of ${formatFidKey(k)}`);
    if (e.code === 'ENOENT') throw gone(k, e);
    throw e;
  }

  /** Every mapping, decoded (recovery after an agent restart, inspection). */
  *entries(): Generator<{ key: FidKey & { family: Family }; mapping: FidMapping & { track: Track } }> {
    for (const [kb, vb] of this.map.entries()) {
      const key = decodeFidKey(kb);
      yield { key, mapping: decodeFidMapping(vb, key.family) };
    }
  }

  /** How many mappings the table holds now (walks the keys). */
  size(): number {
    let n = 0;
    for (const _ of this.map.keys()) n++;
    return n;
  }

  /** Deletes every mapping (tests, `baton agent down`). */
  clear(): void {
    for (const k of [...this.map.keys()]) this.map.delete(k);
  }
}

/** The track a mapping starts with: seeded from the restored socket's rcv_nxt when known. */
function trackOf(opts: FidInsertOptions): Track | undefined {
  return opts.rcvNxt === undefined
    ? undefined
    : { packets: 0n, bytes: 0n, lastNs: 0n, seqEnd: opts.rcvNxt >>> 0, ackMax: 0, finSeq: 0, flags: TRACK_F_SEEN };
}

function gone(k: FidKey, cause?: unknown): BatonError {
  return new BatonError(
    'NOT_FOUND',
    `${formatFidKey(k)} is not in the agent's flow-id table (never installed, or already reclaimed)`,
    'entry_gone',
    cause === undefined ? undefined : { cause },
  );
}
