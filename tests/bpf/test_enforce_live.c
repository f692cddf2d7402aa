/*
 * Enforcement against the real kernel (needs root): a real nft table, a
 * real BPF hash map as the blocked map, and SOCK_DESTROY on real TCP
 * connections over loopback.
 *
 * The whole test runs in a private network namespace (unshare), so its
 * table inet rcptwall and its sockets never meet the host's or another
 * test's; the namespace disappears with the process, on every path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "enforce.h"
#include "flow.h"
#include "nft.h"

/* ---- helpers ---------------------------------------------------------------- */

static int lo_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (!rc) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	rc = rc ? -errno : 0;
	close(fd);
	return rc;
}

static int group_setup(void **state)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_enforce_live: needs root (nft, BPF maps, SOCK_DESTROY)\n");
		return -1;
	}
	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	return lo_up();
}

static int make_map(uint32_t max_entries)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "rw_blocked", sizeof(struct rw_flow_key),
				sizeof(struct rw_block), max_entries, NULL);
	assert_true(fd >= 0);
	return fd;
}

static size_t map_count(int fd)
{
	struct rw_flow_key k, next;
	size_t n = 0;
	int rc = bpf_map_get_next_key(fd, NULL, &next);
	while (!rc) {
		n++;
		k = next;
		rc = bpf_map_get_next_key(fd, &k, &next);
	}
	return n;
}

/* A connected TCP pair over loopback; key is the client's flow. */
struct tcp_pair {
	int client, server;
	struct rw_flow_key key;
};

static void sockaddr_to_key(const struct sockaddr_storage *ss, uint8_t *addr, uint16_t *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		memcpy(addr, &s6->sin6_addr, 16);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;
		memcpy(addr, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
	}
}

