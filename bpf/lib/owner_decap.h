/* SPDX-License-Identifier: GPL-2.0 */
/* Owner forwarding: checking and removing an owner header addressed to
 * this LB (see owner.h). */
#ifndef BATON_LIB_OWNER_DECAP_H
#define BATON_LIB_OWNER_DECAP_H

#ifdef BATON_CTX_TC
#error "the owner headers are XDP only: they move the packet head with bpf_xdp_adjust_head"
#endif

#include "owner_maps.h"

/* ------------------------------------------------------------------ decapsulation */

/* An owner header addressed to this LB: checked (peer, version, hops,
 * lengths) and removed, so the inner packet goes through the same code as
 * one that arrived directly; *hops is the header's count and *from the
 * peer that sent it (left zero for a packet that arrived directly). Returns
 * OWNER_CONTINUE (header removed, or no owner header: carry on), or a
 * drop verdict with *reason set. */
static __always_inline int owner_ingress(ctx_t *ctx, const struct baton_owner_config *c, __u8 *hops,
					 struct baton_peer_addr *from, __u32 *reason)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct baton_owner_hdr *o;
	struct udphdr *u;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN], ver;
	__u32 olen, inner_len;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return OWNER_CONTINUE;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->daddr != c->local4 || !c->local4)
			return OWNER_CONTINUE;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFMASK)))
			return OWNER_CONTINUE; /* never sent by a peer: the stack's */
		u = (void *)(ip + 1);
		if ((void *)(u + 1) > end || u->dest != c->udp_port)
			return OWNER_CONTINUE;
		from->family = BATON_AF_INET;
		from->addr[0] = ip->saddr;
		olen = sizeof(*ip) + sizeof(*u) + sizeof(*o);
		if (bpf_ntohs(ip->tot_len) < olen || data + sizeof(*eth) + bpf_ntohs(ip->tot_len) > end)
			goto malformed;
		inner_len = bpf_ntohs(ip->tot_len) - olen;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return OWNER_CONTINUE;
		if (ip6->daddr.in6_u.u6_addr32[0] != c->local6[0] || ip6->daddr.in6_u.u6_addr32[1] != c->local6[1] ||
		    ip6->daddr.in6_u.u6_addr32[2] != c->local6[2] || ip6->daddr.in6_u.u6_addr32[3] != c->local6[3])
			return OWNER_CONTINUE;
		u = (void *)(ip6 + 1);
		if ((void *)(u + 1) > end || u->dest != c->udp_port)
			return OWNER_CONTINUE;
		from->family = BATON_AF_INET6;
		__builtin_memcpy(from->addr, &ip6->saddr, 16);
		olen = sizeof(*ip6) + sizeof(*u) + sizeof(*o);
		if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) < olen ||
		    data + sizeof(*eth) + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > end)
			goto malformed;
		inner_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6) - olen;
	} else {
		return OWNER_CONTINUE;
	}

	/* Addressed to us on our port: from here on it is ours to judge. */
	if (!bpf_map_lookup_elem(&baton_peers, from)) {
		*reason = BATON_R_DROP_OWNER_NOT_PEER;
		return CTX_DROP;
	}
	o = (void *)(u + 1);
	if ((void *)(o + 1) + 1 > end)
		goto malformed;
	if (o->version != BATON_OWNER_HDR_VERSION || bpf_ntohs(u->len) != sizeof(*u) + sizeof(*o) + inner_len)
		goto malformed;
	ver = *(__u8 *)(o + 1) >> 4;
	if (o->family == BATON_AF_INET && ver == 4)
		proto = bpf_htons(ETH_P_IP);
	else if (o->family == BATON_AF_INET6 && ver == 6)
		proto = bpf_htons(ETH_P_IPV6);
	else
		goto malformed;
	if (o->hops == 0 || o->hops > c->max_hops) {
		*reason = BATON_R_DROP_OWNER_HOPS;
		return CTX_DROP;
	}
	*hops = o->hops;

	/* The outer MACs (addressed to this LB) stay: the stack takes the
	 * inner packet as its own, a forward rewrites them anyway. */
	__builtin_memcpy(dmac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(smac, eth->h_source, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, (int)olen)) {
		*reason = BATON_R_DROP_OWNER_MALFORMED;
		return CTX_DROP;
	}
	data = ctx_data(ctx);
	end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > end) {
		*reason = BATON_R_DROP_OWNER_MALFORMED;
		return CTX_DROP;
	}
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	eth->h_proto = proto;
	return OWNER_CONTINUE;

malformed:
	*reason = BATON_R_DROP_OWNER_MALFORMED;
	return CTX_DROP;
}


#endif /* BATON_LIB_OWNER_DECAP_H */
