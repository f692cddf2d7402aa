/*
 * Building a matcher: lists -> normalised entries -> one hash index.
 * Everything that costs memory is decided here, once; matcher_check()
 * (match.c) only looks things up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "match_edit.h"
#include "match_internal.h"
#include "policy.h"

static int arena_add(struct matcher *m, const char *s, size_t len, struct mstr *out)
{
	if (len > UINT16_MAX || m->arena_len + len + 1 > UINT32_MAX)
		return -E2BIG;
	if (m->arena_len + len + 1 > m->arena_cap) {
		size_t cap = m->arena_cap ? m->arena_cap * 2 : 4096;
		while (cap < m->arena_len + len + 1)
			cap *= 2;
		char *a = realloc(m->arena, cap);
		if (!a)
			return -ENOMEM;
		m->arena = a;
		m->arena_cap = cap;
	}
	memcpy(m->arena + m->arena_len, s, len);
	m->arena[m->arena_len + len] = '\0';
	out->off = (uint32_t)m->arena_len;
	out->len = (uint16_t)len;
	m->arena_len += len + 1;
	return 0;
}

static uint64_t key_of(const char *s, size_t n, unsigned tag, uint64_t scope)
{
	return mh_key(mh_poly(s, n), n, tag, scope);
}

/* Is name (A-label form) already a protected domain or suffix entry? */
static bool prot_exists(const struct matcher *m, const char *name, size_t n, bool suffix)
{
	struct mh_iter it;
	uint32_t v;
	unsigned tag = suffix ? TAG_SUFFIX : TAG_EXACT;
	for (mh_find(&m->idx, key_of(name, n, tag, 0), &it); mh_next(&it, &v);) {
		const struct prot_entry *p = &m->prot[v];
		struct mstr s = suffix ? p->suffix : p->name;
		if (p->is_suffix == suffix && s.len == n && !memcmp(mstr_ptr(m, s), name, n))
			return true;
	}
	return false;
}

static struct prot_entry *prot_push(struct matcher *m)
{
	if (m->nprot == m->prot_cap) {
		size_t cap = m->prot_cap ? m->prot_cap * 2 : 64;
		struct prot_entry *v = realloc(m->prot, cap * sizeof(*v));
		if (!v)
			return NULL;
		m->prot = v;
		m->prot_cap = cap;
	}
	struct prot_entry *p = &m->prot[m->nprot];
	memset(p, 0, sizeof(*p));
	return p;
}

/* Every real public suffix (ICANN section) one edit away from a protected
 * suffix: ".ml" and ".il" for ".mil". Tried edits: deletion, substitution,
 * insertion, adjacent transposition over [a-z0-9-.]. */
static int index_suffix_typos(struct matcher *m, uint32_t id, const char *s, size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-.";
	char buf[DOMAIN_ASCII_MAX + 2];
	if (n + 2 > sizeof(buf))
		return 0;
	int rc = 0;
#define TRY_TYPO(len)                                                                   \
	do {                                                                            \
		buf[len] = '\0';                                                        \
		if ((len) > 0 && strcmp(buf, s) && domain_is_listed_suffix(m->dom, buf, true) && \
		    !prot_exists(m, buf, len, true))                                    \
			rc = rc ? rc : mh_insert(&m->idx, key_of(buf, len, TAG_TYPO, 0), id); \
	} while (0)
	for (size_t i = 0; i < n; i++) { /* deletion */
		memcpy(buf, s, i);
		memcpy(buf + i, s + i + 1, n - i - 1);
		TRY_TYPO(n - 1);
	}
	for (size_t i = 0; i < n; i++) /* substitution */
		for (const char *c = alphabet; *c; c++) {
			memcpy(buf, s, n);
			buf[i] = *c;
			TRY_TYPO(n);
		}
	for (size_t i = 0; i <= n; i++) /* insertion */
		for (const char *c = alphabet; *c; c++) {
			memcpy(buf, s, i);
			buf[i] = *c;
			memcpy(buf + i + 1, s + i, n - i);
			TRY_TYPO(n + 1);
		}
	for (size_t i = 0; i + 1 < n; i++) { /* transposition */
		memcpy(buf, s, n);
		buf[i] = s[i + 1];
		buf[i + 1] = s[i];
		TRY_TYPO(n);
	}
#undef TRY_TYPO
	return rc;
}

