/*
 * TLS uprobes (bpf/tls_uprobe.bpf.c, user/tls.c) against the system's real
 * libssl.so.3 and libgnutls.so.30.
 *
 * The test process is both ends: an OpenSSL server thread per connection
 * (self-signed certificate made in memory) and OpenSSL or GnuTLS clients
 * in the main thread, over loopback. The probes are attached with maps the
 * test creates (as `rcptwall run` passes the tc program's maps), and the
 * test plays the tc program's part by inserting the client flows into the
 * flows map. Needs root (uprobes) like every BPF test.
 *
 * The probes fire in every process on the host while attached; other
 * processes' TLS writes are not in our flows map, so they never reach our
 * ring, but they do raise our unattributed counter: assertions on that
 * counter are lower bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "flow.h"
#include "rcptwall/rcptwall.h"
#include "tls.h"

#define MAX_SEEN 512
#define RCPT_LINE "RCPT TO:<x@army.ml>\r\n"

struct seen_record {
	struct rw_record_hdr hdr;
	uint8_t data[RW_MAX_PAYLOAD];
};

struct fixture {
	int ring_fd, flows_fd, counters_fd;
	struct tls_probes *tp;
	struct ring_buffer *rb;
	SSL_CTX *server_ctx, *client_ctx;
	gnutls_certificate_credentials_t gnutls_cred;
	int listen4, listen6;
	int gate; /* for the next connection's server, see struct conn */
	struct seen_record *seen;
	size_t n_seen;
};

/* One TLS connection: client end in the test thread, server end in its own thread. */
struct conn {
	int cfd, sfd;
	SSL *cssl;
	gnutls_session_t gs; /* instead of cssl for GnuTLS clients */
	SSL_CTX *server_ctx;
	int gate;            /* > 0: the server reads only after a byte arrives here */
	pthread_t server;
	struct rw_flow_key key;
};

/* ---- ring ------------------------------------------------------------------ */

static int on_sample(void *ctx, void *data, size_t size)
{
	struct fixture *f = ctx;
	struct seen_record *r;

	if (size < sizeof(struct rw_record_hdr) || f->n_seen == MAX_SEEN)
		return 0;
	r = &f->seen[f->n_seen];
	memcpy(&r->hdr, data, sizeof(r->hdr));
	/* The ring carries exactly header + len bytes. */
	assert_int_equal(size, sizeof(r->hdr) + r->hdr.len);
	assert_true(r->hdr.len <= RW_MAX_PAYLOAD);
	memcpy(r->data, (uint8_t *)data + sizeof(r->hdr), r->hdr.len);
	if (r->hdr.pid == (uint32_t)getpid())
		f->n_seen++;
	return 0;
}

static void drain(struct fixture *f)
{
	f->n_seen = 0;
	assert_true(ring_buffer__consume(f->rb) >= 0);
}

/* Records of one flow, in ring order. */
static size_t records_of(struct fixture *f, const struct rw_flow_key *k, struct seen_record **out,
			 size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n_seen && n < max; i++)
		if (flow_key_equal(&f->seen[i].hdr.flow, k))
			out[n++] = &f->seen[i];
	return n;
}

static uint64_t counter(struct fixture *f, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu > 0 ? ncpu : 1], sum = 0;

	assert_true(ncpu > 0);
	assert_int_equal(bpf_map_lookup_elem(f->counters_fd, &idx, vals), 0);
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

/* ---- flows map (the tc program's part) --------------------------------------- */

static void watch_flow(struct fixture *f, const struct rw_flow_key *k, uint8_t tls_phase,
		       uint32_t next_seq, uint32_t bdat_end)
{
	struct rw_flow_state st = {
		.phase = RW_PHASE_OPAQUE,
		.tls_phase = tls_phase,
		.tls_bdat_end_seq = bdat_end,
	};
	/* The offset belongs to this connection (same created_ns). */
	struct rw_tls_offset off = { .flow_created_ns = st.created_ns, .next_seq = next_seq };

	assert_int_equal(bpf_map_update_elem(f->flows_fd, k, &st, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(tls_probes_offsets_fd(f->tp), k, &off, BPF_ANY), 0);
}

/* The plaintext offset of the flow's next TLS write. */
static uint32_t tls_next_seq(struct fixture *f, const struct rw_flow_key *k)
{
	struct rw_tls_offset off;

	assert_int_equal(bpf_map_lookup_elem(tls_probes_offsets_fd(f->tp), k, &off), 0);
	return off.next_seq;
}


/* ---- TLS endpoints ------------------------------------------------------------ */

static SSL_CTX *make_server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(ctx);
	assert_non_null(pkey);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"rw-test", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pkey), 1);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
}

