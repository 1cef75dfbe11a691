/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * baton ABI: every struct and constant shared between the datapath (C/BPF)
 * and the control plane (TypeScript). This header is the single source of
 * truth; control/datapath/abi.ts mirrors it byte for byte and
 * test/unit/abi-layout.test.ts proves it by compiling a C program that
 * prints sizeof/offsetof and comparing. Bump BATON_ABI_VERSION on any change
 * so a daemon never reuses pinned maps of another layout.
 */
#ifndef BATON_ABI_H
#define BATON_ABI_H

/* BPF programs built against build/vmlinux.h (CO-RE) already have the kernel
 * types; <linux/types.h> would redefine some of them. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define BATON_ABI_VERSION 7

/* Back-end legs one client connection can hold: the first splice's and up
 * to seven later handoffs (source document 000, claim 2). */
#define BATON_MAX_LEGS 8

#define BATON_AF_INET 4
#define BATON_AF_INET6 6

/* ---- profiles (issue 13): back-end legs opened with a client's TCP option
 * profile. Linux has no per-socket switch for timestamps, SACK or window
 * scaling, so the leg's socket carries SO_MARK = BATON_PROFILE_MARK_TAG |
 * BATON_PROFILE_F_* and baton's TC egress program (bpf/lib/tcp_options_profile.h)
 * NOPs those options out of its SYN: the back end then answers without
 * them and the LB's kernel turns them off for that socket, so both legs of
 * the splice agree. The tag keeps clear of marks other software uses in
 * its low bits; a mark with another tag is never touched. */
#define BATON_PROFILE_MARK_TAG 0x0ba70000
#define BATON_PROFILE_MARK_MASK 0xffff0000
#define BATON_PROFILE_F_NO_TS 0x1     /* strip TSopt (kind 8) */
#define BATON_PROFILE_F_NO_SACK 0x2   /* strip SACK-permitted (kind 4) */
#define BATON_PROFILE_F_NO_WSCALE 0x4 /* strip window scale (kind 3) */
#define BATON_PROFILE_F_ALL 0x7
/* Bits 3..15: an MSS (1..8191) the SYN's MSS option is lowered to, so the
 * back end never sends a segment larger than the client accepts; 0 leaves
 * it. In the SYN rather than with TCP_MAXSEG, which would also clamp the
 * LB socket's view of the back end's MSS (rx_opt.mss_clamp) and hide that
 * the back end accepts the client's full-size segments. */
#define BATON_PROFILE_MSS_SHIFT 3
#define BATON_PROFILE_MSS_MAX 0x1fff
/* ---- end profiles */

/* Connection-table key: a 5-tuple as seen on the wire, IPv4 or IPv6.
 * IPv4 addresses live in addr[0]; the rest is zero so keys compare bytewise. */
struct baton_flow_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 family; /* BATON_AF_INET or BATON_AF_INET6 */
	__u8 proto;  /* IPPROTO_TCP */
	__u8 pad[2];
};

/* How one segment is rewritten: the new tuple and the per-field offsets.
 * All arithmetic is modulo 2^32 (seq, ack, SACK edges, TSval, TSecr). */
struct baton_xlate {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u32 seq_delta;   /* added to seq */
	__u32 ack_delta;   /* added to ack and to every SACK edge */
	__u32 tsval_delta; /* added to TSval */
	__u32 tsecr_delta; /* added to TSecr */
	__u8 wscale_in;    /* window field arrives scaled by 2^wscale_in ...  */
	__u8 wscale_out;   /* ... and leaves scaled by 2^wscale_out */
	__u8 flags;        /* BATON_XLATE_F_* */
	__u8 pad;
};

#define BATON_XLATE_F_TS 0x01 /* both legs use timestamps: rewrite TSval/TSecr */

/* One back-end leg of a client connection's list (the first splice's, then
 * one per later handoff). Client bytes whose last
 * byte lies at or after seq_start (and before the next entry's seq_start)
 * go to this back end. ack_floor is the client-space ack at which this back
 * end's stream starts: smaller client acks are raised to it, so a back end
 * never sees an ack below what its peer (the LB socket) had acknowledged. */
struct baton_leg {
	__u32 seq_start;
	__u32 ack_floor;
	struct baton_xlate x;
};

/* What the datapath forwarded of one direction, in client sequence space:
 * segments it dropped are not in it, and a RST only when its seq was the
 * receiver's rcv_nxt (bpf/lib/splice.h, rst_verdict). Userspace reads it to
 * decide quiescence, FIN/RST and idleness. */
