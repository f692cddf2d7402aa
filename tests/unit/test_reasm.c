/*
 * SMTP parser below the state machine: reassembly (order, duplicates,
 * overlaps, wraparound, holes the kernel leaves on purpose, real gaps, the
 * hold cap), the kernel's body phases simulated with their round-trip lag,
 * the documented DATA blind spot, STARTTLS handing over to the TLS stream,
 * flow table limits and eviction, and re-entrancy from callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "unit/smtp_recorder.h"

#define MF "MAIL FROM:<a@b>\r\n"
#define EMF "MAIL a@b (a|b)\n"

struct fixture {
	struct recorder r;
	struct smtp_parser *p;
	struct rw_flow_key k;
};

static struct fixture *fx_new(const struct smtp_limits *lim, uint32_t base, bool syn)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->p = smtp_parser_new(lim, rec_event, &f->r);
	assert_non_null(f->p);
	test_key(&f->k, 41000);
	f->r.base[RW_SRC_TC] = base;
	if (syn)
		smtp_parser_flow_start(f->p, &f->k, RW_SRC_TC, base - 1, 0);
	return f;
}

static void fx_free(struct fixture *f)
{
	smtp_parser_free(f->p);
	free(f);
}

static void feed_at(struct fixture *f, uint32_t off, const char *s, size_t len, uint64_t ts)
{
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, f->r.base[RW_SRC_TC] + off, s, len, 0,
				    ts), 0);
}

static void expect_text(const struct fixture *f, const char *want)
{
	if (strcmp(f->r.text, want)) {
		print_error("--- expected\n%s--- got\n%s", want, f->r.text);
		fail();
	}
}

static struct smtp_stats stats_of(const struct fixture *f)
{
	struct smtp_stats st;
	smtp_parser_stats(f->p, &st);
	return st;
}

/* Events carry the timestamp of the segment that completed them, and the seq after them. */
static void test_ts_and_seq(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 1000, true);
	static const char a[] = MF "RCPT TO:<x@", b[] = "y>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 100);
	feed_at(f, sizeof(a) - 1, b, sizeof(b) - 1, 200);
	expect_text(f, EMF "RCPT x@y (x|y) from=a@b\n");
	assert_int_equal(f->r.ts_of_rcpt[0], 200);
	assert_int_equal(f->r.seq_of_rcpt[0], 1000 + sizeof(a) - 1 + sizeof(b) - 1);
	fx_free(f);
}

/* A held segment completes the line: its own timestamp is reported. */
static void test_out_of_order(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 7, true);
	static const char a[] = MF "RCPT TO:", b[] = "<x@y>\r\n";
	feed_at(f, sizeof(a) - 1, b, sizeof(b) - 1, 1);
	expect_text(f, "");
	feed_at(f, 0, a, sizeof(a) - 1, 2);
	expect_text(f, EMF "RCPT x@y (x|y) from=a@b\n");
	assert_int_equal(f->r.ts_of_rcpt[0], 1);
	struct smtp_stats st = stats_of(f);
	assert_int_equal(st.segments_ooo, 1);
	assert_int_equal(st.gaps, 0);
	fx_free(f);
}

/* A retransmission with different bytes: the first copy is what the server got. */
static void test_duplicate_and_overlap(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 0xfffffff8u, true); /* crosses the wrap */
	static const char a[] = MF "RCPT TO:<x@y>\r\n";
	static const char b[] = "EVIL STUFF:<q@army.ml>\r\nRCPT TO:<z@w>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	/* b claims to start 9 bytes before the end of a */
	feed_at(f, sizeof(a) - 1 - 9, b, sizeof(b) - 1, 2);
	/* the first 9 bytes of b are trimmed: "F:<q@army.ml>" is what follows */
	expect_text(f, EMF "RCPT x@y (x|y) from=a@b\nAN unknown_command\n"
		       "RCPT z@w (z|w) from=a@b\n");
	struct smtp_stats st = stats_of(f);
	assert_int_equal(st.segments_dup, 1);
	fx_free(f);
}