static int make_listener(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;

	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *server_main(void *arg)
{
	struct conn *c = arg;
	SSL *s = SSL_new(c->server_ctx);
	char buf[16384];

	SSL_set_fd(s, c->sfd);
	if (SSL_accept(s) == 1 && (c->gate <= 0 || read(c->gate, buf, 1) == 1))
		while (SSL_read(s, buf, sizeof(buf)) > 0)
			;
	SSL_free(s);
	close(c->sfd);
	return NULL;
}

/* Flow key of the client socket, as the tc program would key it. */
static void client_key(int fd, struct rw_flow_key *k)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&l, &ll), 0);
	assert_int_equal(getpeername(fd, (struct sockaddr *)&r, &rl), 0);
	memset(k, 0, sizeof(*k));
	if (l.ss_family == AF_INET) {
		k->family = RW_AF_INET;
		memcpy(k->saddr, &((struct sockaddr_in *)&l)->sin_addr, 4);
		memcpy(k->daddr, &((struct sockaddr_in *)&r)->sin_addr, 4);
		k->sport = ntohs(((struct sockaddr_in *)&l)->sin_port);
		k->dport = ntohs(((struct sockaddr_in *)&r)->sin_port);
	} else {
		k->family = RW_AF_INET6;
		memcpy(k->saddr, &((struct sockaddr_in6 *)&l)->sin6_addr, 16);
		memcpy(k->daddr, &((struct sockaddr_in6 *)&r)->sin6_addr, 16);
		k->sport = ntohs(((struct sockaddr_in6 *)&l)->sin6_port);
		k->dport = ntohs(((struct sockaddr_in6 *)&r)->sin6_port);
	}
}

/* TCP connection to our listener plus its server thread; no TLS on the client yet. */
static void conn_tcp(struct fixture *f, struct conn *c, int listener)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(c, 0, sizeof(*c));
	assert_int_equal(getsockname(listener, (struct sockaddr *)&ss, &len), 0);
	c->cfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->cfd >= 0);
	assert_int_equal(connect(c->cfd, (struct sockaddr *)&ss, len), 0);
	c->sfd = accept(listener, NULL, NULL);
	assert_true(c->sfd >= 0);
	c->server_ctx = f->server_ctx;
	c->gate = f->gate;
	assert_int_equal(pthread_create(&c->server, NULL, server_main, c), 0);
	client_key(c->cfd, &c->key);
}

static void conn_openssl(struct fixture *f, struct conn *c, int listener)
{
	conn_tcp(f, c, listener);
	c->cssl = SSL_new(f->client_ctx);
	assert_non_null(c->cssl);
	SSL_set_fd(c->cssl, c->cfd);
	assert_int_equal(SSL_connect(c->cssl), 1);
}

static void conn_gnutls(struct fixture *f, struct conn *c, int listener)
{
	int r;

	conn_tcp(f, c, listener);
	assert_int_equal(gnutls_init(&c->gs, GNUTLS_CLIENT), 0);
	assert_int_equal(gnutls_set_default_priority(c->gs), 0);
	assert_int_equal(gnutls_credentials_set(c->gs, GNUTLS_CRD_CERTIFICATE, f->gnutls_cred), 0);
	gnutls_transport_set_int(c->gs, c->cfd);
	do
		r = gnutls_handshake(c->gs);
	while (r < 0 && !gnutls_error_is_fatal(r));
	assert_int_equal(r, 0);
}

static void conn_close(struct conn *c)
{
	if (c->cssl) {
		SSL_shutdown(c->cssl);
		SSL_free(c->cssl);
	}
	if (c->gs) {
		gnutls_bye(c->gs, GNUTLS_SHUT_WR);
		gnutls_deinit(c->gs);
	}
	shutdown(c->cfd, SHUT_RDWR);
	close(c->cfd);
	pthread_join(c->server, NULL);
}

static void ssl_send(struct conn *c, const void *buf, size_t len)
{
	assert_int_equal(SSL_write(c->cssl, buf, (int)len), (int)len);
}

static void assert_record(const struct seen_record *r, const struct rw_flow_key *k, uint32_t seq,
			  const void *data, size_t len)
{
	assert_int_equal(r->hdr.kind, RW_REC_DATA);
	assert_int_equal(r->hdr.source, RW_SRC_TLS);
	assert_true(flow_key_equal(&r->hdr.flow, k));
	assert_int_equal(r->hdr.seq, seq);
	assert_int_equal(r->hdr.len, len);
	assert_memory_equal(r->data, data, len);
	assert_int_equal(r->hdr.pid, (uint32_t)getpid());
	assert_true(r->hdr.ts_ns > 0);
}

