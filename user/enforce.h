/*
 * Enforcement: what happens to a connection with a flagged recipient.
 *
 * In enforce mode, three steps:
 *   1. enforcer_block() inserts the flow into the BPF blocked map at once:
 *      the tc program drops its further segments, so the body never leaves;
 *   2. the flow is queued for the nft set of its family in table
 *      `inet rcptwall`, whose output chain rejects it with a TCP reset;
 *   3. once its nft element is in, the socket is destroyed (SOCK_DESTROY),
 *      so the MTA gets an error at once instead of retransmitting into the
 *      drop, and keeps the message queued.
 * Between 2 and 3 the flow's blocked-map entry is released (its drop count
 * kept in the stats): from then on the nft rule refuses the flow's
 * segments at the output hook, before tc. That lets the RST of step 3
 * (which the rule exempts) reach the remote server, which the tc drop
 * would swallow, and keeps the fixed-size map from filling up with dead
 * flows. If step 2 fails the map entry stays: the drop must not lapse.
 * Steps 2 and 3 run in batches: queued flows are written as one nft
 * transaction every flush_interval_ms or batch_size flows, so a burst of
 * thousands of flagged flows costs a few transactions, not thousands,
 * while step 1 never waits. Who runs them:
 *   - by default the caller, in enforcer_flush(), which it calls from its
 *     event loop (after each batch of events and on each poll timeout,
 *     using enforcer_poll_timeout_ms());
 *   - with worker_thread, a thread of the enforcer, so the event loop is
 *     never held up by an nft transaction (a 256-element one takes
 *     milliseconds); enforcer_flush() then only hands over outcomes.
 * Either way the done callback runs in the caller's thread, inside
 * enforcer_flush(), and the caller code is the same.
 *
 * In monitor mode nothing is touched: enforcer_block() only reports what
 * enforce mode would have done.
 */
#ifndef RCPTWALL_ENFORCE_H
#define RCPTWALL_ENFORCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rcptwall/rcptwall.h"

/*
 * The operations behind the three steps. enforcer_new() uses the real ones
 * (bpf map, libnftables, sock_diag) unless given others: the unit tests
 * pass recording fakes.
 */
struct enforce_backend {
	/* Step 1. 0, -EEXIST if the key is already there, other -errno. */
	int (*map_insert)(void *ctx, const struct rw_flow_key *k, const struct rw_block *v);
	/* Removes the key once nft covers the flow; *drops gets the segments
	 * the tc program dropped for it. 0, -ENOENT, other -errno. */
	int (*map_release)(void *ctx, const struct rw_flow_key *k, uint64_t *drops);
	/* Creates table inet rcptwall, replacing a stale one. */
	int (*table_setup)(void *ctx, uint32_t timeout_s, char *err, size_t errlen);
	/* Step 2 for a batch, as one transaction. */
	int (*table_add)(void *ctx, const struct rw_flow_key *keys, size_t n, char *err,
			 size_t errlen);
	/* Step 3. 0, -ENOENT (no such socket any more), other -errno. */
	int (*socket_destroy)(void *ctx, const struct rw_flow_key *k);
	/* Removes the table (only called without keep_rules_on_exit). */
	int (*table_remove)(void *ctx, char *err, size_t errlen);
	void (*close)(void *ctx);
};

/* Outcome of steps 2 and 3 for one flow, reported from enforcer_flush(). */
typedef void (*enforce_done_cb)(const struct rw_flow_key *k, int table_err, int destroy_err,
				void *ctx);

struct enforcer_opts {
	enum rw_mode mode;
	int blocked_map_fd;          /* enforce mode: the BPF blocked map */
	uint32_t set_timeout_s;      /* 0: 600 */
	bool keep_rules_on_exit;
	uint32_t flush_interval_ms;  /* longest a queued flow waits for step 2 */
	uint32_t batch_size;         /* flows per nft transaction; 0: 256 */
	bool worker_thread;          /* run steps 2-3 in a thread of the enforcer */
	enforce_done_cb done;        /* optional; called in enforcer_flush() */
	void *done_ctx;
	/* Tests only: NULL for the real backend and CLOCK_MONOTONIC. */
	const struct enforce_backend *backend;
	void *backend_ctx;
	uint64_t (*now_ns)(void);
};

struct enforce_result {
	bool would_block;      /* monitor mode: enforce mode would have blocked */
	bool blocked;          /* enforce mode: the flow is in the blocked map */
	bool already_blocked;  /* it was already (an earlier recipient): no new work */
	int map_err;           /* step 1 failed: negative errno (steps 2-3 still queued) */
	uint64_t blocked_ns;   /* CLOCK_MONOTONIC right after the map insert */
};

struct enforce_stats {
	uint64_t would_block;     /* monitor mode */
	uint64_t blocked;         /* map inserts */
	uint64_t already_blocked;
	uint64_t map_errors;
	uint64_t table_elements;  /* flows written to the nft sets */
	uint64_t table_batches;   /* nft transactions */
	uint64_t table_errors;    /* flows whose nft transaction failed */
	uint64_t released;        /* blocked-map entries handed over to nft */
	uint64_t kernel_drops;    /* segments the tc program dropped for released flows */
	uint64_t destroyed;       /* sockets destroyed */
	uint64_t destroy_gone;    /* socket already closed */
	uint64_t destroy_errors;
	uint64_t queue_errors;    /* no memory to queue steps 2-3 (step 1 stands) */
	uint64_t max_flush_ns;    /* longest enforcer_flush() */
	size_t queued;            /* flows waiting for steps 2-3 */
};

struct enforcer;

/*
 * Enforce mode sets up table inet rcptwall (replacing a stale one); monitor
 * mode touches nothing. On error returns a negative errno and writes what
 * failed into err.
 */
int enforcer_new(const struct enforcer_opts *opts, struct enforcer **out, char *err,
		 size_t errlen);

/* Runs the queued steps, then removes the table unless keep_rules_on_exit. */
void enforcer_free(struct enforcer *e);

/*
 * A flagged flow. Returns 0, or the negative errno of step 1 (e.g. the
 * blocked map is full); steps 2-3 are queued even then, so the connection
 * is still cut, only a batch interval later and without the kernel drop.
 */
int enforcer_block(struct enforcer *e, const struct rw_flow_key *k, struct enforce_result *res);

/*
 * Loop-driven: runs steps 2 and 3 for queued flows when a batch is due
 * (full, or its oldest flow waited flush_interval_ms), or for up to one
 * batch at once if force. Worker thread: reports finished flows to the
 * done callback; force waits until every queued flow is finished.
 * Returns the number of flows still queued.
 */
size_t enforcer_flush(struct enforcer *e, bool force);

/* How long the caller may sleep before enforcer_flush() is due: -1 if
 * nothing is pending, else milliseconds (0: now). */
int enforcer_poll_timeout_ms(const struct enforcer *e);

void enforcer_stats(const struct enforcer *e, struct enforce_stats *out);

enum rw_mode enforcer_mode(const struct enforcer *e);

/* Human-readable list of the steps enforce mode takes for k ("blocked map,
 * nft set inet rcptwall flows4, socket destroy"), for logs. Returns buf. */
const char *enforcer_describe(const struct rw_flow_key *k, char *buf, size_t len);

/* Microseconds from a ring record's bpf_ktime_get_ns() to blocked_ns
 * (both CLOCK_MONOTONIC); 0 if the clock order looks wrong. */
uint64_t enforce_latency_us(uint64_t record_ts_ns, uint64_t blocked_ns);

#endif /* RCPTWALL_ENFORCE_H */