/* Sequence numbers wrap inside a line and while segments are held. */
static void test_wraparound(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 0xfffffffau, true);
	static const char s[] = MF "RCPT TO:<x@army.ml>\r\n";
	size_t n = sizeof(s) - 1;
	/* pieces: [0,4) [4,10) [10,n) delivered 3rd, 1st, 2nd */
	feed_at(f, 10, s + 10, n - 10, 3);
	feed_at(f, 0, s, 4, 1);
	feed_at(f, 4, s + 4, 6, 2);
	expect_text(f, EMF "RCPT x@army.ml (x|army.ml) from=a@b\n");
	assert_int_equal(f->r.seq_of_rcpt[0], (uint32_t)(0xfffffffau + n));
	fx_free(f);
}

/* Skipped bytes outside a body are a gap: resynchronise at the next line. */
static void test_skipped_in_command_is_gap(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 100, true);
	static const char a[] = MF "RC", b[] = "O:<x@y>\r\nRCPT TO:<z@w>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, 100 + sizeof(a) - 1 + 5, b,
				    sizeof(b) - 1, 5, 2), 0);
	expect_text(f, EMF "AN gap\nRCPT z@w (z|w) from=a@b\n");
	struct smtp_stats st = stats_of(f);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.gap_bytes, 5);
	assert_string_equal(f->r.last_anomaly.u.anomaly.detail, "5 bytes lost");
	fx_free(f);
}

/* Without a SYN the first segment seen starts the stream. */
static void test_midstream_start(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 123456, false);
	static const char a[] = "RCPT TO:<x@y>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	expect_text(f, "AN rcpt_without_mail\nRCPT x@y (x|y) from=-\n");
	fx_free(f);

	/* ... but a first segment that is only a tail is a gap */
	f = fx_new(NULL, 5000, false);
	static const char b[] = "tail of something\r\nRCPT TO:<z@w>\r\n";
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, 5000, b, sizeof(b) - 1, 900, 1), 0);
	expect_text(f, "AN gap\nAN rcpt_without_mail\nRCPT z@w (z|w) from=-\n");
	fx_free(f);
}

/*
 * A lost segment and a hold cap too small to wait for it: the parser gives
 * up, reports, and resumes; a segment starting with a command line is
 * taken as a line start at once.
 */
static void test_hold_overflow(void **state)
{
	(void)state;
	struct smtp_limits lim = smtp_default_limits;
	lim.max_ooo_bytes = 16;
	struct fixture *f = fx_new(&lim, 1, true);
	static const char a[] = MF, lost[] = "RCPT TO:<lost@y>\r\n",
			  c[] = "RCPT TO:<x@army.ml>\r\nRCPT TO:<z@w>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	feed_at(f, sizeof(a) - 1 + sizeof(lost) - 1, c, sizeof(c) - 1, 2);
	expect_text(f, EMF "AN reorder_overflow\nAN gap\nRCPT x@army.ml (x|army.ml) from=a@b\n"
		       "RCPT z@w (z|w) from=a@b\n");
	/* the lost segment arriving late is old news */
	feed_at(f, sizeof(a) - 1, lost, sizeof(lost) - 1, 3);
	struct smtp_stats st = stats_of(f);
	assert_int_equal(st.segments_dup, 1);
	assert_int_equal(st.gap_bytes, sizeof(lost) - 1);
	fx_free(f);
}

/* A gap that lands mid-line: the rest of that line is not a command. */
static void test_gap_mid_line(void **state)
{
	(void)state;
	struct smtp_limits lim = smtp_default_limits;
	lim.max_ooo_bytes = 8;
	struct fixture *f = fx_new(&lim, 1, true);
	static const char a[] = MF "RCPT TO:<a", c[] = "@army.ml>\r\nRCPT TO:<z@w>\r\n";
	feed_at(f, 0, a, sizeof(a) - 1, 1);
	feed_at(f, sizeof(a) - 1 + 3, c, sizeof(c) - 1, 2);
	expect_text(f, EMF "AN reorder_overflow\nAN gap\nRCPT z@w (z|w) from=a@b\n");
	fx_free(f);
}

