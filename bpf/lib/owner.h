/* SPDX-License-Identifier: GPL-2.0 */
/* Owner forwarding (source document 004): several LBs behind an ECMP
 * router, each holding some of the connections. A packet that lands on an
 * LB which does not hold its connection goes to the owner inside ONE outer
 * IP + UDP header whose payload is struct baton_owner_hdr (the reference:
 * client ip:port, owner ip:port, hop count) followed by the original IP
 * packet; the owner removes it and processes the packet exactly as if it
 * had arrived directly.
 *
 *   in : [eth][inner IP ...]
 *   out: [eth][outer IPv4/IPv6][UDP dport=config.udp_port][owner hdr][inner IP ...]
 *
 * The outer UDP source port is a hash of the inner flow, so routers that
 * hash on L4 keep one flow on one path; IPv6 also carries it in the flow
 * label. The outer DF bit is set: the header adds 68 bytes (IPv4 outer) or
 * 88 (IPv6 outer), and a packet that no longer fits the egress MTU is
 * dropped and counted (owner_too_big) rather than fragmented, because a
 * fragmented header could not be removed in XDP. The links between LBs
 * must carry client MTU + that overhead (or clients' MSS be clamped by as
 * much); the FIB lookup's MTU check is what enforces it.
 *
 * XDP only (bpf_xdp_adjust_head). */
#ifndef BATON_LIB_OWNER_H
#define BATON_LIB_OWNER_H

#ifdef BATON_CTX_TC
#error "lib/owner.h is XDP only: it moves the packet head with bpf_xdp_adjust_head"
#endif

#include "owner_maps.h"   /* maps, configuration, flow hash */
#include "owner_encap.h"  /* toward the owner */
#include "owner_decap.h"  /* at the owner */

/* ------------------------------------------------------------------ decisions */

/* A TCP segment that matched an OWNER entry: to its owner. */
static __always_inline int owner_forward_tcp(ctx_t *ctx, const struct baton_pkt *p, struct baton_flow *f,
					     const struct baton_owner_config *c, __u8 hops, __u32 *reason)
{
	struct owner_inner in = {
		.key = &p->key, .ip_len = p->ip_len, .l3_hlen = p->l4_off - sizeof(struct ethhdr), .hops = hops,
	};

	if (!c) { /* an owner entry but no configuration: nowhere to send it from */
		*reason = BATON_R_DROP_NO_OWNER;
		return CTX_DROP;
	}
	return owner_encap(ctx, &in, &f->owner.peer, f->owner.port, f->owner.slot, c, &f->nexthop, BATON_R_FWD_OWNER,
			   reason);
}

/* Is there a socket on this LB that the segment belongs to? A listener
 * alone does not count (it would answer a non-SYN with a RST), unless the
 * segment is the ACK of a valid SYN cookie. */
static __always_inline int owner_local_socket(ctx_t *ctx, const struct baton_pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	void *data = ctx_data(ctx), *end = ctx_data_end(ctx);
	__u32 size;
	int found;

	if (p->key.family == BATON_AF_INET) {
		t.ipv4.saddr = p->key.saddr[0];
		t.ipv4.daddr = p->key.daddr[0];
		t.ipv4.sport = p->key.sport;
		t.ipv4.dport = p->key.dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->key.saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->key.daddr, 16);
		t.ipv6.sport = p->key.sport;
		t.ipv6.dport = p->key.dport;
		size = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != TCP_LISTEN;
	if (!found && (p->tcp_flags & TCPF_ACK)) {
		void *ip = data + sizeof(struct ethhdr);
		struct tcphdr *th = data + (p->l4_off & 0xff);
		__u32 iplen = p->key.family == BATON_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);

		if (ip + sizeof(struct ipv6hdr) <= end && (void *)(th + 1) <= end)
			found = bpf_tcp_check_syncookie(sk, ip, iplen, th, sizeof(*th)) == 0;
	}
	bpf_sk_release(sk);
	return found;
}

static __always_inline int owner_peer_eq(const struct baton_peer_addr *a, const struct baton_peer_addr *b)
{
	return a->family == b->family && a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] &&
	       a->addr[2] == b->addr[2] && a->addr[3] == b->addr[3];
}