struct baton_track {
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;  /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC, jiffy steps) of the last packet forwarded */
	__u32 seq_end;  /* highest seq + len (+1 for FIN) forwarded */
	__u32 ack_max;  /* highest ack forwarded */
	__u32 fin_seq;  /* seq of the FIN when BATON_TRACK_F_FIN */
	__u32 flags;    /* BATON_TRACK_F_* */
};

#define BATON_TRACK_F_FIN 0x01
#define BATON_TRACK_F_RST 0x02
#define BATON_TRACK_F_SEEN 0x04 /* seq_end/ack_max hold a value */

enum baton_flow_state {
	/* Sockets are being captured: segments carrying data (or SYN/FIN/RST)
	 * are dropped, so the kernel acknowledges nothing that will not move
	 * (the peer retransmits them once forwarding is in place); pure ACKs
	 * still reach the LB's sockets, so their send queues can drain. */
	BATON_STATE_BLOCK = 1,
	BATON_STATE_FORWARD = 2, /* rewrite and forward */
	/* A spliced client connection at a request boundary, about to get its
	 * next handoff: client segments carrying data (or SYN/FIN) are dropped
	 * (the client retransmits them once the new leg is in place), pure
	 * ACKs are forwarded as in FORWARD, so the current back end's stream
	 * keeps being acknowledged. Only CLIENT entries are ever held. */
	BATON_STATE_HOLD = 3,
	/* Written by the datapath only (bpf/lib/syn.h): the connection was
	 * finished (both FINs acknowledged, or a RST) when a SYN arrived on
	 * this entry's tuple, so a new connection now owns the tuple. Every
	 * segment goes to the stack untouched and untracked (the front end's
	 * listener takes the new connection) until userspace reclaims the
	 * entry; the splicer does so at once when it splices the new one. */
	BATON_STATE_SUPERSEDED = 4,
};

enum baton_flow_kind {
	BATON_KIND_CLIENT = 1,  /* client -> VIP: leg list selects back end */
	BATON_KIND_BACKEND = 2, /* back end -> LB leg: reverse-mapped to client */
	/* Migrate (source document 002, bpf/lib/flowid.h): a client connection
	 * whose socket moved to a back end. Keyed like CLIENT (client -> VIP);
	 * leg.x only (n_legs 1): x.daddr = the back end, x.saddr = the
	 * client (unchanged), x.sport:x.dport = the flow id (high 16 bits in
	 * sport, low 16 in dport); seq/ack/window/option fields unused. States
	 * BLOCK (migration in flight) and FORWARD. */
	BATON_KIND_MIGRATED = 3,
	/* Owner forwarding (004): the connection is held by a peer LB; the
	 * value's `owner` says which. Values 8.. are owner forwarding's. */
	BATON_KIND_OWNER = 8,
};

/* The forwarding decision for an entry's current leg, cached in the
 * entry by the datapath itself (userspace writes it zeroed): a FIB lookup on
 * every packet costs more than the whole rewrite, and the next hop of a
 * connection rarely changes. Looked up again after BATON_NEXTHOP_TTL_NS, and
 * whenever the client's bytes move to another leg. */
struct baton_nexthop {
	__u64 expires_ns; /* bpf_ktime_get_coarse_ns() bound; 0: empty */
	__u32 ifindex;    /* egress interface */
	__u8 leg;     /* index of the leg it was looked up for */
	__u8 pad[3];
	__u8 smac[6];
	__u8 dmac[6];
	/* ---- profiles (issue 13): the path MTU the FIB reported for this
	 * next hop, checked per packet (bpf/lib/fwd.h) so a warm cache gives
	 * the verdict a cold one does. In former padding: 0, as an entry
	 * written before this field existed holds, means "look up again". */
	__u16 mtu;
	__u8 pad2[2];
	/* ---- end profiles */
};

#define BATON_NEXTHOP_TTL_NS 500000000ULL /* 500 ms */

#include "abi_owner.h"

/* Value of the connection table. A spliced connection has one CLIENT entry
 * (keyed by client -> VIP) and one BACKEND entry per leg (keyed by back
 * end -> LB), which reverse-maps to the client (claims 5-7). */
struct baton_flow {
	__u64 conn_id;
	__u8 state;      /* enum baton_flow_state */
	__u8 kind;       /* enum baton_flow_kind */
	__u8 n_legs; /* legs held: 0 (BLOCK) or 1 in `leg`; a CLIENT entry's 2.. in baton_legs */
	__u8 pad;
	/* Datapath only: when this entry last answered a SYN with a challenge
	 * ACK (bpf_ktime_get_coarse_ns() in ms, low 32 bits, bit 0 set; 0:
	 * never), for the rate limit of bpf/lib/syn.h. */
	__u32 challenge_ms;
	struct baton_track track;
	struct baton_nexthop nexthop;
	union {
		/* CLIENT, BACKEND, MIGRATED: the first leg, the only one for
		 * every entry but a CLIENT entry handed off again. */
		struct baton_leg leg;
		struct baton_owner owner; /* OWNER (004) */
	};
};