/* ---- fixture ---------------------------------------------------------------- */

static int setup_with(void **state, bool wrappers_only)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct tls_probe_opts o;
	int n;

	assert_non_null(f);
	*state = f; /* teardown cleans up after a failed setup too */
	f->listen4 = f->listen6 = -1;
	f->seen = calloc(MAX_SEEN, sizeof(*f->seen));
	assert_non_null(f->seen);
	f->ring_fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "rw_ring", 0, 0, 4u << 20, NULL);
	f->flows_fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "rw_flows", sizeof(struct rw_flow_key),
				     sizeof(struct rw_flow_state), 1024, NULL);
	f->counters_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "rw_counters", 4, 8,
					RW_CNT_MAX, NULL);
	assert_true(f->ring_fd >= 0 && f->flows_fd >= 0 && f->counters_fd >= 0);

	/* Discovery through ldconfig, as rcptwall run does without --tls-lib. */
	o = (struct tls_probe_opts){ .ring_fd = f->ring_fd, .flows_fd = f->flows_fd,
				     .counters_fd = f->counters_fd, .wrappers_only = wrappers_only };
	assert_int_equal(tls_probes_open(&o, &f->tp), 0);
	n = tls_probes_attach(f->tp);
	assert_true(n >= 2); /* libssl.so.3 and libgnutls.so.30 */
	f->rb = ring_buffer__new(f->ring_fd, on_sample, f, NULL);
	assert_non_null(f->rb);

	f->server_ctx = make_server_ctx();
	f->client_ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(f->client_ctx);
	assert_int_equal(gnutls_global_init(), 0);
	assert_int_equal(gnutls_certificate_allocate_credentials(&f->gnutls_cred), 0);
	f->listen4 = make_listener(AF_INET);
	f->listen6 = make_listener(AF_INET6); /* -1 where IPv6 is off */
	assert_true(f->listen4 >= 0);
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, false);
}

/* OpenSSL's write probes on SSL_write / SSL_write_ex, as on a libssl whose
 * internal write function user/tls.c does not recognise. */
static int setup_wrappers(void **state)
{
	return setup_with(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	ring_buffer__free(f->rb);
	tls_probes_close(f->tp);
	if (f->gnutls_cred) {
		gnutls_certificate_free_credentials(f->gnutls_cred);
		gnutls_global_deinit();
	}
	SSL_CTX_free(f->server_ctx);
	SSL_CTX_free(f->client_ctx);
	for (int *fd = &f->ring_fd; fd <= &f->counters_fd; fd++)
		if (*fd > 0)
			close(*fd);
	if (f->listen4 >= 0)
		close(f->listen4);
	if (f->listen6 >= 0)
		close(f->listen6);
	free(f->seen);
	free(f);
	return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_attached_libraries(void **state)
{
	struct fixture *f = *state;
	unsigned kinds = 0;

	for (size_t i = 0; i < tls_probes_lib_count(f->tp); i++) {
		const struct tls_lib *lib = tls_probes_lib(f->tp, i);

		kinds |= lib->kinds;
		assert_true(lib->n_probes > 0);
	}
	assert_int_equal(kinds, TLS_LIB_OPENSSL | TLS_LIB_GNUTLS);
}

static void test_rcpt_in_command_phase(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[4];
	struct conn c;

	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	ssl_send(&c, "DATA\r\n", 6);
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 4), 2);
	assert_record(r[0], &c.key, 0, RCPT_LINE, strlen(RCPT_LINE));
	assert_record(r[1], &c.key, strlen(RCPT_LINE), "DATA\r\n", 6);
	assert_int_equal(r[0]->hdr.phase, RW_PHASE_COMMAND);
	assert_int_equal(r[0]->hdr.flags, 0);
	assert_int_equal(tls_next_seq(f, &c.key), strlen(RCPT_LINE) + 6);
	conn_close(&c);
}

static void test_ssl_write_ex(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;
	size_t written = 0;

	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 100, 0);
	drain(f);
	assert_int_equal(SSL_write_ex(c.cssl, RCPT_LINE, strlen(RCPT_LINE), &written), 1);
	assert_int_equal(written, strlen(RCPT_LINE));
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 1);
	assert_record(r[0], &c.key, 100, RCPT_LINE, strlen(RCPT_LINE));
	conn_close(&c);
}

