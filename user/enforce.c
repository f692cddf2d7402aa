/*
 * Enforcement: the blocked map at once, the nft set and socket destroy in
 * batches (see enforce.h for the steps and why they are split).
 *
 * Order within a batch: the nft transaction first, then for each flow the
 * blocked-map release and the destroy. The MTA's socket is already
 * silenced by the blocked map, so waiting a few milliseconds costs
 * nothing; with the element in place the flow stays refused without the
 * map entry, the RST that SOCK_DESTROY emits passes both the nft rule and
 * tc and is counted by the element's counter, and any retransmit racing
 * the destroy meets the reject rule.
 */
#include "enforce.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "nft.h"
#include "sockdestroy.h"

#define DEFAULT_TIMEOUT_S 600
#define DEFAULT_BATCH 256
#define WORKER_NICE 5

struct queued_flow {
	struct rw_flow_key key;
	uint64_t queued_ns;
};


static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


/* ---- the real backend ----------------------------------------------------- */

struct real_backend {
	int map_fd;
	struct rwnft *nft;
	struct sockdestroy *sd;
	char *buf; /* command text for one batch */
	size_t buflen;
};

static int real_map_insert(void *ctx, const struct rw_flow_key *k, const struct rw_block *v)
{
	struct real_backend *rb = ctx;
	/* BPF_NOEXIST: a second flagged recipient of the same flow is no new
	 * work, and its drop counter must not be reset. */
	if (bpf_map_update_elem(rb->map_fd, k, v, BPF_NOEXIST))
		return -errno;
	return 0;
}

static int real_map_release(void *ctx, const struct rw_flow_key *k, uint64_t *drops)
{
	struct real_backend *rb = ctx;
	struct rw_block v = { 0 };
	*drops = 0;
	/* One syscall where the kernel has it (hash maps: 5.14+). */
	if (!bpf_map_lookup_and_delete_elem(rb->map_fd, k, &v)) {
		*drops = v.drops;
		return 0;
	}
	if (errno != EOPNOTSUPP && errno != EINVAL)
		return -errno;
	if (!bpf_map_lookup_elem(rb->map_fd, k, &v))
		*drops = v.drops;
	return bpf_map_delete_elem(rb->map_fd, k) ? -errno : 0;
}

static int real_table_setup(void *ctx, uint32_t timeout_s, char *err, size_t errlen)
{
	struct real_backend *rb = ctx;
	char cmds[2048];
	int len = rwnft_build_table(cmds, sizeof(cmds), timeout_s);
	if (len < 0) {
		snprintf(err, errlen, "build table commands: %s", strerror(-len));
		return len;
	}
	return rwnft_run(rb->nft, cmds, err, errlen);
}

static int real_table_add(void *ctx, const struct rw_flow_key *keys, size_t n, char *err,
			  size_t errlen)
{
	struct real_backend *rb = ctx;
	size_t need = rwnft_elements_size(n);
	if (need > rb->buflen) {
		char *nb = realloc(rb->buf, need);
		if (!nb) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		rb->buf = nb;
		rb->buflen = need;
	}
	int len = rwnft_build_elements(rb->buf, rb->buflen, keys, n);
	if (len < 0) {
		snprintf(err, errlen, "build element commands: %s", strerror(-len));
		return len;
	}
	return len ? rwnft_run(rb->nft, rb->buf, err, errlen) : 0;
}

static int real_socket_destroy(void *ctx, const struct rw_flow_key *k)
{
	struct real_backend *rb = ctx;
	return sockdestroy_flow(rb->sd, k);
}

static int real_table_remove(void *ctx, char *err, size_t errlen)
{
	struct real_backend *rb = ctx;
	char cmds[128];
	int len = rwnft_build_delete(cmds, sizeof(cmds));
	return len < 0 ? len : rwnft_run(rb->nft, cmds, err, errlen);
}

static void real_close(void *ctx)
{
	struct real_backend *rb = ctx;
	if (!rb)
		return;
	rwnft_close(rb->nft);
	sockdestroy_close(rb->sd);
	free(rb->buf);
	free(rb);
}

static const struct enforce_backend real_backend_ops = {
	.map_insert = real_map_insert,
	.map_release = real_map_release,
	.table_setup = real_table_setup,
	.table_add = real_table_add,
	.socket_destroy = real_socket_destroy,
	.table_remove = real_table_remove,
	.close = real_close,
};

