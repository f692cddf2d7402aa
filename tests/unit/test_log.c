/*
 * Event log (user/log.c): every line parses back as JSON with the fields
 * we wrote, wire strings survive hostile bytes, loss events are rate
 * limited, flags and blocks reach syslog.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "log.h"

/* ---- fixture: a logger writing into memory, fake clocks, fake syslog ------ */

struct fixture {
	char *buf;
	size_t len;
	FILE *mem;
	struct rw_log *lg;
	int sys_prio[16];
	char *sys_line[16];
	size_t n_sys;
	size_t lines_read; /* lines already handed out by next_event() */
};

static struct fixture *FX;
static uint64_t fake_real, fake_mono;

static uint64_t real_clock(void)
{
	return fake_real;
}

static uint64_t mono_clock(void)
{
	return fake_mono;
}

static void fake_syslog(int prio, const char *line, void *ctx)
{
	struct fixture *fx = ctx;
	assert_true(fx->n_sys < 16);
	fx->sys_prio[fx->n_sys] = prio;
	fx->sys_line[fx->n_sys++] = strdup(line);
}

static int setup(void **state)
{
	FX = calloc(1, sizeof(*FX));
	FX->mem = open_memstream(&FX->buf, &FX->len);
	struct tm tm = { .tm_year = 2026 - 1900, .tm_mon = 10, .tm_mday = 28,
			 .tm_hour = 22, .tm_min = 41, .tm_sec = 21 };
	fake_real = (uint64_t)timegm(&tm) * 1000000000ull + 123456789ull;
	fake_mono = 5000000000ull;
	struct rw_log_opts o = {
		.syslog = true,
		.stream = FX->mem,
		.syslog_fn = fake_syslog,
		.syslog_ctx = FX,
		.realtime_ns = real_clock,
		.monotonic_ns = mono_clock,
	};
	char err[128];
	return log_open(&o, &FX->lg, err, sizeof(err));
}

static int teardown(void **state)
{
	if (FX->lg)
		log_close(FX->lg);
	fclose(FX->mem);
	free(FX->buf);
	for (size_t i = 0; i < FX->n_sys; i++)
		free(FX->sys_line[i]);
	free(FX);
	return 0;
}

/* Number of complete lines written so far; every one must end in \n and
 * contain no other newline. */
static size_t count_lines(void)
{
	fflush(FX->mem);
	size_t n = 0;
	for (size_t i = 0; i < FX->len; i++)
		n += FX->buf[i] == '\n';
	assert_true(FX->len == 0 || FX->buf[FX->len - 1] == '\n');
	return n;
}

/* The next unread line, parsed. */
static json_t *next_event(void)
{
	fflush(FX->mem);
	const char *p = FX->buf;
	for (size_t i = 0; i < FX->lines_read; i++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	const char *end = strchr(p, '\n');
	assert_non_null(end);
	FX->lines_read++;
	json_error_t jerr;
	json_t *ev = json_loadb(p, (size_t)(end - p), 0, &jerr);
	if (!ev)
		fail_msg("line %zu is not JSON (%s): %.*s", FX->lines_read, jerr.text,
			 (int)(end - p), p);
	return ev;
}

static const char *str(json_t *ev, const char *key)
{
	json_t *v = json_object_get(ev, key);
	if (!json_is_string(v))
		fail_msg("field %s missing or not a string", key);
	return json_string_value(v);
}

static long long num(json_t *ev, const char *key)
{
	json_t *v = json_object_get(ev, key);
	if (!json_is_integer(v))
		fail_msg("field %s missing or not an integer", key);
	return json_integer_value(v);
}

static struct rw_flow_key flow4(void)
{
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, "198.51.100.1", 40000, "198.51.100.2", 25), 0);
	return k;
}

