/* SPDX-License-Identifier: GPL-2.0 */
/* Owner forwarding's maps, configuration and flow hash (the overview is
 * in owner.h). */
#ifndef BATON_LIB_OWNER_MAPS_H
#define BATON_LIB_OWNER_MAPS_H

#ifdef BATON_CTX_TC
#error "the owner headers are XDP only: they move the packet head with bpf_xdp_adjust_head"
#endif

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <baton/abi.h>
#include "ctx.h"
#include "csum.h"
#include "fwd.h"
#include "parse.h"

/* What the owner functions return when the packet is not theirs to decide:
 * the caller carries on as without owner forwarding. Verdicts are >= 0. */
#define OWNER_CONTINUE (-1)

#ifndef READ_ONCE
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#endif

#ifndef TCP_LISTEN
#define TCP_LISTEN 10
#endif

/* ------------------------------------------------------------------ maps */

/* Filled by the control plane: peer LBs whose owner headers are accepted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BATON_PEERS_MAX);
	__type(key, struct baton_peer_addr);
	__type(value, struct baton_peer);
} baton_peers SEC(".maps");

/* Packets (and their bytes as sent) that left in the owner header, per
 * peer they went to: toward an owner and on a second chance alike, in the
 * slot of the peer's index (baton_peers; slot 0 unused). An array, not a
 * hash keyed by address: the hot path (an OWNER entry carries its owner's
 * slot) pays one per-CPU array lookup, not a hash of 20 bytes. The
 * control plane zeroes a slot when it gives it to a peer and reads only
 * live peers' slots, so the metrics' labels are bounded by the peers. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BATON_PEERS_MAX + 1);
	__type(key, __u32);
	__type(value, struct baton_counter);
} baton_peer_stats SEC(".maps");

/* The addresses the LBs serve. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct baton_vip_key);
	__type(value, struct baton_vip);
} baton_vips SEC(".maps");

/* Second chance (GLB/Beamer): per flow-hash bucket, the peer that owned the
 * bucket before the last change, to which an unknown mid-connection
 * segment is sent instead of being answered with a RST. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BATON_SECOND_CHANCE_BUCKETS);
	__type(key, __u32);
	__type(value, struct baton_peer_addr);
} baton_second_chance SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct baton_owner_config);
} baton_owner_config SEC(".maps");

/* The configuration, or NULL when owner forwarding is off (udp_port 0). */
static __always_inline const struct baton_owner_config *owner_config(void)
{
	__u32 k = 0;
	const struct baton_owner_config *c = bpf_map_lookup_elem(&baton_owner_config, &k);

	return c && c->udp_port ? c : 0;
}

/* One packet of `bytes` sent to peer `to` in the owner header, counted in
 * `slot` (an OWNER entry's), or in the slot baton_peers gives `to` when 0
 * (a second chance, an entry written without one). */
static __always_inline void owner_count_peer(const struct baton_peer_addr *to, __u32 slot, __u32 bytes)
{
	struct baton_counter *c;

	if (!slot) {
		struct baton_peer_addr k = *to;
		const struct baton_peer *pe = bpf_map_lookup_elem(&baton_peers, &k);

		if (!pe)
			return;
		slot = pe->index;
	}
	c = bpf_map_lookup_elem(&baton_peer_stats, &slot);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* ------------------------------------------------------------------ hash */

static __always_inline __u32 owner_mix(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	x *= 0x846ca68b;
	x ^= x >> 16;
	return x;
}

/* The flow hash of a key: outer source port and second-chance bucket.
 * Words are taken as loaded (little-endian on the LB), mirrored by
 * control/datapath/owner.ts (ownerFlowHash) for the control plane. */
static __always_inline __u32 owner_flow_hash(const struct baton_flow_key *k)
{
	__u32 h = 0x9e3779b9 ^ k->proto;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h = owner_mix(h ^ k->saddr[i]);
		h = owner_mix(h ^ k->daddr[i]);
	}
	return owner_mix(h ^ ((__u32)k->sport | ((__u32)k->dport << 16)));
}


#endif /* BATON_LIB_OWNER_MAPS_H */
