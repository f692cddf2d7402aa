/* Domain normalisation: case, trailing dot, IDNA, public suffix, literals,
 * invalid input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "domain.h"
#include "suffix_index.h"

static int setup(void **state)
{
	char err[256];
	struct domain_ctx *ctx = domain_ctx_new(err, sizeof(err));
	if (!ctx)
		return -1;
	*state = ctx;
	return 0;
}

static int teardown(void **state)
{
	domain_ctx_free(*state);
	return 0;
}

static struct domain_name name;

static int norm(void **state, const char *s, const char **why)
{
	const char *w = NULL;
	int rc = domain_normalize(*state, s, strlen(s), &name, &w);
	if (why)
		*why = w;
	if (rc < 0)
		assert_non_null(w); /* every error says why */
	return rc;
}

static void assert_reg(const char *reg, const char *suffix, const char *label)
{
	size_t n;
	assert_true(name.has_registrable);
	assert_string_equal(name.ascii + name.reg_off, reg);
	assert_string_equal(name.ascii + name.suffix_off, suffix);
	const char *l = domain_reg_label(&name, &n);
	assert_int_equal(n, strlen(label));
	assert_memory_equal(l, label, n);
}

static void test_case_and_trailing_dot(void **state)
{
	assert_int_equal(norm(state, "GMail.COM.", NULL), 0);
	assert_string_equal(name.ascii, "gmail.com");
	assert_string_equal(name.unicode, "gmail.com");
	assert_false(name.idn);
	assert_int_equal(name.nlabels, 2);
	assert_reg("gmail.com", "com", "gmail");
	/* only one trailing dot is the root */
	assert_int_equal(norm(state, "gmail.com..", NULL), -EINVAL);
	assert_int_equal(norm(state, ".", NULL), -EINVAL);
	/* surrounding blanks are not part of the name */
	assert_int_equal(norm(state, "  Example.ORG\r\n", NULL), 0);
	assert_string_equal(name.ascii, "example.org");
}

static void test_length_is_respected(void **state)
{
	const char *s = "gmail.comXYZ";
	const char *why;
	assert_int_equal(domain_normalize(*state, s, 9, &name, &why), 0);
	assert_string_equal(name.ascii, "gmail.com");
}

static void test_idna_round_trip(void **state)
{
	assert_int_equal(norm(state, "Bücher.example", NULL), 0);
	assert_string_equal(name.ascii, "xn--bcher-kva.example");
	assert_string_equal(name.unicode, "bücher.example");
	assert_true(name.idn);
	assert_int_equal(norm(state, "xn--bcher-kva.example", NULL), 0);
	assert_string_equal(name.unicode, "bücher.example");
	assert_int_equal(norm(state, "XN--BCHER-KVA.EXAMPLE", NULL), 0);
	assert_string_equal(name.ascii, "xn--bcher-kva.example");
	/* IDN top-level domain: suffix found on the U-label form */
	assert_int_equal(norm(state, "пример.рф", NULL), 0);
	assert_string_equal(name.ascii, "xn--e1afmkfd.xn--p1ai");
	assert_reg("xn--e1afmkfd.xn--p1ai", "xn--p1ai", "xn--e1afmkfd");
	assert_string_equal(name.unicode + name.usuffix_off, "рф");
	/* Cyrillic lookalike of paypal: a valid IDN, both forms agree */
	assert_int_equal(norm(state, "раураl.com", NULL), 0);
	assert_string_equal(name.ascii, "xn--l-7sba6dbr.com");
	assert_int_equal(norm(state, "xn--l-7sba6dbr.com", NULL), 0);
	assert_string_equal(name.unicode, "раураl.com");
}

static void test_idna_invalid(void **state)
{
	const char *why;
	assert_int_equal(norm(state, "xn--.com", &why), -EINVAL);
	assert_int_equal(norm(state, "xn--zz-zz.com", &why), -EINVAL);
	assert_non_null(strstr(why, "IDNA"));
	assert_int_equal(norm(state, "\xff\xfe.com", &why), -EINVAL);   /* not UTF-8 */
	assert_int_equal(norm(state, "a\xc3.com", &why), -EINVAL);      /* truncated UTF-8 */
	assert_int_equal(norm(state, "\xe2\x80\x8b.com", &why), -EINVAL); /* zero-width space alone */
}

static void test_psl_multi_label_suffix(void **state)
{
	assert_int_equal(norm(state, "www.bbc.co.uk", NULL), 0);
	assert_reg("bbc.co.uk", "co.uk", "bbc");
	assert_int_equal(name.suffix_labels, 2);
	assert_true(name.suffix_listed);
	assert_int_equal(norm(state, "hmrc.gov.uk", NULL), 0);
	assert_reg("hmrc.gov.uk", "gov.uk", "hmrc");
	assert_int_equal(norm(state, "a.b.army.mil", NULL), 0);
	assert_reg("army.mil", "mil", "army");
	assert_int_equal(norm(state, "gmail.com.co", NULL), 0);
	assert_reg("gmail.com.co", "com.co", "gmail");
	/* a public suffix alone has no registrable domain */
	assert_int_equal(norm(state, "co.uk", NULL), 0);
	assert_false(name.has_registrable);
	/* unknown top-level label: the "*" rule, not listed */
	assert_int_equal(norm(state, "host.example-unknown-tld", NULL), 0);
	assert_false(name.suffix_listed);
	assert_reg("host.example-unknown-tld", "example-unknown-tld", "host");
	assert_true(domain_is_listed_suffix(*state, "ml", true));
	assert_false(domain_is_listed_suffix(*state, "army.mil", false));
}

