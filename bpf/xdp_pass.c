// SPDX-License-Identifier: GPL-2.0
/* Attached to the namespace side of every testbed veth. A veth only delivers
 * XDP_REDIRECTed frames to a peer that runs an XDP program (or has GRO on);
 * without one they are dropped silently. This program passes everything. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
