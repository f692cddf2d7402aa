/*
 * SMTP parser: the table of client streams and the exact events each must
 * produce (user/smtp.c, user/smtp_path.c).
 *
 * Every case runs five ways: whole; split into two segments at every byte
 * position (with stream bases around the 2^32 wrap); byte by byte; in three
 * parts fed last part first (out of order, held and released); and as
 * overlapping windows each sent twice (duplicates, overlaps). The whole run
 * must match the expected text exactly; the others must match it up to the
 * BDAT phase lines, which depend on where segments end (smtp_recorder.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/smtp_recorder.h"
#include "smtp_path.h"

struct smtp_case {
	const char *name;
	const char *in;
	size_t len;
	const char *expect;
};

#define C(name, in, expect) { name, in, sizeof(in) - 1, expect }
#define MF "MAIL FROM:<a@b>\r\n"
#define EMF "MAIL a@b (a|b)\n"
#define LONG100 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG600 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100
#define SP100 "                                                                                                    "

static const struct smtp_case cases[] = {
	/* --- envelope basics --- */
	C("basic", "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@army.ml>\r\nQUIT\r\n",
	  "MAIL a@b.example (a|b.example)\nRCPT x@army.ml (x|army.ml) from=a@b.example\n"),
	C("lower case verbs", "mail from:<a@b>\r\nrcpt to:<x@y>\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\n"),
	C("mixed case kept in address", "MaIl FrOm:<A@B>\r\nRcPt To:<X@ARMY.ML>\r\n",
	  "MAIL A@B (A|B)\nRCPT X@ARMY.ML (X|ARMY.ML) from=A@B\n"),
	C("space after colon", "MAIL FROM: <a@b>\r\nRCPT TO: <x@y>\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\n"),
	C("spaces inside brackets", MF "RCPT TO:< x@y >\r\n", EMF "RCPT x@y (x|y) from=a@b\n"),
	C("space before colon", "MAIL FROM :<a@b>\r\nRCPT TO :<x@y>\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\n"),
	C("tab before path", MF "RCPT TO:\t<x@y>\r\n", EMF "RCPT x@y (x|y) from=a@b\n"),
	C("no brackets", "MAIL FROM:a@b\r\nRCPT TO:x@army.ml\r\n",
	  "AN no_brackets\nMAIL a@b (a|b) +nb\nAN no_brackets\n"
	  "RCPT x@army.ml (x|army.ml) +nb from=a@b\n"),
	C("no brackets with params", MF "RCPT TO:x@y NOTIFY=NEVER\r\n",
	  EMF "AN no_brackets\nRCPT x@y (x|y) [NOTIFY=NEVER] +nb from=a@b\n"),
	C("null reverse path", "MAIL FROM:<>\r\nRCPT TO:<x@y>\r\n",
	  "MAIL  (|) +null\nRCPT x@y (x|y) from=\n"),
	C("null forward path refused", MF "RCPT TO:<>\r\n", EMF "AN bad_path\n"),
	C("source route", MF "RCPT TO:<@r1.example,@r2.example:u@d.example>\r\n",
	  EMF "AN source_route\nRCPT u@d.example (u|d.example) +sr from=a@b\n"),
	C("quoted local with @ and >", MF "RCPT TO:<\"a@b>c\"@army.ml>\r\n",
	  EMF "RCPT \"a@b>c\"@army.ml (\"a@b>c\"|army.ml) from=a@b\n"),
	C("quoted local with escaped quote", MF "RCPT TO:<\"a\\\"b@x\"@army.ml>\r\n",
	  EMF "RCPT \"a\\\"b@x\"@army.ml (\"a\\\"b@x\"|army.ml) from=a@b\n"),
	C("quoted local with space", MF "RCPT TO:<\"john smith\"@army.ml>\r\n",
	  EMF "RCPT \"john smith\"@army.ml (\"john smith\"|army.ml) from=a@b\n"),
	C("trailing dot kept", MF "RCPT TO:<x@army.ml.>\r\n",
	  EMF "RCPT x@army.ml. (x|army.ml.) from=a@b\n"),
	C("utf8 domain", "MAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<x@\xc3\xa4rmy.ml>\r\n",
	  "MAIL a@b (a|b) [SMTPUTF8]\nRCPT x@\\xc3\\xa4rmy.ml (x|\\xc3\\xa4rmy.ml) +u8 from=a@b\n"),
	C("utf8 local and domain", MF "RCPT TO:<\xce\xb4@\xce\xb5.\xce\xb6>\r\n",
	  EMF "RCPT \\xce\\xb4@\\xce\\xb5.\\xce\\xb6 (\\xce\\xb4|\\xce\\xb5.\\xce\\xb6) +u8 from=a@b\n"),
	C("xn-- domain", MF "RCPT TO:<x@xn--rmy-qla.ml>\r\n",
	  EMF "RCPT x@xn--rmy-qla.ml (x|xn--rmy-qla.ml) from=a@b\n"),
	C("ipv4 literal", MF "RCPT TO:<x@[198.51.100.7]>\r\n",
	  EMF "RCPT x@[198.51.100.7] (x|[198.51.100.7]) +lit from=a@b\n"),
	C("ipv6 literal", MF "RCPT TO:<x@[IPv6:2001:db8:25::1]>\r\n",
	  EMF "RCPT x@[IPv6:2001:db8:25::1] (x|[IPv6:2001:db8:25::1]) +lit from=a@b\n"),
	C("esmtp params", "MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME\r\n"
	  "RCPT TO:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y  \r\n",
	  "MAIL a@b (a|b) [SIZE=1000 BODY=8BITMIME]\n"
	  "RCPT x@y (x|y) [NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y] from=a@b\n"),
	C("postmaster without domain", MF "RCPT TO:<Postmaster>\r\n",
	  EMF "RCPT Postmaster (Postmaster|) from=a@b\n"),
	C("two unquoted @: last one wins", MF "RCPT TO:<a@b@army.ml>\r\n",
	  EMF "RCPT a@b@army.ml (a@b|army.ml) from=a@b\n"),
	C("missing >", MF "RCPT TO:<x@y\r\n", EMF "AN bad_path\n"),
	C("empty path", MF "RCPT TO:\r\n", EMF "AN bad_path\n"),
	C("no TO:", MF "RCPT x@y\r\n", EMF "AN bad_path\n"),
	C("bad domain literal", MF "RCPT TO:<x@[198.51.100.7>\r\n", EMF "AN bad_path\n"),
	C("unterminated route", MF "RCPT TO:<@r1,@r2>\r\n", EMF "AN bad_path\n"),
	C("bad MAIL then RCPT", "MAIL FROM:<a@b\r\nRCPT TO:<x@y>\r\n",
	  "AN bad_path\nAN rcpt_without_mail\nRCPT x@y (x|y) from=-\n"),
	/* --- transactions --- */
	C("rcpt without mail", "RCPT TO:<x@y>\r\n", "AN rcpt_without_mail\nRCPT x@y (x|y) from=-\n"),
	C("rset ends transaction", MF "RSET\r\nRCPT TO:<x@y>\r\n",
	  EMF "AN rcpt_without_mail\nRCPT x@y (x|y) from=-\n"),
	C("ehlo ends transaction", MF "EHLO x\r\nRCPT TO:<x@y>\r\n",
	  EMF "AN rcpt_without_mail\nRCPT x@y (x|y) from=-\n"),
	C("new mail new transaction", MF "RCPT TO:<x@y>\r\nMAIL FROM:<c@d>\r\nRCPT TO:<z@w>\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\nMAIL c@d (c|d)\nRCPT z@w (z|w) from=c@d\n"),
	C("harmless verbs", "HELO x\r\nNOOP\r\nVRFY x\r\nHELP\r\nLHLO y\r\nQUIT\r\n", ""),
	C("empty lines ignored", "\r\n\r\n" MF, EMF),
	C("unknown command", "XYZZY foo\r\n" MF, "AN unknown_command\n" EMF),
	C("auth login responses", "AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\n" MF, EMF),
	C("auth cancelled", "AUTH PLAIN\r\n*\r\n" MF, EMF),
	C("auth then bare verb", "AUTH LOGIN\r\nRSET\r\nFOO BAR\r\n", "AN unknown_command\n"),
	/* --- DATA --- */
	C("pipelined data", MF "RCPT TO:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\n"
	  "Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\nRCPT z@w (z|w) from=a@b\nDATA\nPHASE data\n"
	  "PHASE command\nEND\n"),
	C("content that looks like commands", MF "RCPT TO:<x@y>\r\nDATA\r\nFrom: a\r\n\r\n"
	  "RCPT TO:<evil@army.ml>\r\nMAIL FROM:<x@y>\r\nSTARTTLS\r\nBDAT 5\r\nQUIT\r\n.\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\nDATA\nPHASE data\nPHASE command\nEND\n"),
	C("dot stuffing", MF "DATA\r\nX: y\r\n\r\n..\r\n...\r\n.x\r\n. \r\n.\r\nRCPT TO:<z@w>\r\n",
	  EMF "DATA\nPHASE data\nPHASE command\nEND\nAN rcpt_without_mail\n"
	  "RCPT z@w (z|w) from=-\n"),
	C("empty message", MF "DATA\r\n.\r\n" MF, EMF "DATA\nPHASE data\nPHASE command\nEND\n" EMF),
	C("two messages", MF "RCPT TO:<x@y>\r\nDATA\r\nA: b\r\n.\r\n"
	  "MAIL FROM:<c@d>\r\nRCPT TO:<z@w>\r\nDATA\r\nC: d\r\n.\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\nDATA\nPHASE data\nPHASE command\nEND\n"
	  "MAIL c@d (c|d)\nRCPT z@w (z|w) from=c@d\nDATA\nPHASE data\nPHASE command\nEND\n"),
	C("lf dot lf is content", MF "DATA\r\nX: y\r\n\n.\nRCPT TO:<s@army.ml>\r\n\r\n.\r\n",
	  EMF "DATA\nPHASE data\nAN dot_bare_lf\nPHASE command\nEND\n"),
	C("crlf dot lf is content", MF "DATA\r\nX: y\r\n.\nRCPT TO:<s@army.ml>\r\n.\r\n",
	  EMF "DATA\nPHASE data\nAN dot_bare_lf\nPHASE command\nEND\n"),
	C("lf dot crlf is content", MF "DATA\r\nX: y\n.\r\nRCPT TO:<s@army.ml>\r\n.\r\n",
	  EMF "DATA\nPHASE data\nAN dot_bare_lf\nPHASE command\nEND\n"),
	C("first line dot lf", MF "DATA\r\n.\nX\r\n.\r\n",
	  EMF "DATA\nPHASE data\nAN dot_bare_lf\nPHASE command\nEND\n"),
	C("data with argument", MF "DATA x\r\nSubject: y\r\n.\r\n",
	  EMF "DATA\nPHASE data\nPHASE command\nEND\n"),
	C("header named like a verb", MF "DATA\r\nMAIL: not a command\r\n.\r\n",
	  EMF "DATA\nPHASE data\nPHASE command\nEND\n"),
	C("first line neither header nor command", MF "DATA\r\nSubject : x\r\n.\r\n",
	  EMF "DATA\nPHASE data\nPHASE command\nEND\n"),
	C("data refused then rset", MF "RCPT TO:<x@y>\r\nDATA\r\nRSET\r\n"
	  "MAIL FROM:<c@d>\r\nRCPT TO:<e@f>\r\n",
	  EMF "RCPT x@y (x|y) from=a@b\nDATA\nPHASE data\nAN data_refused\nPHASE command\n"
	  "MAIL c@d (c|d)\nRCPT e@f (e|f) from=c@d\n"),
	C("data refused then rcpt", MF "DATA\r\nRCPT TO:<x@army.ml>\r\n",
	  EMF "DATA\nPHASE data\nAN data_refused\nPHASE command\n"
	  "RCPT x@army.ml (x|army.ml) from=a@b\n"),
	C("data refused then quit", MF "DATA\r\nQUIT\r\n",
	  EMF "DATA\nPHASE data\nAN data_refused\nPHASE command\n"),
	C("data refused then noop", MF "DATA\r\nNOOP\r\n",
	  EMF "DATA\nPHASE data\nAN data_refused\nPHASE command\n"),
	/* --- BDAT --- */
	C("bdat last", MF "RCPT TO:<x@y>\r\nBDAT 5 LAST\r\nhello",
	  EMF "RCPT x@y (x|y) from=a@b\nDATA\nEND\n"),
	C("bdat body with rcpt and terminator", MF "BDAT 26 LAST\r\n"
	  "RCPT TO:<x@army.ml>\r\n\r\n.\r\n" "MAIL FROM:<c@d>\r\nRCPT TO:<z@w>\r\n",
	  EMF "DATA\nEND\nMAIL c@d (c|d)\nRCPT z@w (z|w) from=c@d\n"),
	C("bdat chunks", MF "BDAT 3\r\nabcBDAT 4 LAST\r\ndefg" MF,
	  EMF "DATA\nEND\n" EMF),
	C("bdat zero last", MF "BDAT 0 LAST\r\n" MF, EMF "DATA\nEND\n" EMF),
	C("bdat lower case", MF "bdat 2 last\r\nxy", EMF "DATA\nEND\n"),
	C("bdat chunk with crlf at boundary", MF "BDAT 2\r\n\r\nBDAT 1 LAST\r\n\n" MF,
	  EMF "DATA\nEND\n" EMF),
	C("bdat without size", MF "BDAT x\r\nRCPT TO:<q@w>\r\n",
	  EMF "AN bad_bdat\nRCPT q@w (q|w) from=a@b\n"),
	C("bdat junk after size", MF "BDAT 3 LAST junk\r\nabc",
	  EMF "AN bad_bdat\nDATA\nEND\n"),
	C("bdat incomplete chunk", MF "BDAT 100\r\nabc", EMF "DATA\nPHASE bdat +127\n"),
	C("bdat refused still consumes", MF "BDAT 21 LAST\r\nRCPT TO:<x@army.ml>\r\nRSET\r\n",
	  EMF "DATA\nEND\n"),
	/* --- STARTTLS --- */
	C("starttls then binary", "EHLO c\r\nSTARTTLS\r\n\x16\x03\x01\x00\xa5\x01\x00\x00"
	  "RCPT TO:<x@army.ml>\r\n", "OPAQUE\nPHASE opaque\n"),
	C("starttls lower case with tls bytes", "starttls\r\n\x16\x03\x03\x00\x00\r\n\n\n",
	  "OPAQUE\nPHASE opaque\n"),
	/* --- malformed lines --- */
	C("bare lf", "MAIL FROM:<a@b>\nRCPT TO:<x@y>\r\n",
	  "AN bare_lf\n" EMF "RCPT x@y (x|y) from=a@b\n"),
	C("nul byte", MF "RCPT TO:<x\0y@z>\r\n", EMF "AN control_byte\nRCPT x@z (x|z) from=a@b\n"),
	C("control byte in domain", MF "RCPT TO:<x@ar\x01my.ml>\r\n",
	  EMF "AN control_byte\nRCPT x@ar\\x01my.ml (x|ar\\x01my.ml) from=a@b\n"),
	C("bare cr inside line", MF "RCPT TO:<x@y>\rRCPT TO:<z@w>\r\n",
	  EMF "AN control_byte\nRCPT x@y (x|y) [\\x0dRCPT TO:<z@w>] from=a@b\n"),
	C("over-long line, path first", MF "RCPT TO:<x@army.ml>" SP100 SP100 SP100 SP100 SP100 "\r\n",
	  EMF "AN line_too_long\nRCPT x@army.ml (x|army.ml) from=a@b\n"),
	C("over-long line, path cut", MF "RCPT TO:<" LONG600 "@army.ml>\r\n" MF,
	  EMF "AN line_too_long\nAN bad_path\n" EMF),
	C("512 octets is fine", MF "RCPT TO:<" LONG100 LONG100 LONG100 LONG100
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "@army.ml>\r\n",
	  EMF "RCPT " LONG100 LONG100 LONG100 LONG100
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "@army.ml (" LONG100 LONG100 LONG100 LONG100
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "|army.ml) from=a@b\n"),
	C("over-long first content line", MF "DATA\r\n" LONG600 "\r\n.\r\n",
	  EMF "DATA\nPHASE data\nPHASE command\nEND\n"),
	C("partial last line waits", MF "RCPT TO:<x@y>", EMF),
	C("verb padded with NULs", "HELO\0\0\0\0\r\nSTARTTLSX\r\n" MF,
	  "AN control_byte\nAN unknown_command\nAN unknown_command\n" EMF),
};