/* Value of baton_legs, keyed by the entry's conn_id: a CLIENT entry's
 * whole leg list once it holds more than one leg (n_legs > 1); leg[0]
 * repeats the entry's own. Out of line because most connections are never
 * handed off again: inline, eight legs were 448 of an entry's 600 bytes,
 * paid twice per connection (client and back-end entry) for the table's
 * whole capacity. The list map is not preallocated, so only connections
 * with a later handoff pay for it. */
struct baton_leg_list {
	struct baton_leg leg[BATON_MAX_LEGS];
};

/* Datapath verdicts with typed reasons. The counter map is indexed by this
 * enum; BATON_REASONS is the one list both sides derive names from
 * (X-macro: reason, action name, reason name). */
#define BATON_REASONS(X)                                            \
	X(BATON_R_PASS_NOT_IP,        "passed",    "not_ip")            \
	X(BATON_R_PASS_NOT_TCP,       "passed",    "not_tcp")           \
	X(BATON_R_PASS_FRAGMENT,      "passed",    "fragment")          \
	X(BATON_R_PASS_IPV6_EXTHDR,   "passed",    "ipv6_ext_header")   \
	X(BATON_R_PASS_MALFORMED,     "passed",    "malformed")         \
	X(BATON_R_PASS_NO_FLOW,       "passed",    "no_flow")           \
	X(BATON_R_FWD_REDIRECT,       "forwarded", "redirect")          \
	X(BATON_R_FWD_TX,             "forwarded", "tx")                \
	X(BATON_R_FWD_STACK,          "forwarded", "via_stack")         \
	X(BATON_R_DROP_BLOCKED,       "dropped",   "blocked")           \
	X(BATON_R_DROP_BAD_OPTIONS,   "dropped",   "bad_tcp_options")   \
	X(BATON_R_DROP_NO_LEG,    "dropped",   "no_leg")        \
	X(BATON_R_DROP_FIB,           "dropped",   "fib_blackhole")     \
	X(BATON_R_DROP_REWRITE,       "dropped",   "rewrite_failed")    \
	X(BATON_R_PASS_BLOCKED_ACK,   "passed",    "blocked_ack")       \
	X(BATON_R_DROP_HELD,          "dropped",   "held")              \
	X(BATON_R_PASS_SYN_FINISHED,  "passed",    "syn_on_finished")   \
	X(BATON_R_PASS_SUPERSEDED,    "passed",    "superseded")        \
	X(BATON_R_TX_CHALLENGE_ACK,   "answered",  "syn_challenge_ack") \
	X(BATON_R_DROP_SYN_LIVE,      "dropped",   "syn_on_live")       \
	X(BATON_R_DROP_RST_OUT_OF_WINDOW, "dropped", "rst_out_of_window") \
	/* migrate, agent side (bpf/xdp_agent.c) */                   \
	X(BATON_R_PASS_FID_RESTORED,  "passed",    "flow_id_restored")  \
	X(BATON_R_DROP_FID_HELD,      "dropped",   "flow_id_held")  \
	BATON_OWNER_REASONS(X)

#define BATON_REASON_ENUM(r, a, n) r,
enum baton_reason { BATON_REASONS(BATON_REASON_ENUM) BATON_R_MAX };
#undef BATON_REASON_ENUM

/* Which way a counted packet went: toward a back end (a CLIENT entry
 * matched), toward a client (a BACKEND entry matched), or neither (no entry,
 * or not parsed far enough to look one up). The values of the two
 * directions are those of the entry kinds that imply them. */
#define BATON_DIRECTIONS(X)                     \
	X(BATON_DIR_NONE,       "none")         \
	X(BATON_DIR_TO_BACKEND, "to_backend")   \
	X(BATON_DIR_TO_CLIENT,  "to_client")

#define BATON_DIRECTION_ENUM(d, n) d,
enum baton_direction { BATON_DIRECTIONS(BATON_DIRECTION_ENUM) BATON_DIR_MAX };
#undef BATON_DIRECTION_ENUM

/* Per-CPU counter slot, one per (reason, direction): slot = reason * BATON_DIR_MAX + direction. */
struct baton_counter {
	__u64 packets;
	__u64 bytes;
};


/* Argument of the control program (bpf/xdp_baton.c, SEC("syscall"), run
 * with BPF_PROG_TEST_RUN): changes a connection-table entry in place.
 * A map update from userspace replaces the whole value, and a packet being
 * processed on another CPU at that moment updates the old copy's track,
 * which is then lost; the control program writes only the fields it
 * changes, so the per-direction tracks stay exact across state changes. */
