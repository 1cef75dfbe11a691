/**
 * The TC egress half of the datapath (issue 13): baton_tc_profile on the
 * LB's interfaces strips, from the SYN of a back-end leg marked with a
 * client's option profile, the options that client did not negotiate
 * (bpf/lib/tcp_options_profile.h; the mark from control/dispatcher/profile.ts).
 * A TC filter outlives the daemon that attached it, like the pinned XDP
 * link, so attaching replaces whatever filter sits at baton's handle, and
 * `baton down` removes it.
 */

import { attachTc, BpfError, type BpfMap, type BpfObject, detachTc, type TcAttachment } from '../bpf/index.js';

export const PROFILE_TC_PROGRAM = 'baton_tc_profile';
/** baton's filter on the clsact egress hook ("ba7"), so it replaces only its own. */
export const PROFILE_TC_HANDLE = 0xba7;
export const PROFILE_TC_PRIORITY = 1;

/**
 * The program's per-socket record of what a marked SYN carried
 * (baton_profile_syn, an SK_STORAGE map), once this process attached it.
 * One per process: the daemon attaches one datapath object.
 */
let synRecords: BpfMap | undefined;

/** Attaches (or replaces) baton's egress program on `ifindex`. */
export function attachProfileEgress(obj: BpfObject, ifindex: number): TcAttachment {
  detachProfileEgress(ifindex);
  const a = attachTc(obj.program(PROFILE_TC_PROGRAM), ifindex, 'egress', PROFILE_TC_PRIORITY, PROFILE_TC_HANDLE);
  synRecords = obj.map('baton_profile_syn');
  return a;
}

/** Forgets the record map (its object is being closed). */
export function forgetProfileRecords(): void {
  synRecords = undefined;
}

/**
 * The MSS option the SYN of socket `fd` left with, as baton's egress
 * program recorded it; undefined when it saw no marked SYN of that socket
 * (not marked, not attached in this process, or another interface). Capture
 * trusts a lowered MSS only from here: a mark alone proves nothing was edited.
 */
export function recordedSynMss(fd: number): number | undefined {
  if (!synRecords) return undefined;
  const key = Buffer.alloc(4);
  key.writeInt32LE(fd);
  try {
    const v = synRecords.lookup(key);
    return v ? v.readUInt32LE(0) || undefined : undefined;
  } catch (e) {
    if (e instanceof BpfError) return undefined; // not a socket of a kind sk_storage knows
    throw e;
  }
}

/** Removes baton's egress program from `ifindex`; false when it was not there (or the interface is gone). */
export function detachProfileEgress(ifindex: number): boolean {
  try {
    return detachTc(ifindex, 'egress', PROFILE_TC_PRIORITY, PROFILE_TC_HANDLE);
  } catch (e) {
    if (e instanceof BpfError && (e.code === 'ENODEV' || e.code === 'ENXIO')) return false;
    throw e;
  }
}
