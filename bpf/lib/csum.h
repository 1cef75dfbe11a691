/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental checksum arithmetic (RFC 1624). We never recompute a checksum
 * from scratch: a packet that arrived with a bad checksum keeps a bad one,
 * so the receiver still drops it. Diffs are taken over 4-byte-aligned
 * buffers with bpf_csum_diff, which works identically under XDP and TC. */
#ifndef BATON_LIB_CSUM_H
#define BATON_LIB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* New checksum field value given the old one and the (unfolded) sum of
 * ~old_words + new_words, as bpf_csum_diff returns it. */
static __always_inline __u16 csum_apply_diff(__u16 old_check, __u32 diff)
{
	__u32 sum = (__u16)~old_check;

	sum += diff;
	if (sum < diff)
		sum++; /* end-around carry */
	return ~csum_fold32(sum);
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

static __always_inline __u32 csum_fold64_32(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* New checksum field value after the changes summed in acc. */
static __always_inline __u16 csum_apply_acc(__u16 old_check, __u64 acc)
{
	__u32 sum = csum_fold64_32(acc + (__u16)~old_check);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~(__u16)sum;
}

#endif /* BATON_LIB_CSUM_H */
