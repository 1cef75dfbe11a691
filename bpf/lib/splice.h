/* SPDX-License-Identifier: GPL-2.0 */
/* Splice semantics: which back-end leg a client segment belongs to, how the ack
 * is clamped for that back end, which RST is believed, and what the
 * datapath records per direction for the userspace lifecycle (quiescence,
 * FIN, RST, idle) and for lib/syn.h's "is this connection finished". */
#ifndef BATON_LIB_SPLICE_H
#define BATON_LIB_SPLICE_H

#include <baton/abi.h>
#include "maps.h"
#include "parse.h"
#include "track.h"


/* An entry's legs: its own for one leg, else its list in baton_legs
 * (abi.h, struct baton_leg_list). NULL for an entry with no leg, or when
 * the list is missing (it never is while n_legs > 1: userspace creates it
 * before the second leg is appended). */
static __always_inline const struct baton_leg *legs_of(const struct baton_flow *f)
{
	const struct baton_leg_list *l;

	if (f->n_legs == 1)
		return &f->leg;
	if (f->n_legs == 0)
		return 0;
	l = bpf_map_lookup_elem(&baton_legs, &f->conn_id);
	/* Keeps clang from moving the callers' index arithmetic ahead of
	 * their NULL check, which the verifier refuses. */
	asm volatile("" : "+r"(l));
	return l ? l->leg : 0;
}

/* The leg a client segment goes to (its index in *k): the last leg whose
 * seq_start is at or before the segment's last byte. A retransmission that
 * straddles a leg's start therefore goes to the later back end, which
 * discards the prefix it already holds (an old-data overlap, handled by any
 * TCP receiver); a segment wholly before the point still reaches the
 * earlier back end, and one wholly before the first point the first back
 * end. NULL when the entry has no leg. */
static __always_inline const struct baton_leg *select_leg(const struct baton_flow *f, const struct baton_pkt *p,
							   int *k)
{
	__u32 last = p->seq + (p->payload_len ? p->payload_len - 1 : 0);
	const struct baton_leg *legs;
	__u32 n = f->n_legs;
	int i, j = 0;

	/* One leg (every connection before its first handoff, every BACKEND
	 * entry): no list to look up, and the answer is 0. */
	*k = 0;
	if (n == 1)
		return &f->leg;
	legs = legs_of(f);
	if (!legs || n > BATON_MAX_LEGS)
		return 0;
	/* Wholly before the first leg: a keepalive probe (seq_start - 1,
	 * no data) or a retransmission of bytes the LB socket had received.
	 * The first back end sees old data and answers with an ACK, which is
	 * what the client asked for; dropping it fails the client's keepalives.
	 * So the search starts at leg 0. */
#pragma unroll
	for (i = 1; i < BATON_MAX_LEGS; i++) {
		if (i < n && !seq_before(last, legs[i].seq_start))
			j = i;
	}
	*k = j;
	return &legs[j & (BATON_MAX_LEGS - 1)];
}

/* Client ack as this back end must see it: never below the point at which
 * its stream starts in the client's sequence space. */
static __always_inline __u32 clamp_ack(const struct baton_leg *h, __u32 ack)
{
	return seq_before(ack, h->ack_floor) ? h->ack_floor : ack;
}

/* The leg whose tuple this entry's segments are rewritten to now. */
static __always_inline const struct baton_leg *current_leg(const struct baton_flow *f)
{
	const struct baton_leg *legs;
	__u32 n = f->n_legs;

	if (n == 0 || n > BATON_MAX_LEGS)
		return 0;
	legs = legs_of(f);
	if (!legs)
		return 0;
	return &legs[(n - 1) & (BATON_MAX_LEGS - 1)];
}

/* The entry of the other direction of the same connection: its key is the
 * reverse of the tuple leg h rewrites to (a CLIENT entry's leg leads
 * to that back end's BACKEND entry, a BACKEND entry's to the CLIENT entry).
 * NULL when absent (a retired leg, or a connection being removed). */
