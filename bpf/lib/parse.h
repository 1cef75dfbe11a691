/* SPDX-License-Identifier: GPL-2.0 */
/* Header parsing into a flow key and offsets. Every access is bounds-checked
 * against data_end; anything we do not rewrite (fragments, IPv6 extension
 * headers, truncated or inconsistent headers) is reported with a typed
 * reason and handed to the stack untouched. */
#ifndef BATON_LIB_PARSE_H
#define BATON_LIB_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <baton/abi.h>
#include "ctx.h"

#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

struct baton_pkt {
	struct baton_flow_key key;
	__u32 l4_off;
	__u32 tcp_hlen;    /* 20..60 */
	__u32 payload_len; /* TCP payload bytes */
	__u32 ip_len;      /* IPv4 total length / IPv6 payload length + 40 */
	__u32 seq;         /* host order */
	__u32 ack;         /* host order */
	__u8 tcp_flags;    /* byte 13 of the TCP header */
};

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* Returns 0 and fills *p, or -1 with *reason set to why the packet is
 * passed untouched (reason 0 is a valid reason, hence the out-parameter). */
static __always_inline int parse_tcp_packet(ctx_t *ctx, struct baton_pkt *p, __u32 *reason)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	__u32 l4_off, ip_len, l3_hlen;
	struct tcphdr *th;

	if ((void *)(eth + 1) > end)
		return *reason = BATON_R_PASS_MALFORMED, -1;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > end)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		if (iph->version != 4 || iph->ihl < 5)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFMASK))
			return *reason = BATON_R_PASS_FRAGMENT, -1;
		if (iph->protocol != IPPROTO_TCP)
			return *reason = BATON_R_PASS_NOT_TCP, -1;
		l3_hlen = iph->ihl * 4;
		ip_len = bpf_ntohs(iph->tot_len);
		if (ip_len < l3_hlen || (void *)iph + ip_len > end)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		p->key.family = BATON_AF_INET;
		p->key.saddr[0] = iph->saddr;
		p->key.daddr[0] = iph->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		if (ip6->version != 6)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		if (ip6->nexthdr != IPPROTO_TCP) {
			/* TCP behind extension headers is rare on the LB path
			 * and never produced by the stacks we splice. */
			switch (ip6->nexthdr) {
			case IPPROTO_HOPOPTS: case IPPROTO_ROUTING: case IPPROTO_FRAGMENT:
			case IPPROTO_DSTOPTS: case IPPROTO_AH: case IPPROTO_ESP:
				return *reason = BATON_R_PASS_IPV6_EXTHDR, -1;
			default:
				return *reason = BATON_R_PASS_NOT_TCP, -1;
			}
		}
		l3_hlen = sizeof(*ip6);
		ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		if ((void *)ip6 + ip_len > end)
			return *reason = BATON_R_PASS_MALFORMED, -1;
		p->key.family = BATON_AF_INET6;
		__builtin_memcpy(p->key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->key.daddr, &ip6->daddr, 16);
	} else {
		return *reason = BATON_R_PASS_NOT_IP, -1;
	}

	l4_off = sizeof(*eth) + l3_hlen; /* no VLAN: the IP header is at 14 */
	th = data + l4_off;
	if ((void *)(th + 1) > end)
		return *reason = BATON_R_PASS_MALFORMED, -1;
	if (th->doff < 5 || l3_hlen + th->doff * 4 > ip_len)
		return *reason = BATON_R_PASS_MALFORMED, -1;

	p->l4_off = l4_off;
	p->tcp_hlen = th->doff * 4;
	p->ip_len = ip_len;
	p->payload_len = ip_len - l3_hlen - p->tcp_hlen;
	p->key.sport = th->source;
	p->key.dport = th->dest;
	p->key.proto = IPPROTO_TCP;
	p->seq = bpf_ntohl(th->seq);
	p->ack = bpf_ntohl(th->ack_seq);
	p->tcp_flags = ((__u8 *)th)[13];
	return 0;
}

#endif /* BATON_LIB_PARSE_H */
