/* SPDX-License-Identifier: GPL-2.0 */
/* Map definitions. Live legs must never be evicted silently, so the
 * connection table is a plain HASH (not LRU): userspace inserts with
 * BPF_NOEXIST, deletes explicitly and answers a full table with an error. */
#ifndef BATON_LIB_MAPS_H
#define BATON_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>

/* Default capacity; the loader overrides max_entries before load. */
#ifndef BATON_FLOWS_MAX
#define BATON_FLOWS_MAX 65536
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BATON_FLOWS_MAX);
	__type(key, struct baton_flow_key);
	__type(value, struct baton_flow);
} baton_flows SEC(".maps");

/* Leg lists of CLIENT entries handed off again (struct baton_leg_list,
 * keyed by conn_id). Not preallocated: it costs memory only for those
 * connections. The loader sizes it to half the connection table, the most
 * CLIENT entries the table can hold. */
#ifndef BATON_LEG_LISTS_MAX
#define BATON_LEG_LISTS_MAX (BATON_FLOWS_MAX / 2)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BATON_LEG_LISTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct baton_leg_list);
} baton_legs SEC(".maps");

/* The verdict counters (baton_counters) are in counters.h: the agent's
 * program (bpf/xdp_agent.c) counts too but has no connection table. */

#endif /* BATON_LIB_MAPS_H */
