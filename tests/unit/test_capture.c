/*
 * Unit tests of the user-space capture pieces that need no kernel: ring
 * record validation and dispatch (user/capture.c) and the escaped text
 * form printed by --dump (user/dump.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "dump.h"
#include "flow.h"

/* A raw ring sample: header then payload, with room for a stray byte. */
struct sample {
	struct rw_record_hdr hdr;
	uint8_t data[RW_MAX_PAYLOAD + 8];
};

static size_t make_sample(struct sample *s, uint8_t kind, const char *text)
{
	memset(s, 0, sizeof(*s));
	s->hdr.kind = kind;
	s->hdr.source = RW_SRC_TC;
	s->hdr.seq = 1001;
	assert_int_equal(flow_key_from_strings(&s->hdr.flow, "198.51.100.1", 40000,
					       "198.51.100.2", 25), 0);
	size_t len = text ? strlen(text) : 0;
	memcpy(s->data, text ? text : "", len);
	s->hdr.len = (uint32_t)len;
	return sizeof(s->hdr) + len;
}

static void test_validate_accepts_good_records(void **state)
{
	(void)state;
	struct sample s;
	struct rw_record_hdr h;
	size_t n = make_sample(&s, RW_REC_DATA, "RCPT TO:<a@b>\r\n");
	assert_int_equal(capture_validate(&s, n, &h), 0);
	assert_int_equal(h.len, 15);
	assert_int_equal(h.seq, 1001);

	n = make_sample(&s, RW_REC_FLOW_END, NULL);
	s.hdr.flags = RW_RF_FIN;
	assert_int_equal(capture_validate(&s, n, &h), 0);

	/* Largest payload allowed. */
	memset(&s, 0, sizeof(s));
	n = make_sample(&s, RW_REC_DATA, NULL);
	s.hdr.len = RW_MAX_PAYLOAD;
	assert_int_equal(capture_validate(&s, n + RW_MAX_PAYLOAD, &h), 0);

	/* IPv6 and TLS source. */
	n = make_sample(&s, RW_REC_DATA, "x");
	s.hdr.flow.family = RW_AF_INET6;
	s.hdr.source = RW_SRC_TLS;
	assert_int_equal(capture_validate(&s, n, &h), 0);
}

static void test_validate_rejects_bad_records(void **state)
{
	(void)state;
	struct sample s;
	struct rw_record_hdr h;
	size_t n = make_sample(&s, RW_REC_DATA, "MAIL FROM:<a@b>\r\n");

	assert_int_equal(capture_validate(NULL, n, &h), -EBADMSG);
	assert_int_equal(capture_validate(&s, 0, &h), -EBADMSG);
	assert_int_equal(capture_validate(&s, sizeof(s.hdr) - 1, &h), -EBADMSG);
	/* Size and len disagree, both ways. */
	assert_int_equal(capture_validate(&s, n - 1, &h), -EBADMSG);
	assert_int_equal(capture_validate(&s, n + 1, &h), -EBADMSG);
	/* len over the maximum, even with a matching size. */
	s.hdr.len = RW_MAX_PAYLOAD + 1;
	assert_int_equal(capture_validate(&s, sizeof(s.hdr) + RW_MAX_PAYLOAD + 1, &h), -EBADMSG);
	/* len so large that size - header would wrap. */
	s.hdr.len = UINT32_MAX;
	assert_int_equal(capture_validate(&s, n, &h), -EBADMSG);

	const struct { size_t off; uint8_t val; } bad_bytes[] = {
		{ offsetof(struct rw_record_hdr, kind), 0 },
		{ offsetof(struct rw_record_hdr, kind), 4 },
		{ offsetof(struct rw_record_hdr, source), 0 },
		{ offsetof(struct rw_record_hdr, source), 3 },
		{ offsetof(struct rw_record_hdr, phase), RW_PHASE_OPAQUE + 1 },
		{ offsetof(struct rw_record_hdr, flow) + offsetof(struct rw_flow_key, family), 0 },
		{ offsetof(struct rw_record_hdr, flow) + offsetof(struct rw_flow_key, family), 3 },
	};
	for (size_t i = 0; i < sizeof(bad_bytes) / sizeof(bad_bytes[0]); i++) {
		n = make_sample(&s, RW_REC_DATA, "DATA\r\n");
		((uint8_t *)&s)[bad_bytes[i].off] = bad_bytes[i].val;
		assert_int_equal(capture_validate(&s, n, &h), -EBADMSG);
	}
	/* A flow marker that carries bytes. */
	n = make_sample(&s, RW_REC_FLOW_START, "x");
	assert_int_equal(capture_validate(&s, n, &h), -EBADMSG);
}

/* Unaligned samples are fine: the header is copied out. */
static void test_validate_unaligned(void **state)
{
	(void)state;
	struct sample s;
	struct rw_record_hdr h;
	size_t n = make_sample(&s, RW_REC_DATA, "EHLO x\r\n");
	uint8_t *buf = malloc(n + 1);
	assert_non_null(buf);
	memcpy(buf + 1, &s, n);
	assert_int_equal(capture_validate(buf + 1, n, &h), 0);
	assert_int_equal(h.len, 8);
	free(buf);
}