static struct match_verdict flagged(void)
{
	struct match_verdict v = { .result = MATCH_FLAG, .detector = "omission", .distance = 1 };
	strcpy(v.domain, "army.ml");
	strcpy(v.protected_entry, "army.mil");
	return v;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_rcpt_fields(void **state)
{
	struct rw_flow_key k = flow4();
	struct match_verdict v = { .result = MATCH_OK, .distance = -1, .reason = "protected" };
	strcpy(v.domain, "army.mil");
	struct log_recipient r = { &k, "alice@example.org", "user@army.mil", &v };
	assert_int_equal(log_rcpt(FX->lg, &r), 0);
	json_t *ev = next_event();
	assert_string_equal(str(ev, "time"), "2026-11-28T22:41:21.123456Z");
	assert_string_equal(str(ev, "event"), "rcpt");
	json_t *f = json_object_get(ev, "flow");
	assert_string_equal(str(f, "family"), "ipv4");
	assert_string_equal(str(f, "saddr"), "198.51.100.1");
	assert_int_equal(num(f, "sport"), 40000);
	assert_string_equal(str(f, "daddr"), "198.51.100.2");
	assert_int_equal(num(f, "dport"), 25);
	assert_string_equal(str(ev, "mail_from"), "alice@example.org");
	assert_string_equal(str(ev, "rcpt"), "user@army.mil");
	assert_string_equal(str(ev, "domain"), "army.mil");
	assert_string_equal(str(ev, "verdict"), "ok");
	assert_string_equal(str(ev, "reason"), "protected");
	assert_null(json_object_get(ev, "distance")); /* -1: not applicable */
	assert_null(json_object_get(ev, "protected"));
	json_decref(ev);
	assert_int_equal(FX->n_sys, 0); /* recipients are not syslogged */

	/* IPv6 flow, no sender (MAIL FROM missing), no verdict. */
	assert_int_equal(flow_key_from_strings(&k, "2001:db8:25::1", 1234, "2001:db8:25::2", 587), 0);
	struct log_recipient r2 = { &k, NULL, "x@y", NULL };
	assert_int_equal(log_rcpt(FX->lg, &r2), 0);
	ev = next_event();
	f = json_object_get(ev, "flow");
	assert_string_equal(str(f, "family"), "ipv6");
	assert_string_equal(str(f, "saddr"), "2001:db8:25::1");
	assert_null(json_object_get(ev, "mail_from"));
	assert_null(json_object_get(ev, "verdict"));
	json_decref(ev);
}

static void test_flag_and_block(void **state)
{
	struct rw_flow_key k = flow4();
	struct match_verdict v = flagged();
	struct log_recipient r = { &k, "alice@example.org", "user@army.ml", &v };
	assert_int_equal(log_flag(FX->lg, &r, RW_MODE_ENFORCE), 0);
	struct log_block_info b = { .mode = RW_MODE_ENFORCE, .latency_us = 42,
				    .actions = "blocked map, nft set inet rcptwall flows4, socket destroy" };
	assert_int_equal(log_block(FX->lg, &r, &b), 0);

	json_t *ev = next_event();
	assert_string_equal(str(ev, "event"), "flag");
	assert_string_equal(str(ev, "verdict"), "flag");
	assert_string_equal(str(ev, "domain"), "army.ml");
	assert_string_equal(str(ev, "protected"), "army.mil");
	assert_string_equal(str(ev, "detector"), "omission");
	assert_int_equal(num(ev, "distance"), 1);
	assert_string_equal(str(ev, "mode"), "enforce");
	json_decref(ev);

	ev = next_event();
	assert_string_equal(str(ev, "event"), "block");
	assert_string_equal(str(ev, "detector"), "omission");
	assert_int_equal(num(ev, "latency_us"), 42);
	assert_null(json_object_get(ev, "would_block"));
	assert_non_null(strstr(str(ev, "actions"), "socket destroy"));
	json_decref(ev);

	/* Both went to syslog, as the very lines written. */
	assert_int_equal(FX->n_sys, 2);
	assert_int_equal(FX->sys_prio[0], LOG_MAIL | LOG_WARNING);
	assert_non_null(strstr(FX->sys_line[0], "\"event\":\"flag\""));
	assert_non_null(strstr(FX->sys_line[1], "\"event\":\"block\""));
	assert_null(strchr(FX->sys_line[1], '\n'));
}

static void test_monitor_would_block(void **state)
{
	struct rw_flow_key k = flow4();
	struct match_verdict v = flagged();
	struct log_recipient r = { &k, NULL, "user@army.ml", &v };
	struct log_block_info b = { .mode = RW_MODE_MONITOR, .would_block = true,
				    .actions = "blocked map, nft set inet rcptwall flows4, socket destroy" };
	assert_int_equal(log_block(FX->lg, &r, &b), 0);
	json_t *ev = next_event();
	assert_string_equal(str(ev, "mode"), "monitor");
	assert_true(json_is_true(json_object_get(ev, "would_block")));
	assert_null(json_object_get(ev, "latency_us"));
	json_decref(ev);
	assert_int_equal(FX->sys_prio[0], LOG_MAIL | LOG_NOTICE);

	/* A failed block says why. */
	struct log_block_info fb = { .mode = RW_MODE_ENFORCE, .error = -ENOSPC };
	assert_int_equal(log_block(FX->lg, &r, &fb), 0);
	ev = next_event();
	assert_string_equal(str(ev, "error"), strerror(ENOSPC));
	assert_null(json_object_get(ev, "latency_us"));
	json_decref(ev);
	assert_int_equal(FX->sys_prio[1], LOG_MAIL | LOG_ERR);
}

/* Hostile wire strings: each logged line parses, and says exactly what came. */
static void test_hostile_strings(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "\"quoted\"@x", "\"quoted\"@x" },
		{ "back\\slash", "back\\slash" },
		{ "ctl\x01\x1b[31m\r\nX-Injected: 1", "ctl\x01\x1b[31m\r\nX-Injected: 1" },
		{ "tab\there\x7f", "tab\there\x7f" },
		{ "caf\xc3\xa9@b\xc3\xbc" "cher.de", "caf\xc3\xa9@b\xc3\xbc" "cher.de" }, /* valid UTF-8 kept */
		{ "thumb\xf0\x9f\x91\x8d", "thumb\xf0\x9f\x91\x8d" },
		{ "bad\xff\xfe", "bad\\xff\\xfe" },
		{ "overlong\xc0\xaf", "overlong\\xc0\\xaf" },
		{ "surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80" },
		{ "short\xe2\x82", "short\\xe2\\x82" },
		{ "toobig\xf4\x90\x80\x80", "toobig\\xf4\\x90\\x80\\x80" },
		{ "lone\x80" "cont", "lone\\x80cont" },
		{ "", "" },
	};
	struct rw_flow_key k = flow4();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct log_recipient r = { &k, cases[i].in, cases[i].in, NULL };
		assert_int_equal(log_rcpt(FX->lg, &r), 0);
		json_t *ev = next_event();
		assert_string_equal(str(ev, "rcpt"), cases[i].out);
		assert_string_equal(str(ev, "mail_from"), cases[i].out);
		json_decref(ev);
	}
	assert_int_equal(count_lines(), sizeof(cases) / sizeof(cases[0]));
}

