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

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>
#include "ctx.h"
#include "csum.h"
#include "fwd.h"
#include "parse.h"

/* What the owner functions return when the packet is not theirs to decide:
 * the caller carries on as without owner forwarding. Verdicts are >= 0. */
#define OWNER_CONTINUE (-1)

#ifndef READ_ONCE
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#endif

#ifndef TCP_LISTEN
#define TCP_LISTEN 10
#endif

/* ------------------------------------------------------------------ maps */

/* Filled by the control plane: peer LBs whose owner headers are accepted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct baton_peer_addr);
	__type(value, struct baton_peer);
} baton_peers SEC(".maps");

/* The addresses the LBs serve. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct baton_vip_key);
	__type(value, struct baton_vip);
} baton_vips SEC(".maps");

/* Second chance (GLB/Beamer): per flow-hash bucket, the peer that owned the
 * bucket before the last change, to which an unknown mid-connection
 * segment is sent instead of being answered with a RST. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BATON_SECOND_CHANCE_BUCKETS);
	__type(key, __u32);
	__type(value, struct baton_peer_addr);
} baton_second_chance SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct baton_owner_config);
} baton_owner_config SEC(".maps");

/* The configuration, or NULL when owner forwarding is off (udp_port 0). */
static __always_inline const struct baton_owner_config *owner_config(void)
{
	__u32 k = 0;
	const struct baton_owner_config *c = bpf_map_lookup_elem(&baton_owner_config, &k);

	return c && c->udp_port ? c : 0;
}

/* ------------------------------------------------------------------ hash */

static __always_inline __u32 owner_mix(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	x *= 0x846ca68b;
	x ^= x >> 16;
	return x;
}

/* The flow hash of a key: outer source port and second-chance bucket.
 * Words are taken as loaded (little-endian on the LB), mirrored by
 * control/datapath/owner.ts (ownerFlowHash) for the control plane. */
static __always_inline __u32 owner_flow_hash(const struct baton_flow_key *k)
{
	__u32 h = 0x9e3779b9 ^ k->proto;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h = owner_mix(h ^ k->saddr[i]);
		h = owner_mix(h ^ k->daddr[i]);
	}
	return owner_mix(h ^ ((__u32)k->sport | ((__u32)k->dport << 16)));
}

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
				       __be16 owner_port, const struct baton_owner_config *c,
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
	if (ifindex == ctx_ingress_ifindex(ctx))
		return CTX_TX;
	return bpf_redirect(ifindex, 0);

malformed:
failed:
	/* The head may have moved: what is left is no packet to hand on. */
	*reason = BATON_R_DROP_OWNER_ENCAP;
	return CTX_DROP;
}

/* ------------------------------------------------------------------ decapsulation */

/* An owner header addressed to this LB: checked (peer, version, hops,
 * lengths) and removed, so the inner packet goes through the same code as
 * one that arrived directly; *hops is the header's count. Returns
 * OWNER_CONTINUE (header removed, or no owner header: carry on), or a
 * drop verdict with *reason set. */
static __always_inline int owner_ingress(ctx_t *ctx, const struct baton_owner_config *c, __u8 *hops, __u32 *reason)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct baton_peer_addr from = {};
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
		from.family = BATON_AF_INET;
		from.addr[0] = ip->saddr;
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
		from.family = BATON_AF_INET6;
		__builtin_memcpy(from.addr, &ip6->saddr, 16);
		olen = sizeof(*ip6) + sizeof(*u) + sizeof(*o);
		if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) < olen ||
		    data + sizeof(*eth) + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > end)
			goto malformed;
		inner_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6) - olen;
	} else {
		return OWNER_CONTINUE;
	}

	/* Addressed to us on our port: from here on it is ours to judge. */
	if (!bpf_map_lookup_elem(&baton_peers, &from)) {
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
	return owner_encap(ctx, &in, &f->owner.peer, f->owner.port, c, &f->nexthop, BATON_R_FWD_OWNER, reason);
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

/* A TCP segment that matched no entry. SYNs and segments for addresses
 * that are not VIPs, or that a local socket takes, carry on as before
 * (OWNER_CONTINUE). Any other segment for a VIP belongs to a connection
 * some other LB holds (a hash change moved it here before the directory
 * told us): it goes to this flow's second-chance peer, hop-limited, or is
 * dropped (no_owner) — never to the stack, which would reset it. */
static __always_inline int owner_no_flow(ctx_t *ctx, const struct baton_pkt *p, const struct baton_owner_config *c,
					 __u8 hops, __u32 *reason)
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
	if (!to || !to->family) {
		*reason = BATON_R_DROP_NO_OWNER;
		return CTX_DROP;
	}
	return owner_encap(ctx, &in, to, p->key.dport, c, 0, BATON_R_FWD_SECOND_CHANCE, reason);
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
	return owner_encap(ctx, &in, &f->owner.peer, f->owner.port, c, &f->nexthop, BATON_R_FWD_OWNER, reason);
}

#endif /* BATON_LIB_OWNER_H */
