/*
 * Unit tests of the pipeline (user/pipeline.c): ring records in, events
 * out, with the real parser and matcher, a monitor-mode enforcer (touches
 * nothing) and the logger writing to memory. No kernel needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enforce.h"
#include "flow.h"
#include "log.h"
#include "match.h"
#include "pipeline.h"

struct fixture {
	FILE *mem;
	char *buf;
	size_t len;
	struct rw_log *log;
	struct enforcer *enf;
	struct pipeline *pipe;
	struct rw_flow_key flow;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];
	f->mem = open_memstream(&f->buf, &f->len);
	struct rw_log_opts lo = { .stream = f->mem };
	assert_int_equal(log_open(&lo, &f->log, err, sizeof(err)), 0);
	struct enforcer_opts eo = { .mode = RW_MODE_MONITOR, .blocked_map_fd = -1 };
	assert_int_equal(enforcer_new(&eo, &f->enf, err, sizeof(err)), 0);
	struct match_policy_files files = { 0 }; /* the embedded policy */
	struct matcher *m = matcher_new(&files, err, sizeof(err));
	assert_non_null(m);
	struct pipeline_opts po = { .matcher = m, .enforcer = f->enf, .log = f->log,
				    .flows_fd = -1, .log_recipients = true };
	assert_int_equal(pipeline_new(&po, &f->pipe, err, sizeof(err)), 0);
	assert_int_equal(flow_key_from_strings(&f->flow, "198.51.100.1", 40000, "198.51.100.2", 25), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pipeline_free(f->pipe);
	enforcer_free(f->enf);
	log_close(f->log);
	fclose(f->mem);
	free(f->buf);
	free(f);
	return 0;
}

/* Feeds one record of kind with data at seq. */
static void feed(struct fixture *f, uint8_t kind, uint32_t seq, const char *data)
{
	struct rw_record_hdr h = {
		.kind = kind,
		.source = RW_SRC_TC,
		.seq = seq,
		.len = data ? (uint32_t)strlen(data) : 0,
		.ts_ns = 1000,
		.flow = f->flow,
	};
	assert_int_equal(pipeline_on_record(&h, (const uint8_t *)data, f->pipe), 0);
}

/* Events written so far (the log is flushed by pipeline_tick). */
static size_t events(struct fixture *f, const char *kind, json_t **last)
{
	pipeline_tick(f->pipe, NULL);
	fflush(f->mem);
	size_t n = 0;
	const char *p = f->buf;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		json_error_t jerr;
		json_t *ev = json_loadb(p, (size_t)(nl - p), 0, &jerr);
		assert_non_null(ev);
		if (!strcmp(json_string_value(json_object_get(ev, "event")), kind)) {
			n++;
			if (last) {
				json_decref(*last);
				*last = json_incref(ev);
			}
		}
		json_decref(ev);
		p = nl + 1;
	}
	return n;
}

static const char *str(json_t *ev, const char *key)
{
	return json_string_value(json_object_get(ev, key));
}

static void test_lookalike_flagged_pipelined(void **state)
{
	struct fixture *f = *state;
	const char *group = "MAIL FROM:<alice@example.com>\r\n"
			    "RCPT TO:<bob@army.mil>\r\n"
			    "RCPT TO:<carol@army.ml>\r\n"
			    "DATA\r\n";
	feed(f, RW_REC_FLOW_START, 99, NULL);
	feed(f, RW_REC_DATA, 100, "EHLO relay.example\r\n");
	feed(f, RW_REC_DATA, 120, group);

	json_t *ev = NULL;
	assert_int_equal(events(f, "rcpt", NULL), 2);
	assert_int_equal(events(f, "flag", &ev), 1);
	assert_string_equal(str(ev, "rcpt"), "carol@army.ml");
	assert_string_equal(str(ev, "mail_from"), "alice@example.com");
	assert_string_equal(str(ev, "protected"), ".mil");
	assert_non_null(str(ev, "detector"));
	assert_int_equal(events(f, "block", &ev), 1);
	assert_true(json_is_true(json_object_get(ev, "would_block")));
	assert_string_equal(str(ev, "mode"), "monitor");
	json_decref(ev);

	struct pipeline_stats st;
	pipeline_stats(f->pipe, &st);
	assert_int_equal(st.recipients, 2);
	assert_int_equal(st.flagged, 1);
	assert_int_equal(st.would_block, 1);
	assert_int_equal(st.blocked, 0);
	assert_int_equal(st.losses, 0);
}