/* ---- kernel simulation ------------------------------------------------------- */

struct ksim {
	struct fixture *f;
	uint8_t req_phase;       /* last phase the parser asked for */
	uint32_t req_bdat_end;
};

static void ksim_hook(const struct smtp_event *ev, struct recorder *r)
{
	struct ksim *k = r->hook_ctx;
	if (ev->kind == SMTP_EV_PHASE && ev->source == RW_SRC_TC) {
		k->req_phase = ev->u.phase.phase;
		k->req_bdat_end = ev->u.phase.bdat_end_seq;
	}
}

/*
 * Cuts stream into segments of mss and sends each as bpf/smtp_egress.bpf.c
 * would, with the phase the parser asked for `lag` segments earlier.
 */
static void ksim_run(struct fixture *f, const char *stream, size_t len, size_t mss, size_t lag,
		     const size_t *cuts, size_t ncuts)
{
	struct ksim k = { .f = f, .req_phase = RW_PHASE_COMMAND };
	uint8_t hist_phase[256];
	uint32_t hist_end[256];
	f->r.hook = ksim_hook;
	f->r.hook_ctx = &k;
	uint32_t base = f->r.base[RW_SRC_TC];
	size_t off = 0, i = 0, c = 0;
	while (off < len) {
		assert_true(i < 256);
		size_t n = mss;
		while (c < ncuts && cuts[c] <= off)
			c++;
		if (c < ncuts && cuts[c] - off < n)
			n = cuts[c] - off; /* the MTA flushed here */
		if (n > len - off)
			n = len - off;
		uint8_t ph = i >= lag ? hist_phase[i - lag] : RW_PHASE_COMMAND;
		uint32_t bend = i >= lag ? hist_end[i - lag] : 0;
		uint32_t seq = base + (uint32_t)off, skip = 0;
		bool send = true;
		if (ph == RW_PHASE_DATA && n > RW_BODY_TAIL) {
			skip = (uint32_t)n - RW_BODY_TAIL;
		} else if (ph == RW_PHASE_BDAT) {
			int32_t ahead = (int32_t)(bend - seq);
			if (ahead > 0 && (size_t)ahead >= n)
				send = false;
			else if (ahead > 0)
				skip = (uint32_t)ahead;
		} else if (ph == RW_PHASE_OPAQUE) {
			send = false;
		}
		if (send)
			assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, seq + skip,
						    stream + off + skip, n - skip, skip, i), 0);
		hist_phase[i] = k.req_phase;
		hist_end[i] = k.req_bdat_end;
		off += n;
		i++;
	}
	f->r.hook = NULL;
}

static char *body(size_t len, const char *inject)
{
	char *b = malloc(len + 1);
	size_t o = 0;
	while (o < len) {
		const char *line = (o / 80) % 9 == 4 ? inject : (o / 80) % 9 == 7 ? ".. stuffed\r\n"
							 : "Lorem ipsum dolor sit amet.\r\n";
		size_t n = strlen(line);
		if (n > len - o)
			n = len - o;
		memcpy(b + o, line, n);
		o += n;
	}
	b[len] = '\0';
	return b;
}

