/**
 * The socket probe's part of the ABI (bpf/tcp_probe.c, struct
 * baton_tcp_probe in abi.h): flags, batch size and the decoder of one
 * answer. Layouts live in abi.ts's LAYOUTS with the rest, so the layout
 * test proves them against abi.h too.
 */
import { LAYOUTS } from './abi.js';

const L = LAYOUTS;

export const PROBE_F_FOUND = 0x01;
export const PROBE_F_TSTAMP_OK = 0x02;
export const PROBE_F_USEC_TS = 0x04;
export const PROBE_F_REPAIR = 0x08;
export const PROBE_F_SACK_OK = 0x10;
export const PROBE_F_WSCALE_OK = 0x20;
/** Queries per probe run (BATON_PROBE_BATCH). */
export const PROBE_BATCH = 8;

/** What bpf/tcp_probe.c reports for one socket (struct baton_tcp_probe). */
export interface TcpProbe {
  found: boolean;
  timestamps: boolean;
  usecTs: boolean;
  repair: boolean;
  sackPermitted: boolean;
  /** Window scaling negotiated; sndWscale/rcvWscale are 0 without. */
  wscale: boolean;
  tsRecent: number;
  tsRecentStamp: number;
  rcvTsval: number;
  rcvTsecr: number;
  tsoffset: number;
  sndUna: number;
  sndNxt: number;
  rcvNxt: number;
  writeSeq: number;
  copiedSeq: number;
  /** TCP_TIMESTAMP: the socket's TSval clock when probed (low bit: usecTs). */
  tsNow: number;
  window: { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number };
  mssClamp: number;
  advMss: number;
  /** sk_state (TCP_ESTABLISHED is 1). */
  state: number;
  sndWscale: number;
  rcvWscale: number;
}

export function decodeTcpProbe(b: Buffer): TcpProbe {
  const f = L.baton_tcp_probe.fields;
  const flags = b.readUInt32LE(f.flags);
  return {
    found: (flags & PROBE_F_FOUND) !== 0,
    timestamps: (flags & PROBE_F_TSTAMP_OK) !== 0,
    usecTs: (flags & PROBE_F_USEC_TS) !== 0,
    repair: (flags & PROBE_F_REPAIR) !== 0,
    sackPermitted: (flags & PROBE_F_SACK_OK) !== 0,
    wscale: (flags & PROBE_F_WSCALE_OK) !== 0,
    tsRecent: b.readUInt32LE(f.ts_recent),
    tsRecentStamp: b.readUInt32LE(f.ts_recent_stamp),
    rcvTsval: b.readUInt32LE(f.rcv_tsval),
    rcvTsecr: b.readUInt32LE(f.rcv_tsecr),
    tsoffset: b.readUInt32LE(f.tsoffset),
    sndUna: b.readUInt32LE(f.snd_una),
    sndNxt: b.readUInt32LE(f.snd_nxt),
    rcvNxt: b.readUInt32LE(f.rcv_nxt),
    writeSeq: b.readUInt32LE(f.write_seq),
    copiedSeq: b.readUInt32LE(f.copied_seq),
    tsNow: b.readUInt32LE(f.ts_now),
    window: {
      sndWl1: b.readUInt32LE(f.snd_wl1),
      sndWnd: b.readUInt32LE(f.snd_wnd),
      maxWindow: b.readUInt32LE(f.max_window),
      rcvWnd: b.readUInt32LE(f.rcv_wnd),
      rcvWup: b.readUInt32LE(f.rcv_wup),
    },
    mssClamp: b.readUInt16LE(f.mss_clamp),
    advMss: b.readUInt16LE(f.advmss),
    state: b.readUInt8(f.state),
    sndWscale: b.readUInt8(f.snd_wscale),
    rcvWscale: b.readUInt8(f.rcv_wscale),
  };
}
