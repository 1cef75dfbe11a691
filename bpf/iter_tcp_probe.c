// SPDX-License-Identifier: GPL-2.0
/* TCP socket probe: an iterator over the TCP sockets of one network namespace
 * that reports, for the sockets userspace asks about, the state no socket
 * option exposes (above all rx_opt.ts_recent, the peer's latest TSval, which
 * a splice needs to translate timestamps). Userspace (control/tcp/ts-probe.ts)
 * puts the 4-tuples in baton_tcp_query, runs the iterator once by reading an
 * iterator fd, and reads the values back: one pass for any number of sockets.
 *
 * CO-RE: built against build/vmlinux.h (generated from the running kernel's
 * BTF by the Makefile); field offsets are relocated at load time.
 *
 * The iterator walks the sockets of the network namespace of the thread that
 * creates the iterator fd (bpf_iter_create), not the one that loaded this
 * program. The kernel holds each socket's lock while this program runs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <baton/abi.h>

#define BATON_AF_INET_SYS 2   /* AF_INET */
#define BATON_AF_INET6_SYS 10 /* AF_INET6 */
#define BATON_IPPROTO_TCP 6

/* Default capacity; the loader may override max_entries before load. */
#ifndef BATON_TCP_QUERY_MAX
#define BATON_TCP_QUERY_MAX 4096
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BATON_TCP_QUERY_MAX);
	__type(key, struct baton_flow_key);
	__type(value, struct baton_tcp_probe);
} baton_tcp_query SEC(".maps");

/* ::ffff:a.b.c.d, the IPv4-mapped form an AF_INET6 socket uses for IPv4 peers. */
static __always_inline bool v4_mapped(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff);
}

/* The socket's tuple as baton_tcp_query keys it: local -> remote. */
static __always_inline bool socket_key(const struct sock_common *skc, struct baton_flow_key *k)
{
	__u16 family = skc->skc_family;

	k->sport = bpf_htons(skc->skc_num);
	k->dport = skc->skc_dport;
	k->proto = BATON_IPPROTO_TCP;
	if (family == BATON_AF_INET_SYS ||
	    (family == BATON_AF_INET6_SYS && v4_mapped(&skc->skc_v6_daddr))) {
		/* For mapped sockets the kernel keeps the IPv4 fields in sync. */
		k->family = BATON_AF_INET;
		k->saddr[0] = skc->skc_rcv_saddr;
		k->daddr[0] = skc->skc_daddr;
		return true;
	}
	if (family != BATON_AF_INET6_SYS)
		return false;
	k->family = BATON_AF_INET6;
	__builtin_memcpy(k->saddr, &skc->skc_v6_rcv_saddr, 16);
	__builtin_memcpy(k->daddr, &skc->skc_v6_daddr, 16);
	return true;
}

SEC("iter/tcp")
int baton_tcp_probe(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct baton_flow_key k = {};
	struct baton_tcp_probe *v;
	struct tcp_sock *tp;
	__u32 flags = BATON_PROBE_F_FOUND;

	if (!skc)
		return 0; /* end of iteration */
	/* Full TCP sockets only: not request socks, not TIME_WAIT minisocks. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	if (!socket_key(skc, &k))
		return 0;
	v = bpf_map_lookup_elem(&baton_tcp_query, &k);
	if (!v)
		return 0;

	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok))
		flags |= BATON_PROBE_F_TSTAMP_OK;
	if (bpf_core_field_exists(tp->tcp_usec_ts) && BPF_CORE_READ_BITFIELD(tp, tcp_usec_ts))
		flags |= BATON_PROBE_F_USEC_TS; /* Linux 6.7+ */
	if (BPF_CORE_READ_BITFIELD(tp, repair))
		flags |= BATON_PROBE_F_REPAIR;

	v->ts_recent = tp->rx_opt.ts_recent;
	v->ts_recent_stamp = (__u32)tp->rx_opt.ts_recent_stamp;
	v->rcv_tsval = tp->rx_opt.rcv_tsval;
	v->rcv_tsecr = tp->rx_opt.rcv_tsecr;
	v->tsoffset = tp->tsoffset;
	v->snd_una = tp->snd_una;
	v->snd_nxt = tp->snd_nxt;
	v->rcv_nxt = tp->rcv_nxt;
	v->write_seq = tp->write_seq;
	v->flags = flags;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