/* DATA and BDAT bodies through the simulated kernel: tails, holes, no gaps. */
static void test_kernel_phases(void **state)
{
	(void)state;
	char *b1 = body(20000, "RCPT TO:<evil@army.ml>\r\n"), *b2 = body(30000, "\r\n.\r\n");
	size_t cap = 60000;
	char *s = malloc(cap);
	int n = snprintf(s, cap,
			 "EHLO c\r\n" MF "RCPT TO:<x@y>\r\nDATA\r\n%s\r\n.\r\n"
			 "MAIL FROM:<c@d>\r\nRCPT TO:<x@army.ml>\r\nBDAT 30000 LAST\r\n%s"
			 "MAIL FROM:<e@f>\r\nRCPT TO:<q@w>\r\nQUIT\r\n", b1, b2);
	assert_true(n > 0 && (size_t)n < cap);
	const char *want = EMF "RCPT x@y (x|y) from=a@b\nDATA\nPHASE data\nPHASE command\nEND\n"
			   "MAIL c@d (c|d)\nRCPT x@army.ml (x|army.ml) from=c@d\nDATA\n"
			   "PHASE bdat\nPHASE command/bdat\nEND\n"
			   "MAIL e@f (e|f)\nRCPT q@w (q|w) from=e@f\n";
	/* the MTA flushes after each pipelined group */
	const char *d1 = strstr(s, "DATA\r\n") + 6;
	const char *m2 = strstr(s, "\r\n.\r\nMAIL") + 5;
	const char *c2 = strstr(s, "LAST\r\n") + 6;
	size_t cuts[] = { (size_t)(d1 - s), (size_t)(m2 - s), (size_t)(c2 - s) };

	for (size_t lag = 1; lag <= 3; lag++) {
		struct fixture *f = fx_new(NULL, 0xffff0000u, true);
		ksim_run(f, s, (size_t)n, 1448, lag, cuts, 3);
		/* phase bdat carries an offset: compare without it */
		char *got = normalise(f->r.text), *exp = normalise(want);
		assert_string_equal(got, exp);
		free(got);
		free(exp);
		assert_non_null(strstr(f->r.text, "PHASE bdat +"));
		struct smtp_stats st = stats_of(f);
		assert_int_equal(st.gaps, 0);
		assert_true(st.bytes_skipped > 20000);
		assert_int_equal(st.messages, 2);
		assert_int_equal(st.recipients, 3);
		fx_free(f);
	}
	free(s);
	free(b1);
	free(b2);
}

/*
 * The documented blind spot: the terminator is followed in the same
 * segment by more than RW_BODY_TAIL - 5 bytes of commands, so it falls in
 * the skipped part. The parser stays in content, and says so when the
 * client's next segment reads as a command.
 */
static void test_blind_spot_reported(void **state)
{
	(void)state;
	char *b = body(3000, "Subject: x\r\n");
	char cmds[1400] = "";
	while (strlen(cmds) < 1100)
		strcat(cmds, "RCPT TO:<hidden@army.ml>\r\n");
	size_t cap = 8000;
	char *s = malloc(cap);
	int n = snprintf(s, cap, MF "RCPT TO:<x@y>\r\nDATA\r\n%s\r\n.\r\n" MF "%sDATA\r\n", b, cmds);
	size_t head = strlen(MF "RCPT TO:<x@y>\r\nDATA\r\n");
	size_t cuts[] = { head, head + 1000, (size_t)n };
	struct fixture *f = fx_new(NULL, 1, true);
	ksim_run(f, s, (size_t)n, 65000, 1, cuts, 3);
	static const char quit[] = "QUIT\r\n";
	/* the client's next line, after the replies: the kernel still streams tails */
	feed_bytes(f->p, &f->k, RW_SRC_TC, 1 + (uint32_t)n, quit, sizeof(quit) - 1, 0, 9);
	expect_text(f, EMF "RCPT x@y (x|y) from=a@b\nDATA\nPHASE data\nAN missed_end\n");
	fx_free(f);
	free(s);
	free(b);
}

/* STARTTLS: the wire goes opaque, the TLS plaintext stream starts over. */
static void test_starttls_handover(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 1, true);
	static const char tc[] = "EHLO c\r\nSTARTTLS\r\n", tls_hello[] = "\x16\x03\x01\x02\x00\x01";
	static const char pt[] = "EHLO c\r\n" MF "RCPT TO:<x@army.ml>\r\nDATA\r\nS: x\r\n.\r\nQUIT\r\n";
	feed_at(f, 0, tc, sizeof(tc) - 1, 1);
	feed_at(f, sizeof(tc) - 1, tls_hello, sizeof(tls_hello) - 1, 2);
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TLS, 0, pt, 20, 0, 3), 0);
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TLS, 20, pt + 20, sizeof(pt) - 21, 0, 4), 0);
	feed_at(f, sizeof(tc) - 1 + sizeof(tls_hello) - 1, "RCPT TO:<no@x>\r\n", 16, 5);
	expect_text(f, "OPAQUE\nPHASE opaque\ntls " EMF "tls RCPT x@army.ml (x|army.ml) from=a@b\n"
		       "tls DATA\ntls PHASE data\ntls PHASE command\ntls END\n");
	smtp_parser_flow_end(f->p, &f->k, 6);
	assert_non_null(strstr(f->r.text, "tls END\nFLOWEND\n"));
	assert_int_equal(stats_of(f).flows_active, 0);
	fx_free(f);
}

