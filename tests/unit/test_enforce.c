/*
 * Enforcement without the kernel: nft command building (user/nft.c), the
 * SOCK_DESTROY request layout (user/sockdestroy.c), and the enforcer's
 * steps, batching and modes against a recording fake backend and a fake
 * clock (user/enforce.c). The real kernel path is tests/bpf/test_enforce_live.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enforce.h"
#include "flow.h"
#include "nft.h"
#include "sockdestroy.h"

static struct rw_flow_key key4(const char *s, uint16_t sp, const char *d, uint16_t dp)
{
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, s, sp, d, dp), 0);
	return k;
}

/* ---- nft command text ---------------------------------------------------- */

/*
 * The structural guarantee: element commands consist of the fixed command
 * words and characters an address or port can produce, nothing else. Any
 * byte a recipient string could carry (quotes, ;, newlines, braces beyond
 * the one pair, letters other than hex digits) would show up here.
 */
static void assert_only_element_text(const char *s)
{
	static const char *const words[] = { "add element inet rcptwall flows4 { ",
					     "add element inet rcptwall flows6 { " };
	while (*s) {
		size_t w;
		for (w = 0; w < 2; w++)
			if (!strncmp(s, words[w], strlen(words[w])))
				break;
		if (w == 2)
			fail_msg("unexpected command text: '%.40s'", s);
		s += strlen(words[w]);
		size_t n = strspn(s, "0123456789abcdef.:, ");
		s += n;
		if (strncmp(s, "}\n", 2))
			fail_msg("unexpected byte in element list: '%.40s'", s);
		s += 2;
	}
}

static void test_elements_text(void **state)
{
	struct rw_flow_key k[3] = {
		key4("198.51.100.1", 40000, "198.51.100.2", 25),
		key4("2001:db8:25::1", 1, "2001:db8:25::2", 587),
		key4("198.51.100.7", 65535, "198.51.100.8", 465),
	};
	char buf[1024];
	int len = rwnft_build_elements(buf, sizeof(buf), k, 3);
	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	assert_string_equal(buf,
			    "add element inet rcptwall flows4 { 198.51.100.1 . 40000 . 198.51.100.2 . 25"
			    ", 198.51.100.7 . 65535 . 198.51.100.8 . 465 }\n"
			    "add element inet rcptwall flows6 { 2001:db8:25::1 . 1 . 2001:db8:25::2 . 587 }\n");
	assert_only_element_text(buf);
	assert_true((size_t)len < rwnft_elements_size(3));

	/* One family only: one command. */
	len = rwnft_build_elements(buf, sizeof(buf), &k[1], 1);
	assert_string_equal(buf, "add element inet rcptwall flows6 { 2001:db8:25::1 . 1 . "
				 "2001:db8:25::2 . 587 }\n");
	/* Nothing to add: empty text. */
	assert_int_equal(rwnft_build_elements(buf, sizeof(buf), k, 0), 0);
	assert_string_equal(buf, "");
}

/* A key is bytes; whatever they are, the text stays addresses and ports. */
static void test_elements_hostile_bytes(void **state)
{
	struct rw_flow_key k;
	srand(5);
	char buf[512];
	for (int round = 0; round < 2000; round++) {
		uint8_t *raw = (uint8_t *)&k;
		for (size_t i = 0; i < sizeof(k); i++)
			raw[i] = (uint8_t)rand();
		/* Recipient-like text in the address bytes must not matter. */
		if (round == 0)
			memcpy(k.saddr, "\"; flush ruleset", 16);
		k.family = round % 2 ? RW_AF_INET6 : RW_AF_INET;
		int len = rwnft_build_elements(buf, sizeof(buf), &k, 1);
		assert_true(len > 0);
		assert_true((size_t)len <= rwnft_elements_size(1));
		assert_only_element_text(buf);
	}
	/* Unknown family: refused, nothing written. */
	k.family = 7;
	assert_int_equal(rwnft_build_elements(buf, sizeof(buf), &k, 1), -EINVAL);
}