static int real_backend_open(int map_fd, struct real_backend **out, char *err, size_t errlen)
{
	struct real_backend *rb = calloc(1, sizeof(*rb));
	if (!rb) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rb->map_fd = map_fd;
	rb->nft = rwnft_open(0);
	if (!rb->nft) {
		snprintf(err, errlen, "libnftables context: out of memory");
		real_close(rb);
		return -ENOMEM;
	}
	int rc = sockdestroy_open(&rb->sd);
	if (rc) {
		snprintf(err, errlen, "open NETLINK_SOCK_DIAG socket: %s", strerror(-rc));
		real_close(rb);
		return rc;
	}
	*out = rb;
	return 0;
}

/* ---- the queue between step 1 and steps 2-3 -------------------------------- */

/* Outcome of steps 2-3 for one flow, kept for the done callback. */
struct outcome {
	struct rw_flow_key key;
	int table_err, destroy_err;
};

struct enforcer {
	struct enforcer_opts opts;
	const struct enforce_backend *be;
	void *be_ctx;
	/* Everything below is guarded by mu: with a worker thread, the caller
	 * (step 1) and the worker (steps 2-3) share it. Uncontended without. */
	pthread_mutex_t mu;
	struct queued_flow *q; /* FIFO: q[head..n) waits for steps 2-3 */
	size_t head, n, cap;
	struct outcome *done_q; /* worker mode: outcomes the caller has not seen */
	size_t n_done, cap_done;
	struct enforce_stats st;
	/* Worker mode. */
	bool worker_started, stopping, force, busy;
	pthread_t worker;
	pthread_cond_t work;   /* to the worker: flows queued, force, stop */
	pthread_cond_t idle;   /* to the caller: a batch finished */
	/* One batch in flight (used by whichever thread runs steps 2-3). */
	struct rw_flow_key *batch;
	struct outcome *batch_out;
};

static uint64_t now_ns(const struct enforcer *e)
{
	return e->opts.now_ns ? e->opts.now_ns() : monotonic_ns();
}

static size_t waiting(const struct enforcer *e)
{
	return e->n - e->head;
}

static int queue_push(struct enforcer *e, const struct rw_flow_key *k, uint64_t t)
{
	if (e->head && e->n == e->cap) {
		/* Reuse the consumed front before growing. */
		memmove(e->q, e->q + e->head, waiting(e) * sizeof(*e->q));
		e->n -= e->head;
		e->head = 0;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 256;
		struct queued_flow *nq = realloc(e->q, cap * sizeof(*nq));
		if (!nq)
			return -ENOMEM;
		e->q = nq;
		e->cap = cap;
	}
	e->q[e->n].key = *k;
	e->q[e->n].queued_ns = t;
	e->n++;
	return 0;
}

/* Moves up to batch_size queued flows into e->batch. Under mu. */
static size_t take_batch(struct enforcer *e)
{
	size_t n = waiting(e);
	if (n > e->opts.batch_size)
		n = e->opts.batch_size;
	for (size_t i = 0; i < n; i++)
		e->batch[i] = e->q[e->head + i].key;
	e->head += n;
	if (e->head == e->n)
		e->head = e->n = 0;
	return n;
}

static uint64_t interval_ns(const struct enforcer *e)
{
	return (uint64_t)e->opts.flush_interval_ms * 1000000ull;
}

/* Under mu. */
static bool batch_due(const struct enforcer *e, uint64_t t)
{
	if (!waiting(e))
		return false;
	if (waiting(e) >= e->opts.batch_size)
		return true;
	return t - e->q[e->head].queued_ns >= interval_ns(e);
}

/* ---- steps 2 and 3 ------------------------------------------------------------ */

struct batch_counts {
	uint64_t table_errors, table_elements, released, kernel_drops;
	uint64_t destroyed, destroy_gone, destroy_errors;
};

/* Runs steps 2-3 for e->batch[0..n) into e->batch_out; touches only the
 * backend, never shared state, so the worker runs it unlocked. */