/* Whether the probes on the library of kind (TLS_LIB_OPENSSL or
 * TLS_LIB_GNUTLS; one of each on this host) sit on its internal write
 * function (user/tls.c, find_ssl_write_core / find_gnutls_send_core)
 * rather than on the named API function. */
static bool lib_write_core(struct fixture *f, unsigned kind)
{
	for (size_t i = 0; i < tls_probes_lib_count(f->tp); i++) {
		const struct tls_lib *lib = tls_probes_lib(f->tp, i);

		if (lib->kinds & kind)
			return lib->write_core & kind;
	}
	fail_msg("no library of kind %u attached", kind);
	return false;
}

/*
 * After a write the named function's probes do not see (at base) and a
 * "DATA\r\n" through the named function: with the probes on the internal
 * function both are recorded once, in order; otherwise only DATA is.
 */
static void expect_core_then_data(struct fixture *f, const struct conn *c, uint32_t base, bool core)
{
	struct seen_record *r[4];

	drain(f);
	if (core) {
		assert_int_equal(records_of(f, &c->key, r, 4), 2);
		assert_record(r[0], &c->key, base, RCPT_LINE, strlen(RCPT_LINE));
		assert_record(r[1], &c->key, base + strlen(RCPT_LINE), "DATA\r\n", 6);
	} else {
		assert_int_equal(records_of(f, &c->key, r, 4), 1);
		assert_record(r[0], &c->key, base, "DATA\r\n", 6);
	}
}

/*
 * A write through the SSL BIO (BIO_f_ssl) goes through OpenSSL's internal
 * write function but neither SSL_write nor SSL_write_ex. With the probes on
 * the internal function it is seen once, at its offset, and an SSL_write
 * after it is seen once too (the wrapper is not probed in addition); with
 * the probes on the wrappers it is not seen, and the offset does not move.
 */
static void test_ssl_bio_write(void **state)
{
	struct fixture *f = *state;
	bool core = lib_write_core(f, TLS_LIB_OPENSSL);
	struct conn c;
	BIO *b = BIO_new(BIO_f_ssl());

	print_message("libssl write probes on %s\n",
		      core ? "its internal write function" : "SSL_write / SSL_write_ex");
	assert_non_null(b);
	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 7, 0);
	drain(f);
	BIO_set_ssl(b, c.cssl, BIO_NOCLOSE);
	assert_int_equal(BIO_write(b, RCPT_LINE, (int)strlen(RCPT_LINE)), (int)strlen(RCPT_LINE));
	assert_int_equal(BIO_flush(b), 1);
	ssl_send(&c, "DATA\r\n", 6);
	expect_core_then_data(f, &c, 7, core);
	if (core)
		assert_int_equal(tls_next_seq(f, &c.key), 7 + strlen(RCPT_LINE) + 6);
	BIO_free_all(b); /* and the reference it took on the SSL's socket BIO */
	conn_close(&c);
}

/*
 * User space changes a phase by rewriting the flow's state, which replaces
 * the map element; the plaintext offset lives in its own map, so the next
 * write continues where the last one ended. (The race this guards against,
 * an increment landing on the replaced element, is not reproduced here: it
 * needs a write and a rewrite at the same instant.) A new connection on the
 * same tuple (the tc program re-creates the state on its SYN, with a new
 * created_ns) starts over at 0.
 */
static void test_offset_survives_phase_change(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;

	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	struct rw_flow_state st;
	assert_int_equal(bpf_map_lookup_elem(f->flows_fd, &c.key, &st), 0);
	st.tls_phase = RW_PHASE_COMMAND; /* what the pipeline writes back */
	assert_int_equal(bpf_map_update_elem(f->flows_fd, &c.key, &st, BPF_EXIST), 0);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 2);
	assert_record(r[1], &c.key, strlen(RCPT_LINE), RCPT_LINE, strlen(RCPT_LINE));

	st.created_ns = 12345; /* a SYN made it a new connection */
	assert_int_equal(bpf_map_update_elem(f->flows_fd, &c.key, &st, BPF_EXIST), 0);
	drain(f);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 1);
	assert_record(r[0], &c.key, 0, RCPT_LINE, strlen(RCPT_LINE));
	conn_close(&c);
}

static void test_ipv6_flow(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;

	if (f->listen6 < 0)
		skip();
	conn_openssl(f, &c, f->listen6);
	assert_int_equal(c.key.family, RW_AF_INET6);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 1);
	assert_record(r[0], &c.key, 0, RCPT_LINE, strlen(RCPT_LINE));
	conn_close(&c);
}

