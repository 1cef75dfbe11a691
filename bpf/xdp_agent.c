// SPDX-License-Identifier: GPL-2.0
/* baton's XDP entry program for a back end's interfaces (the agent's
 * datapath, migrate mode, source document 002). Segments the LB forwarded
 * with a flow id in the ports (lib/flowid.h) are looked up by (client IP,
 * flow id) in baton_fids: a mapping in HOLD drops them (the socket is not
 * restored yet, and the kernel would answer with a RST), one in RESTORE
 * rewrites them back to the tuple the client sent and passes them to the
 * stack. Everything else, malformed frames included, passes untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>
#include "lib/ctx.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/track.h"
#include "lib/flowid.h"
#include "lib/fid_maps.h"

#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

SEC("xdp")
int baton_agent_xdp(struct xdp_md *ctx)
{
	struct baton_pkt p = {};
	struct baton_fid_key k = {};
	struct baton_fid_mapping *m;
	__u32 len = ctx_len(ctx);
	__u32 reason;
	int rst, rc;

	if (parse_tcp_packet(ctx, &p, &reason)) {
		count_reason(reason, BATON_DIR_NONE, len);
		return CTX_PASS;
	}
	__builtin_memcpy(k.saddr, p.key.saddr, sizeof(k.saddr));
	/* sport and dport are adjacent in the parsed key, in wire order. */
	__builtin_memcpy(&k.flow_id, &p.key.sport, sizeof(k.flow_id));
	k.family = p.key.family;
	k.proto = p.key.proto;
	m = bpf_map_lookup_elem(&baton_fids, &k);
	if (!m) {
		count_reason(BATON_R_PASS_NO_FLOW, BATON_DIR_NONE, len);
		return CTX_PASS;
	}
	if (m->state != BATON_FID_RESTORE) {
		count_reason(BATON_R_DROP_FID_HELD, BATON_DIR_TO_BACKEND, len);
		return CTX_DROP;
	}
	rst = fid_rst_kind(&m->track, &p);
	rc = fid_rewrite(ctx, &p, m->vip, m->cport, m->vport);
	if (rc) {
		count_reason(rc, BATON_DIR_TO_BACKEND, len);
		return CTX_DROP;
	}
	track_segment(&m->track, p.seq, p.ack, &p, len, bpf_ktime_get_coarse_ns(), rst);
	count_reason(BATON_R_PASS_FID_RESTORED, BATON_DIR_TO_BACKEND, len);
	return CTX_PASS;
}

/* The agent's control program: a mapping's state changed in place (struct
 * baton_fid_ctl says why). Run by userspace through BPF_PROG_TEST_RUN;
 * never attached. */
SEC("syscall")
int baton_agent_ctl(struct baton_fid_ctl *c)
{
	struct baton_fid_key key;
	struct baton_fid_mapping *m;

	__builtin_memcpy(&key, &c->key, sizeof(key));
	m = bpf_map_lookup_elem(&baton_fids, &key);
	if (!m) {
		c->result = -2; /* ENOENT */
		return 0;
	}
	if (c->op != BATON_FID_CTL_SET_STATE || c->state < BATON_FID_HOLD || c->state > BATON_FID_RESTORE) {
		c->result = -22; /* EINVAL */
		return 0;
	}
	WRITE_ONCE(m->state, c->state);
	c->result = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
