/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Migrate (source document 002): the agent's flow-id mapping table
 * and its control op. Part of the ABI, split out by mode: included by
 * abi.h only, where it stands (it uses abi.h's types), mirrored in
 * control/datapath/abi-migrate.ts; the layout test proves it with abi.h. */
#ifndef BATON_ABI_MIGRATE_H
#define BATON_ABI_MIGRATE_H

/* ---- migrate (source document 002): the agent's flow-id mapping table ----
 * The LB forwards a migrated connection's client -> VIP segments with the
 * 32-bit flow id in the TCP port fields (bpf/lib/flowid.h); the agent on
 * the back end (bpf/xdp_agent.c) maps (client IP, flow id) back to (client
 * port, VIP, VIP port). Map baton_fids: HASH, inserted with BPF_NOEXIST,
 * deleted explicitly (control/datapath/fid-table.ts). */

/* Key: the client's address and the flow id exactly as the two port fields
 * carry it, i.e. flow_id is the big-endian word at TCP offset 0 (sport =
 * high 16 bits, dport = low 16): the datapath copies it without any shift. */
struct baton_fid_key {
	__be32 saddr[4]; /* client IP; IPv4 in saddr[0], rest zero */
	__be32 flow_id;  /* network order: sport then dport on the wire */
	__u8 family;     /* BATON_AF_INET or BATON_AF_INET6 */
	__u8 proto;      /* IPPROTO_TCP */
	__u8 pad[2];
};

enum baton_fid_state {
	/* The socket is not restored yet: every segment is dropped (counted
	 * flow_id_held), so the back end's kernel never answers one with a
	 * RST; the client retransmits once the state is RESTORE. */
	BATON_FID_HOLD = 1,
	/* Ports and destination rewritten back to the original tuple, then to
	 * the stack (XDP_PASS), where the restored socket takes them. */
	BATON_FID_RESTORE = 2,
};

/* Value: the original tuple's other fields, and the client direction's track
 * (restored segments only; FIN/RST for reclaiming, see bpf/lib/flowid.h). */
struct baton_fid_mapping {
	__u64 conn_id;   /* the control plane's id of the migration */
	__be32 vip[4];   /* original destination; IPv4 in vip[0] */
	__be16 cport;    /* original source port (the client's) */
	__be16 vport;    /* original destination port (the VIP's) */
	__u8 state;      /* enum baton_fid_state */
	__u8 pad[3];
	struct baton_track track;
};

/* Argument of the agent's control program (bpf/xdp_agent.c, SEC("syscall")):
 * a state change in place, so the track stays exact (struct baton_ctl says
 * why). */
struct baton_fid_ctl {
	struct baton_fid_key key;
	__u32 op;      /* BATON_FID_CTL_* */
	__u32 state;   /* new enum baton_fid_state */
	__s32 result;  /* out: 0, or -ENOENT / -EINVAL */
	__u32 pad;
};

#define BATON_FID_CTL_SET_STATE 1

/* ---- end migrate ---- */

#endif