static void run_steps(struct enforcer *e, size_t n, struct batch_counts *c)
{
	char why[512] = "";
	int table_err = e->be->table_add(e->be_ctx, e->batch, n, why, sizeof(why));
	if (table_err) {
		c->table_errors += n;
		fprintf(stderr, "rcptwall: add %zu flows to nft table inet %s: %s\n", n,
			RWNFT_TABLE, why);
	} else {
		c->table_elements += n;
	}
	for (size_t i = 0; i < n; i++) {
		/* The nft element covers the flow now: hand over from the map
		 * (-ENOENT: already gone, e.g. flow end: nothing to hand over). */
		uint64_t drops = 0;
		if (!table_err && !e->be->map_release(e->be_ctx, &e->batch[i], &drops)) {
			c->released++;
			c->kernel_drops += drops;
		}
		int d = e->be->socket_destroy(e->be_ctx, &e->batch[i]);
		if (!d)
			c->destroyed++;
		else if (d == -ENOENT)
			c->destroy_gone++;
		else
			c->destroy_errors++;
		e->batch_out[i] = (struct outcome){ e->batch[i], table_err, d };
	}
}

/* Under mu. */
static void account(struct enforcer *e, const struct batch_counts *c, uint64_t took_ns)
{
	e->st.table_batches++;
	e->st.table_errors += c->table_errors;
	e->st.table_elements += c->table_elements;
	e->st.released += c->released;
	e->st.kernel_drops += c->kernel_drops;
	e->st.destroyed += c->destroyed;
	e->st.destroy_gone += c->destroy_gone;
	e->st.destroy_errors += c->destroy_errors;
	if (took_ns > e->st.max_flush_ns)
		e->st.max_flush_ns = took_ns;
}

static void report(const struct enforcer *e, const struct outcome *o, size_t n)
{
	if (!e->opts.done)
		return;
	for (size_t i = 0; i < n; i++)
		e->opts.done(&o[i].key, o[i].table_err, o[i].destroy_err, e->opts.done_ctx);
}

/* ---- worker mode ----------------------------------------------------------------- */

/* Keeps outcomes for the caller's thread (the done callback usually logs,
 * and the logger belongs to the event loop). Under mu. */
static void keep_outcomes(struct enforcer *e, size_t n)
{
	if (!e->opts.done)
		return;
	if (e->n_done + n > e->cap_done) {
		size_t cap = e->cap_done ? e->cap_done : 256;
		while (cap < e->n_done + n)
			cap *= 2;
		struct outcome *nd = realloc(e->done_q, cap * sizeof(*nd));
		if (!nd) {
			e->st.queue_errors += n; /* outcomes lost; the blocks stand */
			return;
		}
		e->done_q = nd;
		e->cap_done = cap;
	}
	memcpy(e->done_q + e->n_done, e->batch_out, n * sizeof(*e->done_q));
	e->n_done += n;
}

/* Waits (under mu) until a batch is due, or is wanted now (force, stop);
 * returns with nothing waiting only when stopping. */
static void wait_for_batch(struct enforcer *e)
{
	for (;;) {
		bool hurry = e->stopping || e->force;
		if (hurry ? waiting(e) > 0 : batch_due(e, monotonic_ns()))
			return;
		if (e->stopping)
			return;
		if (!waiting(e)) {
			pthread_cond_wait(&e->work, &e->mu);
			continue;
		}
		uint64_t due = e->q[e->head].queued_ns + interval_ns(e);
		struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
				       .tv_nsec = (long)(due % 1000000000ull) };
		pthread_cond_timedwait(&e->work, &e->mu, &ts);
	}
}

static void *worker_main(void *arg)
{
	struct enforcer *e = arg;
	/* Under CPU contention the event loop (step 1 for the next flow) goes
	 * first; the blocked map already holds what waits here. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), WORKER_NICE);
	pthread_mutex_lock(&e->mu);
	for (;;) {
		wait_for_batch(e);
		if (!waiting(e) && e->stopping)
			break;
		size_t n = take_batch(e);
		e->busy = true;
		pthread_mutex_unlock(&e->mu);

		struct batch_counts c = { 0 };
		uint64_t start = monotonic_ns();
		run_steps(e, n, &c);
		uint64_t took = monotonic_ns() - start;

		pthread_mutex_lock(&e->mu);
		account(e, &c, took);
		keep_outcomes(e, n);
		e->busy = false;
		pthread_cond_broadcast(&e->idle);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

static int start_worker(struct enforcer *e)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	/* Deadlines are queued_ns + interval, on CLOCK_MONOTONIC. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&e->work, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return -rc;
	pthread_cond_init(&e->idle, NULL);
	/* Set before the thread exists: it only ever reads it. */
	e->worker_started = true;
	rc = pthread_create(&e->worker, NULL, worker_main, e);
	if (rc) {
		e->worker_started = false;
		pthread_cond_destroy(&e->work);
		pthread_cond_destroy(&e->idle);
		return -rc;
	}
	return 0;
}

