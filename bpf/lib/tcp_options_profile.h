/* SPDX-License-Identifier: GPL-2.0 */
/* Giving a back-end leg the client's TCP option profile (issue 13): on the
 * LB's egress, the SYN of a socket marked BATON_PROFILE_MARK_TAG | flags
 * (abi.h) has the options the flags name replaced by NOPs, and its MSS
 * option lowered to the mark's MSS, in place. The
 * segment keeps its length and layout, so nothing else moves; the TCP
 * checksum takes the difference of the option bytes (bpf_l4_csum_replace by
 * diff, which for a CHECKSUM_PARTIAL skb, every locally sent TCP segment,
 * correctly leaves the field to the later checksum over the new bytes).
 *
 * Why this is enough: a Linux endpoint uses timestamps, SACK and window
 * scaling on a connection only when both SYNs carried the option (RFC 7323
 * 1.3 / 2.2, RFC 2018); the back end never sees it and does not answer with
 * it, and the LB's kernel, parsing the SYN-ACK, leaves tstamp_ok, sack_ok
 * and wscale_ok off. Tests against real stacks: test/e2e/profiles.test.ts.
 *
 * TC, not XDP: a locally generated SYN never passes XDP on the way out. */
#ifndef BATON_LIB_TCP_OPTIONS_PROFILE_H
#define BATON_LIB_TCP_OPTIONS_PROFILE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>

#define PROFILE_TCPOPT_MSS 2
#define PROFILE_TCPOPT_WSCALE 3
#define PROFILE_TCPOPT_SACK_PERM 4
#define PROFILE_TCPOPT_TIMESTAMP 8
#define PROFILE_HDR_MAX 60
#define PROFILE_BUF_MASK 63

/* What the option walk found or did, for the fixtures and counters. */
enum profile_result {
	PROFILE_UNTOUCHED = 0, /* not a marked SYN, or nothing to strip */
	PROFILE_STRIPPED = 1,  /* at least one option replaced by NOPs, or the MSS lowered */
	PROFILE_BAD = 2,       /* malformed options or headers: left as they came */
};

/* The option kind a flag strips, and its only valid length. */
static __always_inline int profile_strips(__u32 flags, __u32 kind, __u32 *len)
{
	if (kind == PROFILE_TCPOPT_TIMESTAMP && (flags & BATON_PROFILE_F_NO_TS)) {
		*len = 10;
		return 1;
	}
	if (kind == PROFILE_TCPOPT_SACK_PERM && (flags & BATON_PROFILE_F_NO_SACK)) {
		*len = 2;
		return 1;
	}
	if (kind == PROFILE_TCPOPT_WSCALE && (flags & BATON_PROFILE_F_NO_WSCALE)) {
		*len = 3;
		return 1;
	}
	return 0;
}

struct profile_walk {
	__u8 *buf;
	__u32 hlen;
	__u32 flags;
	__u32 mss; /* lower the MSS option to this; 0: leave it */
	__u32 off;
	int stripped;
	int err;
};

/* One option per call (bpf_loop callback: the verifier checks one
 * iteration; the options of a SYN are at most 40 bytes, so 40 calls). */
static long profile_walk_step(__u32 i, void *data)
{
	struct profile_walk *w = data;
	__u32 off = w->off, kind, len, want;

	if (off >= w->hlen || off >= PROFILE_HDR_MAX)
		return 1;
	kind = w->buf[off & PROFILE_BUF_MASK];
	if (kind == 0) /* EOL */
		return 1;
	if (kind == 1) { /* NOP */
		w->off = off + 1;
		return 0;
	}
	if (off + 1 >= w->hlen)
		goto bad;
	len = w->buf[(off + 1) & PROFILE_BUF_MASK];
	if (len < 2 || off + len > w->hlen)
		goto bad;
	if (kind == PROFILE_TCPOPT_MSS && w->mss) {
		__u32 v;

		if (len != 4)
			goto bad;
		v = ((__u32)w->buf[(off + 2) & PROFILE_BUF_MASK] << 8) | w->buf[(off + 3) & PROFILE_BUF_MASK];
		if (v > w->mss) {
			w->buf[(off + 2) & PROFILE_BUF_MASK] = w->mss >> 8;
			w->buf[(off + 3) & PROFILE_BUF_MASK] = w->mss & 0xff;
			w->stripped = 1;
		}
	} else if (profile_strips(w->flags, kind, &want)) {
		if (len != want)
			goto bad;
		/* len is 2, 3 or 10: a fixed unrolled store per byte. */
#pragma unroll
		for (__u32 b = 0; b < 10; b++) {
			if (b < len)
				w->buf[(off + b) & PROFILE_BUF_MASK] = 1;
		}
		w->stripped = 1;
	}
	w->off = off + len;
	return 0;
bad:
	w->err = 1;
	return 1;
}

