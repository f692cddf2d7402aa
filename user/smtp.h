/*
 * SMTP client-stream parser: per-flow TCP reassembly and an RFC 5321 client
 * state machine (PIPELINING, CHUNKING/BDAT, STARTTLS, SMTPUTF8).
 *
 * Fed with segments (flow key, source, sequence number, bytes) and flow
 * ends; emits events through a callback. It sees only what the client
 * sends, never the server's replies: see smtp.c for the assumptions that
 * forces and how it recovers when a server refuses a command.
 *
 * Pure user-space C: no BPF, no I/O. One parser serves every flow.
 */
#ifndef RCPTWALL_SMTP_H
#define RCPTWALL_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF. */
#define SMTP_LINE_MAX 512
/* Sizes of the address fields (a path can't exceed a command line). */
#define SMTP_ADDR_MAX SMTP_LINE_MAX

enum smtp_event_kind {
	SMTP_EV_MAIL = 1,    /* MAIL FROM: a transaction starts (mailbox = reverse path) */
	SMTP_EV_RCPT,        /* RCPT TO: one recipient (mailbox = forward path) */
	SMTP_EV_DATA_START,  /* DATA or the first BDAT of a transaction */
	SMTP_EV_MESSAGE_END, /* end of DATA content, or BDAT ... LAST consumed */
	SMTP_EV_OPAQUE,      /* STARTTLS: the wire bytes that follow are TLS */
	SMTP_EV_ANOMALY,     /* something a server would not accept as we read it */
	SMTP_EV_PHASE,       /* ask the capture side to change the kernel phase */
	SMTP_EV_FLOW_END,    /* FIN/RST seen, or the flow was evicted */
};

enum smtp_anomaly {
	SMTP_AN_NONE = 0,
	SMTP_AN_LINE_TOO_LONG,     /* command line over 512 octets: capped */
	SMTP_AN_BARE_LF,           /* line ended with LF alone */
	SMTP_AN_CONTROL_BYTE,      /* NUL or other control byte in a command line */
	SMTP_AN_BAD_PATH,          /* MAIL/RCPT argument we could not parse */
	SMTP_AN_NO_BRACKETS,       /* RCPT TO:user@dom without <> (lenient servers take it) */
	SMTP_AN_SOURCE_ROUTE,      /* <@relay:user@dom>: route ignored, as RFC 5321 says */
	SMTP_AN_GAP,               /* bytes lost before this point: resynchronised */
	SMTP_AN_REORDER_OVERFLOW,  /* out-of-order segments over the per-flow cap: dropped */
	SMTP_AN_DATA_REFUSED,      /* DATA was followed by a command, not content: server said no */
	SMTP_AN_BAD_BDAT,          /* BDAT size missing or not a number */
	SMTP_AN_UNKNOWN_COMMAND,   /* not an SMTP verb */
	SMTP_AN_RCPT_WITHOUT_MAIL, /* RCPT before any MAIL FROM */
	SMTP_AN_EVICTED,           /* flow state dropped to stay under the memory cap */
	SMTP_AN_DOT_BARE_LF,       /* content line "." next to a bare LF: some servers end DATA there */
	SMTP_AN_MISSED_END,        /* DATA content looks like commands again: end possibly in a skipped tail */
	SMTP_AN_MAX
};

/* One mailbox as the receiving server would read it. */
struct smtp_mailbox {
	char mailbox[SMTP_ADDR_MAX]; /* local@domain (no <>, no source route); "" for <> */
	char local[SMTP_ADDR_MAX];   /* local part as sent (quotes kept) */
	char domain[SMTP_ADDR_MAX];  /* domain as sent, or address literal with its [] */
	char params[SMTP_ADDR_MAX];  /* ESMTP parameters after the path, "" if none */
	bool is_null;                /* MAIL FROM:<> */
	bool is_literal;             /* domain is [198.51.100.7] or [IPv6:...] */
	bool no_brackets;            /* path given without <> */
	bool had_source_route;       /* <@a,@b:user@dom> */
	bool utf8;                   /* mailbox contains non-ASCII (SMTPUTF8) */
};

