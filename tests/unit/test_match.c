/*
 * The lookalike matcher: every detector with positive and negative cases,
 * policy semantics (allow wins, block flags, protected never flag each
 * other), list file errors, and the building blocks (hash index, folds,
 * edit distance, typo classes).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "match.h"
#include "match_edit.h"
#include "match_fold.h"
#include "match_hash.h"

/* ---- helpers -------------------------------------------------------------- */

/* Writes text into a fresh temporary file; returns its path (static slot). */
static const char *tmp_list(int slot, const char *text)
{
	static char paths[4][64];
	snprintf(paths[slot], sizeof(paths[slot]), "/tmp/rw-test-match-XXXXXX");
	int fd = mkstemp(paths[slot]);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return paths[slot];
}

static struct matcher *new_matcher(const char *protect, const char *allow, const char *block,
				   char *err, size_t errlen)
{
	struct match_policy_files f = {
		.protect = protect ? tmp_list(0, protect) : NULL,
		.allow = allow ? tmp_list(1, allow) : NULL,
		.block = block ? tmp_list(2, block) : NULL,
	};
	struct matcher *m = matcher_new(&f, err, errlen);
	for (int i = 0; i < 3; i++) {
		const char *p = i == 0 ? f.protect : i == 1 ? f.allow : f.block;
		if (p)
			unlink(p);
	}
	return m;
}

static struct match_verdict v;

static void expect_flag(const struct matcher *m, const char *in, const char *entry,
			const char *detector)
{
	enum match_result r = matcher_check(m, in, &v);
	if (r != MATCH_FLAG)
		fail_msg("%s: expected flag (%s, %s), got %d (%s)", in, entry, detector, r,
			 v.reason ? v.reason : "-");
	assert_string_equal(v.protected_entry, entry);
	if (strcmp(v.detector, detector))
		fail_msg("%s: expected detector %s, got %s", in, detector, v.detector);
}

static void expect_ok(const struct matcher *m, const char *in)
{
	enum match_result r = matcher_check(m, in, &v);
	if (r != MATCH_OK)
		fail_msg("%s: expected ok, got %d (%s via %s)", in, r, v.protected_entry,
			 v.detector ? v.detector : "-");
	assert_null(v.detector);
	assert_non_null(v.reason);
}

static void expect_error(const struct matcher *m, const char *in)
{
	assert_int_equal(matcher_check(m, in, &v), MATCH_ERROR);
	assert_non_null(v.reason);
	assert_string_equal(v.domain, "");
}

/* The lists most detector tests use. */
static const char *const test_protect =
	"# protected domains and suffixes\n"
	".mil\n"
	".gov\n"
	"army.mil\n"
	"gmail.com   # Google\n"
	"paypal.com\n"
	"protonmail.com\n"
	"qq.com\n"
	"\n";

