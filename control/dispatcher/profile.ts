/**
 * A client's TCP option profile, and the back-end leg that matches it
 * (issue 13). baton joins two legs byte-exactly only when they agree on
 * timestamps and SACK and the back end never sends a segment larger than
 * the client accepts (control/datapath/splice-plan.ts). A pooled back-end
 * connection has the LB's own defaults (timestamps and SACK on, the route's
 * MSS), which a Windows client (timestamps off), a SACK-less stack or a
 * small-MSS path does not share; for those the dispatcher opens the back-end
 * leg with the client's profile instead:
 *
 *   SO_MARK = BATON_PROFILE_MARK_TAG | mss << BATON_PROFILE_MSS_SHIFT | flags
 *   before connect, and baton lb's TC egress program edits the leg's SYN
 *   (bpf/lib/tcp_options_profile.h):
 *   - timestamps / SACK off: those options become NOPs, so the back end
 *     never agrees to them and the LB's kernel turns them off for that
 *     socket;
 *   - MSS: the SYN's MSS option is lowered to the client's, so the back
 *     end's segments fit the client. Not TCP_MAXSEG: that would also clamp
 *     the LB socket's view of the back end's own MSS (rx_opt.mss_clamp) and
 *     the splice would then refuse the client's full-size segments;
 *     capture (control/tcp/capture.ts) takes the MSS the SYN left with from
 *     the program's per-socket record (baton_profile_syn).
 *
 * Window scaling needs nothing (the datapath rescales between any two
 * scales) and neither does ECN (a leg without ECN ignores ECT marks; no byte
 * changes). Pure functions, but for readProfile, which asks the kernel.
 */
import type net from 'node:net';
import { PROFILE_F_NO_SACK, PROFILE_F_NO_TS, PROFILE_MSS_MAX } from '../datapath/abi.js';
import { markMss, profileMark } from '../datapath/profile-mark.js';
import { socketFd } from '../sys/peercred.js';
import {
  SOL_TCP,
  TCP_INFO,
  TCP_INFO_LAYOUT,
  TCPI_OPT_SACK,
  TCPI_OPT_TIMESTAMPS,
  TCPI_OPT_WSCALE,
} from '../tcp/kernel.js';
import { getOpt } from '../tcp/socket.js';

/** tcpi_options bit of an ECN-capable connection (include/uapi/linux/tcp.h). */
export const TCPI_OPT_ECN = 8;
/** TCPOLEN_TSTAMP_ALIGNED: what timestamps take out of every segment's MSS. */
const TS_ALIGNED = 12;

export interface ClientProfile {
  timestamps: boolean;
  sack: boolean;
  wscale: boolean;
  ecn: boolean;
  /**
   * The largest segment the client accepts, as far as the LB can tell:
   * tcpi_snd_mss plus the timestamp option it leaves out. Never above the
   * client's MSS option (it is at most that, lower only when the path MTU
   * is), so a back-end leg clamped to it is always small enough.
   */
  mss: number;
}

/** What a back-end leg must be opened with to match a profile; {} = the LB's defaults. */
export interface LegOptions {
  /** SO_MARK for the TC egress program; absent: nothing to edit in its SYN. */
  mark?: number;
}

/** The profile of a connected socket from its tcp_info bytes. */
export function profileFromTcpInfo(info: Buffer): ClientProfile {
  const o = info.readUInt8(TCP_INFO_LAYOUT.fields.tcpi_options);
  const timestamps = (o & TCPI_OPT_TIMESTAMPS) !== 0;
  return {
    timestamps,
    sack: (o & TCPI_OPT_SACK) !== 0,
    wscale: (o & TCPI_OPT_WSCALE) !== 0,
    ecn: (o & TCPI_OPT_ECN) !== 0,
    mss: info.readUInt32LE(TCP_INFO_LAYOUT.fields.tcpi_snd_mss) + (timestamps ? TS_ALIGNED : 0),
  };
}

/** The profile of an accepted client socket; undefined when it has no descriptor (closed). */
export function readProfile(s: net.Socket): ClientProfile | undefined {
  const fd = socketFd(s);
  if (fd === undefined) return undefined;
  return profileFromTcpInfo(getOpt(fd, SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT.size, 'tcp_info of the client'));
}

/**
 * Options for the back-end leg of `p`, given the MSS the LB advertises on a
 * default leg (`defaultAdvMss`, tcpi_advmss of a pooled connection; unknown
 * before the first one exists: then any MSS is clamped).
 */
export function legOptions(p: ClientProfile, defaultAdvMss?: number): LegOptions {
  const flags = (p.timestamps ? 0 : PROFILE_F_NO_TS) | (p.sack ? 0 : PROFILE_F_NO_SACK);
  const mss = defaultAdvMss === undefined || p.mss < defaultAdvMss ? Math.min(p.mss, PROFILE_MSS_MAX) : undefined;
  const mark = profileMark(flags, mss);
  return mark === undefined ? {} : { mark };
}

/** Pool key of a leg: legs with equal keys are interchangeable. '' is the LB's defaults. */
export function legKey(o: LegOptions): string {
  const parts: string[] = [];
  if (o.mark !== undefined) {
    if (o.mark & PROFILE_F_NO_TS) parts.push('no-ts');
    if (o.mark & PROFILE_F_NO_SACK) parts.push('no-sack');
    const mss = markMss(o.mark);
    if (mss !== undefined) parts.push(`mss-${mss}`);
  }
  return parts.join(',');
}

/** A profile as people name it, for events and refusals: "timestamps off, SACK on, window scaling on, ECN off, MSS 536". */
export function describeProfile(p: ClientProfile): string {
  const on = (b: boolean) => (b ? 'on' : 'off');
  return `timestamps ${on(p.timestamps)}, SACK ${on(p.sack)}, window scaling ${on(p.wscale)}, ECN ${on(p.ecn)}, MSS ${p.mss}`;
}
