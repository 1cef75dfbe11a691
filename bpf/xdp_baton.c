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
#include "lib/parse.h"
#include "lib/splice.h"
#include "lib/tcp_rewrite.h"
#include "lib/fwd.h"

static __always_inline int handle_flow(ctx_t *ctx, struct baton_pkt *p, struct baton_flow *f,
				       __u32 *reason)
{
	const struct baton_handoff *h;
	__u32 bytes = ctx_len(ctx);
	__u32 ack = p->ack;
	int k, rc;

	if (f->state != BATON_STATE_FORWARD) {
		if (!p->payload_len && !(p->tcp_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST))) {
			*reason = BATON_R_PASS_BLOCKED_ACK;
			return CTX_PASS;
		}
		*reason = BATON_R_DROP_BLOCKED;
		return CTX_DROP;
	}

	if (f->kind == BATON_KIND_CLIENT) {
		k = select_handoff(f, p);
		if (k < 0 || k >= BATON_MAX_HANDOFFS) {
			*reason = BATON_R_DROP_NO_HANDOFF;
			return CTX_DROP;
		}
		h = &f->handoff[k];
		ack = clamp_ack(h, p->ack);
		track_segment(&f->track, p->seq, p->ack, p, bytes);
	} else {
		h = &f->handoff[0];
		/* Tracked in client sequence space, i.e. after translation. */
		track_segment(&f->track, p->seq + h->x.seq_delta, p->ack + h->x.ack_delta, p, bytes);
	}

	rc = rewrite_segment(ctx, p, &h->x, ack);
	if (rc) {
		*reason = rc;
		return CTX_DROP;
	}
	return forward_frame(ctx, &h->x, p, reason);
}

SEC("xdp")
int baton_xdp(struct xdp_md *ctx)
{
	struct baton_pkt p = {};
	struct baton_flow *f;
	__u32 len = ctx_len(ctx);
	__u32 reason;
	int verdict;

	if (parse_tcp_packet(ctx, &p, &reason)) {
		count_reason(reason, len);
		return CTX_PASS;
	}
	f = bpf_map_lookup_elem(&baton_flows, &p.key);
	if (!f) {
		count_reason(BATON_R_PASS_NO_FLOW, len);
		return CTX_PASS;
	}
	verdict = handle_flow(ctx, &p, f, &reason);
	count_reason(reason, len);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
