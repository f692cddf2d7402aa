// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * rcptwall tc egress classifier: sees every outbound TCP segment to a
 * watched port (ports map), drops the segments of blocked flows, tracks
 * flows in an LRU hash and streams the client's bytes to user space through
 * a BPF ring buffer (records as in include/rcptwall/rcptwall.h).
 *
 * Never drops on a parse failure: anything it cannot read is counted and
 * passed. Headers are read with bpf_skb_load_bytes, so GSO super-packets
 * whose payload lives in page fragments are read as well as linear ones.
 *
 * Must load on Debian 12's 6.1 kernel as well as on current ones: only
 * helpers and map types 6.1 has; helpers 6.1 refuses in tc programs are
 * behind const volatile flags the loader sets after probing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rcptwall/rcptwall.h"
#include "egress_parse.h"
#include "shared_maps.bpf.h"

/* Set by the loader before load (rodata: the verifier prunes dead branches). */
const volatile bool have_pid_helper = false;
/* Records per segment; tests lower it to reach the truncation path with
 * the small packets BPF_PROG_TEST_RUN accepts. Never above RW_MAX_CHUNKS. */
const volatile __u32 max_chunks = RW_MAX_CHUNKS;
/* The last data record of a segment forces a consumer wakeup (latency
 * first, as designed); the loader may choose the ring's adaptive mode, which
 * wakes only a consumer that has caught up and costs far less per record
 * (see bench/bench_ring.c). */
const volatile bool adaptive_wakeup = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} rw_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct rw_flow_key);
	__type(value, struct rw_block);
} rw_blocked SEC(".maps");

/* The judgement gate (see struct rw_gate in rcptwall.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rw_flow_key);
	__type(value, struct rw_gate);
} rw_gate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rw_flow_key);
	__type(value, __u32);
} rw_judged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_consumer);
} rw_consumer SEC(".maps");

/* One record under construction per CPU: records are too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_record);
} rw_scratch SEC(".maps");

/* Fills the fixed part of a record; data and len are set by the caller. */
static __always_inline struct rw_record *record_begin(const struct rw_flow_key *key, __u8 kind,
						       __u8 flags, __u8 phase)
{
	__u32 zero = 0;
	struct rw_record *r = bpf_map_lookup_elem(&rw_scratch, &zero);
	if (!r)
		return NULL;
	r->hdr.kind = kind;
	r->hdr.source = RW_SRC_TC;
	r->hdr.flags = flags;
	r->hdr.phase = phase;
	r->hdr.seq = 0;
	r->hdr.len = 0;
	r->hdr.skipped = 0;
	r->hdr.ts_ns = bpf_ktime_get_ns();
	r->hdr.pid = 0;
	/* Where the helper exists the sender is usually current (process
	 * context); softirq retransmits show whoever runs: best effort. */
	if (have_pid_helper)
		r->hdr.pid = bpf_get_current_pid_tgid() >> 32;
	r->hdr.pad = 0;
	__builtin_memcpy(&r->hdr.flow, key, sizeof(*key));
	return r;
}

/*
 * A payload length known to be in [1, RW_MAX_PAYLOAD], re-derived in a
 * register right where a helper takes it: clang may keep an earlier clamp
 * in a 32-bit stack slot, where the 6.1 verifier forgets its range. The
 * empty asm stops clang from reusing what it already knows.
 */
static __always_inline __u64 clamp_len(__u64 len)
{
	asm volatile("" : "+r"(len));
	return ((len - 1) & (RW_MAX_PAYLOAD - 1)) + 1;
}

/* data_len: 0 for markers (a constant), clamp_len() for payload. */
static __always_inline void record_send(struct rw_record *r, __u64 data_len, __u64 wakeup)
{
	if (bpf_ringbuf_output(&rw_ring, r, sizeof(r->hdr) + data_len, wakeup))
		count(RW_CNT_RESERVE_FAIL, 1);
	else
		count(RW_CNT_RECORDS, 1);
}

/* A record without payload: flow start (seq = ISN) or flow end. */
static __always_inline void send_marker(const struct egress_pkt *p, __u8 kind, __u8 flags,
					__u8 phase, __u32 seq)
{
	struct rw_record *r = record_begin(&p->key, kind, flags, phase);
	if (!r)
		return;
	r->hdr.seq = seq;
	record_send(r, 0, 0);
}

/*
 * State of one send_payload() call, shared with the bpf_loop callback.
 * Everything is copied in by value (the skb pointer aside): the callback is
 * verified once, whatever the iteration count, which keeps the 6.1
 * verifier well under its instruction budget (an open-coded loop of 32
 * chunks is not).
 */
struct chunk_ctx {
	struct __sk_buff *skb;
	struct rw_flow_key key;
	__u32 data_seq;
	__u32 payload_off;
	__u32 payload_len;
	__u32 start;
	__u32 limit;
	__u8 flags;
	__u8 first_flags;
	__u8 phase;
	__u8 truncated;
};

