/* SPDX-License-Identifier: GPL-2.0 */
/* bpf_ktime_get_coarse_ns() at most once per jiffy per CPU. The coarse
 * clock only moves at a tick, so between two ticks it returns the same value;
 * the helper call costs ~20 ns per packet here (a call and a return, which
 * the SRSO mitigation makes a mispredict), while bpf_jiffies64() is inlined
 * by the verifier as one load. The value is the coarse clock's as read in
 * the current jiffy: the same as calling the helper, except that a read in
 * the instant between the tick's jiffies update and its timekeeping update
 * keeps the previous tick's value for that jiffy (at most one tick behind,
 * never ahead, never backwards on a CPU). No map here needs userspace. */
#ifndef BATON_LIB_CLOCK_H
#define BATON_LIB_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct baton_clock_cache {
	__u64 jiffies;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct baton_clock_cache);
} baton_clock SEC(".maps");

static __always_inline __u64 coarse_now_ns(void)
{
	__u32 zero = 0;
	struct baton_clock_cache *c = bpf_map_lookup_elem(&baton_clock, &zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j || !c->ns) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->ns;
}

#endif /* BATON_LIB_CLOCK_H */