static __always_inline struct baton_flow *peer_entry(const struct baton_pkt *p, const struct baton_leg *h)
{
	struct baton_flow_key k = {};

	__builtin_memcpy(k.saddr, h->x.daddr, sizeof(k.saddr));
	__builtin_memcpy(k.daddr, h->x.saddr, sizeof(k.daddr));
	k.sport = h->x.dport;
	k.dport = h->x.sport;
	k.family = p->key.family;
	k.proto = p->key.proto;
	return bpf_map_lookup_elem(&baton_flows, &k);
}


/* Which RST is believed. A RST recorded in a track ends the connection for
 * the splicer (status 'closed', reclaimed at the next sweep) and for
 * lib/syn.h (the next SYN on the tuple supersedes the entry), so a recorded
 * RST must be one the receiver itself accepts: RFC 5961 §3, which Linux
 * applies, resets only on seq == rcv_nxt, answers any other in-window RST
 * with a challenge ACK and drops the rest. The entry knows the receiver's
 * rcv_nxt as the receiver last said it: the other direction's highest ACK
 * (before the receiver sent anything since the splice: where its stream of
 * the sender's bytes began, i.e. this leg's seq_start for a back end, the
 * client's current leg's ack_floor for the client). So, with seq in
 * client sequence space:
 *
 *   - seq == that number: recorded and forwarded. Real RSTs arrive this way
 *     or become it: an aborting stack sends seq = snd_nxt, which is the
 *     receiver's rcv_nxt once everything arrived; with data in flight the
 *     receiver's challenge ACK draws from the sender's stack (which has no
 *     socket any more) a RST with seq = that ACK, exact; a stack that lost
 *     the connection answers any segment with seq = its ACK; and the RST
 *     that lib/syn.h's challenge ACK draws carries this very number.
 *   - above it, but within the largest window the receiver can advertise
 *     (65535 << its window scale; a sender never sends past what the
 *     receiver acknowledged plus its window, so a real RST never lies
 *     beyond): forwarded, not recorded. The receiver answers with a
 *     challenge ACK (or accepts it, if its rcv_nxt moved on since its last
 *     ACK and the RST matches it); the exact RST that follows is recorded.
 *   - anywhere else: dropped (rst_out_of_window). The receiver would drop it
 *     too; a back end is reachable only through this translation, so
 *     nothing blind gets through to it.
 *
 * A blind attacker who knows the 4-tuple therefore has to hit one number in
 * 2^32 to end a connection, as against the endpoint itself; one that misses
 * only makes the receiver send a challenge ACK. The cost: a real RST whose
 * receiver acknowledged less than it had received (a delayed ACK) ends the
 * connection at the receiver but is not recorded; that connection ends for
 * baton when it goes idle, or when a SYN's challenge ACK draws an exact RST.
 * Without the other direction's entry there is nothing to judge by: the RST
 * is forwarded, not recorded. Returns RST_NONE, RST_UNRECORDED or RST_EXACT,
 * or -1 with *reason set when the segment is to be dropped. */
static __always_inline int rst_verdict(const struct baton_pkt *p, const struct baton_flow *f,
				       const struct baton_leg *h, __u32 seq, __u32 *reason)
{
	const struct baton_flow *peer;
	const struct baton_leg *ph;
	__u32 rcv_nxt, wnd;

	if (!(p->tcp_flags & TCPF_RST))
		return RST_NONE;
	peer = peer_entry(p, h);
	ph = peer ? current_leg(peer) : 0;
	if (!ph)
		return RST_UNRECORDED;
	if (peer->track.flags & BATON_TRACK_F_SEEN)
		rcv_nxt = peer->track.ack_max;
	else
		rcv_nxt = f->kind == BATON_KIND_CLIENT ? h->seq_start : ph->ack_floor;
	if (seq == rcv_nxt)
		return RST_EXACT;
	/* The receiver's segments arrive with its own window scale. */
	wnd = (__u32)0xffff << (ph->x.wscale_in & 15);
	if (seq - rcv_nxt <= wnd)
		return RST_UNRECORDED;
	*reason = BATON_R_DROP_RST_OUT_OF_WINDOW;
	return -1;
}

#endif /* BATON_LIB_SPLICE_H */
