/* SPDX-License-Identifier: GPL-2.0 */
/* A SYN that matches a connection-table entry. A SYN without ACK opens a new
 * connection; it must never take an existing entry's translation, or a
 * client that reuses its ip:port (behind a NAT: every day) is sent straight
 * to the previous connection's back end, unseen by the front end, and is
 * reset when that entry is reclaimed. One decision for every entry kind
 * (today's splice legs; later migrated flows and owner entries):
 *
 *   - the connection is finished (both FINs acknowledged, or a RST), by the
 *     tracks of both directions: the SYN goes to the stack untouched, where
 *     the front end's listener accepts it, and the entry becomes SUPERSEDED,
 *     so the rest of the new connection's handshake and data pass too;
 *   - it is live: the SYN is answered the way RFC 5961 §4 has an
 *     established endpoint answer one, with a challenge ACK (rate-limited
 *     per entry, as Linux does per socket). A peer that lost its state (the
 *     new connection) answers it with a RST carrying that ACK number, which
 *     is the back end's rcv_nxt: it is translated, ends the old connection
 *     exactly, and the peer's next SYN finds the entry finished. A peer that
 *     still holds the connection discards the ACK (see build_challenge_ack).
 *
 * Passing a SYN of a live connection to the stack is not an option: the
 * front end's socket is gone and the stack would reset the client.
 * SYN|ACK and every other segment are not decided here. */
#ifndef BATON_LIB_SYN_H
#define BATON_LIB_SYN_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <baton/abi.h>
#include "ctx.h"
#include "csum.h"
#include "maps.h"
#include "parse.h"
#include "splice.h"

#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

/* At most one challenge ACK per entry in this long: Linux's default
 * net.ipv4.tcp_invalid_ratelimit. A client retransmitting its SYN (1 s, then
 * backing off) draws one each time. */
#define BATON_CHALLENGE_ACK_INTERVAL_MS 500

#define BATON_CHALLENGE_TTL 64

/* Both directions of a connection (tracks in one sequence space) say it is
 * over: a RST either way, or each side's FIN acknowledged by the other.
 * The same rule as the splicer's status 'closed'. */
static __always_inline int tracks_finished(const struct baton_track *a, const struct baton_track *b)
{
	if ((a->flags | b->flags) & BATON_TRACK_F_RST)
		return 1;
	if (!(a->flags & b->flags & BATON_TRACK_F_FIN))
		return 0;
	return !seq_before(a->ack_max, b->fin_seq + 1) && !seq_before(b->ack_max, a->fin_seq + 1);
}

struct challenge_tcp {
	/* TCP pseudo-header: IPv6 uses all ten words, IPv4 the last three. */
	__be32 ph[10];
	struct tcphdr th;
};

/* Turns the SYN in the frame into the challenge ACK, in place: MACs,
 * addresses and ports swapped, options and payload cut, checksums computed
 * (this packet is ours, not a rewrite). seq and ack are in the SYN sender's
 * space. Returns 0, or -1 when the frame cannot be reshaped. */
static __always_inline int build_challenge_ack(ctx_t *ctx, const struct baton_pkt *p, __u32 seq, __u32 ack)
{
	struct challenge_tcp t = {};
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip = {};
	struct ethhdr eth;
	__u32 l3 = p->key.family == BATON_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u32 len = sizeof(struct ethhdr) + l3 + sizeof(struct tcphdr), have = ctx_len(ctx);
	void *data = ctx_data(ctx), *end = ctx_data_end(ctx);
	struct ethhdr *in = data;
	__u32 sum;

	if ((void *)(in + 1) > end || have < len)
		return -1;
	__builtin_memcpy(eth.h_dest, in->h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, in->h_dest, ETH_ALEN);
	eth.h_proto = in->h_proto;

	t.th.source = p->key.dport;
	t.th.dest = p->key.sport;
	t.th.seq = bpf_htonl(seq);
	t.th.ack_seq = bpf_htonl(ack);
	t.th.doff = 5;
	t.th.ack = 1;
	/* Window 0: the segment is one no receiver acts on beyond its ACK
	 * number (see syn_verdict), and baton does not know the back end's. */
	t.th.window = 0;

	if (p->key.family == BATON_AF_INET) {
		ip.v4.version = 4;
		ip.v4.ihl = 5;
		ip.v4.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
		ip.v4.frag_off = bpf_htons(0x4000); /* DF */
		ip.v4.ttl = BATON_CHALLENGE_TTL;
		ip.v4.protocol = IPPROTO_TCP;
		ip.v4.saddr = p->key.daddr[0];
		ip.v4.daddr = p->key.saddr[0];
		ip.v4.check = ~csum_fold(bpf_csum_diff(0, 0, (__be32 *)&ip.v4, sizeof(ip.v4), 0));
		t.ph[7] = ip.v4.saddr;
		t.ph[8] = ip.v4.daddr;
		t.ph[9] = bpf_htonl((IPPROTO_TCP << 16) | sizeof(struct tcphdr));
		sum = bpf_csum_diff(0, 0, &t.ph[7], 3 * 4 + sizeof(struct tcphdr), 0);
	} else {
		ip.v6.version = 6;
		ip.v6.payload_len = bpf_htons(sizeof(struct tcphdr));
		ip.v6.nexthdr = IPPROTO_TCP;
		ip.v6.hop_limit = BATON_CHALLENGE_TTL;
		__builtin_memcpy(&ip.v6.saddr, p->key.daddr, 16);
		__builtin_memcpy(&ip.v6.daddr, p->key.saddr, 16);
		__builtin_memcpy(&t.ph[0], p->key.daddr, 16);
		__builtin_memcpy(&t.ph[4], p->key.saddr, 16);
		t.ph[8] = bpf_htonl(sizeof(struct tcphdr));
		t.ph[9] = bpf_htonl(IPPROTO_TCP);
		sum = bpf_csum_diff(0, 0, t.ph, sizeof(t), 0);
	}
	t.th.check = ~csum_fold(sum);
	if (have > len && ctx_shrink(ctx, have - len))
		return -1;
	if (ctx_store_bytes(ctx, sizeof(struct ethhdr), &ip, l3))
		return -1;
	if (ctx_store_bytes(ctx, 0, &eth, sizeof(eth)))
		return -1;
	if (ctx_store_bytes(ctx, sizeof(struct ethhdr) + l3, &t.th, sizeof(t.th)))
		return -1;
	return 0;
}