/* Interleaved writes on three sessions of one thread, one of them GnuTLS. */
static void test_interleaved_sessions(void **state)
{
	struct fixture *f = *state;
	struct conn c[3];
	struct seen_record *r[8];
	char line[64];

	conn_openssl(f, &c[0], f->listen4);
	conn_openssl(f, &c[1], f->listen4);
	conn_gnutls(f, &c[2], f->listen4);
	for (int i = 0; i < 3; i++)
		watch_flow(f, &c[i].key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++) {
			int n = snprintf(line, sizeof(line), "RCPT TO:<c%d-r%d@army.ml>\r\n", i, round);

			if (c[i].cssl)
				ssl_send(&c[i], line, (size_t)n);
			else
				assert_int_equal(gnutls_record_send(c[i].gs, line, (size_t)n), n);
		}
	}
	drain(f);
	for (int i = 0; i < 3; i++) {
		uint32_t seq = 0;

		assert_int_equal(records_of(f, &c[i].key, r, 8), 3);
		for (int round = 0; round < 3; round++) {
			int n = snprintf(line, sizeof(line), "RCPT TO:<c%d-r%d@army.ml>\r\n", i, round);

			assert_record(r[round], &c[i].key, seq, line, (size_t)n);
			seq += (uint32_t)n;
		}
	}
	for (int i = 0; i < 3; i++)
		conn_close(&c[i]);
}

struct writer {
	struct conn *c;
	int id;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char line[64];

	for (int i = 0; i < 40; i++) {
		int n = snprintf(line, sizeof(line), "RCPT TO:<t%d-%02d@army.ml>\r\n", w->id, i);

		if (SSL_write(w->c->cssl, line, n) != n)
			return (void *)1;
	}
	return NULL;
}

/* Two threads writing at once, each on its own session. */
static void test_concurrent_threads(void **state)
{
	struct fixture *f = *state;
	struct conn c[2];
	struct writer w[2];
	pthread_t th[2];
	struct seen_record *r[64];
	char line[64];

	for (int i = 0; i < 2; i++) {
		conn_openssl(f, &c[i], f->listen4);
		watch_flow(f, &c[i].key, RW_PHASE_COMMAND, 0, 0);
	}
	drain(f);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct writer){ .c = &c[i], .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		void *ret;

		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	drain(f);
	for (int i = 0; i < 2; i++) {
		uint32_t seq = 0;

		assert_int_equal(records_of(f, &c[i].key, r, 64), 40);
		for (int k = 0; k < 40; k++) {
			int n = snprintf(line, sizeof(line), "RCPT TO:<t%d-%02d@army.ml>\r\n", i, k);

			assert_record(r[k], &c[i].key, seq, line, (size_t)n);
			seq += (uint32_t)n;
		}
		conn_close(&c[i]);
	}
}

static void test_unwatched_flow(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;
	uint64_t before;

	conn_openssl(f, &c, f->listen4);
	drain(f);
	before = counter(f, RW_CNT_TLS_UNATTRIBUTED);
	ssl_send(&c, RCPT_LINE, strlen(RCPT_LINE));
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 0);
	assert_int_equal(f->n_seen, 0);
	assert_true(counter(f, RW_CNT_TLS_UNATTRIBUTED) >= before + 1);
	conn_close(&c);
}

static void test_data_phase_tail(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;
	char body[3000];
	uint64_t skipped_before = counter(f, RW_CNT_BODY_SKIPPED_BYTES);

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_DATA, 500, 0);
	drain(f);
	ssl_send(&c, body, sizeof(body));
	ssl_send(&c, "\r\n.\r\n", 5);
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 2);
	/* Only the last RW_BODY_TAIL bytes of the big write. */
	assert_record(r[0], &c.key, 500 + sizeof(body) - RW_BODY_TAIL,
		      body + sizeof(body) - RW_BODY_TAIL, RW_BODY_TAIL);
	assert_int_equal(r[0]->hdr.skipped, sizeof(body) - RW_BODY_TAIL);
	assert_int_equal(r[0]->hdr.flags, RW_RF_BODY_TAIL);
	assert_int_equal(r[0]->hdr.phase, RW_PHASE_DATA);
	/* A write shorter than the tail goes whole. */
	assert_record(r[1], &c.key, 500 + sizeof(body), "\r\n.\r\n", 5);
	assert_int_equal(r[1]->hdr.skipped, 0);
	assert_int_equal(tls_next_seq(f, &c.key), 500 + sizeof(body) + 5);
	assert_true(counter(f, RW_CNT_BODY_SKIPPED_BYTES) >=
		    skipped_before + sizeof(body) - RW_BODY_TAIL);
	conn_close(&c);
}

