// SPDX-License-Identifier: GPL-2.0
/* TCP socket probe: reports, for one socket, the state no socket option
 * exposes (above all rx_opt.ts_recent, the peer's latest TSval, which a
 * splice needs to translate timestamps). Userspace (control/tcp/ts-probe.ts)
 * runs it with BPF_PROG_TEST_RUN on a query frame: an Ethernet header
 * followed by struct baton_sk_query; the program looks the socket up by its
 * 4-tuple (bpf_skc_lookup_tcp, one hash lookup) and writes the answer into
 * the frame, which the test run hands back. Nothing is attached, no map is
 * used. An iterator over all TCP sockets would walk every bucket of the
 * established hash (hundreds of thousands on a large host), milliseconds per
 * splice; this costs microseconds.
 *
 * The lookup happens in the network namespace of the thread that runs the
 * test (the frame's device is that namespace's loopback).
 *
 * CO-RE: built against build/vmlinux.h (generated from the running kernel's
 * BTF by the Makefile); field offsets are relocated at load time. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <baton/abi.h>

#define BATON_ETH_HLEN 14
#ifndef BPF_F_CURRENT_NETNS
#define BPF_F_CURRENT_NETNS (-1L)
#endif

static __always_inline void read_tcp_sock(struct tcp_sock *tp, struct baton_tcp_probe *v)
{
	__u32 flags = BATON_PROBE_F_FOUND;

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
}

SEC("tc")
int baton_tcp_probe(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct baton_sk_query *q = data + BATON_ETH_HLEN;
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u32 size;

	if ((void *)(q + 1) > end)
		return 0;
	/* The query names the socket from its own side (local -> remote); a
	 * lookup names it as an arriving segment would (remote -> local). An
	 * AF_INET6 socket with an IPv4-mapped peer is found by its IPv4 tuple. */
	if (q->key.family == BATON_AF_INET) {
		t.ipv4.saddr = q->key.daddr[0];
		t.ipv4.daddr = q->key.saddr[0];
		t.ipv4.sport = q->key.dport;
		t.ipv4.dport = q->key.sport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, q->key.daddr, 16);
		__builtin_memcpy(t.ipv6.daddr, q->key.saddr, 16);
		t.ipv6.sport = q->key.dport;
		t.ipv6.dport = q->key.sport;
		size = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	/* Full TCP sockets only: not request socks, not TIME_WAIT minisocks. */
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		read_tcp_sock(tp, &q->result);
	bpf_sk_release(sk);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