static void test_elements_worst_case_size(void **state)
{
	/* The longest forms inet_ntop writes: full IPv6 and 5-digit ports. */
	struct rw_flow_key k[64];
	for (int i = 0; i < 64; i++) {
		k[i] = key4("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535,
			    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
		k[i].sport = (uint16_t)(65535 - i);
	}
	k[1] = key4("255.255.255.255", 65535, "255.255.255.254", 65535);
	size_t need = rwnft_elements_size(64);
	char *buf = malloc(need);
	assert_non_null(buf);
	int len = rwnft_build_elements(buf, need, k, 64);
	assert_true(len > 0 && (size_t)len < need);
	/* Short buffers: -ENOSPC, never a cut command. */
	assert_int_equal(rwnft_build_elements(buf, (size_t)len, k, 64), -ENOSPC);
	assert_int_equal(rwnft_build_elements(buf, 10, k, 64), -ENOSPC);
	free(buf);
}

static void test_table_text(void **state)
{
	char buf[2048];
	int len = rwnft_build_table(buf, sizeof(buf), 600);
	assert_true(len > 0);
	/* Replaces a stale table in the same transaction. */
	assert_ptr_equal(strstr(buf, "add table inet rcptwall\ndelete table inet rcptwall\n"), buf);
	assert_non_null(strstr(buf, "type ipv4_addr . inet_service . ipv4_addr . inet_service"));
	assert_non_null(strstr(buf, "type ipv6_addr . inet_service . ipv6_addr . inet_service"));
	assert_non_null(strstr(buf, "flags timeout\n\t\ttimeout 600s\n\t\tcounter\n"));
	assert_non_null(strstr(buf, "type filter hook output priority filter - 10; policy accept;"));
	assert_non_null(strstr(buf, "ip saddr . tcp sport . ip daddr . tcp dport @flows4 jump blocked"));
	assert_non_null(strstr(buf, "ip6 saddr . tcp sport . ip6 daddr . tcp dport @flows6 jump blocked"));
	/* A new connection reusing a blocked 4-tuple is marked at its SYN and passes. */
	assert_non_null(strstr(buf, "tcp flags & (syn | ack) == syn ct state new"
				    " ct mark set ct mark | 0x40000000 return"));
	assert_non_null(strstr(buf, "ct mark & 0x40000000 == 0x40000000 return"));
	/* The socket destroy's RST gets out; everything else of the flow is refused. */
	assert_non_null(strstr(buf, "tcp flags & rst == rst counter return\n"
				    "\t\tcounter reject with tcp reset"));
	len = rwnft_build_table(buf, sizeof(buf), 86400);
	assert_non_null(strstr(buf, "timeout 86400s"));
	assert_int_equal(rwnft_build_table(buf, 100, 600), -ENOSPC);
	assert_true(rwnft_build_delete(buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "delete table inet rcptwall\n");
}

/* ---- SOCK_DESTROY request ---------------------------------------------------- */

struct destroy_msg {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 req;
};

static void test_destroy_request(void **state)
{
	struct destroy_msg m;
	assert_int_equal(sockdestroy_request_size(), sizeof(m));
	struct rw_flow_key k = key4("198.51.100.1", 40000, "198.51.100.2", 25);
	assert_int_equal(sockdestroy_build_request(&k, 77, &m, sizeof(m)), (int)sizeof(m));
	assert_int_equal(m.nlh.nlmsg_len, sizeof(m));
	assert_int_equal(m.nlh.nlmsg_type, SOCK_DESTROY);
	assert_int_equal(m.nlh.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
	assert_int_equal(m.nlh.nlmsg_seq, 77);
	assert_int_equal(m.req.sdiag_family, AF_INET);
	assert_int_equal(m.req.sdiag_protocol, IPPROTO_TCP);
	assert_int_equal(ntohs(m.req.id.idiag_sport), 40000);
	assert_int_equal(ntohs(m.req.id.idiag_dport), 25);
	/* Local end in src, remote in dst; IPv4 in the first word only. */
	assert_memory_equal(m.req.id.idiag_src, k.saddr, 4);
	assert_memory_equal(m.req.id.idiag_dst, k.daddr, 4);
	assert_int_equal(m.req.id.idiag_src[1] | m.req.id.idiag_src[2] | m.req.id.idiag_src[3], 0);
	assert_int_equal(m.req.id.idiag_if, 0);
	assert_int_equal(m.req.id.idiag_cookie[0], INET_DIAG_NOCOOKIE);
	assert_int_equal(m.req.id.idiag_cookie[1], INET_DIAG_NOCOOKIE);

	k = key4("2001:db8:25::1", 1234, "2001:db8:25::2", 587);
	assert_int_equal(sockdestroy_build_request(&k, 78, &m, sizeof(m)), (int)sizeof(m));
	assert_int_equal(m.req.sdiag_family, AF_INET6);
	assert_memory_equal(m.req.id.idiag_src, k.saddr, 16);
	assert_memory_equal(m.req.id.idiag_dst, k.daddr, 16);

	assert_int_equal(sockdestroy_build_request(&k, 1, &m, sizeof(m) - 1), -ENOSPC);
	k.family = 0;
	assert_int_equal(sockdestroy_build_request(&k, 1, &m, sizeof(m)), -EINVAL);
}

/* ---- the enforcer, with a fake backend ----------------------------------------- */

enum fake_call { CALL_MAP = 1, CALL_RELEASE, CALL_SETUP, CALL_ADD, CALL_DESTROY, CALL_REMOVE,
		 CALL_CLOSE };

struct fake {
	enum fake_call calls[20000];
	size_t n_calls;
	size_t add_sizes[256];
	size_t n_adds;
	struct rw_flow_key map[8192];
	size_t n_map;
	int map_err, add_err, destroy_err, setup_err;
	uint32_t timeout_s;
	size_t done_count;
	int last_done_table_err, last_done_destroy_err;
};

static struct fake *F;
static uint64_t fake_now;
/* With a worker thread, the fake is called from two threads. */
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t main_thread;
static bool done_off_main; /* a done callback ran outside the caller's thread */

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void record(enum fake_call c)
{
	pthread_mutex_lock(&fake_mu);
	if (F->n_calls < sizeof(F->calls) / sizeof(F->calls[0]))
		F->calls[F->n_calls++] = c;
	pthread_mutex_unlock(&fake_mu);
}

static int fake_map_insert(void *ctx, const struct rw_flow_key *k, const struct rw_block *v)
{
	record(CALL_MAP);
	assert_int_not_equal(v->blocked_ns, 0);
	assert_int_equal(v->drops, 0);
	if (F->map_err)
		return F->map_err;
	pthread_mutex_lock(&fake_mu);
	int rc = 0;
	for (size_t i = 0; i < F->n_map && !rc; i++)
		if (flow_key_equal(&F->map[i], k))
			rc = -EEXIST;
	if (!rc)
		F->map[F->n_map++] = *k;
	pthread_mutex_unlock(&fake_mu);
	return rc;
}

static int fake_release(void *ctx, const struct rw_flow_key *k, uint64_t *drops)
{
	record(CALL_RELEASE);
	int rc = -ENOENT;
	pthread_mutex_lock(&fake_mu);
	for (size_t i = 0; i < F->n_map && rc; i++)
		if (flow_key_equal(&F->map[i], k)) {
			F->map[i] = F->map[--F->n_map];
			*drops = 3;
			rc = 0;
		}
	pthread_mutex_unlock(&fake_mu);
	return rc;
}

static int fake_setup(void *ctx, uint32_t timeout_s, char *err, size_t errlen)
{
	record(CALL_SETUP);
	F->timeout_s = timeout_s;
	if (F->setup_err)
		snprintf(err, errlen, "Operation not permitted");
	return F->setup_err;
}

static int fake_add(void *ctx, const struct rw_flow_key *keys, size_t n, char *err,
		    size_t errlen)
{
	record(CALL_ADD);
	if (F->n_adds < sizeof(F->add_sizes) / sizeof(F->add_sizes[0]))
		F->add_sizes[F->n_adds++] = n;
	if (F->add_err)
		snprintf(err, errlen, "Could not process rule");
	return F->add_err;
}

static int fake_destroy(void *ctx, const struct rw_flow_key *k)
{
	record(CALL_DESTROY);
	return F->destroy_err;
}

static int fake_remove(void *ctx, char *err, size_t errlen)
{
	record(CALL_REMOVE);
	return 0;
}

static void fake_close(void *ctx)
{
	record(CALL_CLOSE);
}

static const struct enforce_backend fake_backend = {
	.map_insert = fake_map_insert,
	.map_release = fake_release,
	.table_setup = fake_setup,
	.table_add = fake_add,
	.socket_destroy = fake_destroy,
	.table_remove = fake_remove,
	.close = fake_close,
};

static void on_done(const struct rw_flow_key *k, int table_err, int destroy_err, void *ctx)
{
	if (!pthread_equal(pthread_self(), main_thread))
		done_off_main = true;
	F->done_count++;
	F->last_done_table_err = table_err;
	F->last_done_destroy_err = destroy_err;
}

static int fake_setup_test(void **state)
{
	F = calloc(1, sizeof(*F));
	fake_now = 1000000000ull;
	main_thread = pthread_self();
	done_off_main = false;
	return F ? 0 : -1;
}

static int fake_teardown_test(void **state)
{
	free(F);
	F = NULL;
	return 0;
}

static size_t count_calls(enum fake_call c)
{
	size_t n = 0;
	pthread_mutex_lock(&fake_mu);
	for (size_t i = 0; i < F->n_calls; i++)
		n += F->calls[i] == c;
	pthread_mutex_unlock(&fake_mu);
	return n;
}

static struct enforcer *fake_enforcer(enum rw_mode mode, bool keep, uint32_t batch)
{
	struct enforcer_opts o = {
		.mode = mode,
		.blocked_map_fd = -1,
		.keep_rules_on_exit = keep,
		.flush_interval_ms = 2,
		.batch_size = batch,
		.done = on_done,
		.backend = &fake_backend,
		.now_ns = fake_clock,
	};
	struct enforcer *e = NULL;
	char err[256];
	int rc = enforcer_new(&o, &e, err, sizeof(err));
	if (rc)
		fail_msg("enforcer_new: %s", err);
	return e;
}

static void test_monitor_mode(void **state)
{
	struct enforcer *e = fake_enforcer(RW_MODE_MONITOR, false, 0);
	assert_int_equal(enforcer_mode(e), RW_MODE_MONITOR);
	struct rw_flow_key k = key4("198.51.100.1", 40000, "198.51.100.2", 25);
	struct enforce_result r;
	assert_int_equal(enforcer_block(e, &k, &r), 0);
	assert_true(r.would_block);
	assert_false(r.blocked);
	assert_int_equal(enforcer_poll_timeout_ms(e), -1);
	assert_int_equal(enforcer_flush(e, true), 0);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.would_block, 1);
	assert_int_equal(st.blocked, 0);
	enforcer_free(e);
	/* Nothing at all: no table, no map, no socket. */
	assert_int_equal(F->n_calls, 0);
}

static void test_enforce_steps_in_order(void **state)
{
	struct enforcer *e = fake_enforcer(RW_MODE_ENFORCE, false, 0);
	assert_int_equal(F->calls[0], CALL_SETUP);
	assert_int_equal(F->timeout_s, 600); /* the default */
	struct rw_flow_key k = key4("198.51.100.1", 40000, "198.51.100.2", 25);
	struct enforce_result r;
	assert_int_equal(enforcer_block(e, &k, &r), 0);
	assert_true(r.blocked);
	assert_int_not_equal(r.blocked_ns, 0);
	/* Step 1 at once, steps 2-3 wait for the batch. */
	assert_int_equal(F->n_calls, 2);
	assert_int_equal(F->calls[1], CALL_MAP);
	assert_int_equal(enforcer_poll_timeout_ms(e), 2);
	assert_int_equal(enforcer_flush(e, false), 1); /* not due yet */
	assert_int_equal(F->n_calls, 2);
	fake_now += 1000000; /* 1 ms */
	assert_int_equal(enforcer_poll_timeout_ms(e), 1);
	fake_now += 1000000;
	assert_int_equal(enforcer_poll_timeout_ms(e), 0);
	assert_int_equal(enforcer_flush(e, false), 0);
	/* nft first, then the map hands over, then the destroy. */
	assert_int_equal(F->calls[2], CALL_ADD);
	assert_int_equal(F->calls[3], CALL_RELEASE);
	assert_int_equal(F->calls[4], CALL_DESTROY);
	assert_int_equal(F->n_map, 0);
	assert_int_equal(F->done_count, 1);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.kernel_drops, 3);
	assert_int_equal(enforcer_poll_timeout_ms(e), -1);

	/* Another recipient of the same flow before its batch: no new work. */
	struct rw_flow_key k2 = key4("198.51.100.1", 40001, "198.51.100.2", 25);
	assert_int_equal(enforcer_block(e, &k2, &r), 0);
	assert_int_equal(enforcer_block(e, &k2, &r), 0);
	assert_true(r.already_blocked);
	assert_int_equal(enforcer_flush(e, true), 0);
	assert_int_equal(F->add_sizes[1], 1);

	enforcer_free(e);
	assert_int_equal(F->calls[F->n_calls - 2], CALL_REMOVE);
	assert_int_equal(F->calls[F->n_calls - 1], CALL_CLOSE);
}

static void test_batching(void **state)
{
	struct enforcer *e = fake_enforcer(RW_MODE_ENFORCE, false, 100);
	struct enforce_result r;
	for (int i = 0; i < 1050; i++) {
		struct rw_flow_key k = key4("198.51.100.1", (uint16_t)(1000 + i), "198.51.100.2", 25);
		assert_int_equal(enforcer_block(e, &k, &r), 0);
		if (enforcer_poll_timeout_ms(e) == 0)
			enforcer_flush(e, false);
	}
	/* Ten full batches went out as the queue filled, no time passed. */
	assert_int_equal(F->n_adds, 10);
	for (size_t i = 0; i < F->n_adds; i++)
		assert_int_equal(F->add_sizes[i], 100);
	assert_int_equal(count_calls(CALL_MAP), 1050);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.queued, 50);
	assert_int_equal(st.blocked, 1050);
	/* The rest goes out when its time comes... */
	assert_int_equal(enforcer_flush(e, false), 50);
	fake_now += 2000000;
	assert_int_equal(enforcer_flush(e, false), 0);
	assert_int_equal(F->add_sizes[10], 50);
	assert_int_equal(count_calls(CALL_DESTROY), 1050);
	enforcer_stats(e, &st);
	assert_int_equal(st.table_elements, 1050);
	assert_int_equal(st.table_batches, 11);
	assert_int_equal(st.destroyed, 1050);
	enforcer_free(e);
}

