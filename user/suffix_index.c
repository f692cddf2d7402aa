/* Public suffix index, checked against libpsl (see suffix_index.h). */
#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match_hash.h"
#include "suffix_index.h"

enum rule_kind { RULE_NORMAL = 1, RULE_WILDCARD = 2, RULE_EXCEPTION = 3 };

struct suffix_index {
	struct mh_table set; /* key: hash of the rule's A-label form and kind */
	char *arena;         /* the rule strings, NUL-separated; values are offsets */
	size_t arena_len, arena_cap;
	size_t rules;
	unsigned max_labels; /* most labels in a rule (a wildcard counts one more) */
};

static uint64_t rule_key(const char *s, size_t n, enum rule_kind kind)
{
	return mh_key(mh_poly(s, n), n, (unsigned)kind, 0);
}

static int add_rule(struct suffix_index *idx, const char *s, enum rule_kind kind)
{
	size_t n = strlen(s);
	if (idx->arena_len + n + 1 > idx->arena_cap) {
		size_t cap = idx->arena_cap ? idx->arena_cap * 2 : 65536;
		char *a = realloc(idx->arena, cap);
		if (!a)
			return -ENOMEM;
		idx->arena = a;
		idx->arena_cap = cap;
	}
	memcpy(idx->arena + idx->arena_len, s, n + 1);
	int rc = mh_insert(&idx->set, rule_key(s, n, kind), (uint32_t)idx->arena_len);
	idx->arena_len += n + 1;
	unsigned labels = 1 + (kind == RULE_WILDCARD);
	for (size_t i = 0; i < n; i++)
		labels += s[i] == '.';
	if (labels > idx->max_labels)
		idx->max_labels = labels;
	idx->rules++;
	return rc;
}

/* Does libpsl agree with the rule? */
static bool psl_agrees(const psl_ctx_t *psl, const char *ascii, enum rule_kind kind)
{
	int type = PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE;
	char probe[300];
	switch (kind) {
	case RULE_NORMAL:
		return psl_is_public_suffix2(psl, ascii, type) == 1;
	case RULE_WILDCARD:
		snprintf(probe, sizeof(probe), "rw-probe.%s", ascii);
		return psl_is_public_suffix2(psl, probe, type) == 1;
	default:
		return psl_is_public_suffix2(psl, ascii, type) == 0;
	}
}

/* One rule line of the list: kind, A-label form. */
static int parse_rule(struct suffix_index *idx, const psl_ctx_t *psl, char *line,
		      const char *path, unsigned lineno, char *err, size_t errlen)
{
	line[strcspn(line, " \t\r\n")] = '\0';
	if (!line[0])
		return 0;
	enum rule_kind kind = RULE_NORMAL;
	char *s = line;
	if (s[0] == '!')
		kind = RULE_EXCEPTION, s++;
	else if (!strncmp(s, "*.", 2))
		kind = RULE_WILDCARD, s += 2;
	char *ascii = NULL;
	if (idn2_to_ascii_8z(s, &ascii, IDN2_NONTRANSITIONAL) != IDN2_OK) {
		/* a few rules are not valid IDNA2008; libpsl skips them too */
		free(ascii);
		return 0;
	}
	int rc = 0;
	if (!psl_agrees(psl, ascii, kind)) {
		snprintf(err, errlen, "%s:%u: libpsl disagrees on rule '%s'", path, lineno, line);
		rc = -EINVAL;
	} else {
		rc = add_rule(idx, ascii, kind);
		if (rc < 0)
			snprintf(err, errlen, "%s: out of memory", path);
	}
	free(ascii);
	return rc;
}

static int load_file(struct suffix_index *idx, const char *path, const psl_ctx_t *psl,
		     char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char line[512];
	unsigned lineno = 0;
	bool icann = false;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (strstr(line, "===BEGIN ICANN DOMAINS==="))
			icann = true;
		else if (strstr(line, "===END ICANN DOMAINS==="))
			break;
		else if (icann && strncmp(line, "//", 2))
			rc = parse_rule(idx, psl, line, path, lineno, err, errlen);
	}
	fclose(f);
	if (rc == 0 && idx->rules == 0) {
		snprintf(err, errlen, "%s: no ICANN rules found", path);
		rc = -EINVAL;
	}
	return rc;
}

struct suffix_index *suffix_index_load(const char *path, const psl_ctx_t *psl, char *err,
				       size_t errlen)
{
	struct suffix_index *idx = calloc(1, sizeof(*idx));
	if (!idx || mh_init(&idx->set, 16384) < 0) {
		free(idx);
		snprintf(err, errlen, "public suffix index: out of memory");
		return NULL;
	}
	if (load_file(idx, path, psl, err, errlen) < 0) {
		suffix_index_free(idx);
		return NULL;
	}
	return idx;
}

void suffix_index_free(struct suffix_index *idx)
{
	if (!idx)
		return;
	mh_free(&idx->set);
	free(idx->arena);
	free(idx);
}

size_t suffix_index_rules(const struct suffix_index *idx)
{
	return idx->rules;
}

static bool has_rule_h(const struct suffix_index *idx, const char *s, size_t n, uint64_t h,
		       enum rule_kind kind)
{
	struct mh_iter it;
	uint32_t off;
	for (mh_find(&idx->set, mh_key(h, n, (unsigned)kind, 0), &it); mh_next(&it, &off);)
		if (!memcmp(idx->arena + off, s, n) && idx->arena[off + n] == '\0')
			return true;
	return false;
}

size_t suffix_index_find(const struct suffix_index *idx, const char *name, size_t len,
			 bool *listed)
{
	/* Label starts and the hash of the name from each of them, found in
	 * one pass from the right (mh_poly extended to the left), for the
	 * rightmost max_labels + 1 labels: no rule is longer. */
	size_t starts[64];
	uint64_t hashes[64];
	unsigned n = 0, want = idx->max_labels + 1 < 64 ? idx->max_labels + 1 : 64;
	uint64_t h = 0, pw = 1;
	for (size_t i = len; i > 0 && n < want; i--) {
		h += ((uint64_t)(unsigned char)name[i - 1] + 1) * pw;
		pw *= MH_BASE;
		if (i - 1 == 0 || name[i - 2] == '.') {
			starts[n] = i - 1;
			hashes[n++] = h;
		}
	}
	/* starts[] runs right to left; the longest suffix is tried first */
	for (unsigned k = n; k-- > 0;) {
		const char *s = name + starts[k];
		size_t sl = len - starts[k];
		if (has_rule_h(idx, s, sl, hashes[k], RULE_EXCEPTION)) {
			*listed = true;
			return k > 0 ? starts[k - 1] : starts[k];
		}
		if (has_rule_h(idx, s, sl, hashes[k], RULE_NORMAL) ||
		    (k > 0 && has_rule_h(idx, name + starts[k - 1], len - starts[k - 1], hashes[k - 1],
					  RULE_WILDCARD))) {
			*listed = true;
			return starts[k];
		}
	}
	*listed = false;
	return starts[0];
}
