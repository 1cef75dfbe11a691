/**
 * The SO_MARK of a back-end leg opened with a client's option profile
 * (abi.h, BATON_PROFILE_*): tag | mss << MSS_SHIFT | flags. Written by the
 * dispatcher (control/dispatcher/profile.ts) and the handoff path
 * (control/splice/handoff.ts), read by the TC egress program
 * (bpf/lib/tcp_options_profile.h), which records per socket what the SYN
 * carried (control/datapath/profile-egress.ts, recordedSynMss). Pure functions.
 */
import { PROFILE_MARK_MASK, PROFILE_MARK_TAG, PROFILE_MSS_MAX, PROFILE_MSS_SHIFT } from './abi.js';

/** The mark of a leg with these edits; undefined when there is none. */
export function profileMark(flags: number, mss?: number): number | undefined {
  if (mss !== undefined && (!Number.isInteger(mss) || mss < 1 || mss > PROFILE_MSS_MAX))
    throw new RangeError(`a profile MSS must be 1..${PROFILE_MSS_MAX}, got ${mss}`);
  const m = (mss ?? 0) << PROFILE_MSS_SHIFT;
  return flags || m ? (PROFILE_MARK_TAG | m | flags) >>> 0 : undefined;
}

/** The MSS a profile mark lowers the SYN's MSS option to; undefined for other marks or none. */
export function markMss(mark: number): number | undefined {
  if ((mark & PROFILE_MARK_MASK) >>> 0 !== PROFILE_MARK_TAG) return undefined;
  return (mark >>> PROFILE_MSS_SHIFT) & PROFILE_MSS_MAX || undefined;
}