static char *run_segments(const struct smtp_case *tc, uint32_t base, const size_t *cuts,
			  size_t ncuts, int order)
{
	struct recorder *r = calloc(1, sizeof(*r));
	struct rw_flow_key k;
	test_key(&k, 40000);
	r->base[RW_SRC_TC] = base;
	struct smtp_parser *p = smtp_parser_new(NULL, rec_event, r);
	assert_non_null(p);
	smtp_parser_flow_start(p, &k, RW_SRC_TC, base - 1, 1);
	/* segments [cuts[i], cuts[i+1]); order 1 = last segment first */
	for (size_t j = 0; j + 1 < ncuts; j++) {
		size_t i = order ? ncuts - 2 - j : j;
		size_t a = cuts[i], b = cuts[i + 1];
		assert_int_equal(feed_bytes(p, &k, RW_SRC_TC, base + (uint32_t)a, tc->in + a,
					    b - a, 0, 100 + i), 0);
	}
	struct smtp_stats st;
	smtp_parser_stats(p, &st);
	assert_int_equal(st.flows_active, 1);
	smtp_parser_free(p);
	char *out = strdup(r->text);
	free(r);
	return out;
}

static void expect_normalised(const struct smtp_case *tc, const char *got, const char *mode,
			      size_t at)
{
	char *a = normalise(tc->expect), *b = normalise(got);
	if (strcmp(a, b)) {
		print_error("case '%s' mode %s at %zu:\n--- expected\n%s--- got\n%s", tc->name,
			    mode, at, a, b);
		fail();
	}
	free(a);
	free(b);
}

