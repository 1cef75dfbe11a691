/* SPDX-License-Identifier: GPL-2.0 */
/* Owner forwarding: wrapping a packet in the owner header toward its
 * owner (outer IP + UDP + struct baton_owner_hdr; see owner.h). */
#ifndef BATON_LIB_OWNER_ENCAP_H
#define BATON_LIB_OWNER_ENCAP_H

#ifdef BATON_CTX_TC
#error "the owner headers are XDP only: they move the packet head with bpf_xdp_adjust_head"
#endif

#include "owner_maps.h"

/* ------------------------------------------------------------------ encapsulation */

/* What the encapsulation needs of the inner packet. */
struct owner_inner {
	const struct baton_flow_key *key;
	__u32 ip_len;  /* inner IP datagram, header included */
	__u32 l3_hlen; /* inner IP header */
	__u8 hops;     /* of the header it arrived in (0: arrived directly) */
};

static __always_inline int peer_is_local(const struct baton_peer_addr *a, const struct baton_owner_config *c)
{
	if (a->family == BATON_AF_INET)
		return a->addr[0] == c->local4;
	return a->addr[0] == c->local6[0] && a->addr[1] == c->local6[1] && a->addr[2] == c->local6[2] &&
	       a->addr[3] == c->local6[3];
}

/* One's complement sum of the inner pseudo-header (RFC 793/8200). */
static __always_inline __u64 inner_pseudo_sum(const struct owner_inner *in)
{
	const struct baton_flow_key *k = in->key;
	__u64 s = 0;

	if (k->family == BATON_AF_INET) {
		s += k->saddr[0];
		s += k->daddr[0];
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			s += (__u64)k->saddr[i] + k->daddr[i];
	}
	s += bpf_htons(k->proto);
	s += bpf_htons((__u16)(in->ip_len - in->l3_hlen));
	return s;
}

/* Encapsulates the packet toward `to` and forwards it. Returns the verdict
 * with *reason set (fwd_reason when sent).
 *
 * The outer UDP checksum is computed without reading the payload (local
 * checksum offload, as Linux's UDP tunnels do): with a valid inner L4
 * checksum the inner L4 segment sums to the complement of its
 * pseudo-header, and a valid IPv4 header sums to zero, so the outer sum
 * needs only the headers. A packet that arrived with a bad inner checksum
 * leaves with a bad outer one too, so nothing damaged becomes valid. An
 * inner UDP datagram without a checksum (IPv4, 0) gets an outer one of 0
 * as well: the owner's XDP does not check it. */
static __always_inline int owner_encap(ctx_t *ctx, const struct owner_inner *in, const struct baton_peer_addr *to,
				       __be16 owner_port, __u32 slot, const struct baton_owner_config *c,
				       struct baton_nexthop *nh, __u32 fwd_reason, __u32 *reason)
{
	const struct baton_flow_key *k = in->key;
	struct bpf_fib_lookup fib = {};
	struct baton_owner_hdr oh = {};
	struct udphdr uh = {};
	void *data, *end;
	struct ethhdr *eth;
	__u32 h = owner_flow_hash(k), olen, udp_len, pkt_len;
	__u64 sum = 0, now = 0;
	__u16 inner_check = 1;
	__u32 ifindex;
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
	int rc;

	if (in->hops >= c->max_hops) {
		*reason = BATON_R_DROP_OWNER_HOPS;
		return CTX_DROP;
	}
	if (to->family != BATON_AF_INET && to->family != BATON_AF_INET6) {
		*reason = BATON_R_DROP_NO_OWNER;
		return CTX_DROP;
	}
	/* An entry or bucket naming this LB itself would only bounce the
	 * packet back here until the hop limit. */
	if (peer_is_local(to, c)) {
		*reason = BATON_R_DROP_NO_OWNER;
		return CTX_DROP;
	}
	if (in->ip_len > 0xffff - 100) {
		*reason = BATON_R_DROP_OWNER_TOO_BIG;
		return CTX_DROP;
	}
	olen = (to->family == BATON_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) + sizeof(uh) + sizeof(oh);
	udp_len = sizeof(uh) + sizeof(oh) + in->ip_len;

