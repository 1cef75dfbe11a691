/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU verdict counters, one slot per (reason, direction); userspace
 * sums the CPUs at scrape time. */
#ifndef BATON_LIB_COUNTERS_H
#define BATON_LIB_COUNTERS_H

#include "maps.h"

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