static void open_pair(int af, struct tcp_pair *p)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	if (af == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*s4);
	}
	int lfd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(lfd, 1), 0);
	socklen_t len = sizeof(ss);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
	p->client = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->client >= 0);
	assert_int_equal(connect(p->client, (struct sockaddr *)&ss, sl), 0);
	p->server = accept(lfd, NULL, NULL);
	assert_true(p->server >= 0);
	close(lfd);

	/* A guard so a broken kernel path fails the test instead of hanging it. */
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(p->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(p->server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	memset(&p->key, 0, sizeof(p->key));
	p->key.family = af == AF_INET6 ? RW_AF_INET6 : RW_AF_INET;
	len = sizeof(ss);
	assert_int_equal(getsockname(p->client, (struct sockaddr *)&ss, &len), 0);
	sockaddr_to_key(&ss, p->key.saddr, &p->key.sport);
	len = sizeof(ss);
	assert_int_equal(getpeername(p->client, (struct sockaddr *)&ss, &len), 0);
	sockaddr_to_key(&ss, p->key.daddr, &p->key.dport);
}

static bool table_exists(void)
{
	struct rwnft *n = rwnft_open(1);
	assert_non_null(n);
	char err[256];
	int rc = rwnft_run(n, "list table inet " RWNFT_TABLE "\n", err, sizeof(err));
	rwnft_close(n);
	return rc == 0;
}

static void nft_cmd(const char *cmds)
{
	struct rwnft *n = rwnft_open(0);
	assert_non_null(n);
	char err[512];
	int rc = rwnft_run(n, cmds, err, sizeof(err));
	if (rc)
		fail_msg("nft '%s': %s", cmds, err);
	rwnft_close(n);
}

/* The elements of one set, as libnftables lists them in JSON. */
struct set_elem {
	char saddr[64], daddr[64];
	unsigned sport, dport;
	long long packets; /* element counter, -1 if none */
};

static size_t list_set(const char *set, struct set_elem *out, size_t max)
{
	struct rwnft *n = rwnft_open(1);
	assert_non_null(n);
	char cmd[128], err[512];
	snprintf(cmd, sizeof(cmd), "list set inet %s %s\n", RWNFT_TABLE, set);
	if (rwnft_run(n, cmd, err, sizeof(err)))
		fail_msg("%s: %s", cmd, err);
	json_error_t jerr;
	json_t *root = json_loads(rwnft_output(n), 0, &jerr);
	rwnft_close(n);
	assert_non_null(root);
	size_t count = 0, i, j;
	json_t *item, *el;
	json_array_foreach(json_object_get(root, "nftables"), i, item) {
		json_t *s = json_object_get(item, "set");
		json_array_foreach(json_object_get(s, "elem"), j, el) {
			/* {"elem": {"val": {"concat": [...]}, "counter": {...}}} or {"concat": [...]} */
			json_t *wrap = json_object_get(el, "elem");
			json_t *val = wrap ? json_object_get(wrap, "val") : el;
			json_t *concat = json_object_get(val, "concat");
			assert_int_equal(json_array_size(concat), 4);
			assert_true(count < max);
			struct set_elem *e = &out[count++];
			snprintf(e->saddr, sizeof(e->saddr), "%s",
				 json_string_value(json_array_get(concat, 0)));
			e->sport = (unsigned)json_integer_value(json_array_get(concat, 1));
			snprintf(e->daddr, sizeof(e->daddr), "%s",
				 json_string_value(json_array_get(concat, 2)));
			e->dport = (unsigned)json_integer_value(json_array_get(concat, 3));
			json_t *ctr = wrap ? json_object_get(wrap, "counter") : NULL;
			e->packets = ctr ? json_integer_value(json_object_get(ctr, "packets")) : -1;
		}
	}
	json_decref(root);
	return count;
}

static bool elem_matches(const struct set_elem *e, const struct rw_flow_key *k)
{
	char s[FLOW_ADDR_STRLEN], d[FLOW_ADDR_STRLEN];
	flow_addr_str(k, true, s, sizeof(s));
	flow_addr_str(k, false, d, sizeof(d));
	return !strcmp(e->saddr, s) && !strcmp(e->daddr, d) && e->sport == k->sport &&
	       e->dport == k->dport;
}

static struct enforcer *new_enforcer_opts(enum rw_mode mode, int map_fd, bool keep,
					  bool worker)
{
	struct enforcer_opts o = {
		.mode = mode,
		.worker_thread = worker,
		.blocked_map_fd = map_fd,
		.set_timeout_s = 600,
		.keep_rules_on_exit = keep,
		.flush_interval_ms = 2,
		.batch_size = 0, /* the default */
	};
	struct enforcer *e = NULL;
	char err[512];
	int rc = enforcer_new(&o, &e, err, sizeof(err));
	if (rc)
		fail_msg("enforcer_new: %s", err);
	return e;
}

static struct enforcer *new_enforcer(enum rw_mode mode, int map_fd, bool keep)
{
	return new_enforcer_opts(mode, map_fd, keep, false);
}

struct recv_result {
	int fd;
	ssize_t n;
	int err;
};

static void *blocked_recv(void *arg)
{
	struct recv_result *r = arg;
	char c;
	r->n = recv(r->fd, &c, 1, 0);
	r->err = errno;
	return NULL;
}

/* ---- tests ------------------------------------------------------------------- */

/* A client idle in recv(): blocking its flow must end the wait at once with
 * ECONNABORTED, reset the server's side, and leave the flow in the map and
 * in the nft set (whose element counted the reset). */
static void block_live(int af, bool worker)
{
	int map = make_map(1024);
	struct enforcer *e = new_enforcer_opts(RW_MODE_ENFORCE, map, false, worker);
	struct tcp_pair p;
	open_pair(af, &p);

	struct recv_result rr = { .fd = p.client };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocked_recv, &rr), 0);
	usleep(50 * 1000); /* let the thread sit in recv(); either order must work */

	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &p.key, &res), 0);
	assert_true(res.blocked);
	assert_false(res.already_blocked);
	assert_int_not_equal(res.blocked_ns, 0);

	/* Step 1 is immediate: the map holds the flow before any flush (a
	 * worker may have handed it over to nft already). */
	struct rw_block v;
	if (!worker) {
		assert_int_equal(bpf_map_lookup_elem(map, &p.key, &v), 0);
		assert_true(v.blocked_ns <= res.blocked_ns);
		assert_int_equal(v.drops, 0);
		assert_int_equal(enforcer_poll_timeout_ms(e) >= 0, 1);
	}

	assert_int_equal(enforcer_flush(e, true), 0);
	pthread_join(th, NULL);
	/* The nft element took over from the map entry. */
	assert_true(bpf_map_lookup_elem(map, &p.key, &v) < 0);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(rr.n, -1);
	assert_int_equal(rr.err, ECONNABORTED);

	char c;
	ssize_t n = recv(p.server, &c, 1, 0);
	assert_int_equal(n, -1);
	assert_int_equal(errno, ECONNRESET);

	struct set_elem el[4];
	size_t cnt = list_set(af == AF_INET6 ? RWNFT_SET6 : RWNFT_SET4, el, 4);
	assert_int_equal(cnt, 1);
	assert_true(elem_matches(&el[0], &p.key));
	assert_true(el[0].packets >= 1); /* the RST SOCK_DESTROY sent */

	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.blocked, 1);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.destroyed, 1);
	assert_int_equal(st.table_elements, 1);
	assert_int_equal(st.table_errors, 0);

	enforcer_free(e);
	assert_false(table_exists());
	close(p.client);
	close(p.server);
	close(map);
}

