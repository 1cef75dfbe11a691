// SPDX-License-Identifier: GPL-2.0
/* TCP socket probe: reports, for each socket asked, the state no socket option
 * exposes (above all rx_opt.ts_recent, the peer's latest TSval, which a
 * splice needs to translate timestamps). Userspace (control/tcp/socket-probe.ts)
 * runs it with BPF_PROG_TEST_RUN on a query frame: an Ethernet header
 * followed by up to BATON_PROBE_BATCH struct baton_sk_query; the program
 * looks each socket up by its 4-tuple (bpf_skc_lookup_tcp, one hash lookup)
 * and writes the answer into the frame, which the test run hands back. The
 * answer holds everything a capture needs (struct baton_tcp_probe), so a
 * splice reads both sockets with one system call. Nothing is attached, no map is
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

/* The socket's TSval clock now, as TCP_TIMESTAMP reports it: tcp_clock_ns()
 * is the monotonic clock, in ms (or us with tcp_usec_ts) plus tsoffset, the
 * low bit carrying the usec_ts flag. */
static __always_inline __u32 ts_clock_now(__u32 tsoffset, bool usec)
{
	__u64 ns = bpf_ktime_get_ns();
	__u32 ts = (__u32)(usec ? ns / 1000 : ns / 1000000) + tsoffset;

	return usec ? ts | 1 : ts & ~1U;
}

static __always_inline void read_tcp_sock(struct tcp_sock *tp, struct baton_tcp_probe *v)
{
	__u32 flags = BATON_PROBE_F_FOUND;
	bool usec = false;

	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok))
		flags |= BATON_PROBE_F_TSTAMP_OK;
	if (bpf_core_field_exists(tp->tcp_usec_ts) && BPF_CORE_READ_BITFIELD(tp, tcp_usec_ts)) {
		flags |= BATON_PROBE_F_USEC_TS; /* Linux 6.7+ */
		usec = true;
	}
	if (BPF_CORE_READ_BITFIELD(tp, repair))
		flags |= BATON_PROBE_F_REPAIR;
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.sack_ok))
		flags |= BATON_PROBE_F_SACK_OK;
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.wscale_ok)) {
		flags |= BATON_PROBE_F_WSCALE_OK;
		v->snd_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale);
		v->rcv_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.rcv_wscale);
	}

	v->ts_recent = tp->rx_opt.ts_recent;
	v->ts_recent_stamp = (__u32)tp->rx_opt.ts_recent_stamp;
	v->rcv_tsval = tp->rx_opt.rcv_tsval;
	v->rcv_tsecr = tp->rx_opt.rcv_tsecr;
	v->tsoffset = tp->tsoffset;
	v->snd_una = tp->snd_una;
	v->snd_nxt = tp->snd_nxt;
	v->rcv_nxt = tp->rcv_nxt;
	v->write_seq = tp->write_seq;
	v->copied_seq = tp->copied_seq;
	v->ts_now = ts_clock_now(tp->tsoffset, usec);
	v->snd_wl1 = tp->snd_wl1;
	v->snd_wnd = tp->snd_wnd;
	v->max_window = tp->max_window;
	v->rcv_wnd = tp->rcv_wnd;
	v->rcv_wup = tp->rcv_wup;
	v->mss_clamp = tp->rx_opt.mss_clamp;
	v->advmss = tp->advmss;
	v->state = tp->inet_conn.icsk_inet.sk.__sk_common.skc_state;
	v->flags = flags;
}

/* Answers one query in place; the caller checked that it lies in the frame. */
static __always_inline void answer(struct __sk_buff *skb, struct baton_sk_query *q)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u32 size;

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
		return;
	/* Full TCP sockets only: not request socks, not TIME_WAIT minisocks. */
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		read_tcp_sock(tp, &q->result);
	bpf_sk_release(sk);
}

SEC("tc")
int baton_tcp_probe(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct baton_sk_query *q = data + BATON_ETH_HLEN;

	/* As many queries as the frame holds, up to BATON_PROBE_BATCH: one test
	 * run (one system call) answers for every socket of a namespace. */
	for (int i = 0; i < BATON_PROBE_BATCH; i++, q++) {
		if ((void *)(q + 1) > end)
			break;
		answer(skb, q);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