static int note_del2_length(struct matcher *m, uint64_t scope, size_t n)
{
	uint64_t key = mh_key(scope, 0, TAG_DEL2LEN, 0);
	struct mh_iter it;
	uint32_t v;
	for (mh_find(&m->idx, key, &it); mh_next(&it, &v);) {
		m->del2_masks[v] |= 1ULL << n;
		return 0; /* one mask per suffix hash: a collision only widens it */
	}
	if (m->ndel2_masks == m->del2_masks_cap) {
		size_t cap = m->del2_masks_cap ? m->del2_masks_cap * 2 : 16;
		uint64_t *a = realloc(m->del2_masks, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		m->del2_masks = a;
		m->del2_masks_cap = cap;
	}
	m->del2_masks[m->ndel2_masks] = 1ULL << n;
	int rc = mh_insert(&m->aux, key, (uint32_t)m->ndel2_masks);
	return rc ? rc : mh_insert(&m->idx, key, (uint32_t)m->ndel2_masks++);
}

/* The label and all its 1-deletions (TAG_DEL1); for long labels also the
 * 2-deletions (TAG_DEL2). Symmetric deletion: two labels within distance d
 * share a string obtained by deleting at most d characters from each. */
static int index_deletions(struct matcher *m, uint32_t id, const char *l, size_t n, uint64_t scope)
{
	uint64_t P[EDIT_LABEL_MAX + 1];
	match_prefix_hashes(l, n, P);
	int rc = mh_insert(&m->idx, mh_key(P[n], n, TAG_DEL1, scope), id);
	for (size_t k = 0; rc == 0 && k < n; k++)
		rc = mh_insert(&m->idx, mh_key(match_del1_hash(m, P, n, k), n - 1, TAG_DEL1, scope), id);
	if (rc < 0 || n < MATCH_DL2_MIN_LABEL)
		return rc;
	rc = note_del2_length(m, scope, n);
	if (rc < 0)
		return rc;
	rc = mh_insert(&m->idx, mh_key(P[n], n, TAG_DEL2, scope), id);
	for (size_t k = 0; rc == 0 && k < n; k++)
		rc = mh_insert(&m->idx, mh_key(match_del1_hash(m, P, n, k), n - 1, TAG_DEL2, scope), id);
	for (size_t j = 0; rc == 0 && j < n; j++)
		for (size_t k = j + 1; rc == 0 && k < n; k++)
			rc = mh_insert(&m->idx,
				       mh_key(match_del2_hash(m, P, n, j, k), n - 2, TAG_DEL2, scope), id);
	return rc;
}

/* The invariant string of the confusable fold, so that a check can rule
 * out the fold lookup before folding. A fold with a byte >= 0x80 (a letter
 * with no Latin lookalike) can only equal a non-ASCII label's fold, and
 * those are always folded: nothing to store. */
static int index_conf_invariant(struct matcher *m, uint32_t id, const char *conf, size_t n,
				uint64_t scope)
{
	char inv[FOLD_MAX];
	int il = fold_invariant(conf, n, inv);
	return il < 0 ? 0 : mh_insert(&m->aux, key_of(inv, (size_t)il, TAG_CONFINV, scope), id);
}

static int index_domain_entry(struct matcher *m, uint32_t id, const struct domain_name *d)
{
	struct prot_entry *p = &m->prot[id];
	size_t ll, ul;
	const char *label = domain_reg_label(d, &ll);
	const char *ulabel = domain_reg_ulabel(d, &ul);
	char conf[FOLD_MAX], dot[FOLD_MAX];
	int conf_len = fold_confusable(m->fold, ulabel, ul, conf);
	int dot_len = fold_strip(d->ascii + d->reg_off, d->ascii_len - d->reg_off, dot);
	if (conf_len < 0 || dot_len < 0 || ll > EDIT_LABEL_MAX)
		return -EINVAL;
	const char *suffix = d->ascii + d->suffix_off;
	size_t sl = d->ascii_len - d->suffix_off;
	int rc = arena_add(m, d->ascii + d->reg_off, d->ascii_len - d->reg_off, &p->name);
	rc = rc ? rc : arena_add(m, label, ll, &p->label);
	rc = rc ? rc : arena_add(m, suffix, sl, &p->suffix);
	rc = rc ? rc : arena_add(m, conf, (size_t)conf_len, &p->conf);
	rc = rc ? rc : arena_add(m, dot, (size_t)dot_len, &p->dot);
	if (rc < 0)
		return rc;
	p->suffix_hash = mh_poly(suffix, sl);
	char hyph[FOLD_MAX];
	int hyph_len = fold_strip(label, ll, hyph);
	rc = mh_insert(&m->idx, key_of(mstr_ptr(m, p->name), p->name.len, TAG_EXACT, 0), id);
	rc = rc ? rc : mh_insert(&m->idx, key_of(conf, (size_t)conf_len, TAG_CONF, p->suffix_hash), id);
	rc = rc ? rc : mh_insert(&m->idx, key_of(hyph, (size_t)hyph_len, TAG_HYPH, p->suffix_hash), id);
	rc = rc ? rc : mh_insert(&m->idx, key_of(dot, (size_t)dot_len, TAG_DOT, 0), id);
	rc = rc ? rc : mh_insert(&m->idx, key_of(label, ll, TAG_LABEL, 0), id);
	rc = rc ? rc : index_conf_invariant(m, id, conf, (size_t)conf_len, p->suffix_hash);
	return rc ? rc : index_deletions(m, id, label, ll, p->suffix_hash);
}

static int fail(char *err, size_t errlen, const struct policy_list *l,
		const struct policy_entry *e, const char *why)
{
	if (e->line)
		snprintf(err, errlen, "%s:%u: '%.200s': %s", l->source, e->line, e->text, why);
	else
		snprintf(err, errlen, "%s: '%.200s': %s", l->source, e->text, why);
	return -EINVAL;
}

static int add_protected(struct matcher *m, const struct policy_list *l,
			 const struct policy_entry *e, char *err, size_t errlen)
{
	const char *text = e->text, *why = NULL;
	bool suffix = text[0] == '.';
	struct domain_name d;
	if (strchr(text, '*') || strchr(text, '@'))
		return fail(err, errlen, l, e, "protected entries are domains or .suffixes, without wildcards or addresses");
	if (domain_normalize(m->dom, text + suffix, strlen(text + suffix), &d, &why) < 0)
		return fail(err, errlen, l, e, why);
	if (d.kind == DOMAIN_LITERAL)
		return fail(err, errlen, l, e, "an address literal cannot be protected");
	if (suffix && (d.has_registrable || !d.suffix_listed))
		return fail(err, errlen, l, e, "not a public suffix (write the domain without the leading dot)");
	if (!suffix && !d.has_registrable)
		return fail(err, errlen, l, e, "a public suffix: write it with a leading dot to protect the whole suffix");
	const char *key = suffix ? d.ascii : d.ascii + d.reg_off;
	if (prot_exists(m, key, strlen(key), suffix))
		return 0; /* listed twice */
	struct prot_entry *p = prot_push(m);
	if (!p)
		return fail(err, errlen, l, e, "out of memory");
	unsigned labels = suffix ? d.suffix_labels : d.suffix_labels + 1;
	if (labels > m->max_name_labels)
		m->max_name_labels = labels;
	uint32_t id = (uint32_t)m->nprot++;
	int rc;
	if (suffix) {
		char dotted[DOMAIN_ASCII_MAX + 1];
		snprintf(dotted, sizeof(dotted), ".%s", d.ascii);
		p->is_suffix = true;
		rc = arena_add(m, dotted, d.ascii_len + 1, &p->name);
		rc = rc ? rc : arena_add(m, d.ascii, d.ascii_len, &p->suffix);
		p->suffix_hash = mh_poly(d.ascii, d.ascii_len);
		rc = rc ? rc : mh_insert(&m->idx, key_of(d.ascii, d.ascii_len, TAG_SUFFIX, 0), id);
	} else {
		rc = index_domain_entry(m, id, &d);
	}
	return rc < 0 ? fail(err, errlen, l, e, strerror(-rc)) : 0;
}

static int add_listed(struct matcher *m, const struct policy_list *l, const struct policy_entry *e,
		      bool allow, char *err, size_t errlen)
{
	struct list_entry **v = allow ? &m->allow : &m->block;
	size_t *n = allow ? &m->nallow : &m->nblock;
	const char *text = e->text, *why = NULL;
	bool wild = !strncmp(text, "*.", 2);
	struct domain_name d;
	if (strchr(text + (wild ? 2 : 0), '*'))
		return fail(err, errlen, l, e, "a wildcard is only allowed as a leading '*.'");
	if (domain_normalize(m->dom, text + (wild ? 2 : 0), strlen(text + (wild ? 2 : 0)), &d, &why) < 0)
		return fail(err, errlen, l, e, why);
	if (d.kind == DOMAIN_LITERAL)
		return fail(err, errlen, l, e, "address literals are not domains");
	struct list_entry *le = &(*v)[(*n)++];
	le->wildcard = wild;
	int rc = arena_add(m, text, strlen(text), &le->name);
	rc = rc ? rc : arena_add(m, d.ascii, d.ascii_len, &le->key);
	unsigned tag = allow ? (wild ? TAG_ALLOW_WILD : TAG_ALLOW) : (wild ? TAG_BLOCK_WILD : TAG_BLOCK);
	rc = rc ? rc : mh_insert(&m->idx, key_of(d.ascii, d.ascii_len, tag, 0), (uint32_t)(*n - 1));
	return rc < 0 ? fail(err, errlen, l, e, strerror(-rc)) : 0;
}

static int load_list(const char *path, const char *const *fallback, struct policy_list *l,
		     char *err, size_t errlen)
{
	if (path)
		return policy_list_load(path, l, err, errlen);
	int rc = policy_list_from_array(fallback, "embedded default", l);
	if (rc < 0)
		snprintf(err, errlen, "embedded default: %s", strerror(-rc));
	return rc;
}

static int build(struct matcher *m, const struct match_policy_files *files, char *err, size_t errlen)
{
	struct policy_list prot = {0}, allow = {0}, block = {0};
	int rc = load_list(files ? files->protect : NULL, policy_default_protect, &prot, err, errlen);
	rc = rc ? rc : load_list(files ? files->allow : NULL, policy_default_allow, &allow, err, errlen);
	rc = rc ? rc : load_list(files ? files->block : NULL, policy_default_block, &block, err, errlen);
	if (rc == 0) {
		m->allow = calloc(allow.n + 1, sizeof(*m->allow));
		m->block = calloc(block.n + 1, sizeof(*m->block));
		rc = m->allow && m->block ? mh_init(&m->idx, prot.n * 64 + allow.n + block.n) : -ENOMEM;
		rc = rc ? rc : mh_init(&m->aux, prot.n + 16);
		if (rc < 0)
			snprintf(err, errlen, "matcher: out of memory");
	}
	/* suffix entries first: the typo index skips suffixes that are protected */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; rc == 0 && i < prot.n; i++)
			if ((prot.v[i].text[0] == '.') == (pass == 0))
				rc = add_protected(m, &prot, &prot.v[i], err, errlen);
	for (size_t i = 0; rc == 0 && i < m->nprot; i++)
		if (m->prot[i].is_suffix)
			rc = index_suffix_typos(m, (uint32_t)i, mstr_ptr(m, m->prot[i].suffix),
						m->prot[i].suffix.len);
	for (size_t i = 0; rc == 0 && i < allow.n; i++)
		rc = add_listed(m, &allow, &allow.v[i], true, err, errlen);
	for (size_t i = 0; rc == 0 && i < block.n; i++)
		rc = add_listed(m, &block, &block.v[i], false, err, errlen);
	policy_list_free(&prot);
	policy_list_free(&allow);
	policy_list_free(&block);
	return rc;
}

