/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The contract between rcptwall's BPF programs and user space.
 *
 * Every layout that crosses the kernel/user boundary (ring records, map keys
 * and values, counter indices) is defined here once and included by both
 * sides. Only fixed-width types, no pointers, explicit padding: the BPF
 * object and the user-space binary must agree byte for byte.
 *
 * Byte order: ports are host byte order, sequence numbers are host byte
 * order, addresses are network byte order (as on the wire).
 */
#ifndef RCPTWALL_RCPTWALL_H
#define RCPTWALL_RCPTWALL_H

#ifdef __BPF__
/* vmlinux.h provides __u8 .. __u64 */
#else
#include <linux/types.h>
#endif

/* Address families as in <sys/socket.h>; repeated so the BPF side needs no libc. */
#define RW_AF_INET  2
#define RW_AF_INET6 10

/*
 * Payload bytes carried by one ring record. A segment larger than this
 * (a GSO super-packet can reach 64 KiB) is split over several records, up
 * to RW_MAX_CHUNKS of them; bytes past that are counted in
 * RW_CNT_TRUNC_BYTES and the record's RW_RF_TRUNCATED flag is set, never
 * cut silently.
 */
#define RW_MAX_PAYLOAD 2048
#define RW_MAX_CHUNKS  32

/*
 * In body phase the tc program sends only the last RW_BODY_TAIL bytes of a
 * segment (record flag RW_RF_BODY_TAIL, field skipped = bytes of the same
 * segment before them). That is what user space needs to find the end of a
 * DATA body ("\r\n.\r\n" ends the segment that carries it, followed at most
 * by a few pipelined commands) without streaming the body through the ring.
 */
#define RW_BODY_TAIL 1024

/* The ring buffer's default size (bytes, power of two, multiple of the page size). */
#define RW_RING_SIZE_DEFAULT (16u << 20)

/* Flow key: the connection as the client sends it (saddr = this host). */
struct rw_flow_key {
	__u8 family;          /* RW_AF_INET or RW_AF_INET6 */
	__u8 pad[3];
	__u16 sport;          /* host byte order */
	__u16 dport;          /* host byte order */
	__u8 saddr[16];       /* IPv4 uses the first 4 bytes, rest zero */
	__u8 daddr[16];
};

enum rw_record_kind {
	RW_REC_DATA = 1,       /* client payload bytes */
	RW_REC_FLOW_START = 2, /* SYN seen: seq is the ISN, data starts at seq+1 */
	RW_REC_FLOW_END = 3,   /* FIN or RST seen (flags say which) */
};

enum rw_source {
	RW_SRC_TC = 1,  /* tc egress: TCP payload, seq = TCP sequence number */
	RW_SRC_TLS = 2, /* TLS uprobe: plaintext, seq = plaintext byte offset in the flow */
};

/* rw_record.flags */
#define RW_RF_FIN        0x01
#define RW_RF_RST        0x02
#define RW_RF_TRUNCATED  0x04 /* bytes of this segment/write were not sent (counted) */
#define RW_RF_BODY_TAIL  0x08 /* body phase: only the segment's tail is carried */
#define RW_RF_MIDSTREAM  0x10 /* first record of a flow the program did not see start */

/*
 * One ring record. Records are variable-length: the ring carries
 * sizeof(struct rw_record_hdr) + len bytes. data[] follows the header.
 */
struct rw_record_hdr {
	__u8 kind;            /* enum rw_record_kind */
	__u8 source;          /* enum rw_source */
	__u8 flags;           /* RW_RF_* */
	__u8 phase;           /* the flow's phase when the program sent this */
	__u32 seq;            /* sequence number of data[0] */
	__u32 len;            /* bytes in data[] */
	__u32 skipped;        /* bytes before seq in the same segment that were not sent */
	__u64 ts_ns;          /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 pid;            /* sending process (tgid) where the kernel tells, else 0 */
	__u32 pad;
	struct rw_flow_key flow;
};

struct rw_record {
	struct rw_record_hdr hdr;
	__u8 data[RW_MAX_PAYLOAD];
};

/*
 * Phase of a flow, kept in the flows map. The tc program sets
 * RW_PHASE_COMMAND (or RW_PHASE_OPAQUE on an implicit-TLS port) when it first
 * sees a flow; afterwards only user space changes it.
 */
enum rw_phase {
	RW_PHASE_COMMAND = 0, /* stream every client byte */
	RW_PHASE_DATA = 1,    /* DATA body: tails only (RW_RF_BODY_TAIL) */
	RW_PHASE_BDAT = 2,    /* BDAT chunk: nothing before bdat_end_seq, all after */
	RW_PHASE_OPAQUE = 3,  /* encrypted on the wire: only flow start/end */
};

/*
 * Value of the flows map (LRU hash keyed by struct rw_flow_key). The tc
 * program creates an entry when it first sees a flow (again on a SYN);
 * afterwards only user space writes it, to set the phases. Two phases,
 * because a STARTTLS flow has two client streams: the TCP bytes on the wire
 * (opaque after STARTTLS) and the plaintext handed to the TLS library.
 */