/* enforcer_free finishes what is queued: those flows are in the map. */
static void test_free_flushes_and_keeps(void **state)
{
	struct enforcer *e = fake_enforcer(RW_MODE_ENFORCE, true, 8);
	struct enforce_result r;
	for (int i = 0; i < 20; i++) {
		struct rw_flow_key k = key4("2001:db8:25::1", (uint16_t)(1000 + i), "2001:db8:25::2", 25);
		assert_int_equal(enforcer_block(e, &k, &r), 0);
	}
	assert_int_equal(F->n_adds, 0);
	enforcer_free(e);
	assert_int_equal(F->n_adds, 3); /* 8 + 8 + 4 */
	assert_int_equal(count_calls(CALL_DESTROY), 20);
	assert_int_equal(count_calls(CALL_REMOVE), 0); /* keep_rules_on_exit */
	assert_int_equal(F->calls[F->n_calls - 1], CALL_CLOSE);
}

static void test_failures(void **state)
{
	struct enforcer *e = fake_enforcer(RW_MODE_ENFORCE, false, 0);
	struct rw_flow_key k = key4("198.51.100.1", 40000, "198.51.100.2", 25);
	struct enforce_result r;

	F->map_err = -E2BIG; /* map full */
	assert_int_equal(enforcer_block(e, &k, &r), -E2BIG);
	assert_false(r.blocked);
	assert_int_equal(r.map_err, -E2BIG);
	/* Without the kernel drop, nft and the destroy still cut it. */
	assert_int_equal(enforcer_poll_timeout_ms(e), 2);
	assert_int_equal(enforcer_flush(e, true), 0);
	assert_int_equal(count_calls(CALL_ADD), 1);
	assert_int_equal(count_calls(CALL_DESTROY), 1);
	F->map_err = 0;

	F->add_err = -EIO;
	F->destroy_err = -ENOENT;
	size_t released_before = count_calls(CALL_RELEASE);
	assert_int_equal(enforcer_block(e, &k, &r), 0);
	assert_int_equal(enforcer_flush(e, true), 0);
	/* A failed transaction does not stop the destroy: the map drop and
	 * the destroy still cut the connection. The map entry stays, since
	 * no nft element covers the flow. */
	assert_int_equal(count_calls(CALL_DESTROY), 2);
	assert_int_equal(count_calls(CALL_RELEASE), released_before);
	assert_int_equal(F->n_map, 1);
	assert_int_equal(F->last_done_table_err, -EIO);
	assert_int_equal(F->last_done_destroy_err, -ENOENT);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.map_errors, 1);
	assert_int_equal(st.table_errors, 1);
	assert_int_equal(st.destroy_gone, 1);
	assert_int_equal(st.destroyed, 1);
	enforcer_free(e);
}

