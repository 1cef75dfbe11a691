/* SPDX-License-Identifier: GPL-2.0 */
/* The agent's flow-id mapping table (struct baton_fid_key -> struct
 * baton_fid_mapping, bpf/include/baton/abi.h). A plain HASH, never LRU: a
 * live mapping evicted would send a migrated connection's segments to the
 * back end's stack with flow-id ports, which answers them with a RST.
 * Userspace inserts with BPF_NOEXIST and deletes explicitly. */
#ifndef BATON_LIB_FID_MAPS_H
#define BATON_LIB_FID_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>

/* Default capacity; the loader overrides max_entries before load. */
#ifndef BATON_FIDS_MAX
#define BATON_FIDS_MAX 65536
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BATON_FIDS_MAX);
	__type(key, struct baton_fid_key);
	__type(value, struct baton_fid_mapping);
} baton_fids SEC(".maps");

#endif /* BATON_LIB_FID_MAPS_H */
