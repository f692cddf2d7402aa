/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Maps both BPF objects use: the tc egress program creates them, and user
 * space hands their fds to the TLS uprobe object (bpf_map__reuse_fd), so
 * records from both paths arrive in one ring and both see the same flows.
 * Defined once here so the two definitions cannot drift apart.
 */
#ifndef RCPTWALL_SHARED_MAPS_BPF_H
#define RCPTWALL_SHARED_MAPS_BPF_H

#include "rcptwall/rcptwall.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RW_RING_SIZE_DEFAULT);
} rw_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rw_flow_key);
	__type(value, struct rw_flow_state);
} rw_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rw_counters SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&rw_counters, &idx);
	if (v)
		*v += n; /* per-CPU slot: no atomic needed */
}

/*
 * Wakeup for the last record of a segment (tc) or write (TLS). A body tail
 * (RW_PHASE_DATA) matters to user space only for finding the end of the
 * message and the commands after it, and both end a line: a tail whose
 * last byte is not '\n', '\r' or '.' cannot complete "\r\n.\r\n" or a
 * command, so it waits in the ring for the next wakeup (at the latest the
 * message's last segment) instead of costing one of its own (an irq_work
 * and a context switch: about 12 us per write on the development VM).
 * Unless the ring is a quarter full: user space must not fall behind.
 */
__noinline __u64 last_record_wakeup(__u32 phase, __u32 last_byte)
{
	/* Global, so verified once on its own: inlined into the chunk loops
	 * its branches multiply the verifier's states past its limit. */
	if (phase != RW_PHASE_DATA || last_byte == '\n' || last_byte == '\r' || last_byte == '.')
		return BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_query(&rw_ring, BPF_RB_AVAIL_DATA) * 4 >=
	    bpf_ringbuf_query(&rw_ring, BPF_RB_RING_SIZE))
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

#endif
