/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Owner forwarding (source document 004): peers, VIPs, OWNER values,
 * the owner header and its reasons. Part of the ABI, split out by mode: included by
 * abi.h only, where it stands (it uses abi.h's types), mirrored in
 * control/datapath/abi-owner.ts; the layout test proves it with abi.h. */
#ifndef BATON_ABI_OWNER_H
#define BATON_ABI_OWNER_H

/* ==== BEGIN owner forwarding (source document 004) ======================
 * Several LBs behind ECMP: a packet that lands on an LB which does not hold
 * its connection is forwarded to the owner inside one outer IP + UDP header
 * whose payload starts with struct baton_owner_hdr, followed by the
 * original IP packet (bpf/lib/owner.h). */

/* A peer LB's address (IPv4 in addr[0], the rest zero, so keys compare
 * bytewise): key of baton_peers, value of baton_second_chance. family 0:
 * no peer (an empty second-chance bucket). */
struct baton_peer_addr {
	__be32 addr[4];
	__u8 family; /* BATON_AF_INET or BATON_AF_INET6; 0: none */
	__u8 pad[3];
};

/* Value of baton_peers: a peer LB from which the owner header is accepted. */
struct baton_peer {
	__u32 index; /* the control plane's number for it: 1..BATON_PEERS_MAX, its slot of baton_peer_stats */
	__u32 flags; /* none defined yet: 0 */
};

/* The `owner` of an OWNER entry (key: client -> VIP, as a CLIENT entry's):
 * the LB that holds the connection and its application's port there. */
struct baton_owner {
	struct baton_peer_addr peer;
	__be16 port; /* the owner's application port (the VIP port for a splice) */
	__u16 slot;  /* the owner's index in baton_peers (its baton_peer_stats slot); 0: look it up */
};

/* Key of baton_vips: an address the LBs serve (VIP). A non-SYN TCP
 * segment for one that matches no entry and no local socket is never
 * handed to the stack (which would answer it with a RST). */
struct baton_vip_key {
	__be32 addr[4];
	__u8 family;
	__u8 pad[3];
};

struct baton_vip {
	__u32 flags; /* none defined yet: 0 */
};

/* baton_owner_config[0]. udp_port 0 (the zeroed default) turns owner
 * forwarding off: the datapath then behaves exactly as without it. */
struct baton_owner_config {
	__be32 local6[4]; /* outer source of IPv6 owner headers; :: = none */
	__be32 local4;    /* outer source of IPv4 owner headers; 0 = none */
	__be16 udp_port;  /* outer UDP destination port (network order) */
	__u8 max_hops;    /* a header with more hops than this is dropped */
	__u8 flags;       /* none defined yet: 0 */
};

/* The owner header, on the wire after the outer UDP header (network
 * order), directly followed by the original IP packet. */
struct baton_owner_hdr {
	__u8 version;       /* BATON_OWNER_HDR_VERSION */
	__u8 hops;          /* forwards so far, this one included (1..max_hops) */
	__u8 family;        /* of the inner packet and client_addr */
	__u8 proto;         /* inner L4: IPPROTO_TCP or IPPROTO_UDP */
	__be16 client_port;
	__be16 owner_port;
	__be32 client_addr[4];
	__be32 owner_addr[4]; /* in the outer header's family (an IPv6 flow may go to an IPv4 owner) */
};

#define BATON_OWNER_HDR_VERSION 1
#define BATON_OWNER_PORT_DEFAULT 6181  /* outer UDP port unless configured */
#define BATON_OWNER_MAX_HOPS_DEFAULT 3 /* owner, second chance, one stale owner */
#define BATON_SECOND_CHANCE_BUCKETS 256 /* entries of baton_second_chance (power of 2) */
#define BATON_PEERS_MAX 256 /* entries of baton_peers; peer indexes 1..this (baton_peer_stats slots) */
/* Outer UDP source ports: ephemeral range | 14 bits of the flow hash. */
#define BATON_OWNER_SPORT_BASE 0xc000
#define BATON_OWNER_SPORT_MASK 0x3fff

/* Verdict reasons of owner forwarding (appended to BATON_REASONS). */
#define BATON_OWNER_REASONS(X)                                                  \
	X(BATON_R_FWD_OWNER,             "forwarded", "to_owner")               \
	X(BATON_R_FWD_SECOND_CHANCE,     "forwarded", "second_chance")          \
	X(BATON_R_DROP_OWNER_NOT_PEER,   "dropped",   "owner_header_not_peer")  \
	X(BATON_R_DROP_OWNER_HOPS,       "dropped",   "owner_hop_limit")        \
	X(BATON_R_DROP_OWNER_MALFORMED,  "dropped",   "owner_header_malformed") \
	X(BATON_R_DROP_NO_OWNER,         "dropped",   "no_owner")               \
	X(BATON_R_DROP_OWNER_TOO_BIG,    "dropped",   "owner_too_big")          \
	X(BATON_R_DROP_OWNER_NO_ROUTE,   "dropped",   "owner_no_route")         \
	X(BATON_R_DROP_OWNER_ENCAP,      "dropped",   "owner_encap_failed")

/* ==== END owner forwarding ============================================== */

#endif