/* Sends chunk i of the segment; returns 1 to stop the loop. */
static long send_chunk(__u32 i, void *data)
{
	struct chunk_ctx *c = data;
	if (i >= RW_MAX_CHUNKS)
		return 1;
	__u32 off = c->start + i * RW_MAX_PAYLOAD;
	if (off >= c->payload_len)
		return 1;
	__u32 len = c->payload_len - off;
	if (len > RW_MAX_PAYLOAD)
		len = RW_MAX_PAYLOAD;

	bool last = off + len >= c->payload_len || i + 1 >= c->limit;
	__u8 flags = c->flags;
	if (i == 0)
		flags |= c->first_flags;
	if (last && c->truncated)
		flags |= RW_RF_TRUNCATED;
	struct rw_record *r = record_begin(&c->key, RW_REC_DATA, flags, c->phase);
	if (!r)
		return 1;
	r->hdr.seq = c->data_seq + off;
	r->hdr.skipped = c->start;
	if (bpf_skb_load_bytes(c->skb, c->payload_off + off, r->data, clamp_len(len))) {
		count(RW_CNT_UNPARSABLE, 1);
		return 1;
	}
	r->hdr.len = len;
	/* One wakeup per segment, after its last record: the consumer needs
	 * the whole segment anyway, and a wakeup costs several microseconds
	 * (irq_work) against well under one for a record. */
	__u64 wakeup = BPF_RB_NO_WAKEUP;
	if (adaptive_wakeup)
		wakeup = 0;
	else if (last)
		wakeup = last_record_wakeup(c->phase, r->data[clamp_len(len) - 1]);
	record_send(r, clamp_len(len), wakeup);
	return last ? 1 : 0;
}

/*
 * Sends payload bytes [start, p->payload_len) as records of at most
 * RW_MAX_PAYLOAD bytes, at most max_chunks of them; the rest is counted as
 * truncated and flagged on the last record. skipped = bytes of the segment
 * before start that are deliberately not sent (body phases).
 */
static __always_inline void send_payload(struct __sk_buff *skb, const struct egress_pkt *p,
					 __u32 start, __u8 flags, __u8 phase)
{
	__u32 limit = max_chunks;
	if (limit > RW_MAX_CHUNKS || limit == 0)
		limit = RW_MAX_CHUNKS;
	__u32 total = p->payload_len - start;
	bool truncated = total > limit * RW_MAX_PAYLOAD;
	struct chunk_ctx c = {
		.skb = skb,
		.data_seq = p->data_seq,
		.payload_off = p->payload_off,
		.payload_len = p->payload_len,
		.start = start,
		.limit = limit,
		.flags = flags,
		.first_flags = p->first_flags,
		.phase = phase,
		.truncated = truncated,
	};
	__builtin_memcpy(&c.key, &p->key, sizeof(c.key));

	bpf_loop(limit, send_chunk, &c, 0);
	if (truncated)
		count(RW_CNT_TRUNC_BYTES, total - limit * RW_MAX_PAYLOAD);
}

/* a is after b in sequence space (wraparound-safe). */
static __always_inline bool seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/* The consumer's heartbeat and hold, if the gate is on; NULL if it is open. */
static __always_inline struct rw_consumer *gate_consumer(__u64 now)
{
	__u32 zero = 0;
	struct rw_consumer *c = bpf_map_lookup_elem(&rw_consumer, &zero);
	if (!c || !c->hold_ns || now >= c->alive_until_ns)
		return NULL; /* no consumer that acknowledges: gate open */
	return c;
}

/*
 * The judgement gate, before a segment with payload in command or DATA
 * phase. Returns true when the segment must wait: it carries new bytes,
 * and bytes the flow sent before it are not judged yet. In DATA phase only
 * the first segment after the body's end waits (see gate_note_data_end).
 * Retransmissions of bytes already let through pass.
 */
static __always_inline bool gate_hold(const struct egress_pkt *p, __u8 phase)
{
	__u64 now = bpf_ktime_get_ns();
	struct rw_consumer *c = gate_consumer(now);
	if (!c)
		return false;

	__u32 end = p->data_seq + p->payload_len;
	struct rw_gate *g = bpf_map_lookup_elem(&rw_gate, &p->key);
	if (!g) {
		if (phase != RW_PHASE_COMMAND)
			return false;
		/* First payload of the flow: nothing before it to wait for. */
		struct rw_gate fresh = { .base_seq = p->data_seq, .sent_end = end,
					 .sent_ns = now };
		bpf_map_update_elem(&rw_gate, &p->key, &fresh, BPF_ANY);
		return false;
	}
	if (phase == RW_PHASE_DATA && !g->after_data_end)
		return false; /* the body itself streams */
	if (!seq_after(end, g->sent_end))
		return false; /* a retransmission */

	__u32 *judged = bpf_map_lookup_elem(&rw_judged, &p->key);
	__u32 judged_end = judged ? *judged : g->base_seq;
	if (seq_after(g->sent_end, judged_end)) {
		if (now - g->sent_ns < c->hold_ns) {
			count(RW_CNT_GATE_HELD, 1);
			return true;
		}
		count(RW_CNT_GATE_EXPIRED, 1);
	}
	g->sent_end = end;
	g->sent_ns = now;
	g->after_data_end = 0;
	return false;
}

