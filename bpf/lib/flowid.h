/* SPDX-License-Identifier: GPL-2.0 */
/* Flow id in the ports (source document 002, claims 9-10, 19-20): how a
 * migrated connection's client -> VIP segments cross from the LB to the
 * back end that now holds its socket, and how the back end's agent turns
 * them back into the segments the client sent.
 *
 *   LB (BATON_KIND_MIGRATED entry, handle_migrated):
 *     client:cport -> VIP:vport   becomes   client:FID_HI -> backend:FID_LO
 *   agent (baton_fids mapping, bpf/xdp_agent.c):
 *     client:FID_HI -> backend:FID_LO   becomes   client:cport -> VIP:vport
 *
 * No header is added (no MTU loss, no fragmentation); source IP, seq, ack,
 * window, options and payload travel untouched, so the rewrite is three
 * fields and two incremental checksum updates. The flow id's high 16 bits
 * ride in the source port and the low 16 in the destination port: the
 * 32-bit big-endian word at TCP offset 0 then *is* the flow id, which the
 * agent uses as its key as it lies on the wire, and an allocator counting
 * up from 1 varies the destination port first, which RSS on the back end
 * hashes like any port.
 *
 * The replies leave the back end from the VIP straight to the client (DSR):
 * the LB sees the client direction only, and so does its track. */
#ifndef BATON_LIB_FLOWID_H
#define BATON_LIB_FLOWID_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <baton/abi.h>
#include "ctx.h"
#include "csum.h"
#include "parse.h"
#include "track.h"

/* Which RST of a migrated flow is recorded in its track (and so lets the
 * control plane reclaim the entry). Only one direction passes here, so the
 * receiver's rcv_nxt is known as what the client itself sent: the track's
 * seq_end (on the agent seeded from the restored socket's rcv_nxt when the
 * mapping is installed, control/datapath/fid-table.ts; otherwise set by the
 * first segment forwarded). A RST with
 * exactly that seq is what an aborting client sends once everything it sent
 * arrived: RST_EXACT. Any other RST is forwarded unrecorded: the endpoint
 * judges it (RFC 5961, challenge ACK), and a blind RST cannot make baton
 * reclaim a live connection. */
static __always_inline int fid_rst_kind(const struct baton_track *t, const struct baton_pkt *p)
{
	if (!(p->tcp_flags & TCPF_RST))
		return RST_NONE;
	if ((t->flags & BATON_TRACK_F_SEEN) && p->seq == t->seq_end)
		return RST_EXACT;
	return RST_UNRECORDED;
}

/* Rewrites the destination address and both ports in place and updates the
 * TCP checksum (pseudo-header daddr + ports) and, for IPv4, the header
 * checksum (daddr), incrementally (lib/csum.h: a bad checksum stays bad).
 * daddr holds 4 words (IPv4 in daddr[0]); ports in network order. Only the
 * headers parse_tcp_packet() accepted reach here. XDP only: under TC a
 * direct write would leave skb->csum stale. Returns 0 or a drop reason. */
static __always_inline int fid_rewrite(ctx_t *ctx, const struct baton_pkt *p, const __be32 *daddr,
				       __be16 sport, __be16 dport)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct tcphdr *th = data + (p->l4_off & 0x7f); /* at most 14 + 60 */
	__u64 acc = 0, addr = 0;

	if ((void *)(th + 1) > end)
		return BATON_R_DROP_REWRITE;
	if (p->key.family == BATON_AF_INET) {
		struct iphdr *iph = data + sizeof(struct ethhdr);

		if ((void *)(iph + 1) > end)
			return BATON_R_DROP_REWRITE;
		csum_acc32(&addr, iph->daddr, daddr[0]);
		iph->daddr = daddr[0];
		iph->check = csum_apply_acc(iph->check, addr);
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > end)
			return BATON_R_DROP_REWRITE;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			csum_acc32(&addr, ip6->daddr.in6_u.u6_addr32[i], daddr[i]);
			ip6->daddr.in6_u.u6_addr32[i] = daddr[i];
		}
	}
	csum_acc16(&acc, th->source, sport);
	th->source = sport;
	csum_acc16(&acc, th->dest, dport);
	th->dest = dport;
	th->check = csum_apply_acc(th->check, acc + addr);
	return 0;
}

#ifdef BATON_LIB_FWD_H
/* The LB's side: one client -> VIP segment of a BATON_KIND_MIGRATED entry.
 * BLOCK behaves as splice's block (the LB's socket is being captured: pure
 * ACKs reach it so its send queue drains, anything else is dropped and
 * retransmitted by the client once forwarding is in place); FORWARD
 * rewrites per leg.x and forwards through the next-hop cache (lib/fwd.h:
 * FIB, back end's MAC, XDP_TX or redirect). A SYN on an entry whose client
 * has finished (FIN or exact RST tracked) is a new connection reusing the
 * tuple: to the LB's stack, untouched, and the entry SUPERSEDED, so every
 * later segment of the new connection goes there too (as lib/syn.h does for
 * splices). Returns the verdict, *reason set. */
static __always_inline int handle_migrated(ctx_t *ctx, struct baton_pkt *p, struct baton_flow *f,
					   __u32 bytes, __u32 *reason)
{
	const struct baton_xlate *x = &f->leg.x;
	__u64 now;
	int rc, rst, verdict;

	if (f->state == BATON_STATE_SUPERSEDED) {
		*reason = BATON_R_PASS_SUPERSEDED;
		return CTX_PASS;
	}
	if (f->state == BATON_STATE_BLOCK) {
		if (!p->payload_len && !(p->tcp_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST))) {
			*reason = BATON_R_PASS_BLOCKED_ACK;
			return CTX_PASS;
		}
		*reason = BATON_R_DROP_BLOCKED;
		return CTX_DROP;
	}
	if (f->state != BATON_STATE_FORWARD) {
		*reason = BATON_R_DROP_BLOCKED;
		return CTX_DROP;
	}
	if ((p->tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN &&
	    (f->track.flags & (BATON_TRACK_F_FIN | BATON_TRACK_F_RST))) {
		/* The rest of the new connection (its handshake's ACK, its request)
		 * must reach the stack too, not the old flow id: the entry is
		 * superseded until userspace reclaims it. */
		WRITE_ONCE(f->state, BATON_STATE_SUPERSEDED);
		*reason = BATON_R_PASS_SYN_FINISHED;
		return CTX_PASS;
	}
	if (f->n_legs != 1) {
		*reason = BATON_R_DROP_NO_LEG;
		return CTX_DROP;
	}
	now = bpf_ktime_get_coarse_ns();
	rst = fid_rst_kind(&f->track, p);
	rc = fid_rewrite(ctx, p, x->daddr, x->sport, x->dport);
	if (rc) {
		*reason = rc;
		return CTX_DROP;
	}
	verdict = forward_frame(ctx, f, 0, x, p, now, reason);
	if (verdict != CTX_DROP)
		track_segment(&f->track, p->seq, p->ack, p, bytes, now, rst);
	return verdict;
}
#endif /* BATON_LIB_FWD_H */

#endif /* BATON_LIB_FLOWID_H */