struct matcher *matcher_new(const struct match_policy_files *files, char *err, size_t errlen)
{
	struct matcher *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "matcher: out of memory");
		return NULL;
	}
	m->pow[0] = 1;
	for (size_t i = 1; i <= MATCH_POW_MAX; i++)
		m->pow[i] = m->pow[i - 1] * MH_BASE;
	m->dom = domain_ctx_new(err, errlen);
	m->fold = m->dom ? fold_ctx_new(err, errlen) : NULL;
	if (!m->fold || build(m, files, err, errlen) < 0) {
		matcher_free(m);
		return NULL;
	}
	return m;
}

void matcher_free(struct matcher *m)
{
	if (!m)
		return;
	domain_ctx_free(m->dom);
	fold_ctx_free(m->fold);
	mh_free(&m->idx);
	mh_free(&m->aux);
	free(m->prot);
	free(m->allow);
	free(m->block);
	free(m->arena);
	free(m->del2_masks);
	free(m);
}

void matcher_info(const struct matcher *m, struct matcher_info *out)
{
	out->protected_entries = m->nprot;
	out->allow_entries = m->nallow;
	out->block_entries = m->nblock;
	out->mem_bytes = sizeof(*m) + mh_mem_bytes(&m->idx) + mh_mem_bytes(&m->aux) + m->arena_cap +
			 m->prot_cap * sizeof(*m->prot) + m->del2_masks_cap * sizeof(uint64_t) +
			 (m->nallow + m->nblock + 2) * sizeof(struct list_entry);
}