static void run_case(const struct smtp_case *tc)
{
	size_t cuts[4096];
	assert_true(tc->len + 1 < sizeof(cuts) / sizeof(cuts[0]));

	/* whole: exact */
	cuts[0] = 0, cuts[1] = tc->len;
	char *got = run_segments(tc, 1000, cuts, 2, 0);
	if (strcmp(got, tc->expect)) {
		print_error("case '%s' whole:\n--- expected\n%s--- got\n%s", tc->name,
			    tc->expect, got);
		fail();
	}
	free(got);

	/* two segments, every cut; bases walk across the wrap */
	for (size_t k = 1; k < tc->len; k++) {
		cuts[0] = 0, cuts[1] = k, cuts[2] = tc->len;
		got = run_segments(tc, 0xffffffffu - (uint32_t)(k % 11), cuts, 3, 0);
		expect_normalised(tc, got, "split", k);
		free(got);
	}

	/* byte by byte, starting just before the wrap */
	for (size_t i = 0; i <= tc->len; i++)
		cuts[i] = i;
	got = run_segments(tc, 0xfffffff0u, cuts, tc->len + 1, 0);
	expect_normalised(tc, got, "bytes", 0);
	free(got);

	/* three parts, last first: held out of order, then released */
	if (tc->len >= 3) {
		cuts[0] = 0, cuts[1] = tc->len / 3, cuts[2] = 2 * tc->len / 3, cuts[3] = tc->len;
		got = run_segments(tc, 5000, cuts, 4, 1);
		expect_normalised(tc, got, "reversed", 0);
		free(got);
	}
}

