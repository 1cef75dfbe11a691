/* SPDX-License-Identifier: GPL-2.0 */
/* Rewriting one TCP segment for the other leg of a splice: ports, seq, ack,
 * window (rescaled between the legs' window scales), SACK edges and
 * TSval/TSecr, then the IP addresses; both checksums are updated
 * incrementally.
 *
 * Two paths share one rewrite of the fixed header fields
 * (rewrite_fixed_fields), one timestamp rule (xlate_tsecr) and one address
 * rewrite (addr_csum_delta, rewrite_addrs); they differ in where the header
 * is and how its options are found. The fast path (XDP, the option layouts
 * Linux sends) writes the packet in place and sums every change word by
 * word. The general path (any valid layout, XDP and TC) copies the header to
 * the stack, walks the options there and stores it back: options are
 * unaligned and variable, and one bpf_csum_diff over the old and new option
 * bytes covers whatever alignment they have. */
#ifndef BATON_LIB_TCP_REWRITE_H
#define BATON_LIB_TCP_REWRITE_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <baton/abi.h>
#include "ctx.h"
#include "csum.h"
#include "parse.h"

#define TCP_HDR_MAX 60
/* Room past the header so masked 4-byte accesses stay inside the buffer. */
#define TCP_BUF_SIZE 72
#define TCP_BUF_MASK 63

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_SACK 5
#define TCPOPT_TIMESTAMP 8
#define TCPOLEN_TIMESTAMP 10

/* Unaligned big-endian access to the header copy; `off` is masked so the
 * verifier sees every access inside the buffer. */
static __always_inline __u32 buf_get_be32(const __u8 *buf, __u32 off)
{
	off &= TCP_BUF_MASK;
	return ((__u32)buf[off] << 24) | ((__u32)buf[off + 1] << 16) |
	       ((__u32)buf[off + 2] << 8) | (__u32)buf[off + 3];
}

static __always_inline void buf_put_be32(__u8 *buf, __u32 off, __u32 v)
{
	off &= TCP_BUF_MASK;
	buf[off] = v >> 24;
	buf[off + 1] = v >> 16;
	buf[off + 2] = v >> 8;
	buf[off + 3] = v;
}

static __always_inline void buf_add_be32(__u8 *buf, __u32 off, __u32 delta)
{
	buf_put_be32(buf, off, buf_get_be32(buf, off) + delta);
}

/* Window field of the outgoing segment: the same byte count expressed in the
 * receiving leg's scale, saturated at 65535 (a smaller window only slows the
 * sender; a larger one would let it overrun the real receiver). */
static __always_inline __u16 rescale_window(__u16 win, __u8 in, __u8 out)
{
	__u64 bytes = (__u64)win << (in & 15);
	__u64 field = bytes >> (out & 15);

	/* Never scale an open window away to 0 (Linux rounds up for the same
	 * reason): a zero window would stall a sender that could still send. */
	if (!field && bytes)
		field = 1;
	return field > 0xffff ? 0xffff : (__u16)field;
}

/* TSecr as it leaves. TSecr 0 echoes nothing (RFC 7323 3.2: what a segment
 * without ACK carries; Linux takes no RTT sample from it), so it stays 0:
 * moving it would invent an echo, which lands as an RTT sample of arbitrary
 * size. TSval always moves by tsval_delta. */
static __always_inline __u32 xlate_tsecr(__u32 tsecr, const struct baton_xlate *x)
{
	return tsecr ? tsecr + x->tsecr_delta : 0;
}

/* The fixed header fields, for both paths: ports, seq, ack (when the ACK
 * flag says it is one; a RST without ACK keeps its unused field as it came)
 * and window (rescaled, except in a SYN), written into *th (the packet
 * itself, or the general path's copy) with the change of each summed into
 * *acc (csum.h). */