static void test_bdat_phase(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[2];
	struct conn c;
	char chunk[800];

	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk + 500, "RSET\r\n", 6);
	conn_openssl(f, &c, f->listen4);
	/* The chunk ends at offset 1500: bytes before it are body. */
	watch_flow(f, &c.key, RW_PHASE_BDAT, 1000, 1500);
	drain(f);
	ssl_send(&c, chunk, 400); /* [1000, 1400): all body */
	ssl_send(&c, chunk + 400, 400); /* [1400, 1800): body up to 1500 */
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 2), 1);
	assert_record(r[0], &c.key, 1500, chunk + 500, 300);
	assert_int_equal(r[0]->hdr.skipped, 100);
	conn_close(&c);
}

static void test_truncation(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[RW_MAX_CHUNKS + 1];
	struct conn c;
	size_t big = 70000, sent = (size_t)RW_MAX_CHUNKS * RW_MAX_PAYLOAD;
	char *buf = malloc(big);
	uint64_t trunc_before = counter(f, RW_CNT_TLS_TRUNC_BYTES);

	assert_non_null(buf);
	for (size_t i = 0; i < big; i++)
		buf[i] = (char)(i * 7);
	conn_openssl(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	ssl_send(&c, buf, big);
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, RW_MAX_CHUNKS + 1), RW_MAX_CHUNKS);
	for (size_t i = 0; i < RW_MAX_CHUNKS; i++) {
		assert_record(r[i], &c.key, (uint32_t)(i * RW_MAX_PAYLOAD), buf + i * RW_MAX_PAYLOAD,
			      RW_MAX_PAYLOAD);
		assert_int_equal(r[i]->hdr.flags, i == RW_MAX_CHUNKS - 1 ? RW_RF_TRUNCATED : 0);
	}
	assert_true(counter(f, RW_CNT_TLS_TRUNC_BYTES) >= trunc_before + (big - sent));
	/* The stream offset covers every byte, sent or not. */
	assert_int_equal(tls_next_seq(f, &c.key), big);
	free(buf);
	conn_close(&c);
}

/*
 * gnutls_record_send2 called directly (GnuTLS's own API since 3.6.3). With
 * the send probes on it (user/tls.c, find_gnutls_send_core) it is seen
 * once, and a gnutls_record_send after it once too (the wrapper is not
 * probed in addition); with the probes on gnutls_record_send it is not
 * seen.
 */
static void test_gnutls_send2(void **state)
{
	struct fixture *f = *state;
	bool core = lib_write_core(f, TLS_LIB_GNUTLS);
	struct conn c;

	print_message("libgnutls send probes on %s\n",
		      core ? "gnutls_record_send2" : "gnutls_record_send");
	conn_gnutls(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 3, 0);
	drain(f);
	assert_int_equal(gnutls_record_send2(c.gs, RCPT_LINE, strlen(RCPT_LINE), 0, 0),
			 (ssize_t)strlen(RCPT_LINE));
	assert_int_equal(gnutls_record_send(c.gs, "DATA\r\n", 6), 6);
	expect_core_then_data(f, &c, 3, core);
	conn_close(&c);
}

/* GnuTLS corked records reach no socket inside gnutls_record_send: the
 * session's flow, learned at an earlier write, attributes them. */
static void test_gnutls_corked(void **state)
{
	struct fixture *f = *state;
	struct seen_record *r[4];
	struct conn c;
	const char *mail = "MAIL FROM:<a@army.mil>\r\n";

	conn_gnutls(f, &c, f->listen4);
	watch_flow(f, &c.key, RW_PHASE_COMMAND, 0, 0);
	drain(f);
	assert_int_equal(gnutls_record_send(c.gs, mail, strlen(mail)), (ssize_t)strlen(mail));
	gnutls_record_cork(c.gs);
	assert_int_equal(gnutls_record_send(c.gs, RCPT_LINE, strlen(RCPT_LINE)),
			 (ssize_t)strlen(RCPT_LINE));
	assert_int_equal(gnutls_record_send(c.gs, "DATA\r\n", 6), 6);
	assert_true(gnutls_record_uncork(c.gs, GNUTLS_RECORD_WAIT) > 0);
	drain(f);
	assert_int_equal(records_of(f, &c.key, r, 4), 3);
	assert_record(r[0], &c.key, 0, mail, strlen(mail));
	assert_record(r[1], &c.key, strlen(mail), RCPT_LINE, strlen(RCPT_LINE));
	assert_record(r[2], &c.key, strlen(mail) + strlen(RCPT_LINE), "DATA\r\n", 6);
	conn_close(&c);
}