/* Message content is never judged, however much it looks like commands. */
static void test_body_not_judged(void **state)
{
	struct fixture *f = *state;
	const char *s = "MAIL FROM:<a@example.com>\r\nRCPT TO:<ok@example.org>\r\nDATA\r\n";
	feed(f, RW_REC_DATA, 1, s);
	feed(f, RW_REC_DATA, 1 + (uint32_t)strlen(s),
	     "Subject: x\r\n\r\nRCPT TO:<evil@army.ml>\r\n.\r\n");
	assert_int_equal(events(f, "rcpt", NULL), 1);
	assert_int_equal(events(f, "flag", NULL), 0);
}

/* Growth of the kernel's loss counters becomes one loss event. */
static void test_kernel_loss_reported(void **state)
{
	struct fixture *f = *state;
	uint64_t kc[RW_CNT_MAX] = { 0 };
	pipeline_tick(f->pipe, kc);
	kc[RW_CNT_RESERVE_FAIL] = 3;
	kc[RW_CNT_TRUNC_BYTES] = 100;
	pipeline_tick(f->pipe, kc);
	json_t *ev = NULL;
	assert_int_equal(events(f, "loss", &ev), 1);
	json_decref(ev);
	struct pipeline_stats st;
	pipeline_stats(f->pipe, &st);
	assert_int_equal(st.losses, 103);
	/* No growth, no new loss. */
	pipeline_tick(f->pipe, kc);
	pipeline_stats(f->pipe, &st);
	assert_int_equal(st.losses, 103);
}

/* A reload swaps the matcher: the new policy judges what follows. */
static void test_swap_matcher(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/rw-test-protect-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "example.org\n", 12), 12);
	close(fd);
	char err[512];
	struct match_policy_files files = { .protect = path };
	struct matcher *m = matcher_new(&files, err, sizeof(err));
	unlink(path);
	assert_non_null(m);
	matcher_free(pipeline_swap_matcher(f->pipe, m));
	feed(f, RW_REC_DATA, 1, "MAIL FROM:<a@example.com>\r\nRCPT TO:<x@examp1e.org>\r\n"
				"RCPT TO:<y@army.ml>\r\n");
	json_t *ev = NULL;
	assert_int_equal(events(f, "flag", &ev), 1);
	assert_string_equal(str(ev, "rcpt"), "x@examp1e.org");
	json_decref(ev);
}

/*
 * Monitor mode reports what enforce mode would do: a flag per lookalike
 * recipient, one block per transaction (enforce mode cuts the connection
 * there, and the next message comes on a new one); a new connection on the
 * same tuple is judged afresh.
 */
static void test_monitor_one_block_per_transaction(void **state)
{
	struct fixture *f = *state;
	const char *txn = "MAIL FROM:<a@example.com>\r\nRCPT TO:<x@army.ml>\r\n"
			  "RCPT TO:<y@army.ml>\r\nDATA\r\n";
	uint32_t seq = 100;
	feed(f, RW_REC_FLOW_START, seq - 1, NULL);
	feed(f, RW_REC_DATA, seq, txn);
	seq += (uint32_t)strlen(txn);
	assert_int_equal(events(f, "flag", NULL), 2);
	assert_int_equal(events(f, "block", NULL), 1);
	const char *end = "body\r\n.\r\n";
	feed(f, RW_REC_DATA, seq, end);
	seq += (uint32_t)strlen(end);
	feed(f, RW_REC_DATA, seq, txn); /* the next message on the same connection */
	assert_int_equal(events(f, "flag", NULL), 4);
	assert_int_equal(events(f, "block", NULL), 2);
	feed(f, RW_REC_FLOW_END, seq + (uint32_t)strlen(txn), NULL);
	feed(f, RW_REC_FLOW_START, 5000, NULL);
	feed(f, RW_REC_DATA, 5001, "MAIL FROM:<a@example.com>\r\nRCPT TO:<z@army.ml>\r\n");
	assert_int_equal(events(f, "flag", NULL), 5);
	assert_int_equal(events(f, "block", NULL), 3);
	struct pipeline_stats st;
	pipeline_stats(f->pipe, &st);
	assert_int_equal(st.flagged, 5);
	assert_int_equal(st.would_block, 3);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lookalike_flagged_pipelined),
		T(test_monitor_one_block_per_transaction),
		T(test_body_not_judged),
		T(test_kernel_loss_reported),
		T(test_swap_matcher),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
