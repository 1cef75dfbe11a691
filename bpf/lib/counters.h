/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU verdict counters, one slot per (reason, direction); userspace
 * sums the CPUs at scrape time. The map lives here, not in maps.h, so an
 * entry program without the connection table (bpf/xdp_agent.c) counts with
 * the same layout and the same reader (control/datapath/datapath.ts). */
#ifndef BATON_LIB_COUNTERS_H
#define BATON_LIB_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BATON_R_MAX * BATON_DIR_MAX);
	__type(key, __u32);
	__type(value, struct baton_counter);
} baton_counters SEC(".maps");

static __always_inline void count_reason(__u32 reason, __u32 dir, __u32 bytes)
{
	__u32 slot = reason * BATON_DIR_MAX + dir;
	struct baton_counter *c = bpf_map_lookup_elem(&baton_counters, &slot);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif /* BATON_LIB_COUNTERS_H */
