/* SPDX-License-Identifier: GPL-2.0 */
/* One context layer so the same rewrite code serves XDP and TC (Cilium's
 * ctx/ model). Entry programs define BATON_CTX_TC before including this to
 * build for TC; the default is XDP. Everything below lib/ takes a `ctx_t *`
 * and never touches xdp_md or __sk_buff directly. */
#ifndef BATON_LIB_CTX_H
#define BATON_LIB_CTX_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#ifdef BATON_CTX_TC
typedef struct __sk_buff ctx_t;
#define CTX_PASS TC_ACT_OK
#define CTX_DROP TC_ACT_SHOT
#define CTX_REDIRECT TC_ACT_REDIRECT
#define CTX_TX TC_ACT_REDIRECT /* TC has no XDP_TX: redirect to ingress dev */

static __always_inline void *ctx_data(const ctx_t *ctx) { return (void *)(long)ctx->data; }
static __always_inline void *ctx_data_end(const ctx_t *ctx) { return (void *)(long)ctx->data_end; }
static __always_inline __u32 ctx_len(const ctx_t *ctx) { return ctx->len; }
static __always_inline __u32 ctx_ingress_ifindex(const ctx_t *ctx) { return ctx->ingress_ifindex; }
static __always_inline int ctx_load_bytes(ctx_t *ctx, __u32 off, void *to, __u32 len)
{
	return bpf_skb_load_bytes(ctx, off, to, len);
}
/* The caller writes final checksums itself; BPF_F_RECOMPUTE_CSUM keeps
 * skb->csum right for CHECKSUM_COMPLETE packets. */
static __always_inline int ctx_store_bytes(ctx_t *ctx, __u32 off, const void *from, __u32 len)
{
	return bpf_skb_store_bytes(ctx, off, from, len, BPF_F_RECOMPUTE_CSUM);
}
/* Cuts `by` bytes off the end of the packet. */
static __always_inline int ctx_shrink(ctx_t *ctx, __u32 by)
{
	return bpf_skb_change_tail(ctx, ctx->len - by, 0);
}
#else
typedef struct xdp_md ctx_t;
#define CTX_PASS XDP_PASS
#define CTX_DROP XDP_DROP
#define CTX_REDIRECT XDP_REDIRECT
#define CTX_TX XDP_TX

static __always_inline void *ctx_data(const ctx_t *ctx) { return (void *)(long)ctx->data; }
static __always_inline void *ctx_data_end(const ctx_t *ctx) { return (void *)(long)ctx->data_end; }
static __always_inline __u32 ctx_len(const ctx_t *ctx) { return ctx->data_end - ctx->data; }
static __always_inline __u32 ctx_ingress_ifindex(const ctx_t *ctx) { return ctx->ingress_ifindex; }
static __always_inline int ctx_load_bytes(ctx_t *ctx, __u32 off, void *to, __u32 len)
{
	return bpf_xdp_load_bytes(ctx, off, to, len);
}
static __always_inline int ctx_store_bytes(ctx_t *ctx, __u32 off, const void *from, __u32 len)
{
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
}
static __always_inline int ctx_shrink(ctx_t *ctx, __u32 by)
{
	return bpf_xdp_adjust_tail(ctx, -(int)by);
}
#endif

#endif /* BATON_LIB_CTX_H */