static void test_long_strings(void **state)
{
	size_t n = 100000;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i % 3 ? 'a' : 0xff); /* a third invalid: worst-case growth */
	big[n] = '\0';
	struct rw_flow_key k = flow4();
	struct log_recipient r = { &k, big, big, NULL };
	assert_int_equal(log_rcpt(FX->lg, &r), 0);
	json_t *ev = next_event();
	const char *s = str(ev, "rcpt");
	size_t len = strlen(s);
	assert_true(len <= 4 * LOG_STR_MAX + 16);
	assert_string_equal(s + len - 8, "...(cut)");
	assert_int_equal(strncmp(s, "\\xffaa\\xffaa", 12), 0);
	json_decref(ev);

	/* A multi-byte character straddling the limit is not split. */
	memset(big, 'a', LOG_STR_MAX - 1);
	memcpy(big + LOG_STR_MAX - 1, "\xc3\xa9zzz", 6);
	char out[4 * LOG_STR_MAX + 16];
	len = log_sanitize(big, out, sizeof(out));
	assert_int_equal(len, LOG_STR_MAX - 1 + 8);
	assert_string_equal(out + LOG_STR_MAX - 1, "...(cut)");
	free(big);
}

static void test_sanitize_small_buffers(void **state)
{
	char out[8];
	assert_int_equal(log_sanitize("abcdefghij", out, sizeof(out)), 7);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(log_sanitize("\xff\xff", out, 6), 4);
	assert_string_equal(out, "\\xff");
	assert_int_equal(log_sanitize("x", out, 1), 0);
	assert_string_equal(out, "");
	/* Never half of a character. */
	assert_int_equal(log_sanitize("ab\xc3\xa9", out, 4), 2);
}

