/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental checksum arithmetic (RFC 1624). We never recompute a checksum
 * from scratch: a packet that arrived with a bad checksum keeps a bad one,
 * so the receiver still drops it. Diffs are taken over 4-byte-aligned
 * buffers with bpf_csum_diff, which works identically under XDP and TC. */
#ifndef BATON_LIB_CSUM_H
#define BATON_LIB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Folds a one's complement sum of any width (what csum_acc16/32 collect, or
 * what bpf_csum_diff returns) to 16 bits, end-around carries included. */
static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Accumulating changes word by word, for rewrites done in place in the
 * packet: acc collects ~old + new for every changed 16- or 32-bit field
 * (RFC 1624 eqn. 3); the one's complement sum is the same whichever half of
 * a 32-bit word a 16-bit field sat in, and whatever the byte order, as long
 * as values are loaded and stored the same way (RFC 1071). */
static __always_inline void csum_acc32(__u64 *acc, __u32 old, __u32 new)
{
	*acc += (__u32)~old;
	*acc += new;
}

static __always_inline void csum_acc16(__u64 *acc, __u16 old, __u16 new)
{
	*acc += (__u16)~old;
	*acc += new;
}

/* New checksum field value after the changes summed in acc (anything
 * csum_acc16/32 collected, plus any unfolded sum bpf_csum_diff returned). */
static __always_inline __u16 csum_apply_acc(__u16 old_check, __u64 acc)
{
	return ~csum_fold(acc + (__u16)~old_check);
}

#endif /* BATON_LIB_CSUM_H */