static __always_inline void rewrite_fixed_fields(struct tcphdr *th, const struct baton_pkt *p,
						 const struct baton_xlate *x, __u32 ack_in, __u64 *acc)
{
	__u32 v;

	csum_acc16(acc, th->source, x->sport);
	th->source = x->sport;
	csum_acc16(acc, th->dest, x->dport);
	th->dest = x->dport;
	v = bpf_htonl(p->seq + x->seq_delta);
	csum_acc32(acc, th->seq, v);
	th->seq = v;
	if (p->tcp_flags & TCPF_ACK) {
		v = bpf_htonl(ack_in + x->ack_delta);
		csum_acc32(acc, th->ack_seq, v);
		th->ack_seq = v;
	}
	/* RFC 7323 2.2: the window of a SYN or SYN-ACK is never scaled, on
	 * either leg, so it moves unchanged (a retransmitted SYN-ACK of a leg
	 * would otherwise reach the client multiplied or divided). */
	if (p->tcp_flags & TCPF_SYN)
		return;
	v = bpf_htons(rescale_window(bpf_ntohs(th->window), x->wscale_in, x->wscale_out));
	csum_acc16(acc, th->window, v);
	th->window = v;
}

/* The change the new addresses make to both checksums (the TCP
 * pseudo-header, and the IPv4 header, cover the same address words), from
 * the addresses as parsed. */
static __always_inline __u64 addr_csum_delta(const struct baton_pkt *p, const struct baton_xlate *x)
{
	__u64 acc = 0;

	csum_acc32(&acc, p->key.saddr[0], x->saddr[0]);
	csum_acc32(&acc, p->key.daddr[0], x->daddr[0]);
	if (p->key.family != BATON_AF_INET) {
#pragma unroll
		for (int i = 1; i < 4; i++) {
			csum_acc32(&acc, p->key.saddr[i], x->saddr[i]);
			csum_acc32(&acc, p->key.daddr[i], x->daddr[i]);
		}
	}
	return acc;
}

/* Writes the new addresses into the IP header, and for IPv4 its checksum
 * (delta from addr_csum_delta). Pointers are derived here: a store into the
 * packet before may have invalidated the caller's. Returns 0 or a drop
 * reason. */
static __always_inline int rewrite_addrs(ctx_t *ctx, const struct baton_pkt *p, const struct baton_xlate *x,
					 __u64 delta)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);

	if (p->key.family == BATON_AF_INET) {
		struct iphdr *iph = data + sizeof(struct ethhdr);

		if ((void *)(iph + 1) > end)
			return BATON_R_DROP_REWRITE;
		iph->saddr = x->saddr[0];
		iph->daddr = x->daddr[0];
		iph->check = csum_apply_acc(iph->check, delta);
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > end)
			return BATON_R_DROP_REWRITE;
		__builtin_memcpy(&ip6->saddr, x->saddr, 16);
		__builtin_memcpy(&ip6->daddr, x->daddr, 16);
	}
	return 0;
}

/* Option walk state for bpf_loop. The walk runs as a bpf_loop callback so
 * the verifier checks one iteration instead of every path through 40
 * unrolled ones (an inline loop here exceeds the 1M-instruction budget). */
struct opt_walk {
	__u8 *buf;
	const struct baton_xlate *x;
	__u32 *cursor; /* the offset lives in a map value, see below */
	__u32 hlen;
	int err;
};

/* The walk's cursor is kept in a per-CPU scratch map rather than on the
 * stack: a stack scalar carries its exact range from one iteration to the
 * next, so the verifier never finds two iterations equal and runs out of
 * budget; a map value reads back as an unknown scalar bounded right here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} baton_opt_cursor SEC(".maps");

static long opt_walk_step(__u32 i, void *data)
{
	struct opt_walk *w = data;
	__u8 *buf = w->buf;
	__u32 off = *w->cursor, kind, len;

	if (off >= w->hlen || off >= TCP_HDR_MAX)
		return 1;
	kind = buf[off & TCP_BUF_MASK];
	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		*w->cursor = off + 1;
		return 0;
	}
	if (off + 1 >= w->hlen)
		goto bad;
	len = buf[(off + 1) & TCP_BUF_MASK];
	if (len < 2 || off + len > w->hlen)
		goto bad;
	if (kind == TCPOPT_TIMESTAMP) {
		if (len != TCPOLEN_TIMESTAMP)
			goto bad;
		if (w->x->flags & BATON_XLATE_F_TS) {
			buf_add_be32(buf, off + 2, w->x->tsval_delta);
			buf_put_be32(buf, off + 6, xlate_tsecr(buf_get_be32(buf, off + 6), w->x));
		}
	} else if (kind == TCPOPT_SACK) {
		__u32 n = (len - 2) >> 3;

		if (len < 10 || ((len - 2) & 7) || n > 4)
			goto bad;
		/* SACK edges are in the other direction's sequence space:
		 * they move with this direction's ack delta. */
		for (__u32 b = 0; b < 8; b++) {
			if (b >= n * 2)
				break;
			buf_add_be32(buf, off + 2 + b * 4, w->x->ack_delta);
		}
	}
	*w->cursor = off + len;
	return 0;