/* Overlapping windows, each sent twice: duplicates and overlaps trimmed. */
static void run_case_overlaps(const struct smtp_case *tc)
{
	struct recorder *r = calloc(1, sizeof(*r));
	struct rw_flow_key k;
	test_key(&k, 40001);
	uint32_t base = 0x7ffffffc;
	r->base[RW_SRC_TC] = base;
	struct smtp_parser *p = smtp_parser_new(NULL, rec_event, r);
	smtp_parser_flow_start(p, &k, RW_SRC_TC, base - 1, 1);
	for (size_t a = 0; a < tc->len; a += 4) {
		size_t n = tc->len - a < 7 ? tc->len - a : 7;
		feed_bytes(p, &k, RW_SRC_TC, base + (uint32_t)a, tc->in + a, n, 0, 1);
		feed_bytes(p, &k, RW_SRC_TC, base + (uint32_t)a, tc->in + a, n, 0, 1);
	}
	struct smtp_stats st;
	smtp_parser_stats(p, &st);
	if (tc->len > 7)
		assert_true(st.segments_dup > 0);
	smtp_parser_free(p);
	expect_normalised(tc, r->text, "overlaps", 0);
	free(r);
}

static void test_table(void **state)
{
	(void)state;
	size_t n = sizeof(cases) / sizeof(cases[0]);
	assert_true(n >= 60);
	for (size_t i = 0; i < n; i++) {
		run_case(&cases[i]);
		run_case_overlaps(&cases[i]);
	}
}