/* Finishes every queued flow and joins the worker. */
static void stop_worker(struct enforcer *e)
{
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_cond_signal(&e->work);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->worker, NULL);
	pthread_cond_destroy(&e->work);
	pthread_cond_destroy(&e->idle);
	e->worker_started = false;
}

/* Hands the outcomes to the done callback in the caller's thread. */
static void drain_outcomes(struct enforcer *e)
{
	for (;;) {
		pthread_mutex_lock(&e->mu);
		size_t n = e->n_done;
		struct outcome *o = e->done_q;
		e->done_q = NULL;
		e->n_done = e->cap_done = 0;
		pthread_mutex_unlock(&e->mu);
		if (!n) {
			free(o);
			return;
		}
		report(e, o, n);
		free(o);
	}
}

/* ---- the enforcer ------------------------------------------------------- */

static int setup_backend(struct enforcer *e, char *err, size_t errlen)
{
	if (e->opts.backend) {
		e->be = e->opts.backend;
		e->be_ctx = e->opts.backend_ctx;
	} else {
		if (e->opts.blocked_map_fd < 0) {
			snprintf(err, errlen, "enforce mode needs the blocked map");
			return -EBADF;
		}
		struct real_backend *rb;
		int rc = real_backend_open(e->opts.blocked_map_fd, &rb, err, errlen);
		if (rc)
			return rc;
		e->be = &real_backend_ops;
		e->be_ctx = rb;
	}
	char why[512] = "";
	int rc = e->be->table_setup(e->be_ctx, e->opts.set_timeout_s, why, sizeof(why));
	if (rc)
		snprintf(err, errlen, "create nft table inet %s: %s", RWNFT_TABLE, why);
	return rc;
}

static void release_all(struct enforcer *e)
{
	if (e->be && e->be->close)
		e->be->close(e->be_ctx);
	pthread_mutex_destroy(&e->mu);
	free(e->q);
	free(e->done_q);
	free(e->batch);
	free(e->batch_out);
	free(e);
}

static int start_enforcing(struct enforcer *e, char *err, size_t errlen)
{
	e->batch = calloc(e->opts.batch_size, sizeof(*e->batch));
	e->batch_out = calloc(e->opts.batch_size, sizeof(*e->batch_out));
	if (!e->batch || !e->batch_out) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = setup_backend(e, err, errlen);
	if (rc)
		return rc;
	if (e->opts.worker_thread) {
		rc = start_worker(e);
		if (rc)
			snprintf(err, errlen, "start enforcement thread: %s", strerror(-rc));
	}
	return rc;
}

int enforcer_new(const struct enforcer_opts *opts, struct enforcer **out, char *err,
		 size_t errlen)
{
	struct enforcer *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&e->mu, NULL);
	e->opts = *opts;
	if (!e->opts.set_timeout_s)
		e->opts.set_timeout_s = DEFAULT_TIMEOUT_S;
	if (!e->opts.batch_size)
		e->opts.batch_size = DEFAULT_BATCH;
	/* The injected clock is for the loop-driven mode's tests; the worker
	 * sleeps on the real one. */
	if (e->opts.worker_thread)
		e->opts.now_ns = NULL;
	if (e->opts.mode == RW_MODE_ENFORCE) {
		int rc = start_enforcing(e, err, errlen);
		if (rc) {
			release_all(e);
			return rc;
		}
	}
	*out = e;
	return 0;
}

void enforcer_free(struct enforcer *e)
{
	if (!e)
		return;
	if (e->be) {
		/* Queued flows are in the blocked map already: finish them. */
		if (e->worker_started) {
			stop_worker(e);
			drain_outcomes(e);
		}
		while (waiting(e))
			enforcer_flush(e, true);
		if (!e->opts.keep_rules_on_exit) {
			char why[512];
			if (e->be->table_remove(e->be_ctx, why, sizeof(why)))
				fprintf(stderr, "rcptwall: remove nft table inet %s: %s\n", RWNFT_TABLE,
					why);
		}
	}
	release_all(e);
}

enum rw_mode enforcer_mode(const struct enforcer *e)
{
	return e->opts.mode;
}