static void test_block_ipv4(void **state)
{
	block_live(AF_INET, false);
}

static void test_block_ipv6(void **state)
{
	block_live(AF_INET6, false);
}

static void test_block_worker(void **state)
{
	block_live(AF_INET, true);
	block_live(AF_INET6, true);
}

/* A dual-stack MTA: an AF_INET6 socket talking to an IPv4 server through a
 * v4-mapped address. On the wire (and so in the flow key) it is IPv4, and
 * the IPv4 SOCK_DESTROY lookup must still find the IPv6 socket. */
static void test_block_v4_mapped_socket(void **state)
{
	int map = make_map(16);
	struct enforcer *e = new_enforcer(RW_MODE_ENFORCE, map, false);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);

	int client = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int off = 0;
	setsockopt(client, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = sa.sin_port };
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &to.sin6_addr);
	assert_int_equal(connect(client, (struct sockaddr *)&to, sizeof(to)), 0);
	int server = accept(lfd, NULL, NULL);
	assert_true(server >= 0);
	close(lfd);
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	struct sockaddr_in6 local;
	sl = sizeof(local);
	assert_int_equal(getsockname(client, (struct sockaddr *)&local, &sl), 0);
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, "127.0.0.1", ntohs(local.sin6_port), "127.0.0.1",
					       ntohs(sa.sin_port)), 0);

	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &k, &res), 0);
	enforcer_flush(e, true);
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.destroyed, 1);
	char c;
	assert_int_equal(recv(client, &c, 1, 0), -1);
	assert_int_equal(errno, ECONNABORTED);
	enforcer_free(e);
	close(client);
	close(server);
	close(map);
}

/* The sending path: a client that writes after the destroy gets an error. */
static void test_send_after_block(void **state)
{
	int map = make_map(16);
	struct enforcer *e = new_enforcer(RW_MODE_ENFORCE, map, false);
	struct tcp_pair p;
	open_pair(AF_INET, &p);
	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &p.key, &res), 0);
	enforcer_flush(e, true);
	ssize_t n = send(p.client, "DATA\r\n", 6, MSG_NOSIGNAL);
	assert_int_equal(n, -1);
	assert_true(errno == ECONNABORTED || errno == EPIPE);
	enforcer_free(e);
	close(p.client);
	close(p.server);
	close(map);
}

/*
 * A busy relay reuses source ports: a new connection with the 4-tuple of a
 * blocked one (still in the nft set) is a different connection and must
 * get through; rcptwall judges it on its own.
 */