/* ---- flow table ------------------------------------------------------------ */

struct evict_log {
	struct recorder r;
	uint16_t ended[8];
	size_t n;
};

static void note_end(const struct smtp_event *ev, struct recorder *r)
{
	struct evict_log *l = (struct evict_log *)r;
	if (ev->kind == SMTP_EV_FLOW_END && l->n < 8)
		l->ended[l->n++] = ev->flow->sport;
}

/* Over max_flows the least recently fed flow goes, with a reason. */
static void test_eviction_lru(void **state)
{
	(void)state;
	struct evict_log *l = calloc(1, sizeof(*l));
	l->r.hook = note_end;
	struct smtp_limits lim = smtp_default_limits;
	lim.max_flows = 2;
	struct smtp_parser *p = smtp_parser_new(&lim, rec_event, &l->r);
	struct rw_flow_key a, b, c;
	test_key(&a, 1), test_key(&b, 2), test_key(&c, 3);
	feed_bytes(p, &a, RW_SRC_TC, 1, MF, 17, 0, 1);
	feed_bytes(p, &b, RW_SRC_TC, 1, MF, 17, 0, 2);
	feed_bytes(p, &a, RW_SRC_TC, 18, "NOOP\r\n", 6, 0, 3); /* a is now the newest */
	feed_bytes(p, &c, RW_SRC_TC, 1, MF, 17, 0, 4);
	assert_string_equal(l->r.text, EMF EMF "AN evicted\nFLOWEND\n" EMF);
	assert_int_equal(l->n, 1);
	assert_int_equal(l->ended[0], 2);
	struct smtp_stats st;
	smtp_parser_stats(p, &st);
	assert_int_equal(st.flows_evicted, 1);
	assert_int_equal(st.flows_active, 2);
	assert_int_equal(st.flows_seen, 3);
	smtp_parser_free(p);
	free(l);
}

/* The total memory cap holds after every feed; ending flows gives it all back. */
static void test_memory_cap(void **state)
{
	(void)state;
	struct recorder *r = calloc(1, sizeof(*r));
	struct smtp_limits lim = smtp_default_limits;
	lim.max_bytes_total = 16384;
	struct smtp_parser *p = smtp_parser_new(&lim, rec_event, r);
	struct smtp_stats st;
	smtp_parser_stats(p, &st);
	size_t empty = st.mem_bytes;
	struct rw_flow_key k;
	for (uint16_t i = 0; i < 200; i++) {
		test_key(&k, i);
		/* a partial line: the flow holds a line buffer and a transaction */
		feed_bytes(p, &k, RW_SRC_TC, 1, MF "RCPT TO:<x", 27, 0, i);
		smtp_parser_stats(p, &st);
		assert_true(st.mem_bytes <= lim.max_bytes_total);
	}
	assert_true(st.flows_evicted > 100);
	assert_true(st.flows_active > 5);
	assert_int_equal(st.flows_active + st.flows_evicted, 200);
	for (uint16_t i = 0; i < 200; i++) {
		test_key(&k, i);
		smtp_parser_flow_end(p, &k, 0);
	}
	smtp_parser_stats(p, &st);
	assert_int_equal(st.flows_active, 0);
	assert_int_equal(st.mem_bytes, empty);
	smtp_parser_free(p);
	free(r);
}

