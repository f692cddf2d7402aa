/*
 * The pipeline of `rcptwall run`: ring records -> SMTP parser -> matcher ->
 * enforcer -> event log.
 *
 * It is the capture callback: every valid ring record goes through
 * pipeline_on_record(). The parser's events come back through its callback
 * within that call, so a flagged RCPT reaches the blocked map before the
 * next record is read: that is the latency that keeps the body from
 * leaving. Slower work (nft transactions, socket destruction, loss reports)
 * happens in pipeline_tick(), called from the event loop.
 *
 * The pipeline owns the parser and the matcher (swapped on reload); it
 * borrows the enforcer and the logger, which the caller creates and frees.
 */
#ifndef RCPTWALL_PIPELINE_H
#define RCPTWALL_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "enforce.h"
#include "log.h"
#include "match.h"
#include "rcptwall/rcptwall.h"
#include "smtp.h"

/*
 * The kernel's judgement gate (struct rw_gate in rcptwall.h): the pipeline
 * acknowledges every command-phase byte it has judged in judged_fd and
 * keeps the gate's heartbeat in consumer_fd fresh while it runs.
 */
struct pipeline_gate {
	int judged_fd;      /* BPF map rw_judged */
	int consumer_fd;    /* BPF map rw_consumer */
	uint64_t hold_ns;   /* longest hold of one segment; 0: gate off */
};

struct pipeline_opts {
	const struct smtp_limits *limits; /* NULL: smtp_default_limits */
	struct matcher *matcher;          /* taken over */
	struct enforcer *enforcer;        /* borrowed */
	struct rw_log *log;               /* borrowed */
	int flows_fd;                     /* BPF flows map for phase changes; -1: none */
	bool log_recipients;              /* a `rcpt` event for every recipient */
	const struct pipeline_gate *gate; /* NULL: no judgement gate */
};

struct pipeline_stats {
	uint64_t records;
	uint64_t recipients;
	uint64_t flagged;
	uint64_t blocked;          /* enforce mode: flows put in the blocked map */
	uint64_t would_block;      /* monitor mode */
	uint64_t judged_error;     /* recipients the matcher could not judge */
	uint64_t phase_updates;
	uint64_t phase_misses;     /* flow no longer in the kernel map (ended or evicted) */
	uint64_t losses;           /* everything reported in `loss` events */
	struct smtp_stats parser;
};

struct pipeline;

int pipeline_new(const struct pipeline_opts *opts, struct pipeline **out, char *err,
		 size_t errlen);
void pipeline_free(struct pipeline *p);

/* capture_record_fn: ctx is the pipeline. */
int pipeline_on_record(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx);

/*
 * Periodic work: runs due enforcement steps, turns growth of the kernel's
 * loss counters (kernel_counters: summed RW_CNT_* values, or NULL) and of
 * the parser's gaps into `loss` events (at most one a second).
 */
void pipeline_tick(struct pipeline *p, const uint64_t *kernel_counters);

/*
 * Opens the judgement gate for good (before the pipeline stops reading the
 * ring): nothing may wait for acknowledgements that will not come.
 */
void pipeline_gate_open(struct pipeline *p);

/* Milliseconds the event loop may sleep before pipeline_tick() is due. */
int pipeline_poll_timeout_ms(const struct pipeline *p, int idle_ms);

/* Puts a new matcher in force (reload); returns the old one for the caller to free. */
struct matcher *pipeline_swap_matcher(struct pipeline *p, struct matcher *m);

void pipeline_stats(const struct pipeline *p, struct pipeline_stats *out);

#endif /* RCPTWALL_PIPELINE_H */