static void test_setup_failure(void **state)
{
	F->setup_err = -EPERM;
	struct enforcer_opts o = {
		.mode = RW_MODE_ENFORCE,
		.backend = &fake_backend,
		.now_ns = fake_clock,
	};
	struct enforcer *e = NULL;
	char err[256] = "";
	assert_int_equal(enforcer_new(&o, &e, err, sizeof(err)), -EPERM);
	assert_null(e);
	assert_non_null(strstr(err, "create nft table inet rcptwall: Operation not permitted"));
	assert_int_equal(F->calls[F->n_calls - 1], CALL_CLOSE);

	/* The real backend needs the blocked map. */
	o.backend = NULL;
	o.blocked_map_fd = -1;
	assert_int_equal(enforcer_new(&o, &e, err, sizeof(err)), -EBADF);
	assert_non_null(strstr(err, "blocked map"));
}

static struct enforcer *worker_enforcer(uint32_t batch)
{
	struct enforcer_opts o = {
		.mode = RW_MODE_ENFORCE,
		.flush_interval_ms = 2,
		.batch_size = batch,
		.worker_thread = true,
		.done = on_done,
		.backend = &fake_backend,
	};
	struct enforcer *e = NULL;
	char err[256];
	if (enforcer_new(&o, &e, err, sizeof(err)))
		fail_msg("enforcer_new: %s", err);
	return e;
}