static void test_reused_tuple_passes(void **state)
{
	int map = make_map(16);
	struct enforcer *e = new_enforcer(RW_MODE_ENFORCE, map, false);
	struct sockaddr_in srv = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(srv);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&srv, sl), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&srv, &sl), 0);

	int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c1, (struct sockaddr *)&srv, sl), 0);
	int s1 = accept(lfd, NULL, NULL);
	struct sockaddr_in cli;
	socklen_t cl = sizeof(cli);
	assert_int_equal(getsockname(c1, (struct sockaddr *)&cli, &cl), 0);
	struct rw_flow_key k = { .family = RW_AF_INET, .sport = ntohs(cli.sin_port),
				 .dport = ntohs(srv.sin_port) };
	memcpy(k.saddr, &cli.sin_addr, 4);
	memcpy(k.daddr, &srv.sin_addr, 4);

	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &k, &res), 0);
	assert_int_equal(enforcer_flush(e, true), 0);
	ssize_t n = send(c1, "DATA\r\n", 6, MSG_NOSIGNAL);
	assert_int_equal(n, -1); /* the blocked connection is gone */
	close(c1);
	close(s1);
	struct set_elem el[2];
	assert_int_equal(list_set(RWNFT_SET4, el, 2), 1);

	/* Same source port, same server: the element is still there. */
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(c2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(c2, (struct sockaddr *)&cli, cl), 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(c2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(c2, (struct sockaddr *)&srv, sl), 0);
	int s2 = accept(lfd, NULL, NULL);
	assert_true(s2 >= 0);
	setsockopt(s2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(send(c2, "EHLO x\r\n", 8, MSG_NOSIGNAL), 8);
	char buf[16];
	assert_int_equal(recv(s2, buf, sizeof(buf), MSG_WAITALL), 8);
	assert_int_equal(send(s2, "250 ok\r\n", 8, MSG_NOSIGNAL), 8);
	assert_int_equal(recv(c2, buf, sizeof(buf), MSG_WAITALL), 8);
	assert_int_equal(list_set(RWNFT_SET4, el, 2), 1); /* still blocked: the old one */

	close(c2);
	close(s2);
	close(lfd);
	enforcer_free(e);
	close(map);
}

/* A full blocked map: no kernel drop for the flow, but nft and the
 * destroy still take it. */
static void test_map_full(void **state)
{
	int map = make_map(1);
	struct enforcer *e = new_enforcer(RW_MODE_ENFORCE, map, false);
	struct rw_flow_key a, b;
	assert_int_equal(flow_key_from_strings(&a, "198.51.100.1", 40001, "198.51.100.2", 25), 0);
	assert_int_equal(flow_key_from_strings(&b, "198.51.100.1", 40002, "198.51.100.2", 25), 0);
	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &a, &res), 0);
	assert_int_equal(enforcer_block(e, &b, &res), -E2BIG);
	assert_int_equal(res.map_err, -E2BIG);
	assert_false(res.blocked);
	assert_int_equal(enforcer_flush(e, true), 0);
	struct set_elem el[4];
	assert_int_equal(list_set(RWNFT_SET4, el, 4), 2);
	assert_true(elem_matches(&el[0], &a) || elem_matches(&el[1], &a));
	assert_true(elem_matches(&el[0], &b) || elem_matches(&el[1], &b));
	enforcer_free(e);
	close(map);
}

/* keep_rules_on_exit leaves the table; the next start replaces it (with
 * whatever was added to it) by a fresh one. */
static void test_keep_and_replace_stale(void **state)
{
	int map = make_map(16);
	struct enforcer *e = new_enforcer(RW_MODE_ENFORCE, map, true);
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, "198.51.100.1", 40000, "198.51.100.2", 25), 0);
	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &k, &res), 0);
	enforcer_free(e); /* flushes the queued flow */
	assert_true(table_exists());
	struct set_elem el[4];
	assert_int_equal(list_set(RWNFT_SET4, el, 4), 1);
	assert_true(elem_matches(&el[0], &k));

	/* Someone (or an older version) added a chain: start-up replaces all. */
	nft_cmd("add chain inet " RWNFT_TABLE " stale\n");
	e = new_enforcer(RW_MODE_ENFORCE, map, false);
	assert_int_equal(list_set(RWNFT_SET4, el, 4), 0);
	struct rwnft *n = rwnft_open(1);
	char err[256];
	assert_int_not_equal(rwnft_run(n, "list chain inet " RWNFT_TABLE " stale\n", err,
				       sizeof(err)), 0);
	rwnft_close(n);
	enforcer_free(e);
	assert_false(table_exists());
	close(map);
}

static void test_monitor_touches_nothing(void **state)
{
	int map = make_map(16);
	struct enforcer *e = new_enforcer(RW_MODE_MONITOR, map, false);
	assert_false(table_exists());
	struct tcp_pair p;
	open_pair(AF_INET, &p);
	struct enforce_result res;
	assert_int_equal(enforcer_block(e, &p.key, &res), 0);
	assert_true(res.would_block);
	assert_false(res.blocked);
	assert_int_equal(enforcer_flush(e, true), 0);
	assert_int_equal(map_count(map), 0);
	assert_false(table_exists());
	/* The connection still works. */
	assert_int_equal(send(p.client, "x", 1, 0), 1);
	char c;
	assert_int_equal(recv(p.server, &c, 1, 0), 1);
	enforcer_free(e);
	close(p.client);
	close(p.server);
	close(map);
}

/* 5,000 flagged flows at once: every one ends up in the map and in its
 * set, in a handful of transactions, without one long stall. */