bad:
	w->err = -1;
	return 1;
}

/* Shifts SACK edges and timestamps in the header copy. Returns 0, or -1 when
 * the options are malformed (length byte past the header, impossible SACK
 * length, timestamp of the wrong size). */
static __always_inline int rewrite_tcp_options(__u8 *buf, __u32 hlen, const struct baton_xlate *x)
{
	__u32 zero = 0, *cursor = bpf_map_lookup_elem(&baton_opt_cursor, &zero);
	struct opt_walk w = { .buf = buf, .x = x, .hlen = hlen };

	if (!cursor)
		return -1;
	*cursor = sizeof(struct tcphdr);
	w.cursor = cursor;
	bpf_loop(40, opt_walk_step, &w, 0);
	return w.err;
}

/* General path: any valid option layout, XDP and TC. Returns 0 or a
 * baton_reason to drop with. */
static __always_inline int rewrite_segment_general(ctx_t *ctx, const struct baton_pkt *p,
						   const struct baton_xlate *x, __u32 ack_in)
{
	/* Aligned: rewrite_fixed_fields reads and writes the copy's 16- and
	 * 32-bit fields directly, and the verifier wants aligned stack access. */
	__u8 oldh[TCP_BUF_SIZE] __attribute__((aligned(8))) = {};
	__u8 newh[TCP_BUF_SIZE] __attribute__((aligned(8)));
	struct tcphdr *th = (struct tcphdr *)newh;
	__u32 hlen = p->tcp_hlen, olen;
	__u64 delta = addr_csum_delta(p, x), acc = delta;

	if (hlen < sizeof(struct tcphdr) || hlen > TCP_HDR_MAX)
		return BATON_R_DROP_REWRITE;
	if (ctx_load_bytes(ctx, p->l4_off, oldh, hlen))
		return BATON_R_DROP_REWRITE;
	/* The whole buffer, tail included: the option walk's masked reads
	 * may touch bytes past the header, which must be initialised. */
	__builtin_memcpy(newh, oldh, TCP_BUF_SIZE);

	rewrite_fixed_fields(th, p, x, ack_in, &acc);
	olen = hlen - sizeof(struct tcphdr);
	if (olen) {
		if (rewrite_tcp_options(newh, hlen, x))
			return BATON_R_DROP_BAD_OPTIONS;
		acc += bpf_csum_diff((__be32 *)(oldh + sizeof(struct tcphdr)), olen,
				     (__be32 *)(newh + sizeof(struct tcphdr)), olen, 0);
	}
	th->check = csum_apply_acc(th->check, acc);
	if (ctx_store_bytes(ctx, p->l4_off, newh, hlen))
		return BATON_R_DROP_REWRITE;
	return rewrite_addrs(ctx, p, x, delta);
}

#ifndef BATON_CTX_TC
/* ---- Fast path: in place, for the option layouts Linux sends on an
 * established connection (tcp_options_write): none; NOP NOP TS; NOP NOP TS
 * NOP NOP SACK(1-3); NOP NOP SACK(1-4). Every changed field is rewritten
 * where it lies and its change summed for the checksums, with no helper
 * call: this is most of the per-packet cost of the general path below.
 * XDP only: under TC a direct write would leave skb->csum stale. */

