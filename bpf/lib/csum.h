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

#endif /* BATON_LIB_CSUM_H */