/* The segment's payload may end a DATA body: its last bytes are "\n.\r\n",
 * or it is ".\r\n" alone (clients often write the end by itself). */
static __always_inline bool ends_data(struct __sk_buff *skb, const struct egress_pkt *p)
{
	__u8 t[4] = {};
	if (p->payload_len == 3) {
		if (bpf_skb_load_bytes(skb, p->payload_off, &t[1], 3))
			return false;
		t[0] = '\n';
	} else if (p->payload_len < 4 ||
		   bpf_skb_load_bytes(skb, p->payload_off + p->payload_len - 4, t, 4)) {
		return false;
	}
	return t[0] == '\n' && t[1] == '.' && t[2] == '\r' && t[3] == '\n';
}

/*
 * After a DATA-phase segment went out: if it may end the body, the next
 * segment must wait until user space has read it, for the next transaction
 * on the connection follows at once while the flow is still in DATA phase
 * here. Not recognised: a terminator with commands pipelined behind it in
 * the same segment, or one split other than "...\r\n" | ".\r\n" (the
 * next body then is not gated).
 */
static __always_inline void gate_note_data_end(struct __sk_buff *skb, const struct egress_pkt *p)
{
	__u64 now = bpf_ktime_get_ns();
	if (!gate_consumer(now) || !ends_data(skb, p))
		return;
	__u32 end = p->data_seq + p->payload_len;
	struct rw_gate *g = bpf_map_lookup_elem(&rw_gate, &p->key);
	if (!g) {
		struct rw_gate fresh = { .base_seq = p->data_seq, .sent_end = end,
					 .sent_ns = now, .after_data_end = 1 };
		bpf_map_update_elem(&rw_gate, &p->key, &fresh, BPF_ANY);
		return;
	}
	if (!seq_after(end, g->sent_end))
		return; /* a retransmission of an older end */
	g->sent_end = end;
	g->sent_ns = now;
	g->after_data_end = 1;
}

/* Forgets a flow's gate state (flow end, or a new connection on the tuple). */
static __always_inline void gate_forget(const struct rw_flow_key *key)
{
	bpf_map_delete_elem(&rw_gate, key);
	bpf_map_delete_elem(&rw_judged, key);
}

/* Payload of a segment according to the flow's phase. */
static __always_inline void handle_payload(struct __sk_buff *skb, struct egress_pkt *p,
					   const struct rw_flow_state *st)
{
	__u8 phase = st->phase;
	__u32 plen = p->payload_len;

	switch (phase) {
	case RW_PHASE_OPAQUE:
		count(RW_CNT_OPAQUE_PACKETS, 1);
		return;
	case RW_PHASE_DATA: {
		/* Only the tail: enough to find "\r\n.\r\n" and any commands
		 * pipelined after it, never the body itself. */
		__u32 skip = plen > RW_BODY_TAIL ? plen - RW_BODY_TAIL : 0;
		if (skip)
			count(RW_CNT_BODY_SKIPPED_BYTES, skip);
		send_payload(skb, p, skip, RW_RF_BODY_TAIL, phase);
		return;
	}
	case RW_PHASE_BDAT: {
		/* Signed distance handles sequence wraparound. */
		__s32 ahead = (__s32)(st->bdat_end_seq - p->data_seq);
		if (ahead <= 0) {
			send_payload(skb, p, 0, 0, phase);
			return;
		}
		if ((__u32)ahead >= plen) {
			count(RW_CNT_BODY_SKIPPED_BYTES, plen);
			return;
		}
		count(RW_CNT_BODY_SKIPPED_BYTES, (__u32)ahead);
		send_payload(skb, p, (__u32)ahead, 0, phase);
		return;
	}
	default:
		send_payload(skb, p, 0, 0, phase);
		return;
	}
}

/*
 * Finds or creates the flow's state. Created on a SYN or on a segment with
 * payload; a pure ACK of an unknown flow (for instance the last ACK after
 * our FIN removed the entry) creates nothing. NULL: nothing to track.
 */