#define OPT_NOP_NOP_TS bpf_htonl(0x0101080a)
#define OPT_NOP_NOP_SACK_MASK bpf_htonl(0xffffff00)
#define OPT_NOP_NOP_SACK bpf_htonl(0x01010500)

/* Adds delta to the big-endian 32-bit field at q (any alignment: x86 and
 * arm64 load unaligned packet words, and the verifier allows it there). */
static __always_inline void pkt_add_be32(void *q, __u32 delta, __u64 *acc)
{
	__u32 old = *(__u32 *)q;
	__u32 new = bpf_htonl(bpf_ntohl(old) + delta);

	*(__u32 *)q = new;
	csum_acc32(acc, old, new);
}

/* Returns 0 when done, 1 when the layout is not one of the above (nothing
 * was changed; take the general path), or a drop reason. */
static __always_inline int rewrite_in_place(ctx_t *ctx, const struct baton_pkt *p,
					    const struct baton_xlate *x, __u32 ack_in)
{
	void *data = ctx_data(ctx);
	void *end = ctx_data_end(ctx);
	struct tcphdr *th = data + (p->l4_off & 0x7f); /* at most 14 + 60 */
	__u32 hlen = p->tcp_hlen, sack_at = 0, nsack = 0;
	__u64 acc = 0, delta;
	int ts = 0;
	__u32 v;

	if ((void *)th + 24 > end)
		return 1;
	/* Layout first, before anything is written. */
	if (hlen > 20) {
		v = *(__u32 *)(th + 1);
		if (v == OPT_NOP_NOP_TS) {
			if (hlen < 32)
				return 1;
			ts = 1;
			if (hlen > 32)
				sack_at = 32;
		} else {
			sack_at = 20;
		}
		if (sack_at) {
			__u8 *sk = (void *)th + sack_at;
			__u32 len;

			if ((void *)sk + 4 > end)
				return 1;
			v = *(__u32 *)sk;
			if ((v & OPT_NOP_NOP_SACK_MASK) != OPT_NOP_NOP_SACK)
				return 1;
			len = sk[3];
			if (len != hlen - sack_at - 2 || len < 10 || ((len - 2) & 7))
				return 1;
			nsack = (len - 2) >> 3;
			if (nsack > 4)
				return 1;
		}
	}

	rewrite_fixed_fields(th, p, x, ack_in, &acc);
	if (ts && (x->flags & BATON_XLATE_F_TS)) {
		if ((void *)th + 32 > end)
			return BATON_R_DROP_REWRITE;
		pkt_add_be32((void *)th + 24, x->tsval_delta, &acc);
		/* xlate_tsecr's rule; a TSecr of 0 is not even rewritten. */
		if (*(__u32 *)((void *)th + 28))
			pkt_add_be32((void *)th + 28, x->tsecr_delta, &acc);
	}
#pragma unroll
	for (__u32 b = 0; b < 8; b++) {
		__u8 *e = (void *)th + sack_at + 4 + b * 4;

		if (b >= nsack * 2)
			break;
		if ((void *)e + 4 > end)
			return BATON_R_DROP_REWRITE;
		pkt_add_be32(e, x->ack_delta, &acc);
	}

	delta = addr_csum_delta(p, x);
	/* th is still valid: nothing above changed the packet's size. */
	th->check = csum_apply_acc(th->check, acc + delta);
	return rewrite_addrs(ctx, p, x, delta);
}
#endif /* !BATON_CTX_TC */

/* Rewrites TCP header and IP addresses of *p per *x. Returns 0 or a
 * baton_reason to drop with. */
static __always_inline int rewrite_segment(ctx_t *ctx, const struct baton_pkt *p,
					   const struct baton_xlate *x, __u32 ack_in)
{
#ifndef BATON_CTX_TC
	int fast = rewrite_in_place(ctx, p, x, ack_in);

	if (fast != 1)
		return fast;
#endif
	return rewrite_segment_general(ctx, p, x, ack_in);
}

#endif /* BATON_LIB_TCP_REWRITE_H */