/* Decides a segment that opens a connection on an entry, and every segment
 * on a SUPERSEDED entry. Returns -1 when this segment is not decided here
 * (the caller handles it by the entry's state), else the verdict with
 * *reason set. Nothing here updates the tracks: they stay the old
 * connection's. BLOCK entries keep their own rule (everything but pure ACKs
 * dropped while the front end's sockets are captured). */
static __always_inline int syn_verdict(ctx_t *ctx, const struct baton_pkt *p, struct baton_flow *f,
				       __u32 *reason)
{
	const struct baton_leg *h;
	const struct baton_flow *peer;
	__u32 seq_off = 0, ack_off = 0, seq, ack, now_ms, last;
	int finished;

	if (f->state == BATON_STATE_SUPERSEDED) {
		*reason = BATON_R_PASS_SUPERSEDED;
		return CTX_PASS;
	}
	if ((p->tcp_flags & (TCPF_SYN | TCPF_ACK)) != TCPF_SYN || f->state == BATON_STATE_BLOCK)
		return -1;

	h = current_leg(f);
	peer = h ? peer_entry(p, h) : 0;
	/* Without the other direction's entry (it is being removed) only a
	 * RST proves the connection over. */
	finished = peer ? tracks_finished(&f->track, &peer->track) : (f->track.flags & BATON_TRACK_F_RST) != 0;
	if (finished) {
		WRITE_ONCE(f->state, BATON_STATE_SUPERSEDED);
		*reason = BATON_R_PASS_SYN_FINISHED;
		return CTX_PASS;
	}

	/* Live. Tracks are in client sequence space; a BACKEND entry's sender
	 * numbers its stream (and acks the client's) in its own. */
	if (!h || !(f->track.flags & BATON_TRACK_F_SEEN))
		goto drop; /* nothing seen yet to number an answer with */
	if (f->kind == BATON_KIND_BACKEND) {
		seq_off = h->x.ack_delta;
		ack_off = h->x.seq_delta;
	}
	/* seq: one below what the sender last acknowledged, the form of a
	 * keepalive probe (RFC 9293 3.8.4). A stack that still holds the
	 * connection finds it below its window, discards it and repeats its
	 * ACK, so no guessed window or ACK of ours ever reaches its state; a
	 * stack in SYN-SENT (one that lost the connection) looks only at the
	 * ACK number, finds it unacceptable and resets with seq = that number. */
	seq = f->track.ack_max - seq_off - 1;
	/* ack: the receiving side's rcv_nxt as it last said it (the other
	 * direction's highest ACK), else the end of what the sender sent. */
	if (peer && (peer->track.flags & BATON_TRACK_F_SEEN))
		ack = peer->track.ack_max - ack_off;
	else
		ack = f->track.seq_end - ack_off;

	now_ms = (__u32)(bpf_ktime_get_coarse_ns() / 1000000) | 1;
	last = f->challenge_ms;
	if (last && now_ms - last < BATON_CHALLENGE_ACK_INTERVAL_MS)
		goto drop;
	if (build_challenge_ack(ctx, p, seq, ack))
		goto drop;
	WRITE_ONCE(f->challenge_ms, now_ms);
	*reason = BATON_R_TX_CHALLENGE_ACK;
	return CTX_TX;
drop:
	*reason = BATON_R_DROP_SYN_LIVE;
	return CTX_DROP;
}

#endif /* BATON_LIB_SYN_H */