static void test_idle_flow_bytes(void **state)
{
	(void)state;
	struct recorder *r = calloc(1, sizeof(*r));
	struct smtp_parser *p = smtp_parser_new(NULL, rec_event, r);
	struct smtp_stats before, after;
	struct rw_flow_key k;
	test_key(&k, 9);
	smtp_parser_stats(p, &before);
	feed_bytes(p, &k, RW_SRC_TC, 1, "EHLO c\r\n", 8, 0, 1);
	smtp_parser_stats(p, &after);
	size_t idle = smtp_parser_idle_flow_bytes();
	assert_true(after.mem_bytes - before.mem_bytes <= idle);
	assert_true(idle < 512);
	smtp_parser_free(p);
	free(r);
}

struct end_in_cb {
	struct recorder r;
	struct smtp_parser *p;
};

static void end_on_rcpt(const struct smtp_event *ev, struct recorder *r)
{
	struct end_in_cb *e = (struct end_in_cb *)r;
	if (ev->kind == SMTP_EV_RCPT) {
		/* what the pipeline does when it blocks a flow */
		smtp_parser_flow_end(e->p, ev->flow, ev->ts_ns);
		assert_int_equal(feed_bytes(e->p, ev->flow, RW_SRC_TC, 0, "x", 1, 0, 0), -EBUSY);
	}
}

static void test_flow_end_from_callback(void **state)
{
	(void)state;
	struct end_in_cb *e = calloc(1, sizeof(*e));
	e->r.hook = end_on_rcpt;
	e->p = smtp_parser_new(NULL, rec_event, &e->r);
	struct rw_flow_key k;
	test_key(&k, 10);
	static const char s[] = MF "RCPT TO:<x@army.ml>\r\nRCPT TO:<more@y>\r\nDATA\r\n";
	feed_bytes(e->p, &k, RW_SRC_TC, 1, s, sizeof(s) - 1, 0, 1);
	assert_string_equal(e->r.text, EMF "RCPT x@army.ml (x|army.ml) from=a@b\nFLOWEND\n");
	struct smtp_stats st;
	smtp_parser_stats(e->p, &st);
	assert_int_equal(st.flows_active, 0);
	smtp_parser_free(e->p);
	free(e);
}

static void test_flow_start_and_errors(void **state)
{
	(void)state;
	struct fixture *f = fx_new(NULL, 500, true);
	feed_at(f, 0, MF "RCPT TO:<x", 27, 1);
	/* SYN retransmission: nothing changes */
	smtp_parser_flow_start(f->p, &f->k, RW_SRC_TC, 499, 2);
	feed_at(f, 27, "@y>\r\n", 5, 3);
	/* a new connection on the same tuple starts from scratch */
	smtp_parser_flow_start(f->p, &f->k, RW_SRC_TC, 9999, 4);
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, 10000, "RCPT TO:<z@w>\r\n", 15, 0, 5),
			 0);
	expect_text(f, EMF "RCPT x@y (x|y) from=a@b\nAN rcpt_without_mail\nRCPT z@w (z|w) from=-\n");
	assert_int_equal(feed_bytes(f->p, &f->k, 7, 1, "x", 1, 0, 0), -EINVAL);
	assert_int_equal(feed_bytes(f->p, &f->k, RW_SRC_TC, 1, NULL, 1, 0, 0), -EINVAL);
	struct rw_flow_key other;
	test_key(&other, 999);
	smtp_parser_flow_end(f->p, &other, 0); /* unknown flow: nothing */
	assert_int_equal(stats_of(f).flows_active, 1);
	fx_free(f);
	assert_null(smtp_parser_new(NULL, NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ts_and_seq),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_duplicate_and_overlap),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_skipped_in_command_is_gap),
		cmocka_unit_test(test_midstream_start),
		cmocka_unit_test(test_hold_overflow),
		cmocka_unit_test(test_gap_mid_line),
		cmocka_unit_test(test_kernel_phases),
		cmocka_unit_test(test_blind_spot_reported),
		cmocka_unit_test(test_starttls_handover),
		cmocka_unit_test(test_eviction_lru),
		cmocka_unit_test(test_memory_cap),
		cmocka_unit_test(test_idle_flow_bytes),
		cmocka_unit_test(test_flow_end_from_callback),
		cmocka_unit_test(test_flow_start_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