static void test_loss_rate_limit(void **state)
{
	log_loss_add(FX->lg, LOSS_RING_RESERVE, 3); /* first loss: written at once */
	assert_int_equal(count_lines(), 1);
	fake_mono += 500000000ull;
	log_loss_add(FX->lg, LOSS_RING_RESERVE, 5);
	fake_mono += 400000000ull;
	log_loss_add(FX->lg, LOSS_PARSER_GAP, 2);
	assert_int_equal(log_loss_tick(FX->lg), 0);
	assert_int_equal(count_lines(), 1); /* 0.9 s: held back */
	struct log_stats st;
	log_stats(FX->lg, &st);
	assert_int_equal(st.loss_pending, 7);
	fake_mono += 100000000ull;
	assert_int_equal(log_loss_tick(FX->lg), 0);
	assert_int_equal(count_lines(), 2);

	json_t *ev = next_event();
	assert_string_equal(str(ev, "event"), "loss");
	assert_int_equal(num(json_object_get(ev, "counts"), "ring_reserve"), 3);
	assert_int_equal(num(ev, "total"), 3);
	json_decref(ev);
	ev = next_event();
	json_t *c = json_object_get(ev, "counts");
	assert_int_equal(num(c, "ring_reserve"), 5);
	assert_int_equal(num(c, "parser_gap"), 2);
	assert_null(json_object_get(c, "parser_evicted"));
	assert_int_equal(num(ev, "total"), 7);
	json_decref(ev);

	/* Nothing pending: nothing written, however long. */
	fake_mono += 10000000000ull;
	assert_int_equal(log_loss_tick(FX->lg), 0);
	assert_int_equal(count_lines(), 2);
	/* Out-of-range source and zero counts are ignored. */
	log_loss_add(FX->lg, LOSS_MAX, 9);
	log_loss_add(FX->lg, LOSS_TRUNCATED, 0);
	assert_int_equal(count_lines(), 2);

	/* Pending counts are written at close, rate limit or not. */
	log_loss_add(FX->lg, LOSS_FLOW_EVICT, 1);
	log_loss_add(FX->lg, LOSS_FLOW_EVICT, 1);
	assert_int_equal(count_lines(), 3);
	log_close(FX->lg);
	FX->lg = NULL;
	assert_int_equal(count_lines(), 4);
	for (int i = 0; i < 2; i++) { /* the immediate one, then the one at close */
		ev = next_event();
		assert_int_equal(num(json_object_get(ev, "counts"), "flow_evicted"), 1);
		json_decref(ev);
	}
}

static void test_lifecycle(void **state)
{
	struct log_count counts[] = { { "flows", 12 }, { "recipients", 30 }, { "blocked", 2 } };
	assert_int_equal(log_lifecycle(FX->lg, LOG_START, RW_MODE_MONITOR, true,
				       "config /etc/rcptwall/rcptwall.conf", NULL, 0), 0);
	assert_int_equal(log_lifecycle(FX->lg, LOG_RELOAD, RW_MODE_MONITOR, false,
				       "/etc/rcptwall/rcptwall.conf:3: [general] mode: bad", NULL, 0), 0);
	assert_int_equal(log_lifecycle(FX->lg, LOG_STOP, RW_MODE_MONITOR, true, NULL, counts, 3), 0);
	json_t *ev = next_event();
	assert_string_equal(str(ev, "event"), "start");
	assert_string_equal(str(ev, "mode"), "monitor");
	assert_true(json_is_true(json_object_get(ev, "ok")));
	json_decref(ev);
	ev = next_event();
	assert_string_equal(str(ev, "event"), "reload");
	assert_true(json_is_false(json_object_get(ev, "ok")));
	assert_non_null(strstr(str(ev, "detail"), "mode: bad"));
	json_decref(ev);
	ev = next_event();
	assert_string_equal(str(ev, "event"), "stop");
	assert_int_equal(num(json_object_get(ev, "counts"), "recipients"), 30);
	json_decref(ev);
	/* Only the refused reload reaches syslog. */
	assert_int_equal(FX->n_sys, 1);
	assert_int_equal(FX->sys_prio[0], LOG_MAIL | LOG_ERR);
}

