/*
 * Events: one JSON object per line (JSON Lines), to stdout or a file, and
 * flag and block events also to syslog (facility LOG_MAIL).
 *
 * Every string that came off the wire (addresses, domains, anything a
 * remote party or a local sender chose) is passed through as data: jansson
 * escapes quotes and control bytes, and bytes that are not valid UTF-8 are
 * written as the four characters \xNN, since JSON strings must be valid
 * Unicode. Very long strings are cut (and say so).
 *
 * Fields (absent when not known):
 *   time        RFC 3339, UTC, microseconds: "2026-11-28T22:41:21.123456Z"
 *   event       rcpt | flag | block | flow_opaque | anomaly | loss | start | stop | reload
 *   flow        {"family": "ipv4"|"ipv6", "saddr", "sport", "daddr", "dport"}
 *   mail_from, rcpt, domain, verdict (ok|flag|error), protected, detector,
 *   distance, reason, mode (monitor|enforce),
 *   block only: would_block (monitor), latency_us, queue_us, actions, error
 *   loss only:  counts {source: n}, total
 *
 * Not thread-safe: one logger per event loop.
 */
#ifndef RCPTWALL_LOG_H
#define RCPTWALL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "match.h"
#include "rcptwall/rcptwall.h"

/* Longest wire string written as is; longer ones are cut, marked "...(cut)". */
#define LOG_STR_MAX 1024

struct rw_log_opts {
	const char *path;   /* "-" or NULL: stdout; else a file, appended to */
	bool syslog;        /* flag and block events also to syslog (LOG_MAIL) */
	/* Lines are written whole, but reach the file at log_flush() instead
	 * of one write each: the event loop flushes after each batch of
	 * records, so logging never delays the next blocked-map insert. */
	bool batched;
	/* Tests: write to stream instead of path, send syslog lines to
	 * syslog_fn instead of syslog(3), and read the clocks from here. */
	FILE *stream;
	void (*syslog_fn)(int priority, const char *line, void *ctx);
	void *syslog_ctx;
	uint64_t (*realtime_ns)(void);
	uint64_t (*monotonic_ns)(void);
};

struct rw_log;

/* 0 or negative errno, with "open log FILE: why" in err. */
int log_open(const struct rw_log_opts *opts, struct rw_log **out, char *err, size_t errlen);
void log_close(struct rw_log *lg);
/* Writes out what a batched logger holds. 0 or -EIO. */
int log_flush(struct rw_log *lg);
/* Reopens the file (after logrotate moved it); no-op for stdout. */
int log_reopen(struct rw_log *lg, char *err, size_t errlen);

/* One recipient as the parser and the matcher saw it. */
struct log_recipient {
	const struct rw_flow_key *flow;
	const char *mail_from;               /* wire text, NULL if none */
	const char *rcpt;                    /* wire text */
	const struct match_verdict *verdict; /* NULL if not judged */
};

struct log_block_info {
	enum rw_mode mode;
	bool would_block;     /* monitor mode: what enforce mode would have done */
	uint64_t latency_us;  /* RCPT segment's kernel timestamp to the blocked-map insert */
	uint64_t queue_us;    /* of latency_us: until rcptwall read the record from the ring */
	const char *actions;  /* enforcer_describe() text */
	int error;            /* negative errno if the block failed, else 0 */
};

/* Each returns 0, or -EIO if the line could not be written (counted). */
int log_rcpt(struct rw_log *lg, const struct log_recipient *r);
int log_flag(struct rw_log *lg, const struct log_recipient *r, enum rw_mode mode);
int log_block(struct rw_log *lg, const struct log_recipient *r, const struct log_block_info *b);
int log_flow_opaque(struct rw_log *lg, const struct rw_flow_key *flow, const char *why);
int log_anomaly(struct rw_log *lg, const struct rw_flow_key *flow, const char *code,
		const char *detail);

enum log_lifecycle {
	LOG_START,
	LOG_STOP,
	LOG_RELOAD,
};

/* A named number for lifecycle events (counters in the stop summary). */
struct log_count {
	const char *name;
	uint64_t value;
};

/* start, stop or reload; detail: free text ("config /etc/..", "refused: why"). */
int log_lifecycle(struct rw_log *lg, enum log_lifecycle kind, enum rw_mode mode, bool ok,
		  const char *detail, const struct log_count *counts, size_t n_counts);

/*
 * Loss is never silent, and never a flood: counts are accumulated per
 * source and written as one `loss` event at most once per second.
 * log_loss_add() writes at once when a second has passed since the last
 * one; log_loss_tick() (call it from the event loop's timeout) writes what
 * is pending when due.
 */
enum log_loss_source {
	LOSS_RING_RESERVE,  /* kernel could not reserve a ring record */
	LOSS_TRUNCATED,     /* payload bytes not captured */
	LOSS_PARSER_GAP,    /* reassembly gap: bytes never seen */
	LOSS_PARSER_EVICT,  /* flows dropped by the parser's memory cap */
	LOSS_FLOW_EVICT,    /* flows evicted from the kernel's LRU flow map */
	LOSS_ENFORCE,       /* blocks that could not be completed */
	LOSS_GATE_EXPIRED,  /* segments the judgement gate let through unjudged */
	LOSS_MAX
};
void log_loss_add(struct rw_log *lg, enum log_loss_source src, uint64_t count);
int log_loss_tick(struct rw_log *lg);

struct log_stats {
	uint64_t lines, write_errors, loss_events;
	uint64_t loss_pending; /* counted, not yet written */
};
void log_stats(const struct rw_log *lg, struct log_stats *out);

/*
 * Wire bytes to valid UTF-8 for JSON: valid sequences kept, every other
 * byte written as "\xNN", cut after LOG_STR_MAX input bytes. Returns the
 * length written (out is always NUL-terminated; outlen >= 1).
 */
size_t log_sanitize(const char *in, char *out, size_t outlen);

#endif /* RCPTWALL_LOG_H */