	fib.sport = bpf_htons(BATON_OWNER_SPORT_BASE | (h & BATON_OWNER_SPORT_MASK));

	/* The next hop first, so nothing is rewritten for a packet that
	 * cannot leave. An OWNER entry caches it (nh, as a splice entry
	 * does: a FIB lookup costs more than the encapsulation); a cached
	 * hop still has its device MTU checked on every packet, while a
	 * route MTU is seen at the next lookup (BATON_NEXTHOP_TTL_NS). */
	if (nh) {
		now = bpf_ktime_get_coarse_ns();
		if (nh->expires_ns > now) {
			__u32 mtu_len = 0, cur = ctx_len(ctx);
			__s32 diff;

			/* Keeps clang from folding the length back into pointer
			 * arithmetic, which the verifier refuses in 32 bits. */
			asm volatile("" : "+r"(cur));
			diff = (__s32)(sizeof(struct ethhdr) + olen + in->ip_len) - (__s32)cur;

			ifindex = nh->ifindex;
			__builtin_memcpy(smac, nh->smac, ETH_ALEN);
			__builtin_memcpy(dmac, nh->dmac, ETH_ALEN);
			/* Re-read: a writer on another CPU empties it first. */
			if (READ_ONCE(nh->expires_ns) > now) {
				if (bpf_check_mtu(ctx, ifindex, &mtu_len, diff, 0) != BPF_MTU_CHK_RET_SUCCESS) {
					*reason = BATON_R_DROP_OWNER_TOO_BIG;
					return CTX_DROP;
				}
				goto have_hop;
			}
		}
	}
	/* tot_len makes the lookup check the egress (route and device) MTU. */
	fib.ifindex = ctx_ingress_ifindex(ctx);
	fib.l4_protocol = IPPROTO_UDP;
	fib.dport = c->udp_port;
	fib.tot_len = olen + in->ip_len;
	if (to->family == BATON_AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = c->local4;
		fib.ipv4_dst = to->addr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, c->local6, 16);
		__builtin_memcpy(fib.ipv6_dst, to->addr, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		*reason = BATON_R_DROP_OWNER_TOO_BIG;
		return CTX_DROP;
	}
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE || rc == BPF_FIB_LKUP_RET_PROHIBIT) {
		*reason = BATON_R_DROP_FIB;
		return CTX_DROP;
	}
	/* Not resolved yet (or not forwardable): the stack cannot take the
	 * encapsulated frame (its source is one of ours: a martian to
	 * forwarding) and the bare one it would answer with a RST, so the
	 * packet is dropped; the peer's neighbour is resolved by the traffic
	 * this LB sends itself and the client retransmits. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		*reason = BATON_R_DROP_OWNER_NO_ROUTE;
		return CTX_DROP;
	}
	ifindex = fib.ifindex;
	__builtin_memcpy(smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(dmac, fib.dmac, ETH_ALEN);
	if (nh) {
		WRITE_ONCE(nh->expires_ns, 0);
		nh->ifindex = ifindex;
		nh->leg = 0;
		__builtin_memcpy(nh->smac, smac, ETH_ALEN);
		__builtin_memcpy(nh->dmac, dmac, ETH_ALEN);
		WRITE_ONCE(nh->expires_ns, now + BATON_NEXTHOP_TTL_NS);
	}
have_hop:

	/* Sums that need the inner headers, read before the head moves. */
	data = ctx_data(ctx);
	end = ctx_data_end(ctx);
	if (k->family == BATON_AF_INET6) {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > end)
			goto malformed;
		sum += bpf_csum_diff(0, 0, (__be32 *)ip6, sizeof(*ip6), 0);
	}
	if (k->proto == IPPROTO_UDP) {
		__u32 off = sizeof(struct ethhdr) + in->l3_hlen;
		struct udphdr *iu;

		if (off > 14 + 60)
			goto malformed;
		iu = data + off;
		if ((void *)(iu + 1) > end)
			goto malformed;
		inner_check = iu->check;
	}
	sum += (__u16)~csum_fold(inner_pseudo_sum(in));

	/* Ethernet padding after the datagram would land inside the outer
	 * payload: cut it first. */
	pkt_len = ctx_len(ctx);
	if (pkt_len > sizeof(struct ethhdr) + in->ip_len) {
		if (ctx_shrink(ctx, pkt_len - sizeof(struct ethhdr) - in->ip_len))
			goto failed;
	}
	if (bpf_xdp_adjust_head(ctx, -(int)olen))
		goto failed;

	uh.source = fib.sport;
	uh.dest = c->udp_port;
	uh.len = bpf_htons(udp_len);
	oh.version = BATON_OWNER_HDR_VERSION;
	oh.hops = in->hops + 1;
	oh.family = k->family;
	oh.proto = k->proto;
	oh.client_port = k->sport;
	oh.owner_port = owner_port;
	__builtin_memcpy(oh.client_addr, k->saddr, 16);
	__builtin_memcpy(oh.owner_addr, to->addr, 16);

	data = ctx_data(ctx);
	end = ctx_data_end(ctx);
	eth = data;
	if (to->family == BATON_AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *u = (void *)(ip + 1);
		struct baton_owner_hdr *o = (void *)(u + 1);

		if ((void *)(o + 1) > end)
			goto failed;
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(olen + in->ip_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->check = 0;
		ip->saddr = c->local4;
		ip->daddr = to->addr[0];
		ip->check = ~csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
		sum += (__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_UDP) + uh.len;
		sum += bpf_csum_diff(0, 0, (__be32 *)&uh, sizeof(uh), 0);
		sum += bpf_csum_diff(0, 0, (__be32 *)&oh, sizeof(oh), 0);
		uh.check = inner_check ? (__u16)~csum_fold(sum) : 0;
		if (inner_check && !uh.check)
			uh.check = 0xffff;
		__builtin_memcpy(u, &uh, sizeof(uh));
		__builtin_memcpy(o, &oh, sizeof(oh));
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct udphdr *u = (void *)(ip6 + 1);
		struct baton_owner_hdr *o = (void *)(u + 1);
		__u32 w0 = (6u << 28) | (h & 0xfffff); /* version, class 0, flow label = hash */

		if ((void *)(o + 1) > end)
			goto failed;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6 = bpf_htonl(w0);
		ip6->payload_len = uh.len;
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, c->local6, 16);
		__builtin_memcpy(&ip6->daddr, to->addr, 16);
#pragma unroll
		for (int i = 0; i < 4; i++)
			sum += (__u64)c->local6[i] + to->addr[i];
		sum += bpf_htons(IPPROTO_UDP) + uh.len;
		sum += bpf_csum_diff(0, 0, (__be32 *)&uh, sizeof(uh), 0);
		sum += bpf_csum_diff(0, 0, (__be32 *)&oh, sizeof(oh), 0);
		uh.check = inner_check ? (__u16)~csum_fold(sum) : 0;
		if (inner_check && !uh.check)
			uh.check = 0xffff;
		__builtin_memcpy(u, &uh, sizeof(uh));
		__builtin_memcpy(o, &oh, sizeof(oh));
	}
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	*reason = fwd_reason;
	owner_count_peer(to, slot, sizeof(struct ethhdr) + olen + in->ip_len);
	if (ifindex == ctx_ingress_ifindex(ctx))
		return CTX_TX;
	return bpf_redirect(ifindex, 0);

malformed:
failed:
	/* The head may have moved: what is left is no packet to hand on. */
	*reason = BATON_R_DROP_OWNER_ENCAP;
	return CTX_DROP;
}


#endif /* BATON_LIB_OWNER_ENCAP_H */