struct baton_ctl {
	struct baton_flow_key key;
	__u32 op;       /* BATON_CTL_* */
	__u32 state;    /* new enum baton_flow_state (both ops) */
	__s32 result;   /* out: 0, or -ENOENT / -E2BIG / -EINVAL / -ENOSPC (no baton_legs entry) */
	__u32 n_legs; /* out: legs held after the call */
	struct baton_leg leg; /* BATON_CTL_APPEND_LEG: the new last entry */
};

#define BATON_CTL_SET_STATE      1 /* state := ctl.state */
/* leg n := ctl.leg (n = n_legs; from n = 1 on in baton_legs, whose entry
 * userspace creates first), n_legs := n + 1, then state := ctl.state */
#define BATON_CTL_APPEND_LEG 2

#include "abi_migrate.h"

/* What a splice's capture needs of one TCP socket, read by bpf/tcp_probe.c
 * (see struct baton_sk_query): the state no socket option exposes (above all
 * ts_recent) and everything TCP_INFO, TCP_MAXSEG (in repair mode), TCP_TIMESTAMP,
 * TCP_REPAIR_WINDOW, TCP_QUEUE_SEQ and the queue ioctls would report, so that
 * capturing a socket with empty queues takes no socket option beyond
 * TCP_REPAIR itself (control/tcp/capture.ts). */
struct baton_tcp_probe {
	__u32 ts_recent;       /* rx_opt.ts_recent: peer's latest TSval (PAWS) */
	__u32 ts_recent_stamp; /* rx_opt.ts_recent_stamp: when stored, seconds (ktime_get_seconds) */
	__u32 rcv_tsval;       /* rx_opt.rcv_tsval: TSval of the last segment received */
	__u32 rcv_tsecr;       /* rx_opt.rcv_tsecr: TSecr of the last segment received */
	__u32 tsoffset;        /* this socket's TSval = clock + tsoffset */
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 write_seq;
	__u32 flags;           /* BATON_PROBE_F_* */
	__u32 copied_seq;      /* rcv_nxt - copied_seq: bytes received, not read (SIOCINQ) */
	__u32 ts_now;          /* TCP_TIMESTAMP: the socket's TSval clock now, low bit = usec_ts */
	__u32 snd_wl1;         /* TCP_REPAIR_WINDOW's five fields */
	__u32 snd_wnd;
	__u32 max_window;
	__u32 rcv_wnd;
	__u32 rcv_wup;
	__u16 mss_clamp;       /* rx_opt.mss_clamp: the peer's MSS (TCP_MAXSEG in repair mode) */
	__u16 advmss;          /* tp->advmss: the MSS this socket advertised (tcpi_advmss) */
	__u8 state;            /* sk_state: TCP_ESTABLISHED is 1 */
	__u8 snd_wscale;       /* rx_opt.snd_wscale, 0 unless BATON_PROBE_F_WSCALE_OK */
	__u8 rcv_wscale;       /* rx_opt.rcv_wscale, 0 unless BATON_PROBE_F_WSCALE_OK */
	__u8 pad;
};

#define BATON_PROBE_F_FOUND     0x01 /* a socket with this tuple was seen */
#define BATON_PROBE_F_TSTAMP_OK 0x02 /* timestamps negotiated (rx_opt.tstamp_ok) */
#define BATON_PROBE_F_USEC_TS   0x04 /* TSval ticks in microseconds (tcp_usec_ts) */
#define BATON_PROBE_F_REPAIR    0x08 /* socket is in TCP_REPAIR mode */
#define BATON_PROBE_F_SACK_OK   0x10 /* SACK negotiated (rx_opt.sack_ok) */
#define BATON_PROBE_F_WSCALE_OK 0x20 /* window scaling negotiated (rx_opt.wscale_ok) */

/* The query frame of bpf/tcp_probe.c, after a 14-byte Ethernet header: up to
 * BATON_PROBE_BATCH queries back to back, one per socket. Each names the
 * socket's tuple in its own local -> remote orientation (saddr/sport = local,
 * daddr/dport = remote; an AF_INET6 socket with IPv4-mapped addresses is
 * named as IPv4, the way its packets look on the wire), and the program
 * writes the answer (flags 0: no full TCP socket with that tuple). */
struct baton_sk_query {
	struct baton_flow_key key;
	struct baton_tcp_probe result;
};

/* Queries per probe run: both sockets of a splice, and batches of them. */
#define BATON_PROBE_BATCH 8

#endif /* BATON_ABI_H */