/* A non-blocking GnuTLS sender whose send fails with GNUTLS_E_AGAIN and is
 * repeated as gnutls_record_send(session, NULL, 0): the bytes are sent once,
 * from the first call's buffer. DATA phase keeps the ring small. */
static void test_gnutls_again_retry(void **state)
{
	struct fixture *f = *state;
	static struct seen_record *r[MAX_SEEN];
	int gate[2];
	struct conn c;
	char buf[16384];
	uint32_t total = 0;
	ssize_t ret = 0;
	size_t n, writes = 0;

	assert_int_equal(pipe(gate), 0);
	/* conn_tcp starts the server thread: hand it the gate first. */
	memset(&c, 0, sizeof(c));
	f->gate = gate[0];
	conn_gnutls(f, &c, f->listen4);
	f->gate = 0;
	watch_flow(f, &c.key, RW_PHASE_DATA, 0, 0);
	assert_int_equal(fcntl(c.cfd, F_SETFL, fcntl(c.cfd, F_GETFL) | O_NONBLOCK), 0);
	drain(f);
	/* Fill the socket while the server does not read. */
	for (int i = 0; i < 4096; i++) {
		memset(buf, 'a' + i % 26, sizeof(buf));
		ret = gnutls_record_send(c.gs, buf, sizeof(buf));
		if (ret != (ssize_t)sizeof(buf))
			break;
		total += sizeof(buf);
		writes++;
		if (f->n_seen > MAX_SEEN / 2)
			assert_true(ring_buffer__consume(f->rb) >= 0);
	}
	assert_int_equal(ret, GNUTLS_E_AGAIN);
	assert_int_equal(write(gate[1], "g", 1), 1);
	do {
		struct pollfd p = { .fd = c.cfd, .events = POLLOUT };

		poll(&p, 1, 1000);
		ret = gnutls_record_send(c.gs, NULL, 0);
	} while (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED);
	assert_int_equal(ret, (ssize_t)sizeof(buf));
	total += sizeof(buf);
	writes++;
	f->n_seen = 0;
	assert_true(ring_buffer__consume(f->rb) >= 0);
	n = records_of(f, &c.key, r, MAX_SEEN);
	assert_true(n >= 1);
	/* The repeated send: its tail, once, at its place in the stream. */
	assert_record(r[n - 1], &c.key, total - RW_BODY_TAIL, buf + sizeof(buf) - RW_BODY_TAIL,
		      RW_BODY_TAIL);
	assert_int_equal(tls_next_seq(f, &c.key), total);
	assert_true(writes > 1);
	assert_int_equal(fcntl(c.cfd, F_SETFL, fcntl(c.cfd, F_GETFL) & ~O_NONBLOCK), 0);
	conn_close(&c);
	close(gate[0]);
	close(gate[1]);
}

/* ---- library discovery ------------------------------------------------------ */

static void test_parse_ldconfig(void **state)
{
	static const char text[] =
		"1234 libs found in cache `/etc/ld.so.cache'\n"
		"\tlibssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so\n"
		"\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3\n"
		"\tlibssl.so.3 (libc6) => /lib/i386-linux-gnu/libssl.so.3\n"
		"\tlibssl.so.3 (libc6,AArch64) => /lib/aarch64-linux-gnu/libssl.so.3\n"
		"\tlibssl.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so\n"
		"\tlibgnutls.so.30 (libc6,x86-64) => /lib/x86_64-linux-gnu/libgnutls.so.30\n"
		"\tlibgnutls.so.30 (libc6,x86-64) => relative/path\n"
		"\tlibgnutls.so.30 (libc6,x86-64)\n"
		"\tlibgnutls.so.300 (libc6,x86-64) => /x\n"
		"\tlibgnutls.so.30 (libc6,x86-64) => /usr/local/lib/libgnutls.so.30";
	char paths[4][PATH_MAX];
	int n = tls_parse_ldconfig(text, strlen(text), paths, 4);

	(void)state;
#if defined(__x86_64__)
	assert_int_equal(n, 3);
	assert_string_equal(paths[0], "/lib/x86_64-linux-gnu/libssl.so.3");
	assert_string_equal(paths[1], "/lib/x86_64-linux-gnu/libgnutls.so.30");
	assert_string_equal(paths[2], "/usr/local/lib/libgnutls.so.30");
#else
	assert_true(n >= 1);
#endif
	/* Bounded by max, and by the text length (no NUL needed). */
	assert_int_equal(tls_parse_ldconfig(text, strlen(text), paths, 1), 1);
	assert_int_equal(tls_parse_ldconfig(text, 0, paths, 4), 0);
}