/* Worker thread: the same steps, off the caller's thread; outcomes still
 * reach the done callback in the caller's thread. */
static void test_worker_burst(void **state)
{
	struct enforcer *e = worker_enforcer(100);
	struct enforce_result r;
	for (int i = 0; i < 1050; i++) {
		struct rw_flow_key k = key4("198.51.100.1", (uint16_t)(1000 + i), "198.51.100.2", 25);
		assert_int_equal(enforcer_block(e, &k, &r), 0);
		assert_true(r.blocked);
		if (enforcer_poll_timeout_ms(e) == 0)
			enforcer_flush(e, false);
	}
	/* Step 1 happened in our thread, for every flow, before returning. */
	assert_int_equal(count_calls(CALL_MAP), 1050);
	assert_int_equal(enforcer_flush(e, true), 0);
	assert_int_equal(count_calls(CALL_RELEASE), 1050);
	assert_int_equal(count_calls(CALL_DESTROY), 1050);
	size_t added = 0;
	for (size_t i = 0; i < F->n_adds; i++) {
		assert_true(F->add_sizes[i] <= 100);
		added += F->add_sizes[i];
	}
	assert_int_equal(added, 1050);
	assert_int_equal(F->done_count, 1050);
	assert_false(done_off_main);
	assert_int_equal(enforcer_poll_timeout_ms(e), -1);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.table_elements, 1050);
	assert_int_equal(st.destroyed, 1050);
	assert_int_equal(st.queued, 0);
	enforcer_free(e);
	assert_int_equal(F->calls[F->n_calls - 1], CALL_CLOSE);
}