struct smtp_event {
	enum smtp_event_kind kind;
	const struct rw_flow_key *flow;
	uint8_t source;        /* enum rw_source of the bytes that completed it */
	uint64_t ts_ns;        /* kernel timestamp of the segment that completed it */
	uint32_t seq;          /* sequence number just after the event's last byte */
	union {
		struct smtp_mailbox mailbox;  /* MAIL, RCPT */
		struct {
			enum smtp_anomaly code;
			char detail[128];     /* escaped, printable ASCII */
		} anomaly;
		struct {
			uint8_t phase;        /* enum rw_phase for the event's source stream */
			uint32_t bdat_end_seq; /* RW_PHASE_BDAT: first seq after the chunk */
		} phase;                      /* PHASE (source says which stream) */
	} u;
	const struct smtp_mailbox *mail_from; /* RCPT: the transaction's sender, or NULL */
};

typedef void (*smtp_event_cb)(const struct smtp_event *ev, void *ctx);

struct smtp_limits {
	size_t max_flows;            /* flows tracked at once (oldest idle evicted) */
	size_t max_bytes_total;      /* memory cap over all flows */
	size_t max_ooo_bytes;        /* out-of-order bytes held per flow */
};
/* Defaults used when smtp_parser_new() gets NULL. */
extern const struct smtp_limits smtp_default_limits;

struct smtp_segment {
	const struct rw_flow_key *flow;
	uint8_t source;        /* enum rw_source */
	uint32_t seq;          /* sequence number of data[0] */
	uint32_t skipped;      /* bytes before seq not carried (body tail): known body */
	const uint8_t *data;
	uint32_t len;
	uint64_t ts_ns;
};

struct smtp_stats {
	uint64_t flows_seen, flows_active, flows_evicted;
	uint64_t bytes_in, bytes_skipped, segments_dup, segments_ooo;
	uint64_t gaps, gap_bytes, anomalies, recipients, messages;
	size_t mem_bytes;
};

struct smtp_parser;

struct smtp_parser *smtp_parser_new(const struct smtp_limits *lim, smtp_event_cb cb, void *ctx);
void smtp_parser_free(struct smtp_parser *p);

/* SYN seen: the stream of (flow, source) starts at isn + 1. */
void smtp_parser_flow_start(struct smtp_parser *p, const struct rw_flow_key *flow,
			    uint8_t source, uint32_t isn, uint64_t ts_ns);
/*
 * Client bytes. Returns 0, -ENOMEM when the flow could not be tracked,
 * -EINVAL for a bad source or NULL data, -EBUSY when called from inside an
 * event callback (a callback may only call smtp_parser_flow_end).
 */
int smtp_parser_feed(struct smtp_parser *p, const struct smtp_segment *seg);
/*
 * FIN/RST: emits SMTP_EV_FLOW_END and forgets the flow (both sources).
 * From a callback, for the flow being fed: takes effect when the feed
 * returns (no further events of that flow before SMTP_EV_FLOW_END).
 */
void smtp_parser_flow_end(struct smtp_parser *p, const struct rw_flow_key *flow, uint64_t ts_ns);

/*
 * The next byte the (flow, source) stream expects: every byte before it has
 * been parsed and its events delivered (the kernel's judgement gate waits
 * for this). 0, or -ENOENT when the stream is not tracked or has not started.
 */
int smtp_parser_stream_next(const struct smtp_parser *p, const struct rw_flow_key *flow,
			    uint8_t source, uint32_t *next);

void smtp_parser_stats(const struct smtp_parser *p, struct smtp_stats *out);

/* Heap bytes one tracked idle flow costs (one stream, no partial line, no transaction). */
size_t smtp_parser_idle_flow_bytes(void);

const char *smtp_event_name(enum smtp_event_kind k);
const char *smtp_anomaly_name(enum smtp_anomaly a);

#endif /* RCPTWALL_SMTP_H */