static void test_literals(void **state)
{
	const char *why;
	assert_int_equal(norm(state, "[192.0.2.1]", NULL), 0);
	assert_int_equal(name.kind, DOMAIN_LITERAL);
	assert_int_equal(norm(state, "[IPv6:2001:db8::1]", NULL), 0);
	assert_int_equal(name.kind, DOMAIN_LITERAL);
	assert_int_equal(norm(state, "[x-tag:some-content]", NULL), 0);
	assert_int_equal(name.kind, DOMAIN_LITERAL);
	assert_int_equal(norm(state, "192.0.2.1", NULL), 0); /* bare dotted quad */
	assert_int_equal(name.kind, DOMAIN_LITERAL);
	assert_int_equal(norm(state, "[300.1.1.1]", &why), -EINVAL);
	assert_int_equal(norm(state, "[IPv6:zz::]", &why), -EINVAL);
	assert_int_equal(norm(state, "[192.0.2.1", &why), -EINVAL);
	assert_int_equal(norm(state, "[]", &why), -EINVAL);
	assert_int_equal(norm(state, "1.2.3.999", &why), -EINVAL);
	assert_string_equal(why, "numeric top-level label");
}

static void test_invalid_names(void **state)
{
	const char *why;
	char long_label[80], long_name[300];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	for (int i = 0; i < 60; i++)
		memcpy(long_name + i * 4, "abc.", 4);
	strcpy(long_name + 240, "abcdefghijklmn.com"); /* 258 octets */
	const char *bad[] = {"", "   ", "a..b", "a_b.com", "-ab.com", "ab-.com", "a b.com",
			     "a/b.com", long_label, long_name, "ex\x01mple.com"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(norm(state, bad[i], &why), -EINVAL);
	/* 63-octet label is fine */
	long_label[63] = '\0';
	assert_int_equal(norm(state, long_label, NULL), 0);
}

static void test_random_bytes_never_crash(void **state)
{
	unsigned seed = 12345;
	char buf[300];
	const char *why;
	int ok = 0;
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t k = 0; k < n; k++) {
			/* mostly domain-ish bytes, some of anything */
			const char *pool = "abcxyz019-.[]:@\xc3\xa4\xd0\xb0";
			buf[k] = rand_r(&seed) % 4 ? pool[rand_r(&seed) % strlen(pool)] : (char)rand_r(&seed);
		}
		int rc = domain_normalize(*state, buf, n, &name, &why);
		assert_true(rc == 0 || rc == -EINVAL);
		if (rc == 0) {
			ok++;
			assert_true(name.ascii_len < DOMAIN_ASCII_MAX);
			assert_int_equal(strlen(name.ascii), name.ascii_len);
		}
	}
	assert_true(ok > 0);
}

/* The fast suffix index gives the same public suffix as asking libpsl
 * label by label (ICANN section), also for wildcard and exception rules. */
static const char *libpsl_suffix(const psl_ctx_t *psl, const char *dname)
{
	for (const char *s = dname; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
		if (psl_is_public_suffix2(psl, s, PSL_TYPE_ICANN))
			return s;
	return NULL;
}

static void test_suffix_index_agrees_with_libpsl(void **state)
{
	(void)state;
	psl_ctx_t *psl = psl_load_file(SUFFIX_LIST_PATH);
	assert_non_null(psl);
	char err[256];
	struct suffix_index *idx = suffix_index_load(SUFFIX_LIST_PATH, psl, err, sizeof(err));
	if (!idx)
		fail_msg("%s", err);
	assert_true(suffix_index_rules(idx) > 5000);
	const char *names[] = {
		"www.ck", "a.www.ck", "foo.bar.ck", "bar.ck", "x.kawasaki.jp", "city.kawasaki.jp",
		"a.city.kawasaki.jp", "b.c.d.co.uk", "co.uk", "uk", "foo.blogspot.com",
		"xn--e1afmkfd.xn--p1ai", "a.b.c.d.e.f.com", "test.gov.uk", "army.mil", "mil",
		"example.unknowntld", "freedesktop.org", "a.b.iki.fi", "gmail.com.co", "x.il",
		"x.co.il", "army.mil.ml",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		bool listed;
		size_t off = suffix_index_find(idx, names[i], strlen(names[i]), &listed);
		const char *want = libpsl_suffix(psl, names[i]);
		assert_non_null(want);
		if (strcmp(names[i] + off, want))
			fail_msg("%s: index says '%s', libpsl '%s'", names[i], names[i] + off, want);
	}
	suffix_index_free(idx);
	psl_free(psl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_and_trailing_dot),
		cmocka_unit_test(test_length_is_respected),
		cmocka_unit_test(test_idna_round_trip),
		cmocka_unit_test(test_idna_invalid),
		cmocka_unit_test(test_psl_multi_label_suffix),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_invalid_names),
		cmocka_unit_test(test_random_bytes_never_crash),
		cmocka_unit_test(test_suffix_index_agrees_with_libpsl),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