#define BURST 5000
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void burst(bool worker)
{
	int map = make_map(BURST + 16);
	struct enforcer *e = new_enforcer_opts(RW_MODE_ENFORCE, map, false, worker);
	static struct rw_flow_key keys[BURST];
	static double caller_us[BURST]; /* time the caller's loop spent per flow */
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < BURST; i++) {
		char s[64], d[64];
		if (i % 2) {
			snprintf(s, sizeof(s), "2001:db8:25::%x", 1 + i / 2);
			snprintf(d, sizeof(d), "2001:db8:25::1:%x", 1 + i % 7);
		} else {
			snprintf(s, sizeof(s), "198.51.100.%d", 1 + (i / 2) % 250);
			snprintf(d, sizeof(d), "198.51.100.%d", 251 + i % 3);
		}
		assert_int_equal(flow_key_from_strings(&keys[i], s, (uint16_t)(10000 + i), d,
						       i % 3 ? 25 : 587), 0);
		struct enforce_result res;
		struct timespec t0, t1, t2, t3;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(enforcer_block(e, &keys[i], &res), 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(res.blocked);
		struct rw_block v;
		if (!worker) /* a worker may have handed it over to nft already */
			assert_int_equal(bpf_map_lookup_elem(map, &keys[i], &v), 0);
		/* The caller's loop: flush whenever a batch is due. */
		clock_gettime(CLOCK_MONOTONIC, &t2);
		if (enforcer_poll_timeout_ms(e) == 0)
			enforcer_flush(e, false);
		clock_gettime(CLOCK_MONOTONIC, &t3);
		caller_us[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3 +
			       (t3.tv_sec - t2.tv_sec) * 1e6 + (t3.tv_nsec - t2.tv_nsec) / 1e3;
	}
	while (enforcer_flush(e, true))
		;
	clock_gettime(CLOCK_MONOTONIC, &end);
	assert_int_equal(map_count(map), 0); /* all handed over to nft */
	struct enforce_stats st;
	enforcer_stats(e, &st);
	assert_int_equal(st.blocked, BURST);
	assert_int_equal(st.table_elements, BURST);
	assert_int_equal(st.table_errors, 0);
	assert_int_equal(st.released, BURST);
	assert_int_equal(st.destroy_gone, BURST); /* no such sockets: not errors */
	assert_int_equal(st.destroy_errors, 0);
	/*
	 * Batching works: a transaction is due when full (256 flows) or when
	 * its oldest flow waited flush_interval_ms (2), so there are at most
	 * BURST/256 full ones plus one per 2 ms that passed, however slow the
	 * machine (an emulated guest is much slower than the host).
	 */
	uint64_t elapsed_ms = (uint64_t)(end.tv_sec - start.tv_sec) * 1000 +
			      (uint64_t)(end.tv_nsec - start.tv_nsec) / 1000000;
	assert_true(st.table_batches <= BURST / 256 + 2 + elapsed_ms / 2);
	/* Figures for the README, not assertions (the machine is shared). */
	qsort(caller_us, BURST, sizeof(caller_us[0]), cmp_double);
	printf("burst%s: %d flows, %llu nft transactions, longest batch %.2f ms; "
	       "caller per flow p50 %.1f us, p99 %.1f us, max %.1f us\n",
	       worker ? " (worker thread)" : "", BURST, (unsigned long long)st.table_batches,
	       st.max_flush_ns / 1e6, caller_us[BURST / 2], caller_us[BURST * 99 / 100],
	       caller_us[BURST - 1]);

	static struct set_elem els[BURST];
	size_t n4 = list_set(RWNFT_SET4, els, BURST);
	size_t n6 = list_set(RWNFT_SET6, els + n4, BURST - n4);
	assert_int_equal(n4, BURST / 2);
	assert_int_equal(n6, BURST / 2);
	/* Every key present: ports are unique, so index by port. */
	static bool seen[BURST];
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n4 + n6; i++) {
		unsigned idx = els[i].sport - 10000;
		assert_true(idx < BURST);
		assert_true(elem_matches(&els[i], &keys[idx]));
		assert_false(seen[idx]);
		seen[idx] = true;
	}
	enforcer_free(e);
	assert_false(table_exists());
	close(map);
}

static void test_burst(void **state)
{
	burst(false);
}

static void test_burst_worker(void **state)
{
	burst(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_ipv4),
		cmocka_unit_test(test_block_ipv6),
		cmocka_unit_test(test_block_worker),
		cmocka_unit_test(test_send_after_block),
		cmocka_unit_test(test_reused_tuple_passes),
		cmocka_unit_test(test_block_v4_mapped_socket),
		cmocka_unit_test(test_map_full),
		cmocka_unit_test(test_keep_and_replace_stale),
		cmocka_unit_test(test_monitor_touches_nothing),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_burst_worker),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