/* ---- path parser and escaping, directly ------------------------------------ */

static void test_path_results(void **state)
{
	(void)state;
	struct smtp_mailbox m;
	static const struct {
		const char *arg;
		bool allow_null;
		enum smtp_path_result want;
	} t[] = {
		{ "<a@b>", false, SMTP_PATH_OK },
		{ "<>", true, SMTP_PATH_OK },
		{ "<>", false, SMTP_PATH_NULL_RCPT },
		{ "", false, SMTP_PATH_EMPTY },
		{ "   ", false, SMTP_PATH_EMPTY },
		{ "<a@b", false, SMTP_PATH_UNTERMINATED },
		{ "<\"a@b>", false, SMTP_PATH_UNTERMINATED },
		{ "<@r1,@r2>", false, SMTP_PATH_BAD_ROUTE },
		{ "<@a>", false, SMTP_PATH_BAD_ROUTE },
		{ "<@a:>", false, SMTP_PATH_BAD_LOCAL },
		{ "<@b.example>", false, SMTP_PATH_BAD_ROUTE },
		{ "<a@>", false, SMTP_PATH_BAD_DOMAIN },
		{ "<a@[1.2.3.4>", false, SMTP_PATH_BAD_DOMAIN },
		{ "<a@b c>", false, SMTP_PATH_UNTERMINATED },
		{ "a@b", false, SMTP_PATH_OK },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum smtp_path_result r = smtp_path_parse((const uint8_t *)t[i].arg,
							  strlen(t[i].arg), t[i].allow_null, &m);
		if (r != t[i].want) {
			print_error("'%s': got %s want %s\n", t[i].arg, smtp_path_result_str(r),
				    smtp_path_result_str(t[i].want));
			fail();
		}
	}
}

