/**
 * The TC egress half of the datapath (issue 13): baton_tc_profile on the
 * LB's interfaces strips, from the SYN of a back-end leg marked with a
 * client's option profile, the options that client did not negotiate
 * (bpf/lib/tcp_options_profile.h; the mark from control/dispatcher/profile.ts).
 * A TC filter outlives the daemon that attached it, like the pinned XDP
 * link, so attaching replaces whatever filter sits at baton's handle, and
 * `baton down` removes it.
 */

import { attachTc, BpfError, type BpfObject, detachTc, type TcAttachment } from '../bpf/index.js';

export const PROFILE_TC_PROGRAM = 'baton_tc_profile';
/** baton's filter on the clsact egress hook ("ba7"), so it replaces only its own. */
export const PROFILE_TC_HANDLE = 0xba7;
export const PROFILE_TC_PRIORITY = 1;

/** Attaches (or replaces) baton's egress program on `ifindex`. */
export function attachProfileEgress(obj: BpfObject, ifindex: number): TcAttachment {
  detachProfileEgress(ifindex);
  return attachTc(obj.program(PROFILE_TC_PROGRAM), ifindex, 'egress', PROFILE_TC_PRIORITY, PROFILE_TC_HANDLE);
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
