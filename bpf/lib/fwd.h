/* SPDX-License-Identifier: GPL-2.0 */
/* Forwarding a rewritten frame: FIB lookup for the new destination, MACs
 * from the neighbour table, then XDP_TX (same interface) or redirect. When
 * the neighbour is not resolved yet the frame goes up the stack, which
 * forwards it and resolves the neighbour for the next packets. */
#ifndef BATON_LIB_FWD_H
#define BATON_LIB_FWD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>
#include "ctx.h"
#include "parse.h"

#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* The FIB lookup's request for the rewritten tuple, with tot_len as given. */
static __always_inline void fib_request(struct bpf_fib_lookup *fib, ctx_t *ctx, const struct baton_xlate *x,
					const struct baton_pkt *p, __u16 tot_len)
{
	fib->ifindex = ctx_ingress_ifindex(ctx);
	fib->l4_protocol = IPPROTO_TCP;
	fib->sport = x->sport;
	fib->dport = x->dport;
	fib->tot_len = tot_len;
	if (p->key.family == BATON_AF_INET) {
		fib->family = AF_INET;
		fib->ipv4_src = x->saddr[0];
		fib->ipv4_dst = x->daddr[0];
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, x->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, x->daddr, 16);
	}
}

/* The path MTU of the route the rewritten tuple takes, as the FIB lookup's
 * own MTU check sees it (the route's mtu, else the device's): a lookup with
 * the largest tot_len fails that check and reports the MTU in mtu_result,
 * before any neighbour is consulted. 0xffff when the route takes anything
 * (loopback's 64 KiB), 0 when the route itself fails (the real lookup that
 * follows reports why). Only on a cache miss: one extra lookup there buys a
 * per-packet compare instead of a lookup per packet. */
static __always_inline __u16 lookup_path_mtu(ctx_t *ctx, const struct baton_xlate *x, const struct baton_pkt *p)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib_request(&fib, ctx, x, p, 0xffff);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return fib.mtu_result;
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ? 0xffff : 0;
}

/* Fills *nh from a FIB lookup for the rewritten tuple. Returns 0, or a
 * verdict with *reason set when the packet cannot be forwarded from here
 * (among them a packet over the path MTU: the stack forwards it, or answers
 * "fragmentation needed" / "packet too big"). */
static __always_inline int lookup_nexthop(ctx_t *ctx, const struct baton_xlate *x,
					  const struct baton_pkt *p, struct baton_nexthop *nh,
					  __u32 *reason)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib_request(&fib, ctx, x, p, p->ip_len);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		*reason = BATON_R_DROP_FIB;
		return CTX_DROP;
	default: /* no neighbour yet, not forwarded, ...: the stack knows */
		*reason = BATON_R_FWD_STACK;
		return CTX_PASS;
	}
	nh->ifindex = fib.ifindex;
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	/* This packet passed the MTU check, so the MTU is at least its size
	 * even if the probe raced a route change. */
	nh->mtu = lookup_path_mtu(ctx, x, p);
	if (nh->mtu < p->ip_len)
		nh->mtu = p->ip_len;
	return 0;
}

/* Forwards a rewritten frame per the entry's next-hop cache, refreshing it
 * from the FIB when it is empty, stale or for another leg. The cache keeps
 * the FIB's MTU and every packet is checked against it, so a segment over
 * the MTU goes to the stack whether the cache was warm or cold (without
 * this, a cold cache sent it to the stack and a warm one redirected it).
 * Returns the verdict and sets *reason. */
static __always_inline int forward_frame(ctx_t *ctx, struct baton_flow *f, __u32 k,
					 const struct baton_xlate *x, const struct baton_pkt *p,
					 __u64 now, __u32 *reason)
{
	struct baton_nexthop *nh = &f->nexthop;
	struct ethhdr *eth;
	int rc;

	/* mtu 0: an entry cached before the MTU was kept (abi.h). */
	if (nh->expires_ns <= now || nh->leg != k || !nh->mtu) {
		/* Readers on other CPUs skip the cache while it is rewritten. */
		WRITE_ONCE(nh->expires_ns, 0);
		rc = lookup_nexthop(ctx, x, p, nh, reason);
		if (rc)
			return rc;
		nh->leg = k;
		WRITE_ONCE(nh->expires_ns, now + BATON_NEXTHOP_TTL_NS);
	} else if (p->ip_len > nh->mtu) {
		/* What the FIB lookup answers for it: FRAG_NEEDED, which
		 * lookup_nexthop hands to the stack. */
		*reason = BATON_R_FWD_STACK;
		return CTX_PASS;
	}

	eth = ctx_data(ctx);
	if ((void *)(eth + 1) > ctx_data_end(ctx)) {
		*reason = BATON_R_DROP_REWRITE;
		return CTX_DROP;
	}
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (nh->ifindex == ctx_ingress_ifindex(ctx)) {
		*reason = BATON_R_FWD_TX;
		return CTX_TX;
	}
	*reason = BATON_R_FWD_REDIRECT;
	return bpf_redirect(nh->ifindex, 0);
}

#endif /* BATON_LIB_FWD_H */