static __always_inline struct rw_flow_state *flow_get(struct egress_pkt *p, __u8 port_kind)
{
	struct rw_flow_state *st = bpf_map_lookup_elem(&rw_flows, &p->key);
	bool syn = p->tcp_flags & EGRESS_TCP_SYN;

	if (st && !syn)
		return st;
	if (!st && !syn && p->payload_len == 0)
		return NULL;

	struct rw_flow_state fresh = {
		.phase = port_kind == RW_PORT_TLS ? RW_PHASE_OPAQUE : RW_PHASE_COMMAND,
		.tls_phase = RW_PHASE_COMMAND,
		.created_ns = bpf_ktime_get_ns(),
	};
	/* A SYN on a known tuple is a new connection reusing it: start over. */
	if (bpf_map_update_elem(&rw_flows, &p->key, &fresh, BPF_ANY))
		return NULL;
	if (!st)
		count(RW_CNT_FLOWS_NEW, 1);
	if (!syn) {
		/* Started before we attached, or evicted from the LRU. */
		count(RW_CNT_FLOWS_MIDSTREAM, 1);
		p->first_flags = RW_RF_MIDSTREAM;
	}
	return bpf_map_lookup_elem(&rw_flows, &p->key);
}

/*
 * A blocked flow's segments are dropped, with two exceptions that carry
 * no message content: a RST without payload (the socket destroy's reset,
 * which must reach the server so its side closes too), and a SYN, which
 * opens a new connection reusing the 4-tuple: that one is judged on its
 * own, so the entry goes. True: drop.
 */
static __always_inline bool blocked_drop(struct egress_pkt *p, struct rw_block *b)
{
	if ((p->tcp_flags & EGRESS_TCP_RST) && p->payload_len == 0)
		return false;
	if ((p->tcp_flags & EGRESS_TCP_SYN) && p->payload_len == 0) {
		bpf_map_delete_elem(&rw_blocked, &p->key);
		return false;
	}
	__sync_fetch_and_add(&b->drops, 1);
	count(RW_CNT_BLOCKED_DROPS, 1);
	return true;
}

/* TC_ACT_SHOT when the judgement gate holds the segment back, else TC_ACT_OK. */
static __always_inline int handle_flow(struct __sk_buff *skb, struct egress_pkt *p,
				       __u8 port_kind)
{
	bool end = p->tcp_flags & (EGRESS_TCP_FIN | EGRESS_TCP_RST);
	struct rw_flow_state *st = flow_get(p, port_kind);
	__u8 end_flags = 0;

	if (p->tcp_flags & EGRESS_TCP_FIN)
		end_flags |= RW_RF_FIN;
	if (p->tcp_flags & EGRESS_TCP_RST)
		end_flags |= RW_RF_RST;

	if (!st) {
		/* End of a flow we no longer track (evicted): user space may. */
		if (end)
			send_marker(p, RW_REC_FLOW_END, end_flags, RW_PHASE_COMMAND,
				    p->data_seq);
		return TC_ACT_OK;
	}
	__u8 phase = st->phase;
	if (p->tcp_flags & EGRESS_TCP_SYN) {
		gate_forget(&p->key);
		send_marker(p, RW_REC_FLOW_START, p->first_flags, phase, p->seq);
	}
	bool gated = phase == RW_PHASE_COMMAND || phase == RW_PHASE_DATA;
	if (p->payload_len && gated && gate_hold(p, phase))
		return TC_ACT_SHOT; /* sent again by TCP; nothing recorded now */
	if (p->payload_len)
		handle_payload(skb, p, st);
	if (p->payload_len && phase == RW_PHASE_DATA)
		gate_note_data_end(skb, p);
	if (end) {
		/* seq of the FIN itself: after this segment's payload. */
		send_marker(p, RW_REC_FLOW_END, end_flags, phase, p->data_seq + p->payload_len);
		bpf_map_delete_elem(&rw_flows, &p->key);
		gate_forget(&p->key);
	}
	return TC_ACT_OK;
}

SEC("tc")
int rw_egress(struct __sk_buff *skb)
{
	struct egress_pkt p = {};
	int rc = egress_parse(skb, &p);

	if (rc == EGRESS_UNPARSABLE)
		count(RW_CNT_UNPARSABLE, 1);
	else if (rc == EGRESS_EXT_UNKNOWN)
		count(RW_CNT_IPV6_EXT_UNKNOWN, 1);
	if (rc != EGRESS_TCP)
		return TC_ACT_OK;

	__u32 dport = p.key.dport;
	__u8 *kind = bpf_map_lookup_elem(&rw_ports, &dport);
	if (!kind || *kind == RW_PORT_IGNORE)
		return TC_ACT_OK;
	__u8 port_kind = *kind;

	struct rw_block *b = bpf_map_lookup_elem(&rw_blocked, &p.key);
	if (b && blocked_drop(&p, b))
		return TC_ACT_SHOT;
	return handle_flow(skb, &p, port_kind);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
