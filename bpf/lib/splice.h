/* SPDX-License-Identifier: GPL-2.0 */
/* Splice semantics: which handoff a client segment belongs to, how the ack
 * is clamped for that back end, and what the datapath records per
 * direction for the userspace lifecycle (quiescence, FIN, RST, idle). */
#ifndef BATON_LIB_SPLICE_H
#define BATON_LIB_SPLICE_H

#include <baton/abi.h>
#include "parse.h"

static __always_inline int seq_before(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }

/* Index of the handoff a client segment goes to: the last handoff whose
 * seq_start is at or before the segment's last byte. A retransmission that
 * straddles a handoff point therefore goes to the later back end, which
 * discards the prefix it already holds (an old-data overlap, handled by any
 * TCP receiver); a segment wholly before the point still reaches the
 * earlier back end, and one wholly before the first point the first back
 * end. Returns -1 when the entry has no handoff. */
static __always_inline int select_handoff(const struct baton_flow *f, const struct baton_pkt *p)
{
	__u32 last = p->seq + (p->payload_len ? p->payload_len - 1 : 0);
	int k = -1;

#pragma unroll
	for (int i = 0; i < BATON_MAX_HANDOFFS; i++) {
		if (i < f->n_handoffs && !seq_before(last, f->handoff[i].seq_start))
			k = i;
	}
	/* Wholly before the first handoff: a keepalive probe (seq_start - 1,
	 * no data) or a retransmission of bytes the LB socket had received.
	 * The first back end sees old data and answers with an ACK, which is
	 * what the client asked for; dropping it fails the client's keepalives. */
	if (k < 0 && f->n_handoffs > 0)
		k = 0;
	return k;
}

/* Client ack as this back end must see it: never below the point at which
 * its stream starts in the client's sequence space. */
static __always_inline __u32 clamp_ack(const struct baton_handoff *h, __u32 ack)
{
	return seq_before(ack, h->ack_floor) ? h->ack_floor : ack;
}

/* Records one segment in client sequence space. Races between CPUs can lose
 * an update; flows are steered to one CPU by RSS and userspace only uses
 * these values as hints confirmed over several reads. */
static __always_inline void track_segment(struct baton_track *t, __u32 seq, __u32 ack,
					  const struct baton_pkt *p, __u32 bytes, __u64 now)
{
	__u32 end = seq + p->payload_len + ((p->tcp_flags & TCPF_FIN) ? 1 : 0);

	t->packets++;
	t->bytes += bytes;
	t->last_ns = now;
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
	if (p->tcp_flags & TCPF_RST)
		t->flags |= BATON_TRACK_F_RST;
}

#endif /* BATON_LIB_SPLICE_H */