static void test_path_fields(void **state)
{
	(void)state;
	struct smtp_mailbox m;
	const char *arg = "<@relay.example:\"q\\\"x\"@[IPv6:2001:db8::1]> NOTIFY=NEVER ";
	assert_int_equal(smtp_path_parse((const uint8_t *)arg, strlen(arg), false, &m),
			 SMTP_PATH_OK);
	assert_string_equal(m.local, "\"q\\\"x\"");
	assert_string_equal(m.domain, "[IPv6:2001:db8::1]");
	assert_string_equal(m.mailbox, "\"q\\\"x\"@[IPv6:2001:db8::1]");
	assert_string_equal(m.params, "NOTIFY=NEVER");
	assert_true(m.had_source_route && m.is_literal);
	assert_false(m.no_brackets || m.utf8 || m.is_null);
}

static void test_escape(void **state)
{
	(void)state;
	char out[16];
	smtp_escape((const uint8_t *)"a\0b\r\n\\", 6, out, sizeof(out));
	assert_string_equal(out, "a\\x00b\\r\\n\\\\");
	smtp_escape((const uint8_t *)"0123456789abcdefghij", 20, out, sizeof(out));
	assert_string_equal(out, "0123456789ab...");
	smtp_escape((const uint8_t *)"0123456789abcde", 15, out, sizeof(out));
	assert_string_equal(out, "0123456789abcde");
	smtp_escape((const uint8_t *)"\xff\xff\xff\xff", 4, out, 8);
	assert_string_equal(out, "\\xff...");
}