int enforcer_block(struct enforcer *e, const struct rw_flow_key *k, struct enforce_result *res)
{
	memset(res, 0, sizeof(*res));
	if (e->opts.mode != RW_MODE_ENFORCE) {
		res->would_block = true;
		pthread_mutex_lock(&e->mu);
		e->st.would_block++;
		pthread_mutex_unlock(&e->mu);
		return 0;
	}
	/* Step 1, outside the lock: nothing may delay it. */
	struct rw_block v = { .blocked_ns = monotonic_ns(), .drops = 0 };
	int rc = e->be->map_insert(e->be_ctx, k, &v);
	res->blocked_ns = monotonic_ns();

	pthread_mutex_lock(&e->mu);
	if (rc == -EEXIST) {
		res->blocked = true;
		res->already_blocked = true;
		e->st.already_blocked++;
		rc = 0;
	} else {
		if (rc) {
			/* No kernel drop (map full?): steps 2-3 still cut the
			 * connection, a few milliseconds later. */
			res->map_err = rc;
			e->st.map_errors++;
		} else {
			res->blocked = true;
			e->st.blocked++;
		}
		if (queue_push(e, k, now_ns(e)))
			e->st.queue_errors++; /* the drop stands; the MTA times out instead */
		else if (e->worker_started)
			pthread_cond_signal(&e->work);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

/* Loop-driven mode: steps 2-3 for one batch, in the caller's thread. */
static void flush_inline(struct enforcer *e, bool force)
{
	uint64_t start = now_ns(e);
	pthread_mutex_lock(&e->mu);
	bool due = force ? waiting(e) > 0 : batch_due(e, start);
	size_t n = due ? take_batch(e) : 0;
	pthread_mutex_unlock(&e->mu);
	if (!n)
		return;
	struct batch_counts c = { 0 };
	run_steps(e, n, &c);
	pthread_mutex_lock(&e->mu);
	account(e, &c, now_ns(e) - start);
	pthread_mutex_unlock(&e->mu);
	report(e, e->batch_out, n);
}

/* Worker mode: force waits until the worker has emptied the queue. */
static void flush_worker(struct enforcer *e, bool force)
{
	if (force) {
		pthread_mutex_lock(&e->mu);
		e->force = true;
		pthread_cond_signal(&e->work);
		while (waiting(e) || e->busy)
			pthread_cond_wait(&e->idle, &e->mu);
		e->force = false;
		pthread_mutex_unlock(&e->mu);
	}
	drain_outcomes(e);
}

size_t enforcer_flush(struct enforcer *e, bool force)
{
	if (!e->be)
		return 0;
	if (e->worker_started)
		flush_worker(e, force);
	else
		flush_inline(e, force);
	pthread_mutex_lock(&e->mu);
	size_t left = waiting(e);
	pthread_mutex_unlock(&e->mu);
	return left;
}

int enforcer_poll_timeout_ms(const struct enforcer *e)
{
	struct enforcer *me = (struct enforcer *)e; /* the lock, not the state, changes */
	pthread_mutex_lock(&me->mu);
	int ms = -1;
	if (e->worker_started) {
		/* The worker does the work; the caller only collects outcomes. */
		if (e->n_done)
			ms = 0;
		else if (waiting(e) || e->busy)
			ms = e->opts.flush_interval_ms ? (int)e->opts.flush_interval_ms : 1;
	} else if (waiting(e)) {
		uint64_t waited = now_ns(e) - e->q[e->head].queued_ns;
		if (waiting(e) >= e->opts.batch_size || waited >= interval_ns(e))
			ms = 0;
		else /* round up: never early */
			ms = (int)((interval_ns(e) - waited + 999999) / 1000000);
	}
	pthread_mutex_unlock(&me->mu);
	return ms;
}

void enforcer_stats(const struct enforcer *e, struct enforce_stats *out)
{
	struct enforcer *me = (struct enforcer *)e;
	pthread_mutex_lock(&me->mu);
	*out = e->st;
	out->queued = waiting(e);
	pthread_mutex_unlock(&me->mu);
}

const char *enforcer_describe(const struct rw_flow_key *k, char *buf, size_t len)
{
	snprintf(buf, len, "blocked map, nft set inet %s %s, socket destroy", RWNFT_TABLE,
		 k->family == RW_AF_INET6 ? RWNFT_SET6 : RWNFT_SET4);
	return buf;
}

uint64_t enforce_latency_us(uint64_t record_ts_ns, uint64_t blocked_ns)
{
	return blocked_ns >= record_ts_ns ? (blocked_ns - record_ts_ns) / 1000 : 0;
}
