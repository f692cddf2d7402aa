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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nft.h"
#include "sockdestroy.h"

#define DEFAULT_TIMEOUT_S 600
#define DEFAULT_BATCH 256

struct queued_flow {
	struct rw_flow_key key;
	uint64_t queued_ns;
};

struct enforcer {
	struct enforcer_opts opts;
	const struct enforce_backend *be;
	void *be_ctx;
	struct queued_flow *q; /* FIFO: q[head..n) waits for steps 2-3 */
	size_t head, n, cap;
	struct rw_flow_key *batch; /* scratch for one transaction */
	struct enforce_stats st;
};

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(const struct enforcer *e)
{
	return e->opts.now_ns ? e->opts.now_ns() : monotonic_ns();
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

int enforcer_new(const struct enforcer_opts *opts, struct enforcer **out, char *err,
		 size_t errlen)
{
	struct enforcer *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->opts = *opts;
	if (!e->opts.set_timeout_s)
		e->opts.set_timeout_s = DEFAULT_TIMEOUT_S;
	if (!e->opts.batch_size)
		e->opts.batch_size = DEFAULT_BATCH;
	if (e->opts.mode == RW_MODE_ENFORCE) {
		e->batch = calloc(e->opts.batch_size, sizeof(*e->batch));
		int rc = e->batch ? setup_backend(e, err, errlen) : -ENOMEM;
		if (rc) {
			if (rc == -ENOMEM && !e->batch)
				snprintf(err, errlen, "out of memory");
			if (e->be && e->be->close)
				e->be->close(e->be_ctx);
			free(e->batch);
			free(e);
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
		while (e->n - e->head)
			enforcer_flush(e, true);
		if (!e->opts.keep_rules_on_exit) {
			char why[512];
			if (e->be->table_remove(e->be_ctx, why, sizeof(why)))
				fprintf(stderr, "rcptwall: remove nft table inet %s: %s\n", RWNFT_TABLE,
					why);
		}
		if (e->be->close)
			e->be->close(e->be_ctx);
	}
	free(e->q);
	free(e->batch);
	free(e);
}

enum rw_mode enforcer_mode(const struct enforcer *e)
{
	return e->opts.mode;
}

static int queue_push(struct enforcer *e, const struct rw_flow_key *k, uint64_t t)
{
	if (e->head && e->n == e->cap) {
		/* Reuse the consumed front before growing. */
		memmove(e->q, e->q + e->head, (e->n - e->head) * sizeof(*e->q));
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

int enforcer_block(struct enforcer *e, const struct rw_flow_key *k, struct enforce_result *res)
{
	memset(res, 0, sizeof(*res));
	if (e->opts.mode != RW_MODE_ENFORCE) {
		res->would_block = true;
		e->st.would_block++;
		return 0;
	}
	struct rw_block v = { .blocked_ns = monotonic_ns(), .drops = 0 };
	int rc = e->be->map_insert(e->be_ctx, k, &v);
	res->blocked_ns = monotonic_ns();
	if (rc == -EEXIST) {
		res->blocked = true;
		res->already_blocked = true;
		e->st.already_blocked++;
		return 0;
	}
	if (rc) {
		res->map_err = rc;
		e->st.map_errors++;
		return rc;
	}
	res->blocked = true;
	e->st.blocked++;
	if (queue_push(e, k, now_ns(e)))
		e->st.queue_errors++; /* the drop stands; the MTA times out instead */
	return 0;
}

static bool batch_due(const struct enforcer *e, uint64_t t)
{
	size_t waiting = e->n - e->head;
	if (!waiting)
		return false;
	if (waiting >= e->opts.batch_size)
		return true;
	return t - e->q[e->head].queued_ns >= (uint64_t)e->opts.flush_interval_ms * 1000000ull;
}

/* The nft element covers the flow now: hand over from the map. */
static void release_map_entry(struct enforcer *e, const struct rw_flow_key *k)
{
	uint64_t drops = 0;
	int rc = e->be->map_release(e->be_ctx, k, &drops);
	if (!rc) {
		e->st.released++;
		e->st.kernel_drops += drops;
	}
	/* -ENOENT: someone else removed it (flow end): nothing to hand over. */
}

/* Steps 2 and 3 for the next batch of up to batch_size flows. */
static void flush_batch(struct enforcer *e)
{
	size_t n = e->n - e->head;
	if (n > e->opts.batch_size)
		n = e->opts.batch_size;
	for (size_t i = 0; i < n; i++)
		e->batch[i] = e->q[e->head + i].key;
	e->head += n;
	if (e->head == e->n)
		e->head = e->n = 0;

	char why[512] = "";
	int table_err = e->be->table_add(e->be_ctx, e->batch, n, why, sizeof(why));
	e->st.table_batches++;
	if (table_err) {
		e->st.table_errors += n;
		fprintf(stderr, "rcptwall: add %zu flows to nft table inet %s: %s\n", n,
			RWNFT_TABLE, why);
	} else {
		e->st.table_elements += n;
	}
	for (size_t i = 0; i < n; i++) {
		if (!table_err)
			release_map_entry(e, &e->batch[i]);
		int d = e->be->socket_destroy(e->be_ctx, &e->batch[i]);
		if (!d)
			e->st.destroyed++;
		else if (d == -ENOENT)
			e->st.destroy_gone++;
		else
			e->st.destroy_errors++;
		if (e->opts.done)
			e->opts.done(&e->batch[i], table_err, d, e->opts.done_ctx);
	}
}

size_t enforcer_flush(struct enforcer *e, bool force)
{
	if (!e->be)
		return 0;
	uint64_t start = now_ns(e);
	if (force ? e->n > e->head : batch_due(e, start))
		flush_batch(e);
	uint64_t took = now_ns(e) - start;
	if (took > e->st.max_flush_ns)
		e->st.max_flush_ns = took;
	return e->n - e->head;
}

int enforcer_poll_timeout_ms(const struct enforcer *e)
{
	size_t waiting = e->n - e->head;
	if (!waiting)
		return -1;
	if (waiting >= e->opts.batch_size)
		return 0;
	uint64_t waited = now_ns(e) - e->q[e->head].queued_ns;
	uint64_t limit = (uint64_t)e->opts.flush_interval_ms * 1000000ull;
	if (waited >= limit)
		return 0;
	return (int)((limit - waited + 999999) / 1000000); /* round up: never early */
}

void enforcer_stats(const struct enforcer *e, struct enforce_stats *out)
{
	*out = e->st;
	out->queued = e->n - e->head;
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