/* A TCP segment that matched no entry. SYNs and segments for addresses
 * that are not VIPs, or that a local socket takes, carry on as before
 * (OWNER_CONTINUE). Any other segment for a VIP belongs to a connection
 * some other LB holds (a hash change moved it here before the directory
 * told us): it goes to this flow's second-chance peer, hop-limited, or is
 * dropped (no_owner) — never to the stack, which would reset it.
 *
 * A segment that came on a second chance (`from`: the peer that sent it)
 * is never sent back there: with three LBs A, B, C and the owner C, A's
 * bucket may say B and B's the same bucket A, and the segment would bounce
 * A-B-A until the hop limit while C never sees it (a connection made just
 * before a hash change, in no directory yet, would hang for good). Then the
 * neighbouring bucket is taken, which the control plane fills with another
 * peer whenever there are two (round robin); with none other it is dropped
 * (no_owner). With two or three LBs every peer is tried within the limit. */
static __always_inline int owner_no_flow(ctx_t *ctx, const struct baton_pkt *p, const struct baton_owner_config *c,
					 __u8 hops, const struct baton_peer_addr *from, __u32 *reason)
{
	struct baton_vip_key vk = {};
	const struct baton_peer_addr *to;
	struct owner_inner in = {
		.key = &p->key, .ip_len = p->ip_len, .l3_hlen = p->l4_off - sizeof(struct ethhdr), .hops = hops,
	};
	__u32 bucket;

	if (p->tcp_flags & TCPF_SYN)
		return OWNER_CONTINUE;
	__builtin_memcpy(vk.addr, p->key.daddr, 16);
	vk.family = p->key.family;
	if (!bpf_map_lookup_elem(&baton_vips, &vk))
		return OWNER_CONTINUE;
	if (owner_local_socket(ctx, p))
		return OWNER_CONTINUE;
	bucket = owner_flow_hash(&p->key) & (BATON_SECOND_CHANCE_BUCKETS - 1);
	to = bpf_map_lookup_elem(&baton_second_chance, &bucket);
	if (to && hops && owner_peer_eq(to, from)) {
		bucket ^= 1;
		to = bpf_map_lookup_elem(&baton_second_chance, &bucket);
		if (to && owner_peer_eq(to, from))
			to = 0;
	}
	if (!to || !to->family) {
		*reason = BATON_R_DROP_NO_OWNER;
		return CTX_DROP;
	}
	return owner_encap(ctx, &in, to, p->key.dport, 0, c, 0, BATON_R_FWD_SECOND_CHANCE, reason);
}

/* A UDP datagram (not an owner header): to its owner when an OWNER entry
 * holds its flow (claim 5), else OWNER_CONTINUE. */
static __always_inline int owner_udp(ctx_t *ctx, const struct baton_owner_config *c, __u8 hops, __u32 *reason)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct baton_flow_key key = {};
	struct baton_flow *f;
	struct owner_inner in = { .key = &key, .hops = hops };
	struct udphdr *u;

	if ((void *)(eth + 1) > end)
		return OWNER_CONTINUE;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
			return OWNER_CONTINUE;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFMASK))
			return OWNER_CONTINUE;
		u = (void *)(ip + 1);
		in.ip_len = bpf_ntohs(ip->tot_len);
		in.l3_hlen = sizeof(*ip);
		key.family = BATON_AF_INET;
		key.saddr[0] = ip->saddr;
		key.daddr[0] = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return OWNER_CONTINUE;
		u = (void *)(ip6 + 1);
		in.ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		in.l3_hlen = sizeof(*ip6);
		key.family = BATON_AF_INET6;
		__builtin_memcpy(key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
	} else {
		return OWNER_CONTINUE;
	}
	if ((void *)(u + 1) > end || in.ip_len < in.l3_hlen + sizeof(*u) || data + sizeof(*eth) + in.ip_len > end)
		return OWNER_CONTINUE;
	key.sport = u->source;
	key.dport = u->dest;
	key.proto = IPPROTO_UDP;
	f = bpf_map_lookup_elem(&baton_flows, &key);
	if (!f || f->kind != BATON_KIND_OWNER)
		return OWNER_CONTINUE;
	return owner_encap(ctx, &in, &f->owner.peer, f->owner.port, f->owner.slot, c, &f->nexthop, BATON_R_FWD_OWNER,
			   reason);
}

#endif /* BATON_LIB_OWNER_H */