static void test_parse_ldconfig_long_path(void **state)
{
	size_t len = PATH_MAX + 64;
	char *text = malloc(len + 64);
	char paths[1][PATH_MAX];
	int off;

	(void)state;
	assert_non_null(text);
	off = sprintf(text, "\tlibssl.so.3 (libc6,x86-64) => /");
	memset(text + off, 'a', len);
	assert_int_equal(tls_parse_ldconfig(text, (size_t)off + len, paths, 1), -E2BIG);
	free(text);
}

static void test_lib_kinds(void **state)
{
	char paths[TLS_MAX_LIBS][PATH_MAX];
	int n = tls_discover_libs(paths, TLS_MAX_LIBS);
	unsigned kinds = 0;
	char not_elf[] = "/tmp/rw-test-tls-XXXXXX";
	int fd = mkstemp(not_elf);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	assert_true(n >= 2);
	for (int i = 0; i < n; i++) {
		int k = tls_lib_kinds(paths[i]);

		assert_true(k == TLS_LIB_OPENSSL || k == TLS_LIB_GNUTLS);
		kinds |= (unsigned)k;
	}
	assert_int_equal(kinds, TLS_LIB_OPENSSL | TLS_LIB_GNUTLS);
	/* This binary calls SSL_write but does not define it. */
	assert_int_equal(tls_lib_kinds("/proc/self/exe"), 0);
	assert_int_equal(tls_lib_kinds("/nonexistent/libssl.so.3"), -ENOENT);
	assert_int_equal(tls_lib_kinds(not_elf), -ENOEXEC);
	unlink(not_elf);
}

static void test_explicit_lib_errors(void **state)
{
	const char *bad[] = { "/nonexistent/libssl.so.3" };
	const char *nossl[] = { "/proc/self/exe" };
	struct tls_probe_opts o = { .ring_fd = -1, .flows_fd = -1, .counters_fd = -1,
				    .lib_paths = bad, .n_lib_paths = 1 };
	struct tls_probes *tp = (void *)1;

	(void)state;
	assert_int_equal(tls_probes_open(&o, &tp), -ENOENT);
	assert_null(tp);
	o.lib_paths = nossl;
	assert_int_equal(tls_probes_open(&o, &tp), -ENOENT);
	assert_null(tp);
}

int main(void)
{
	const struct CMUnitTest probes[] = {
		cmocka_unit_test(test_attached_libraries),
		cmocka_unit_test(test_rcpt_in_command_phase),
		cmocka_unit_test(test_ssl_write_ex),
		cmocka_unit_test(test_ssl_bio_write),
		cmocka_unit_test(test_offset_survives_phase_change),
		cmocka_unit_test(test_ipv6_flow),
		cmocka_unit_test(test_interleaved_sessions),
		cmocka_unit_test(test_concurrent_threads),
		cmocka_unit_test(test_unwatched_flow),
		cmocka_unit_test(test_data_phase_tail),
		cmocka_unit_test(test_bdat_phase),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_gnutls_send2),
		cmocka_unit_test(test_gnutls_corked),
		cmocka_unit_test(test_gnutls_again_retry),
	};
	const struct CMUnitTest wrappers[] = {
		cmocka_unit_test(test_attached_libraries),
		cmocka_unit_test(test_rcpt_in_command_phase),
		cmocka_unit_test(test_ssl_write_ex),
		cmocka_unit_test(test_ssl_bio_write),
		cmocka_unit_test(test_ipv6_flow),
		cmocka_unit_test(test_interleaved_sessions),
		cmocka_unit_test(test_concurrent_threads),
		cmocka_unit_test(test_unwatched_flow),
		cmocka_unit_test(test_data_phase_tail),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_gnutls_send2),
		cmocka_unit_test(test_gnutls_corked),
		cmocka_unit_test(test_gnutls_again_retry),
	};
	const struct CMUnitTest discovery[] = {
		cmocka_unit_test(test_parse_ldconfig),
		cmocka_unit_test(test_parse_ldconfig_long_path),
		cmocka_unit_test(test_lib_kinds),
		cmocka_unit_test(test_explicit_lib_errors),
	};
	int failed;

	/* A server end that gives up must fail an assertion, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("discovery", discovery, NULL, NULL);

	failed += cmocka_run_group_tests_name("tls_uprobe", probes, setup, teardown);
	return failed + cmocka_run_group_tests_name("tls_uprobe_wrappers", wrappers, setup_wrappers,
						    teardown);
}