static void test_opaque_and_anomaly(void **state)
{
	struct rw_flow_key k = flow4();
	assert_int_equal(log_flow_opaque(FX->lg, &k, "STARTTLS"), 0);
	assert_int_equal(log_anomaly(FX->lg, &k, "bare_lf", "RCPT TO:<a@b>\n\xff"), 0);
	json_t *ev = next_event();
	assert_string_equal(str(ev, "event"), "flow_opaque");
	assert_string_equal(str(ev, "reason"), "STARTTLS");
	json_decref(ev);
	ev = next_event();
	assert_string_equal(str(ev, "event"), "anomaly");
	assert_string_equal(str(ev, "anomaly"), "bare_lf");
	assert_string_equal(str(ev, "detail"), "RCPT TO:<a@b>\n\\xff");
	json_decref(ev);
}

/* A real file: appended to, reopened after logrotate moved it. */
static void test_file_and_reopen(void **state)
{
	char path[] = "/tmp/rw-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	char moved[64];
	snprintf(moved, sizeof(moved), "%s.1", path);
	struct rw_log_opts o = { .path = path };
	struct rw_log *lg;
	char err[256];
	assert_int_equal(log_open(&o, &lg, err, sizeof(err)), 0);
	struct rw_flow_key k = flow4();
	assert_int_equal(log_flow_opaque(lg, &k, "one"), 0);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(log_reopen(lg, err, sizeof(err)), 0);
	assert_int_equal(log_flow_opaque(lg, &k, "two"), 0);
	log_close(lg);

	json_error_t jerr;
	json_t *a = json_load_file(moved, 0, &jerr);
	json_t *b = json_load_file(path, 0, &jerr);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(str(a, "reason"), "one");
	assert_string_equal(str(b, "reason"), "two");
	json_decref(a);
	json_decref(b);
	unlink(moved);
	unlink(path);

	o.path = "/nonexistent-dir/rcptwall.log";
	assert_int_equal(log_open(&o, &lg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "open log /nonexistent-dir/rcptwall.log"));
}

static size_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

/* Batched: nothing reaches the file until log_flush(), then whole lines;
 * over the buffer size, earlier lines go out whole, never half a line. */
static void test_batched_file(void **state)
{
	char path[] = "/tmp/rw-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct rw_log_opts o = { .path = path, .batched = true };
	struct rw_log *lg;
	char err[256];
	assert_int_equal(log_open(&o, &lg, err, sizeof(err)), 0);
	struct rw_flow_key k = flow4();
	assert_int_equal(log_flow_opaque(lg, &k, "one"), 0);
	assert_int_equal(log_flow_opaque(lg, &k, "two"), 0);
	assert_int_equal(file_size(path), 0);
	assert_int_equal(log_flush(lg), 0);
	size_t two = file_size(path);
	assert_true(two > 0);

	char big[900];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 200; i++) { /* ~200 KB: several buffers' worth */
		assert_int_equal(log_flow_opaque(lg, &k, big), 0);
		size_t sz = file_size(path);
		if (sz > two) { /* whatever went out ends with a whole line */
			FILE *f = fopen(path, "r");
			assert_non_null(f);
			assert_int_equal(fseek(f, (long)sz - 1, SEEK_SET), 0);
			assert_int_equal(fgetc(f), '\n');
			fclose(f);
		}
	}
	log_close(lg);
	FILE *f = fopen(path, "r");
	char line[2048];
	int lines = 0;
	while (fgets(line, sizeof(line), f)) {
		json_error_t jerr;
		json_t *ev = json_loads(line, 0, &jerr);
		assert_non_null(ev);
		json_decref(ev);
		lines++;
	}
	fclose(f);
	assert_int_equal(lines, 202);
	unlink(path);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_rcpt_fields),
		T(test_flag_and_block),
		T(test_monitor_would_block),
		T(test_hostile_strings),
		T(test_long_strings),
		cmocka_unit_test(test_sanitize_small_buffers),
		T(test_loss_rate_limit),
		T(test_lifecycle),
		T(test_opaque_and_anomaly),
		cmocka_unit_test(test_file_and_reopen),
		cmocka_unit_test(test_batched_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
