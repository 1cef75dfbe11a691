/* SPDX-License-Identifier: GPL-2.0 */
/* The per-direction track of what the datapath forwarded (struct
 * baton_track), shared by every entry kind that records one: splice legs
 * (lib/splice.h), migrated flows on the LB (lib/flowid.h) and the agent's
 * flow-id mappings (bpf/xdp_agent.c). No map here, so an entry program
 * includes it without the connection table. */
#ifndef BATON_LIB_TRACK_H
#define BATON_LIB_TRACK_H

#include <baton/abi.h>
#include "parse.h"

static __always_inline int seq_before(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }

/* What a RST is to the datapath (rst_verdict). */
enum rst_kind {
	RST_NONE = 0,       /* not a RST */
	RST_UNRECORDED = 1, /* forwarded; the receiver judges it; not recorded */
	RST_EXACT = 2,      /* forwarded and recorded: the connection is over */
};

/* Records one forwarded segment in client sequence space: called only once
 * the segment has been handed on (XDP_TX, a redirect, or the stack to
 * forward it), so a dropped one leaves the track as it was. A RST moves no
 * sequence number (it occupies none, and only an exact one is trusted) and
 * sets the RST flag only when rst_verdict() found it exact. Races between
 * CPUs can lose an update; flows are steered to one CPU by RSS and userspace
 * only uses these values as hints confirmed over several reads. */
static __always_inline void track_segment(struct baton_track *t, __u32 seq, __u32 ack,
					  const struct baton_pkt *p, __u32 bytes, __u64 now, int rst)
{
	__u32 end = seq + p->payload_len + ((p->tcp_flags & TCPF_FIN) ? 1 : 0);

	t->packets++;
	t->bytes += bytes;
	t->last_ns = now;
	if (rst) {
		if (rst == RST_EXACT)
			t->flags |= BATON_TRACK_F_RST;
		return;
	}
	if (!(t->flags & BATON_TRACK_F_SEEN)) {
		t->seq_end = end;
		t->ack_max = ack;
		t->flags |= BATON_TRACK_F_SEEN;
	} else {
		if (seq_before(t->seq_end, end))
			t->seq_end = end;
		if ((p->tcp_flags & TCPF_ACK) && seq_before(t->ack_max, ack))
			t->ack_max = ack;
	}
	if (p->tcp_flags & TCPF_FIN) {
		t->flags |= BATON_TRACK_F_FIN;
		t->fin_seq = seq + p->payload_len;
	}
}

#endif /* BATON_LIB_TRACK_H */
