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

#endif