struct seen {
	int calls;
	char last[64];
	int ret;
};

static int on_record(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	struct seen *s = ctx;
	s->calls++;
	size_t n = hdr->len < sizeof(s->last) - 1 ? hdr->len : sizeof(s->last) - 1;
	memcpy(s->last, data, n);
	s->last[n] = '\0';
	return s->ret;
}

static void test_dispatch_counts_and_delivers(void **state)
{
	(void)state;
	struct capture c;
	struct seen seen = { 0 };
	memset(&c, 0, sizeof(c));
	c.on_record = on_record;
	c.ctx = &seen;

	struct sample s;
	size_t n = make_sample(&s, RW_REC_DATA, "QUIT\r\n");
	assert_int_equal(capture_dispatch(&c, &s, n), 0);
	assert_int_equal(seen.calls, 1);
	assert_string_equal(seen.last, "QUIT\r\n");
	/* A bad one is counted, not delivered, and does not stop the ring. */
	assert_int_equal(capture_dispatch(&c, &s, n - 2), 0);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(c.stats.records, 1);
	assert_int_equal(c.stats.bytes, 6);
	assert_int_equal(c.stats.invalid, 1);
	/* The callback's error stops consumption. */
	seen.ret = -EPIPE;
	assert_int_equal(capture_dispatch(&c, &s, n), -EPIPE);
}

static void test_escape(void **state)
{
	(void)state;
	char out[128];
	const uint8_t in[] = "RCPT TO:<a@b>\r\n\t\\\x1b[31m\x00\xff";
	size_t need = dump_escape(in, sizeof(in) - 1, out, sizeof(out));
	assert_string_equal(out, "RCPT TO:<a@b>\\r\\n\\t\\\\\\x1b[31m\\x00\\xff");
	assert_int_equal(need, strlen(out));

	/* A cut never splits an escape and always terminates. */
	char small[6];
	need = dump_escape((const uint8_t *)"ab\r\ncd", 6, small, sizeof(small));
	assert_int_equal(need, 8);
	assert_string_equal(small, "ab\\r");
	assert_int_equal(dump_escape((const uint8_t *)"\x01", 1, small, 4), 4);
	assert_string_equal(small, "");
	assert_int_equal(dump_escape((const uint8_t *)"x", 1, NULL, 0), 1);
}

static char *dump_to_string(void (*fn)(FILE *, const struct rw_record_hdr *, const uint8_t *),
			    const struct sample *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	fn(f, &s->hdr, s->data);
	fclose(f);
	return buf;
}

static void test_dump_lines(void **state)
{
	(void)state;
	struct sample s;
	make_sample(&s, RW_REC_DATA, "RCPT TO:<a@b>\r\n");
	char *line = dump_to_string(dump_record, &s);
	assert_string_equal(line, "198.51.100.1:40000 -> 198.51.100.2:25 C: RCPT TO:<a@b>\\r\\n\n");
	free(line);

	make_sample(&s, RW_REC_DATA, ".\r\n");
	s.hdr.flags = RW_RF_BODY_TAIL;
	s.hdr.skipped = 5000;
	line = dump_to_string(dump_record, &s);
	assert_string_equal(line, "198.51.100.1:40000 -> 198.51.100.2:25 C[skipped 5000 BODY_TAIL]: .\\r\\n\n");
	free(line);

	make_sample(&s, RW_REC_FLOW_END, NULL);
	s.hdr.flags = RW_RF_RST;
	assert_int_equal(flow_key_from_strings(&s.hdr.flow, "2001:db8:25::1", 1, "2001:db8:25::2", 587), 0);
	line = dump_to_string(dump_record, &s);
	assert_string_equal(line, "[2001:db8:25::1]:1 -> [2001:db8:25::2]:587 flow end RST\n");
	free(line);

	make_sample(&s, RW_REC_FLOW_START, NULL);
	s.hdr.pid = 77;
	line = dump_to_string(dump_record_verbose, &s);
	assert_non_null(strstr(line, "pid=77"));
	assert_non_null(strstr(line, "flow start isn=1001"));
	free(line);

	/* A full record of bytes that all need \xHH fits the line buffer. */
	make_sample(&s, RW_REC_DATA, NULL);
	memset(s.data, 0xff, RW_MAX_PAYLOAD);
	s.hdr.len = RW_MAX_PAYLOAD;
	line = dump_to_string(dump_record, &s);
	assert_int_equal(strlen(line), strlen("198.51.100.1:40000 -> 198.51.100.2:25 C: \n") +
					       4 * RW_MAX_PAYLOAD);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_accepts_good_records),
		cmocka_unit_test(test_validate_rejects_bad_records),
		cmocka_unit_test(test_validate_unaligned),
		cmocka_unit_test(test_dispatch_counts_and_delivers),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_dump_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
