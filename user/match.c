/*
 * matcher_check(): the verdict for one recipient domain.
 *
 * Cost model: every detector is a handful of hash lookups keyed by a fold
 * or a deletion of the recipient's own label; the real comparison (string
 * equality, bounded edit distance) runs only on the protected entries such a
 * lookup returns. Nothing scans the protected list, and the ASCII path
 * allocates nothing (IDN input goes through libidn2 and ICU, which do).
 */
#include <string.h>

#include "match.h"
#include "match_edit.h"
#include "match_internal.h"

struct query {
	const struct matcher *m;
	struct match_verdict *out;
	struct domain_name d;
	uint64_t P[DOMAIN_ASCII_MAX + 1]; /* prefix hashes of d.ascii */
	size_t starts[DOMAIN_LABELS_MAX + 1]; /* label start offsets in d.ascii */
	unsigned nstarts;
	const char *label; /* registrable label, A-label form */
	size_t label_len;
	bool label_ascii;  /* the label is not an IDN one */
	uint64_t suffix_hash;
	const char *suffix;
	size_t suffix_len;
	int generic1;      /* protected entry at generic distance 1, or -1 */
};

static void copy_str(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static bool flag(struct query *q, const char *entry, size_t len, const char *detector, int distance)
{
	q->out->result = MATCH_FLAG;
	copy_str(q->out->protected_entry, sizeof(q->out->protected_entry), entry, len);
	q->out->detector = detector;
	q->out->distance = distance;
	q->out->reason = NULL;
	return true;
}

static bool flag_prot(struct query *q, uint32_t id, const char *detector, int distance)
{
	const struct prot_entry *p = &q->m->prot[id];
	return flag(q, mstr_ptr(q->m, p->name), p->name.len, detector, distance);
}

static uint64_t sub_key(const struct query *q, size_t a, size_t b, unsigned tag, uint64_t scope)
{
	return mh_key(match_sub_hash(q->m, q->P, a, b), b - a, tag, scope);
}

static bool mstr_eq(const struct matcher *m, struct mstr s, const char *p, size_t n)
{
	return s.len == n && !memcmp(mstr_ptr(m, s), p, n);
}

static bool same_suffix(const struct query *q, const struct prot_entry *p)
{
	return p->suffix_hash == q->suffix_hash && mstr_eq(q->m, p->suffix, q->suffix, q->suffix_len);
}

/* ---- allow, block, protected: exact names and parent wildcards -------- */

/* Looks up d.ascii[a..) under tag; returns the list/prot index or -1. */
static int find_name(const struct query *q, size_t a, unsigned tag)
{
	const struct matcher *m = q->m;
	const char *s = q->d.ascii + a;
	size_t n = q->d.ascii_len - a;
	struct mh_iter it;
	uint32_t v;
	for (mh_find(&m->idx, sub_key(q, a, q->d.ascii_len, tag, 0), &it); mh_next(&it, &v);) {
		struct mstr key;
		if (tag == TAG_EXACT)
			key = m->prot[v].name;
		else if (tag == TAG_SUFFIX)
			key = m->prot[v].is_suffix ? m->prot[v].suffix : (struct mstr){0, 0};
		else if (tag == TAG_ALLOW || tag == TAG_ALLOW_WILD)
			key = m->allow[v].key;
		else
			key = m->block[v].key;
		if (mstr_eq(m, key, s, n))
			return (int)v;
	}
	return -1;
}

/* Exact entry for the whole name, or a wildcard entry for a parent. */
static int find_listed(const struct query *q, unsigned exact_tag, unsigned wild_tag)
{
	int v = find_name(q, 0, exact_tag);
	for (unsigned i = 1; v < 0 && i < q->nstarts; i++)
		v = find_name(q, q->starts[i], wild_tag);
	return v;
}

/* The name is a protected domain, under one, or under a protected suffix. */
static bool is_protected(const struct query *q)
{
	/* A protected domain is stored as its registrable domain, so a name
	 * under it has that same registrable domain: one lookup. A protected
	 * suffix is a public suffix, so it is the name's suffix or a parent. */
	if (find_name(q, q->d.reg_off, TAG_EXACT) >= 0)
		return true;
	for (unsigned i = 0; i < q->nstarts; i++)
		if (q->starts[i] >= q->d.suffix_off && find_name(q, q->starts[i], TAG_SUFFIX) >= 0)
			return true;
	return false;
}

/* ---- detectors -------------------------------------------------------- */

/* army.ml for .mil: the public suffix is one edit from a protected suffix. */
static bool det_suffix_typo(struct query *q)
{
	const struct matcher *m = q->m;
	struct mh_iter it;
	uint32_t v;
	for (mh_find(&m->idx, sub_key(q, q->d.suffix_off, q->d.ascii_len, TAG_TYPO, 0), &it);
	     mh_next(&it, &v);) {
		const struct prot_entry *p = &m->prot[v];
		if (edit_distance(mstr_ptr(m, p->suffix), p->suffix.len, q->suffix, q->suffix_len, 1) == 1)
			return flag_prot(q, v, "suffix-typo", 1);
	}
	return false;
}

/* army.mil.ml, gmail.com.co: a protected name as whole labels followed by
 * more labels. A suffix entry counts only with a label before it and
 * outside the name's own public suffix (hmrc.gov.uk is not gov). */
static bool det_prefix(struct query *q)
{
	const struct matcher *m = q->m;
	for (unsigned i = 0; i + 1 < q->nstarts; i++) {
		for (unsigned k = i + 1; k < q->nstarts && k - i <= m->max_name_labels; k++) {
			size_t a = q->starts[i], b = q->starts[k] - 1;
			struct mh_iter it;
			uint32_t v;
			/* protected domains have two labels or more */
			for (mh_find(&m->idx, sub_key(q, a, b, TAG_EXACT, 0), &it); k - i >= 2 && mh_next(&it, &v);)
				if (mstr_eq(m, m->prot[v].name, q->d.ascii + a, b - a))
					return flag_prot(q, v, "protected-prefix", -1);
			if (i == 0 || b >= q->d.suffix_off)
				continue;
			for (mh_find(&m->idx, sub_key(q, a, b, TAG_SUFFIX, 0), &it); mh_next(&it, &v);)
				if (m->prot[v].is_suffix &&
				    mstr_eq(m, m->prot[v].suffix, q->d.ascii + a, b - a))
					return flag_prot(q, v, "protected-prefix", -1);
		}
	}
	return false;
}

/* A part of the name without its hyphens and dots. */
struct stripped {
	char s[FOLD_MAX];
	int len;      /* -1: too long */
	bool had_dot; /* the part had a dot: a split (subdomain), not a hyphen */
	bool changed; /* the part had a hyphen or a dot */
};

static void strip_range(const struct query *q, size_t a, size_t b, struct stripped *out)
{
	out->len = fold_strip(q->d.ascii + a, b - a, out->s);
	out->had_dot = memchr(q->d.ascii + a, '.', b - a) != NULL;
	out->changed = out->len != (int)(b - a);
}

/* armymil.ml, gmail-com.net: protected name with its dots dropped. */
static bool det_dot_omission(struct query *q, const struct stripped *f)
{
	const struct matcher *m = q->m;
	if (f->len <= 0)
		return false;
	size_t n = (size_t)f->len;
	struct mh_iter it;
	uint32_t v;
	for (mh_find(&m->idx, mh_key(mh_poly(f->s, n), n, TAG_DOT, 0), &it); mh_next(&it, &v);)
		if (mstr_eq(m, m->prot[v].dot, f->s, n))
			return flag_prot(q, v, "dot-omission", -1);
	return false;
}

/* gm-ail.com (hyphenation), gm.ail.com (subdomain): same suffix, same
 * letters once hyphens and dots are gone. A part without either is the
 * label itself, which is no lookalike of its own (it would be protected). */
static bool det_hyphen_dot(struct query *q, const struct stripped *f)
{
	const struct matcher *m = q->m;
	char pf[FOLD_MAX];
	if (f->len <= 0 || !f->changed)
		return false;
	size_t n = (size_t)f->len;
	struct mh_iter it;
	uint32_t v;
	uint64_t key = mh_key(mh_poly(f->s, n), n, TAG_HYPH, q->suffix_hash);
	for (mh_find(&m->idx, key, &it); mh_next(&it, &v);) {
		const struct prot_entry *p = &m->prot[v];
		if (!same_suffix(q, p) || fold_strip(mstr_ptr(m, p->label), p->label.len, pf) != f->len ||
		    memcmp(pf, f->s, n))
			continue;
		return flag_prot(q, v, f->had_dot ? "subdomain" : "hyphenation", -1);
	}
	return false;
}

static bool det_folds(struct query *q)
{
	size_t prefix_end = q->d.suffix_off - 1;
	struct stripped f;
	strip_range(q, q->d.reg_off, prefix_end, &f);
	if (det_dot_omission(q, &f) || det_hyphen_dot(q, &f))
		return true;
	/* hotmailco.uk for hotmail.co.uk: the dot went inside the suffix */
	strip_range(q, q->d.reg_off, q->d.ascii_len, &f);
	if (det_dot_omission(q, &f))
		return true;
	if (q->d.reg_off == 0)
		return false;
	/* with subdomains: the whole part left of the suffix, too */
	strip_range(q, 0, prefix_end, &f);
	return det_dot_omission(q, &f) || det_hyphen_dot(q, &f);
}

/* Checks one distance-1 candidate; a typo class flags at once, a generic
 * edit is kept for after the confusable check. */
static bool edit1_candidate(struct query *q, uint32_t v)
{
	const struct matcher *m = q->m;
	const struct prot_entry *p = &m->prot[v];
	if (p->is_suffix || !same_suffix(q, p))
		return false;
	const char *pl = mstr_ptr(m, p->label);
	if (edit_distance(pl, p->label.len, q->label, q->label_len, 1) != 1)
		return false;
	const char *cls = edit_classify(pl, p->label.len, q->label, q->label_len);
	if (strcmp(cls, "damerau-levenshtein"))
		return flag_prot(q, v, cls, 1);
	if (q->generic1 < 0 && p->label.len >= MATCH_DL1_MIN_LABEL)
		q->generic1 = (int)v;
	return false;
}

/* Keys of a label and its 1-deletions (and 2-deletions when two) for
 * tag that pass the index's filter, in the order label, then for each j
 * the deletion of j followed by the deletions of j and each k > j; written
 * into keys, returns how many. Computing and filtering in one loop with
 * nothing else in it: the filter reads do not depend on each other, so the
 * CPU overlaps their cache misses, and about one key in a hundred passes,
 * so keeping one costs no branch (the slot is written either way). */
#define EDIT_KEYS_MAX ((EDIT_LABEL_MAX * (EDIT_LABEL_MAX - 1)) / 2 + EDIT_LABEL_MAX + 1)

static size_t deletion_keys(const struct query *q, unsigned tag, bool two, uint64_t *keys)
{
	const struct matcher *m = q->m;
	const struct mh_table *t = &m->idx;
	size_t n = q->label_len, r = q->d.reg_off, nk = 0;
	uint64_t P[EDIT_LABEL_MAX + 1], X[EDIT_LABEL_MAX], Y[EDIT_LABEL_MAX], s = q->suffix_hash;
	for (size_t i = 0; i <= n; i++)
		P[i] = match_sub_hash(m, q->P, r, r + i);
	/*
	 * With the label's prefix hashes P, the hash of the label without
	 * character k is Y[k] = P[k] B^(n-1-k) + H(label[k+1..n)), and without
	 * characters j < k it is X[j] + Y[k], X[j] = (P[j] - P[j+1]) B^(n-2-j)
	 * (expand the three pieces of the twice-cut label): one addition per
	 * pair instead of three sub-hashes.
	 */
	for (size_t k = 0; k < n; k++) {
		Y[k] = P[k] * m->pow[n - 1 - k] + match_sub_hash(m, P, k + 1, n);
		if (two && k + 2 <= n)
			X[k] = (P[k] - P[k + 1]) * m->pow[n - 2 - k];
	}
	uint64_t salt1 = mh_key_salt(n - 1, tag, s), salt2 = mh_key_salt(n - 2, tag, s);
	const uint64_t *filter = t->filter;
	size_t words = t->filter_bits / 64 - 1;
	keys[nk] = mh_key(P[n], n, tag, s);
	nk += mh_maybe_in(filter, words, keys[nk]);
	for (size_t j = 0; j < n; j++) {
		keys[nk] = mh_key_salted(Y[j], salt1);
		nk += mh_maybe_in(filter, words, keys[nk]);
		for (size_t k = j + 1; two && k < n; k++) {
			keys[nk] = mh_key_salted(X[j] + Y[k], salt2);
			nk += mh_maybe_in(filter, words, keys[nk]);
		}
	}
	return nk;
}

/* The candidates of the keys that passed the filter, in key order. */
static bool lookup_keys(struct query *q, const uint64_t *keys, size_t nk,
			bool (*candidate)(struct query *, uint32_t))
{
	for (size_t i = 0; i < nk; i++) {
		struct mh_iter it;
		uint32_t v;
		for (mh_find(&q->m->idx, keys[i], &it); mh_next(&it, &v);)
			if (candidate(q, v))
				return true;
	}
	return false;
}

/* Typos one edit away (addition, omission, bitsquatting, keyboard
 * neighbours, ...): the label and its 1-deletions against TAG_DEL1. */
static bool det_edit1(struct query *q)
{
	uint64_t keys[EDIT_LABEL_MAX + 1];
	if (!q->label_ascii || q->label_len > EDIT_LABEL_MAX)
		return false;
	size_t nk = deletion_keys(q, TAG_DEL1, false, keys);
	return lookup_keys(q, keys, nk, edit1_candidate);
}

/* раураl.com, g00gle.com: same confusable fold, same suffix. */
static bool det_confusable(struct query *q)
{
	const struct matcher *m = q->m;
	size_t ul;
	const char *ulabel = domain_reg_ulabel(&q->d, &ul);
	char f[FOLD_MAX];
	/* most labels share no fold with a protected one, and folding costs
	 * more than this lookup */
	int il = fold_invariant(ulabel, ul, f);
	struct mh_iter it;
	uint32_t v;
	if (il >= 0) {
		mh_find(&m->aux, mh_key(mh_poly(f, (size_t)il), (size_t)il, TAG_CONFINV, q->suffix_hash), &it);
		if (!mh_next(&it, &v))
			return false;
	}
	int n = fold_confusable(m->fold, ulabel, ul, f);
	if (n <= 0)
		return false;
	for (mh_find(&m->idx, mh_key(mh_poly(f, (size_t)n), (size_t)n, TAG_CONF, q->suffix_hash), &it);
	     mh_next(&it, &v);) {
		const struct prot_entry *p = &m->prot[v];
		if (same_suffix(q, p) && mstr_eq(m, p->conf, f, (size_t)n))
			return flag_prot(q, v, q->label_ascii ? "homoglyph" : "confusable", -1);
	}
	return false;
}

/* A generic top-level domain (com, net, xyz, ...): one label of 3+ letters,
 * as opposed to a country code (de, co.uk). */
static bool generic_suffix(const char *s, size_t n)
{
	return n >= 3 && !memchr(s, '.', n);
}

/* Is one suffix the other without its leading labels (uk and co.uk)? */
static bool label_suffix_of(const char *a, size_t na, const char *b, size_t nb)
{
	if (na == nb)
		return false;
	const char *lng = na > nb ? a : b, *shrt = na > nb ? b : a;
	size_t nl = na > nb ? na : nb, ns = na > nb ? nb : na;
	return lng[nl - ns - 1] == '.' && !memcmp(lng + nl - ns, shrt, ns);
}

/* gmail.net for gmail.com: the same label under another suffix. One edit
 * on the suffix (gmail.cm) is a suffix typo. Other suffixes are a tld-swap
 * only from one generic TLD to another, and for labels long enough to be
 * distinctive: providers have real national siblings under country codes
 * (yahoo.dk, wanadoo.es) and a word like "mail" or "orange" exists under
 * every country's suffix. Dropping or adding a level of the suffix
 * (hotmail.uk for hotmail.co.uk) is a tld-swap too. */
static bool det_tld_swap(struct query *q)
{
	const struct matcher *m = q->m;
	struct mh_iter it;
	uint32_t v;
	uint64_t key = sub_key(q, q->d.reg_off, q->d.suffix_off - 1, TAG_LABEL, 0);
	for (mh_find(&m->idx, key, &it); mh_next(&it, &v);) {
		const struct prot_entry *p = &m->prot[v];
		if (!mstr_eq(m, p->label, q->label, q->label_len) || same_suffix(q, p))
			continue;
		int d = edit_distance(mstr_ptr(m, p->suffix), p->suffix.len, q->suffix, q->suffix_len, 1);
		if (d == 1)
			return flag_prot(q, v, "suffix-typo", 1);
		const char *ps = mstr_ptr(m, p->suffix);
		bool generic = generic_suffix(q->suffix, q->suffix_len) && generic_suffix(ps, p->suffix.len);
		if (p->label.len >= MATCH_TLDSWAP_MIN_LABEL &&
		    (generic || label_suffix_of(q->suffix, q->suffix_len, ps, p->suffix.len)))
			return flag_prot(q, v, "tld-swap", -1);
	}
	return false;
}

static bool edit2_candidate(struct query *q, uint32_t v)
{
	const struct matcher *m = q->m;
	const struct prot_entry *p = &m->prot[v];
	if (!same_suffix(q, p))
		return false;
	int d = edit_distance(mstr_ptr(m, p->label), p->label.len, q->label, q->label_len, 2);
	return d == 2 && p->label.len >= MATCH_DL2_MIN_LABEL && flag_prot(q, v, "damerau-levenshtein", 2);
}

/* Distance 2 when both labels have 8+ characters: the label, its 1- and
 * 2-deletions against TAG_DEL2 (which holds only long labels). */
static bool det_edit2(struct query *q)
{
	size_t n = q->label_len;
	if (!q->label_ascii || n > EDIT_LABEL_MAX || n < MATCH_DL2_MIN_LABEL)
		return false;
	struct mh_iter it;
	uint32_t v;
	uint64_t mask = 0;
	for (mh_find(&q->m->aux, mh_key(q->suffix_hash, 0, TAG_DEL2LEN, 0), &it); mh_next(&it, &v);)
		mask |= q->m->del2_masks[v];
	if (!((mask >> (n - 2)) & 0x1f)) /* no long label of length n-2 .. n+2 here */
		return false;
	uint64_t keys[EDIT_KEYS_MAX];
	size_t nk = deletion_keys(q, TAG_DEL2, true, keys);
	return lookup_keys(q, keys, nk, edit2_candidate);
}

static bool run_detectors(struct query *q)
{
	/* most specific first: the name tells the sysadmin what happened */
	if (det_prefix(q) || det_folds(q) || det_suffix_typo(q) || det_edit1(q) || det_confusable(q))
		return true;
	if (q->generic1 >= 0)
		return flag_prot(q, (uint32_t)q->generic1, "damerau-levenshtein", 1);
	return det_tld_swap(q) || det_edit2(q);
}

/* ---- input ---------------------------------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The domain of "local@domain", "<local@domain>" or a bare domain. */
static bool extract_domain(const char *in, const char **dom, size_t *len, const char **why)
{
	size_t n = strnlen(in, MATCH_DOMAIN_MAX * 2);
	if (n >= MATCH_DOMAIN_MAX * 2) {
		*why = "input too long";
		return false;
	}
	while (n && is_space(in[0]))
		in++, n--;
	while (n && is_space(in[n - 1]))
		n--;
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>')
		in++, n -= 2;
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (in[i] == '@')
			at = in + i;
	if (at) {
		if (at == in) {
			*why = "empty local part";
			return false;
		}
		n -= (size_t)(at + 1 - in);
		in = at + 1;
		if (n == 0) {
			*why = "no domain after '@'";
			return false;
		}
	}
	*dom = in;
	*len = n;
	return true;
}

static enum match_result verdict(struct match_verdict *out, enum match_result r, const char *reason)
{
	out->result = r;
	out->reason = reason;
	if (r == MATCH_ERROR)
		out->domain[0] = '\0';
	return r;
}

static void prepare(struct query *q)
{
	struct domain_name *d = &q->d;
	match_prefix_hashes(d->ascii, d->ascii_len, q->P);
	q->nstarts = 0;
	q->starts[q->nstarts++] = 0;
	for (size_t i = 0; i < d->ascii_len && q->nstarts < DOMAIN_LABELS_MAX; i++)
		if (d->ascii[i] == '.')
			q->starts[q->nstarts++] = i + 1;
	q->suffix = d->ascii + d->suffix_off;
	q->suffix_len = d->ascii_len - d->suffix_off;
	q->suffix_hash = match_sub_hash(q->m, q->P, d->suffix_off, d->ascii_len);
	q->generic1 = -1;
	if (d->has_registrable) {
		q->label = domain_reg_label(d, &q->label_len);
		size_t ul;
		domain_reg_ulabel(d, &ul);
		q->label_ascii = ul == q->label_len;
	}
}

enum match_result matcher_check(const struct matcher *m, const char *input,
				struct match_verdict *out)
{
	struct query q;
	const char *dom = NULL, *why = NULL;
	size_t len = 0;
	q.m = m;
	q.out = out;
	out->domain[0] = out->protected_entry[0] = '\0';
	out->detector = NULL;
	out->distance = -1;
	if (!input || !extract_domain(input, &dom, &len, &why) ||
	    domain_normalize(m->dom, dom, len, &q.d, &why) < 0)
		return verdict(out, MATCH_ERROR, input ? why : "no input");
	copy_str(out->domain, sizeof(out->domain), q.d.ascii, q.d.ascii_len);
	if (q.d.kind == DOMAIN_LITERAL)
		return verdict(out, MATCH_OK, "address literal");
	prepare(&q);
	/* empty lists (the default) cost no lookups */
	int v = m->nallow ? find_listed(&q, TAG_ALLOW, TAG_ALLOW_WILD) : -1;
	if (v >= 0)
		return verdict(out, MATCH_OK, "allow-list");
	v = m->nblock ? find_listed(&q, TAG_BLOCK, TAG_BLOCK_WILD) : -1;
	if (v >= 0) {
		flag(&q, mstr_ptr(m, m->block[v].name), m->block[v].name.len, "block-list", -1);
		return MATCH_FLAG;
	}
	if (is_protected(&q))
		return verdict(out, MATCH_OK, "protected");
	if (!q.d.has_registrable)
		return verdict(out, MATCH_ERROR, "a public suffix, not a registrable domain");
	if (run_detectors(&q))
		return MATCH_FLAG;
	return verdict(out, MATCH_OK, "no lookalike");
}