struct rw_flow_state {
	__u8 phase;             /* enum rw_phase of the TCP stream (tc program) */
	__u8 tls_phase;         /* enum rw_phase of the plaintext stream (uprobes) */
	__u8 pad[2];
	__u32 bdat_end_seq;     /* phase RW_PHASE_BDAT: first TCP seq after the chunk */
	__u32 tls_bdat_end_seq; /* tls_phase RW_PHASE_BDAT: same, as plaintext offset */
	__u32 pad2;
	__u64 created_ns;       /* bpf_ktime_get_ns() when the program created it */
};

/*
 * Value of the TLS uprobes' offsets map (LRU hash keyed by struct
 * rw_flow_key): the plaintext offset of the flow's next TLS write, which
 * the uprobes advance atomically. Kept out of rw_flow_state on purpose:
 * user space rewrites that value whole to change a phase, which replaces
 * the map element, and an increment landing on the replaced element would
 * be lost (a pipelined BDAT chunk is being written exactly then).
 */
struct rw_tls_offset {
	__u64 flow_created_ns;  /* rw_flow_state.created_ns of the connection it counts */
	__u32 next_seq;         /* starts at 0 for every new connection */
	__u32 pad;
};

/*
 * The judgement gate (tc program, plain SMTP: command phase, and the first
 * segment after a DATA body's end): a new segment of a flow leaves only
 * once user space has judged every byte the flow sent before it, so a
 * message body cannot overtake the verdict on the recipients in front of
 * it, however late user space runs. The end of a body matters because a
 * connection carries the next message right after it, while the kernel
 * still has the flow in DATA phase until user space has read the end. A held
 * segment is dropped (TC_ACT_SHOT): the TCP stack keeps it queued and sends
 * it again (probe timer, about 200 ms), by which time user space has
 * caught up. The gate is open (segments pass) while rw_consumer says user
 * space is not alive, and once a segment has waited hold_ns: rcptwall
 * never stalls mail for longer than that, and a dead rcptwall stalls none.
 *
 * rw_gate (LRU hash keyed by struct rw_flow_key) is written only by the tc
 * program; rw_judged (LRU hash, same key, value __u32 = first TCP seq not
 * yet judged) only by user space, after the parser and the matcher are done
 * with a record. Two maps, because a map element is replaced whole by the
 * side that updates it.
 */
struct rw_gate {
	__u32 base_seq;         /* first payload seq the gate saw (nothing judged yet) */
	__u32 sent_end;         /* seq after the last byte let through */
	__u64 sent_ns;          /* when the last new bytes were let through */
	__u8 after_data_end;    /* DATA phase: the last segment ended "\n.\r\n" */
	__u8 pad[7];
};
/* Value of the rw_consumer array (one element), written by user space. */
struct rw_consumer {
	__u64 alive_until_ns;   /* gate closes only before this bpf_ktime_get_ns() */
	__u64 hold_ns;          /* longest hold of one segment; 0: gate off */
};

/* Value of the ports map (array indexed by destination port). */
enum rw_port_kind {
	RW_PORT_IGNORE = 0,
	RW_PORT_SMTP = 1,     /* plain SMTP, STARTTLS possible (25, 587) */
	RW_PORT_TLS = 2,      /* implicit TLS (465): opaque from the first byte */
};

/* Value of the blocked map (hash keyed by struct rw_flow_key). */
struct rw_block {
	__u64 blocked_ns;     /* when user space blocked it */
	__u64 drops;          /* segments dropped since (updated by the program) */
};

/* Indices of the per-CPU counters array. Every way of losing data has one. */
enum rw_counter {
	RW_CNT_RECORDS = 0,        /* ring records sent */
	RW_CNT_RESERVE_FAIL,       /* ring full: record lost */
	RW_CNT_TRUNC_BYTES,        /* payload bytes not sent (over RW_MAX_CHUNKS) */
	RW_CNT_BLOCKED_DROPS,      /* segments dropped because the flow is blocked */
	RW_CNT_UNPARSABLE,         /* packets on a watched path we could not parse */
	RW_CNT_IPV6_EXT_UNKNOWN,   /* IPv6 packets with an extension header we skip */
	RW_CNT_FLOWS_NEW,          /* flows created in the flows map */
	RW_CNT_FLOWS_MIDSTREAM,    /* flows first seen without a SYN (started earlier, or evicted) */
	RW_CNT_BODY_SKIPPED_BYTES, /* body bytes deliberately not sent (DATA/BDAT phase) */
	RW_CNT_OPAQUE_PACKETS,     /* segments of opaque flows */
	RW_CNT_TLS_RECORDS,        /* records sent by the TLS uprobes */
	RW_CNT_TLS_TRUNC_BYTES,    /* plaintext bytes the TLS uprobes could not send */
	RW_CNT_TLS_UNATTRIBUTED,   /* TLS writes not tied to a watched flow */
	RW_CNT_GATE_HELD,          /* segments held back until user space judged the flow */
	RW_CNT_GATE_EXPIRED,       /* segments let through unjudged after hold_ns */
	RW_CNT_MAX
};

#endif /* RCPTWALL_RCPTWALL_H */