/* Strips the options `flags` names from the SYN (no ACK) at l4_off with a
 * header of hlen bytes. Returns a profile_result. */
static __always_inline int profile_strip_syn(struct __sk_buff *skb, __u32 l4_off, __u32 hlen, __u32 flags,
					     __u32 mss, __u32 *mss_sent)
{
	__u8 oldh[PROFILE_HDR_MAX + 4] __attribute__((aligned(8))) = {};
	__u8 newh[PROFILE_HDR_MAX + 4] __attribute__((aligned(8)));
	struct profile_walk w = { .buf = newh, .flags = flags, .mss = mss, .off = sizeof(struct tcphdr) };
	__u32 olen;
	__s64 diff;

	if (hlen <= sizeof(struct tcphdr) || hlen > PROFILE_HDR_MAX)
		return PROFILE_UNTOUCHED;
	if (bpf_skb_load_bytes(skb, l4_off, oldh, hlen))
		return PROFILE_BAD;
	__builtin_memcpy(newh, oldh, sizeof(newh));
	w.hlen = hlen;
	bpf_loop(40, profile_walk_step, &w, 0);
	if (w.err)
		return PROFILE_BAD;
	/* The MSS the SYN leaves with, for profile_record: where Linux puts
	 * it, first (tcp_options_write); a SYN with it elsewhere records none,
	 * and capture then trusts only what the socket itself says. */
	if (newh[20] == PROFILE_TCPOPT_MSS && newh[21] == 4)
		*mss_sent = ((__u32)newh[22] << 8) | newh[23];
	if (!w.stripped)
		return PROFILE_UNTOUCHED;
	olen = hlen - sizeof(struct tcphdr);
	diff = bpf_csum_diff((__be32 *)(oldh + sizeof(struct tcphdr)), olen,
			     (__be32 *)(newh + sizeof(struct tcphdr)), olen, 0);
	if (diff < 0)
		return PROFILE_BAD;
	if (bpf_skb_store_bytes(skb, l4_off + sizeof(struct tcphdr), newh + sizeof(struct tcphdr), olen, 0))
		return PROFILE_BAD;
	if (bpf_l4_csum_replace(skb, l4_off + offsetof(struct tcphdr, check), 0, (__u32)diff, 0))
		return PROFILE_BAD;
	return PROFILE_STRIPPED;
}

/* What the SYN of a marked socket carried, per socket, for capture
 * (control/tcp/capture.ts looks it up by the socket's fd): the MSS option
 * value as it left. Proof that this program saw the SYN; without it the
 * mark's MSS is not trusted. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} baton_profile_syn SEC(".maps");

static __always_inline void profile_record(struct __sk_buff *skb, __u32 mss_sent)
{
	struct bpf_sock *sk = skb->sk;
	__u32 *v;

	if (!sk || !mss_sent)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return;
	v = bpf_sk_storage_get(&baton_profile_syn, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (v)
		*v = mss_sent;
}

/* The egress decision: a SYN without ACK, over IPv4 (any IHL, not a
 * fragment) or IPv6 (TCP right after the fixed header: what Linux sends),
 * from a socket whose mark carries baton's tag. Everything else leaves as it
 * came. Returns a profile_result. */
static __always_inline int profile_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__u32 l4_off, flags, mss, mss_sent = 0;
	int rc;

	if ((skb->mark & BATON_PROFILE_MARK_MASK) != BATON_PROFILE_MARK_TAG)
		return PROFILE_UNTOUCHED;
	flags = skb->mark & BATON_PROFILE_F_ALL;
	mss = (skb->mark >> BATON_PROFILE_MSS_SHIFT) & BATON_PROFILE_MSS_MAX;
	if (!flags && !mss)
		return PROFILE_UNTOUCHED;
	if ((void *)(eth + 1) > end)
		return PROFILE_UNTOUCHED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > end || iph->protocol != IPPROTO_TCP || iph->ihl < 5)
			return PROFILE_UNTOUCHED;
		if (iph->frag_off & bpf_htons(0x3fff))
			return PROFILE_UNTOUCHED;
		l4_off = sizeof(*eth) + iph->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return PROFILE_UNTOUCHED;
		l4_off = sizeof(*eth) + sizeof(*ip6);
	} else {
		return PROFILE_UNTOUCHED;
	}
	th = data + (l4_off & 0x7f);
	if ((void *)(th + 1) > end)
		return PROFILE_UNTOUCHED;
	if (!th->syn || th->ack)
		return PROFILE_UNTOUCHED;
	rc = profile_strip_syn(skb, l4_off, th->doff * 4, flags, mss, &mss_sent);
	if (rc != PROFILE_BAD)
		profile_record(skb, mss_sent);
	return rc;
}

#endif /* BATON_LIB_TCP_OPTIONS_PROFILE_H */