/* Nobody forces: the worker writes a lone flow once its interval passed. */
static void test_worker_interval(void **state)
{
	struct enforcer *e = worker_enforcer(0);
	struct rw_flow_key k = key4("2001:db8:25::1", 4000, "2001:db8:25::2", 25);
	struct enforce_result r;
	assert_int_equal(enforcer_block(e, &k, &r), 0);
	/* The caller's loop: sleep as told, collect outcomes. (The bound only
	 * keeps a broken worker from hanging the test.) */
	for (int i = 0; i < 5000 && !F->done_count; i++) {
		int ms = enforcer_poll_timeout_ms(e);
		assert_true(ms >= 0);
		usleep((useconds_t)(ms ? ms : 1) * 1000);
		enforcer_flush(e, false);
	}
	assert_int_equal(F->done_count, 1);
	assert_false(done_off_main);
	assert_int_equal(enforcer_poll_timeout_ms(e), -1);
	enforcer_free(e);
}

/* enforcer_free with flows still queued: the worker finishes them first. */
static void test_worker_free_finishes(void **state)
{
	struct enforcer *e = worker_enforcer(8);
	struct enforce_result r;
	for (int i = 0; i < 20; i++) {
		struct rw_flow_key k = key4("198.51.100.9", (uint16_t)(7000 + i), "198.51.100.2", 587);
		assert_int_equal(enforcer_block(e, &k, &r), 0);
	}
	enforcer_free(e);
	assert_int_equal(count_calls(CALL_DESTROY), 20);
	assert_int_equal(F->done_count, 20);
	assert_false(done_off_main);
	assert_int_equal(count_calls(CALL_REMOVE), 1);
}