static void test_names(void **state)
{
	(void)state;
	for (int a = SMTP_AN_NONE; a < SMTP_AN_MAX; a++)
		assert_string_not_equal(smtp_anomaly_name((enum smtp_anomaly)a), "unknown");
	assert_string_equal(smtp_anomaly_name(SMTP_AN_MAX), "unknown");
	for (int k = SMTP_EV_MAIL; k <= SMTP_EV_FLOW_END; k++)
		assert_string_not_equal(smtp_event_name((enum smtp_event_kind)k), "unknown");
}

/* Anomaly details name what was wrong, escaped. */
static void test_anomaly_detail(void **state)
{
	(void)state;
	struct recorder *r = calloc(1, sizeof(*r));
	struct rw_flow_key k;
	test_key(&k, 40002);
	struct smtp_parser *p = smtp_parser_new(NULL, rec_event, r);
	static const char in[] = "MAIL FROM:<a@b>\r\nRCPT TO:<x\0@y>\r\n";
	feed_bytes(p, &k, RW_SRC_TC, 1, in, sizeof(in) - 1, 0, 5);
	assert_int_equal(r->last_anomaly.u.anomaly.code, SMTP_AN_CONTROL_BYTE);
	assert_string_equal(r->last_anomaly.u.anomaly.detail, "RCPT TO:<x\\x00@y>");
	static const char bad[] = "RCPT TO:<x@y\r\n";
	feed_bytes(p, &k, RW_SRC_TC, 1 + sizeof(in) - 1, bad, sizeof(bad) - 1, 0, 6);
	assert_int_equal(r->last_anomaly.u.anomaly.code, SMTP_AN_BAD_PATH);
	assert_string_equal(r->last_anomaly.u.anomaly.detail, "unterminated path: <x@y");
	assert_int_equal(r->last_anomaly.ts_ns, 6);
	smtp_parser_free(p);
	free(r);
}

/*
 * What the kernel's judgement gate is told: every byte before the stream's
 * next expected byte is parsed. Retransmissions never move it back; bytes
 * held after a hole do not move it forward; the other source is separate.
 */
static void test_stream_next(void **state)
{
	(void)state;
	struct recorder *r = calloc(1, sizeof(*r));
	struct rw_flow_key k;
	test_key(&k, 40003);
	struct smtp_parser *p = smtp_parser_new(NULL, rec_event, r);
	uint32_t next = 0;
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), -ENOENT);

	static const char a[] = "EHLO x\r\n", b[] = "MAIL FROM:<a@b>\r\n", c[] = "NOOP\r\n";
	const uint32_t base = 0xfffffffcu; /* across the 2^32 wrap */
	const uint32_t la = sizeof(a) - 1, lb = sizeof(b) - 1, lc = sizeof(c) - 1;
	assert_int_equal(feed_bytes(p, &k, RW_SRC_TC, base, a, sizeof(a) - 1, 0, 1), 0);
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), 0);
	assert_int_equal(next, (uint32_t)(base + la));
	/* c arrives ahead of b: held, the position stays. */
	uint32_t c_seq = (uint32_t)(base + la + lb);
	assert_int_equal(feed_bytes(p, &k, RW_SRC_TC, c_seq, c, sizeof(c) - 1, 0, 2), 0);
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), 0);
	assert_int_equal(next, (uint32_t)(base + la));
	assert_int_equal(feed_bytes(p, &k, RW_SRC_TC, (uint32_t)(base + la), b, sizeof(b) - 1, 0, 3), 0);
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), 0);
	assert_int_equal(next, (uint32_t)(c_seq + lc));
	/* A retransmission of the first segment. */
	assert_int_equal(feed_bytes(p, &k, RW_SRC_TC, base, a, sizeof(a) - 1, 0, 4), 0);
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), 0);
	assert_int_equal(next, (uint32_t)(c_seq + lc));
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TLS, &next), -ENOENT);
	assert_int_equal(smtp_parser_stream_next(p, &k, 99, &next), -ENOENT);

	smtp_parser_flow_end(p, &k, 5);
	assert_int_equal(smtp_parser_stream_next(p, &k, RW_SRC_TC, &next), -ENOENT);
	smtp_parser_free(p);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_path_results),
		cmocka_unit_test(test_path_fields),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_anomaly_detail),
		cmocka_unit_test(test_stream_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
