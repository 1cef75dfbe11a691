// SPDX-License-Identifier: GPL-2.0
/* baton's XDP entry program for the LB's interfaces. Thin on purpose: parse,
 * look the flow up, translate per the splice tables, forward; the work is in
 * lib/. Packets of flows baton does not hold go to the stack untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/counters.h"
#include "lib/clock.h"
#include "lib/parse.h"
#include "lib/splice.h"
#include "lib/tcp_rewrite.h"
#include "lib/fwd.h"
#include "lib/syn.h"
#include "lib/flowid.h" /* migrate: after fwd.h, for handle_migrated */
#include "lib/owner.h"


static __always_inline int handle_flow(ctx_t *ctx, struct baton_pkt *p, struct baton_flow *f,
				       __u32 bytes, __u32 *reason)
{
	const struct baton_leg *h;
	__u32 ack = p->ack, seq_c, ack_c;
	__u64 now;
	int k, rc, rst, verdict;

	/* A SYN opening a new connection on this tuple, or a tuple a new
	 * connection already took: never translated (lib/syn.h). */
	rc = syn_verdict(ctx, p, f, reason);
	if (rc >= 0)
		return rc;
	if (f->state == BATON_STATE_HOLD) {
		/* Between two handoffs: no client byte may reach the back end
		 * that is being retired; pure ACKs (and an abort) go on. */
		if (p->payload_len || (p->tcp_flags & (TCPF_SYN | TCPF_FIN))) {
			*reason = BATON_R_DROP_HELD;
			return CTX_DROP;
		}
	} else if (f->state != BATON_STATE_FORWARD) {
		if (!p->payload_len && !(p->tcp_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST))) {
			*reason = BATON_R_PASS_BLOCKED_ACK;
			return CTX_PASS;
		}
		*reason = BATON_R_DROP_BLOCKED;
		return CTX_DROP;
	}

	/* One clock read per packet, for the track and the next-hop cache;
	 * the coarse clock (jiffies) is enough for both, and lib/clock.h
	 * reads it once per jiffy. */
	now = coarse_now_ns();

	/* seq and ack in client sequence space, for the RST rule and the
	 * track: a BACKEND entry's are translated first. */
	if (f->kind == BATON_KIND_CLIENT) {
		h = select_leg(f, p, &k);
		if (!h) {
			*reason = BATON_R_DROP_NO_LEG;
			return CTX_DROP;
		}
		ack = clamp_ack(h, p->ack);
		seq_c = p->seq;
		ack_c = p->ack;
	} else {
		k = 0;
		h = &f->leg;
		seq_c = p->seq + h->x.seq_delta;
		ack_c = p->ack + h->x.ack_delta;
	}
	rst = rst_verdict(p, f, h, seq_c, reason);
	if (rst < 0)
		return CTX_DROP;

	rc = rewrite_segment(ctx, p, &h->x, ack);
	if (rc) {
		*reason = rc;
		return CTX_DROP;
	}
	verdict = forward_frame(ctx, f, k, &h->x, p, now, reason);
	/* Tracked only once handed on (XDP_TX, redirect, or the stack to
	 * forward it): what the receiver can have seen, nothing dropped. */
	if (verdict != CTX_DROP)
		track_segment(&f->track, seq_c, ack_c, p, bytes, now, rst);
	return verdict;
}