static void test_describe_and_latency(void **state)
{
	char buf[128];
	struct rw_flow_key k = key4("198.51.100.1", 40000, "198.51.100.2", 25);
	assert_string_equal(enforcer_describe(&k, buf, sizeof(buf)),
			    "blocked map, nft set inet rcptwall flows4, socket destroy");
	k = key4("2001:db8:25::1", 1, "2001:db8:25::2", 25);
	assert_non_null(strstr(enforcer_describe(&k, buf, sizeof(buf)), "flows6"));
	assert_int_equal(enforce_latency_us(1000000, 1042999), 42);
	assert_int_equal(enforce_latency_us(2000, 1000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elements_text),
		cmocka_unit_test(test_elements_hostile_bytes),
		cmocka_unit_test(test_elements_worst_case_size),
		cmocka_unit_test(test_table_text),
		cmocka_unit_test(test_destroy_request),
		cmocka_unit_test_setup_teardown(test_monitor_mode, fake_setup_test, fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_enforce_steps_in_order, fake_setup_test,
						fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_batching, fake_setup_test, fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_free_flushes_and_keeps, fake_setup_test,
						fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_failures, fake_setup_test, fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_setup_failure, fake_setup_test,
						fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_worker_burst, fake_setup_test, fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_worker_interval, fake_setup_test,
						fake_teardown_test),
		cmocka_unit_test_setup_teardown(test_worker_free_finishes, fake_setup_test,
						fake_teardown_test),
		cmocka_unit_test(test_describe_and_latency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