static int setup(void **state)
{
	char err[512];
	struct matcher *m = new_matcher(test_protect, NULL, NULL, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	matcher_free(*state);
	return 0;
}

/* ---- the cases the issue names -------------------------------------------- */

static void test_issue_cases(void **state)
{
	struct matcher *m = *state;
	expect_flag(m, "army.ml", ".mil", "suffix-typo");
	assert_int_equal(v.distance, 1);
	expect_flag(m, "someunit.ml", ".mil", "suffix-typo"); /* any X, not only listed ones */
	expect_flag(m, "army.mil.ml", "army.mil", "protected-prefix");
	expect_flag(m, "gmial.com", "gmail.com", "transposition");
	assert_int_equal(v.distance, 1);
	expect_flag(m, "раураl.com", "paypal.com", "confusable");
	assert_string_equal(v.domain, "xn--l-7sba6dbr.com");
	expect_flag(m, "xn--l-7sba6dbr.com", "paypal.com", "confusable");
	expect_ok(m, "navy.mil");
	expect_ok(m, "army.mil");
}

static void test_protected_never_flag_each_other(void **state)
{
	char err[512];
	/* no .mil suffix entry here: the two domains alone */
	struct matcher *m = new_matcher("army.mil\nnavy.mil\narmy.com\n", NULL, NULL, err, sizeof(err));
	assert_non_null(m);
	expect_ok(m, "navy.mil");
	expect_ok(m, "army.mil");
	expect_ok(m, "army.com"); /* would be a tld-swap of army.mil */
	expect_ok(m, "mail.army.mil");
	expect_flag(m, "arrny.mil", "army.mil", "homoglyph");
	matcher_free(m);
	/* the embedded default: gmx.de and gmx.net are both providers */
	m = matcher_new(NULL, err, sizeof(err));
	assert_non_null(m);
	expect_ok(m, "gmx.de");
	expect_ok(m, "gmx.net");
	expect_ok(m, "yahoo.com.br");
	expect_ok(m, "whitehouse.gov");
	expect_flag(m, "gmial.com", "gmail.com", "transposition");
	expect_flag(m, "army.ml", ".mil", "suffix-typo");
	matcher_free(m);
}

/* ---- dnstwist classes ----------------------------------------------------- */

static void test_addition(void **state)
{
	expect_flag(*state, "gmaila.com", "gmail.com", "addition");
	expect_flag(*state, "qq1.com", "qq.com", "addition");
	expect_ok(*state, "gmail.com");
}

static void test_bitsquatting(void **state)
{
	expect_flag(*state, "fmail.com", "gmail.com", "bitsquatting"); /* g ^ 0x01 */
	expect_flag(*state, "gmaim.com", "gmail.com", "bitsquatting"); /* l ^ 0x01 */
	expect_ok(*state, "fmail.org"); /* other suffix, other label */
}

static void test_homoglyph(void **state)
{
	expect_flag(*state, "gmai1.com", "gmail.com", "homoglyph");
	expect_flag(*state, "protonrnail.com", "protonmail.com", "homoglyph");
	expect_flag(*state, "pr0t0nmai1.com", "protonmail.com", "homoglyph"); /* three glyphs */
	expect_flag(*state, "pаypаl.com", "paypal.com", "confusable"); /* Cyrillic a, twice */
	expect_flag(*state, "gmàil.com", "gmail.com", "confusable");    /* a with grave */
	expect_ok(*state, "gnome.org");
	expect_ok(*state, "pr0t0nmai1.net"); /* glyphs, but another suffix */
}

static void test_hyphenation(void **state)
{
	expect_flag(*state, "gm-ail.com", "gmail.com", "hyphenation");
	expect_flag(*state, "proton-mail.com", "protonmail.com", "hyphenation");
	expect_ok(*state, "gm-ail.org");
	expect_ok(*state, "g-mail-box.com");
}

static void test_insertion(void **state)
{
	expect_flag(*state, "gmaiol.com", "gmail.com", "insertion"); /* o next to i */
	/* z is not next to i or l: an edit, but not a keyboard slip */
	expect_flag(*state, "gmaizl.com", "gmail.com", "damerau-levenshtein");
	assert_int_equal(v.distance, 1);
	expect_ok(*state, "gmaiol.net");
}

static void test_omission(void **state)
{
	expect_flag(*state, "gmal.com", "gmail.com", "omission");
	expect_flag(*state, "protonmal.com", "protonmail.com", "omission");
	expect_flag(*state, "mail.com", "gmail.com", "omission"); /* why mail.com is protected by default */
	expect_ok(*state, "gml.com"); /* two omissions on a short label */
}

static void test_repetition(void **state)
{
	expect_flag(*state, "gmaill.com", "gmail.com", "repetition");
	expect_flag(*state, "ggmail.com", "gmail.com", "repetition");
	expect_ok(*state, "ggmaill.org");
}

static void test_replacement(void **state)
{
	expect_flag(*state, "gnail.com", "gmail.com", "replacement"); /* m -> n */
	expect_flag(*state, "gmaik.com", "gmail.com", "replacement"); /* l -> k */
	expect_ok(*state, "gxaxl.com"); /* two substitutions on a 5-letter label */
}

static void test_subdomain(void **state)
{
	expect_flag(*state, "gm.ail.com", "gmail.com", "subdomain");
	expect_flag(*state, "proton.mail.com", "protonmail.com", "subdomain");
	expect_ok(*state, "mail.gmail.com"); /* under the protected domain */
}

static void test_transposition(void **state)
{
	expect_flag(*state, "gmial.com", "gmail.com", "transposition");
	expect_flag(*state, "rpotonmail.com", "protonmail.com", "transposition");
	expect_ok(*state, "gimal.org");
}

static void test_vowel_swap(void **state)
{
	expect_flag(*state, "gmoil.com", "gmail.com", "vowel-swap");
	expect_flag(*state, "protonmoil.com", "protonmail.com", "vowel-swap");
	expect_ok(*state, "gmoil.de");
}

static void test_tld_swap(void **state)
{
	expect_flag(*state, "protonmail.org", "protonmail.com", "tld-swap");
	expect_flag(*state, "gmail.xyz", "gmail.com", "tld-swap");
	expect_ok(*state, "qq.org"); /* too short a label to mean anything elsewhere */
	expect_ok(*state, "gmail.co.uk"); /* country codes: real national siblings */
	expect_ok(*state, "protonmail.de");
}

/* ---- rcptwall's own detectors ------------------------------------------ */

static void test_suffix_typo(void **state)
{
	expect_flag(*state, "army.il", ".mil", "suffix-typo");
	expect_flag(*state, "whitehouse.gop", ".gov", "suffix-typo");
	expect_flag(*state, "gmail.cm", "gmail.com", "suffix-typo");
	expect_ok(*state, "example.mx");  /* mx is not one edit from mil */
	expect_ok(*state, "example.co.il"); /* the suffix is co.il, not il */
}

static void test_protected_prefix(void **state)
{
	expect_flag(*state, "gmail.com.co", "gmail.com", "protected-prefix");
	expect_flag(*state, "mx.gmail.com.evil.example", "gmail.com", "protected-prefix");
	expect_flag(*state, "unit.mil.example.com", ".mil", "protected-prefix");
	expect_ok(*state, "hmrc.gov.uk");    /* gov.uk is a public suffix of its own */
	expect_ok(*state, "navy.mil.br");    /* mil.br too (the .mil entry) */
	expect_flag(*state, "army.mil.br", "army.mil", "protected-prefix"); /* the army.mil entry */
	expect_ok(*state, "mil.example.com"); /* no name before "mil" */
}

static void test_dot_omission(void **state)
{
	expect_flag(*state, "armymil.ml", "army.mil", "dot-omission");
	expect_flag(*state, "armymil.com", "army.mil", "dot-omission");
	expect_flag(*state, "gmailcom.net", "gmail.com", "dot-omission");
	expect_flag(*state, "gmail-com.net", "gmail.com", "dot-omission");
	/* names ending in mil or gov are not dot omissions of the suffixes */
	expect_ok(*state, "tamil.com");
	expect_ok(*state, "kamil.pl");
	expect_ok(*state, "lovgov.com");
}

static void test_distance_bounds(void **state)
{
	/* distance 2 on a label of 8+ characters */
	expect_flag(*state, "protnmial.com", "protonmail.com", "damerau-levenshtein");
	assert_int_equal(v.distance, 2);
	expect_ok(*state, "prtnmial.com"); /* distance 3 */
	/* no generic distance 1 on very short labels: qx.com is not qq.com,
	 * though the keyboard slip qz.com (AZERTY) is */
	expect_ok(*state, "qx.com");
	expect_flag(*state, "qz.com", "qq.com", "replacement");
	/* ... and no distance 2 on short ones */
	expect_ok(*state, "gxaxl.com");
}

/* ---- lists ---------------------------------------------------------------- */

static void test_allow_and_block(void **state)
{
	char err[512];
	struct matcher *m = new_matcher(test_protect,
					"gmial.com\n*.gnail.com\nboth.example\n",
					"bad.example\n*.worse.example\nboth.example\n",
					err, sizeof(err));
	assert_non_null(m);
	expect_ok(m, "gmial.com");
	assert_string_equal(v.reason, "allow-list");
	expect_ok(m, "mx.gnail.com");
	expect_flag(m, "gnail.com", "gmail.com", "replacement"); /* wildcard is for names under it */
	expect_flag(m, "bad.example", "bad.example", "block-list");
	expect_flag(m, "a.b.worse.example", "*.worse.example", "block-list");
	expect_ok(m, "worse.example");
	expect_ok(m, "both.example"); /* allow wins */
	struct matcher_info info;
	matcher_info(m, &info);
	assert_int_equal(info.protected_entries, 7);
	assert_int_equal(info.allow_entries, 3);
	assert_int_equal(info.block_entries, 3);
	assert_true(info.mem_bytes > 0);
	matcher_free(m);
}

static void expect_list_error(const char *protect, const char *allow, const char *needle)
{
	char err[512] = "";
	struct matcher *m = new_matcher(protect, allow, NULL, err, sizeof(err));
	assert_null(m);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not contain '%s'", err, needle);
}

static void test_list_errors(void **state)
{
	expect_list_error("gmail.com\n\nbad..name\n", NULL, ":3: 'bad..name': empty label");
	expect_list_error(".notasuffix-zz\n", NULL, ":1: '.notasuffix-zz': not a public suffix");
	expect_list_error(".army.mil\n", NULL, "not a public suffix");
	expect_list_error("co.uk\n", NULL, "a public suffix");
	expect_list_error("*.gmail.com\n", NULL, "without wildcards");
	expect_list_error("gmail.com yahoo.com\n", NULL, "more than one entry");
	expect_list_error("[192.0.2.1]\n", NULL, "address literal");
	expect_list_error("gmail.com\n", "a.*.example\n", "wildcard");
	struct match_policy_files f = {.protect = "/nonexistent/rw-protect"};
	char err[512];
	assert_null(matcher_new(&f, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/rw-protect: No such file"));
	/* IDN entries in both forms, duplicates, comments */
	struct matcher *m = new_matcher("bücher.example\nxn--bcher-kva.example # same\n", NULL, NULL,
					err, sizeof(err));
	assert_non_null(m);
	struct matcher_info info;
	matcher_info(m, &info);
	assert_int_equal(info.protected_entries, 1);
	expect_flag(m, "bucher.example", "xn--bcher-kva.example", "homoglyph");
	matcher_free(m);
}

/* ---- input handling ------------------------------------------------------- */

static void test_inputs(void **state)
{
	struct matcher *m = *state;
	expect_flag(m, "John.Doe@GMIAL.com", "gmail.com", "transposition");
	assert_string_equal(v.domain, "gmial.com");
	expect_flag(m, "<a@gmial.com>", "gmail.com", "transposition");
	expect_flag(m, "\"odd@local\"@gmial.com.", "gmail.com", "transposition");
	expect_ok(m, "user@[192.0.2.1]");
	assert_string_equal(v.reason, "address literal");
	expect_error(m, "user@");
	expect_error(m, "@gmail.com");
	expect_error(m, "not a domain");
	expect_error(m, "com");    /* a public suffix alone */
	expect_error(m, "");
	expect_error(m, NULL);
}

static void test_random_input_never_crashes(void **state)
{
	struct matcher *m = *state;
	unsigned seed = 777;
	char buf[400];
	const char *pool = "gmailarmy.-@[]:01\xd0\xb0\xc3\xa0";
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand_r(&seed) % (sizeof(buf) - 1));
		for (size_t k = 0; k < n; k++) {
			char c = rand_r(&seed) % 5 ? pool[rand_r(&seed) % strlen(pool)] : (char)(rand_r(&seed) % 255 + 1);
			buf[k] = c;
		}
		buf[n] = '\0';
		enum match_result r = matcher_check(m, buf, &v);
		assert_true(r == MATCH_OK || r == MATCH_FLAG || r == MATCH_ERROR);
		if (r == MATCH_FLAG)
			assert_non_null(v.detector);
	}
}

/* ---- thread safety: the same verdicts from four threads at once --------- */

static const char *const mixed_inputs[] = {
	"gmial.com", "army.ml", "раураl.com", "example.org", "gm-ail.com", "protnmial.com",
	"debian.org", "army.mil.ml", "bad..x", "kamil.pl",
};

struct worker {
	const struct matcher *m;
	int mismatches;
	enum match_result expected[sizeof(mixed_inputs) / sizeof(mixed_inputs[0])];
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct match_verdict *mv = malloc(sizeof(*mv));
	for (int round = 0; mv && round < 2000; round++)
		for (size_t i = 0; i < sizeof(mixed_inputs) / sizeof(mixed_inputs[0]); i++)
			w->mismatches += matcher_check(w->m, mixed_inputs[i], mv) != w->expected[i];
	free(mv);
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w = {.m = *state};
	for (size_t i = 0; i < sizeof(mixed_inputs) / sizeof(mixed_inputs[0]); i++)
		w.expected[i] = matcher_check(w.m, mixed_inputs[i], &v);
	struct worker ws[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		ws[i] = w;
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &ws[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ws[i].mismatches, 0);
	}
}

/* ---- building blocks ------------------------------------------------------ */

static void test_hash_table(void **state)
{
	struct mh_table t;
	assert_int_equal(mh_init(&t, 4), 0);
	for (uint32_t i = 0; i < 5000; i++) /* forces several grows */
		assert_int_equal(mh_insert(&t, mh_mix(i / 3 + 1), i), 0);
	assert_int_equal(mh_insert(&t, mh_mix(1), 0), 0); /* exact duplicate: ignored */
	assert_int_equal(t.count, 5000);
	for (uint32_t k = 0; k < 5000 / 3; k++) {
		struct mh_iter it;
		uint32_t val, seen = 0, n = 0;
		for (mh_find(&t, mh_mix(k + 1), &it); mh_next(&it, &val);) {
			assert_int_equal(val / 3, k);
			seen |= 1u << (val % 3);
			n++;
		}
		assert_int_equal(n, 3);
		assert_int_equal(seen, 7);
	}
	struct mh_iter it;
	uint32_t val;
	mh_find(&t, mh_mix(999999), &it);
	assert_false(mh_next(&it, &val));
	assert_true(mh_mem_bytes(&t) >= t.cap * sizeof(struct mh_slot));
	mh_free(&t);
}

static void test_edit_distance(void **state)
{
	assert_int_equal(edit_distance("gmail", 5, "gmail", 5, 2), 0);
	assert_int_equal(edit_distance("gmail", 5, "gmial", 5, 2), 1); /* transposition */
	assert_int_equal(edit_distance("gmail", 5, "gmal", 4, 2), 1);
	assert_int_equal(edit_distance("kitten", 6, "sitting", 7, 5), 3);
	assert_int_equal(edit_distance("kitten", 6, "sitting", 7, 1), 2); /* bounded: max + 1 */
	assert_int_equal(edit_distance("", 0, "abc", 3, 5), 3);
	assert_int_equal(edit_distance("ca", 2, "abc", 3, 5), 3); /* OSA, not unrestricted DL */
}

static void test_classify(void **state)
{
	assert_string_equal(edit_classify("gmail", 5, "gmailx", 6), "addition");
	assert_string_equal(edit_classify("gmail", 5, "gmaill", 6), "repetition");
	assert_string_equal(edit_classify("gmail", 5, "gmaiol", 6), "insertion");
	assert_string_equal(edit_classify("gmail", 5, "gmaizl", 6), "damerau-levenshtein");
	assert_string_equal(edit_classify("gmail", 5, "gmil", 4), "omission");
	assert_string_equal(edit_classify("gmail", 5, "gmial", 5), "transposition");
	assert_string_equal(edit_classify("gmail", 5, "fmail", 5), "bitsquatting");
	assert_string_equal(edit_classify("gmail", 5, "gmoil", 5), "vowel-swap");
	assert_string_equal(edit_classify("gmail", 5, "gnail", 5), "replacement");
	assert_true(edit_keys_adjacent('a', 'q'));
	assert_true(edit_keys_adjacent('z', 'u'));  /* QWERTZ */
	assert_true(edit_keys_adjacent('m', 'l'));  /* AZERTY */
	assert_false(edit_keys_adjacent('a', 'p'));
	assert_false(edit_keys_adjacent('a', '\0'));
}

static void test_folds(void **state)
{
	char err[256], a[FOLD_MAX], b[FOLD_MAX];
	struct fold_ctx *fc = fold_ctx_new(err, sizeof(err));
	assert_non_null(fc);
	int na = fold_confusable(fc, "paypal", 6, a);
	int nb = fold_confusable(fc, "раураl", strlen("раураl"), b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	na = fold_confusable(fc, "modern", 6, a);
	nb = fold_confusable(fc, "rnodern", 7, b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	na = fold_confusable(fc, "debian", 6, a);
	nb = fold_confusable(fc, "ubuntu", 6, b);
	assert_false(na == nb && !memcmp(a, b, (size_t)na));
	assert_int_equal(fold_strip("gm-a.il", 7, a), 5);
	assert_memory_equal(a, "gmail", 5);
	fold_ctx_free(fc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_cases),
		cmocka_unit_test(test_protected_never_flag_each_other),
		cmocka_unit_test(test_addition),
		cmocka_unit_test(test_bitsquatting),
		cmocka_unit_test(test_homoglyph),
		cmocka_unit_test(test_hyphenation),
		cmocka_unit_test(test_insertion),
		cmocka_unit_test(test_omission),
		cmocka_unit_test(test_repetition),
		cmocka_unit_test(test_replacement),
		cmocka_unit_test(test_subdomain),
		cmocka_unit_test(test_transposition),
		cmocka_unit_test(test_vowel_swap),
		cmocka_unit_test(test_tld_swap),
		cmocka_unit_test(test_suffix_typo),
		cmocka_unit_test(test_protected_prefix),
		cmocka_unit_test(test_dot_omission),
		cmocka_unit_test(test_distance_bounds),
		cmocka_unit_test(test_allow_and_block),
		cmocka_unit_test(test_list_errors),
		cmocka_unit_test(test_inputs),
		cmocka_unit_test(test_random_input_never_crashes),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_hash_table),
		cmocka_unit_test(test_edit_distance),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_folds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