SEC("xdp")
int baton_xdp(struct xdp_md *ctx)
{
	struct baton_pkt p = {};
	struct baton_flow *f;
	__u32 len = ctx_len(ctx);
	__u32 reason;
	int verdict;
	/* BEGIN owner forwarding (004, lib/owner.h): NULL when off. */
	const struct baton_owner_config *oc = owner_config();
	struct baton_peer_addr from = {};
	__u8 hops = 0;

	if (oc) {
		/* An owner header from a peer is removed here, and the inner
		 * packet goes on exactly as if it had arrived directly. */
		verdict = owner_ingress(ctx, oc, &hops, &from, &reason);
		if (verdict != OWNER_CONTINUE)
			goto count_none;
	}
	/* END owner forwarding */

	if (parse_tcp_packet(ctx, &p, &reason)) {
		/* BEGIN owner forwarding: UDP flows held by a peer (claim 5). */
		if (oc && reason == BATON_R_PASS_NOT_TCP) {
			verdict = owner_udp(ctx, oc, hops, &reason);
			if (verdict != OWNER_CONTINUE)
				goto count_none;
		}
		/* END owner forwarding */
		count_reason(reason, BATON_DIR_NONE, len);
		return CTX_PASS;
	}
	f = bpf_map_lookup_elem(&baton_flows, &p.key);
	if (!f) {
		/* BEGIN owner forwarding: second chance, never a RST. */
		if (oc) {
			verdict = owner_no_flow(ctx, &p, oc, hops, &from, &reason);
			if (verdict != OWNER_CONTINUE)
				goto count_none;
		}
		/* END owner forwarding */
		count_reason(BATON_R_PASS_NO_FLOW, BATON_DIR_NONE, len);
		return CTX_PASS;
	}
	/* migrate: a migrated connection's client segments (lib/flowid.h) */
	if (f->kind == BATON_KIND_MIGRATED) {
		verdict = handle_migrated(ctx, &p, f, len, &reason);
		count_reason(reason, BATON_DIR_TO_BACKEND, len);
		return verdict;
	}
	/* BEGIN owner forwarding: the connection is a peer's. */
	if (f->kind == BATON_KIND_OWNER) {
		verdict = owner_forward_tcp(ctx, &p, f, oc, hops, &reason);
		goto count_none;
	}
	/* END owner forwarding */
	verdict = handle_flow(ctx, &p, f, len, &reason);
	count_reason(reason, f->kind == BATON_KIND_CLIENT ? BATON_DIR_TO_BACKEND : BATON_DIR_TO_CLIENT, len);
	return verdict;

count_none:
	count_reason(reason, BATON_DIR_NONE, len);
	return verdict;
}

/* The control program: in-place changes to one connection-table entry
 * (struct baton_ctl says why in place). Run by userspace through
 * BPF_PROG_TEST_RUN; never attached. */
SEC("syscall")
int baton_ctl(struct baton_ctl *c)
{
	struct baton_flow_key key;
	struct baton_leg_list *l;
	struct baton_flow *f;
	__u32 n;

	__builtin_memcpy(&key, &c->key, sizeof(key));
	f = bpf_map_lookup_elem(&baton_flows, &key);
	if (!f) {
		c->result = -2; /* ENOENT */
		return 0;
	}
	if (c->state < BATON_STATE_BLOCK || c->state > BATON_STATE_HOLD) {
		c->result = -22; /* EINVAL */
		return 0;
	}
	n = f->n_legs;
	if (c->op == BATON_CTL_APPEND_LEG) {
		if (f->kind != BATON_KIND_CLIENT) {
			c->result = -22;
			return 0;
		}
		if (n >= BATON_MAX_LEGS) {
			c->result = -7; /* E2BIG */
			c->n_legs = n;
			return 0;
		}
		if (n == 0) {
			__builtin_memcpy(&f->leg, &c->leg, sizeof(c->leg));
		} else {
			l = bpf_map_lookup_elem(&baton_legs, &f->conn_id);
			if (!l) {
				c->result = -28; /* ENOSPC: userspace creates the list first */
				c->n_legs = n;
				return 0;
			}
			if (n == 1)
				__builtin_memcpy(&l->leg[0], &f->leg, sizeof(f->leg));
			__builtin_memcpy(&l->leg[n & (BATON_MAX_LEGS - 1)], &c->leg, sizeof(c->leg));
		}
		/* The leg is complete before it becomes visible to
		 * select_leg(), which only reads legs below n_legs (and the
		 * list only once n_legs > 1). BPF has no fence instruction: a
		 * compiler barrier keeps the store order, which x86's memory
		 * model preserves for readers. */
		asm volatile("" ::: "memory");
		WRITE_ONCE(f->n_legs, n + 1);
		n++;
	} else if (c->op != BATON_CTL_SET_STATE) {
		c->result = -22;
		return 0;
	}
	WRITE_ONCE(f->state, c->state);
	c->n_legs = n;
	c->result = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

/* ---- profiles (issue 13): TC egress on the LB's back-end-facing
 * interfaces; strips the options a marked back-end leg's SYN must not
 * carry (lib/tcp_options_profile.h). Always TC_ACT_OK: it edits, never
 * drops. The result goes in skb->cb[0] for the fixtures. */
#include "lib/tcp_options_profile.h"

SEC("tc")
int baton_tc_profile(struct __sk_buff *skb)
{
	skb->cb[0] = profile_egress(skb);
	return TC_ACT_OK;
}
/* ---- end profiles */
