/*
 * The matcher's data, shared by the files that build it (match_build.c)
 * and query it (match.c). Not part of the public interface (match.h).
 */
#ifndef RCPTWALL_MATCH_INTERNAL_H
#define RCPTWALL_MATCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domain.h"
#include "match_fold.h"
#include "match_hash.h"

/* Index tags: one hash table holds every index, a tag keeps them apart. */
enum match_tag {
	TAG_EXACT = 1,  /* protected domain (A-label form) */
	TAG_SUFFIX,     /* protected suffix entry ("mil") */
	TAG_TYPO,       /* a real public suffix one edit away from a protected suffix */
	TAG_DEL1,       /* label and its 1-deletions, scoped by suffix */
	TAG_DEL2,       /* label (>= 8 chars) and its 1- and 2-deletions, scoped by suffix */
	TAG_CONF,       /* confusable fold of the label, scoped by suffix */
	TAG_HYPH,       /* label without hyphens, scoped by suffix */
	TAG_DOT,        /* label + suffix without dots and hyphens, unscoped */
	TAG_LABEL,      /* label alone, unscoped (tld-swap) */
	TAG_ALLOW,
	TAG_ALLOW_WILD, /* "*.example.com" stored as "example.com" */
	TAG_BLOCK,
	TAG_BLOCK_WILD,
	TAG_DEL2LEN,    /* suffix -> index into del2_masks */
	TAG_CONFINV,    /* invariant string of the confusable fold (fold_invariant), scoped by suffix */
};

/* Strings live in one arena and are referred to by offset. */
struct mstr {
	uint32_t off;
	uint16_t len;
};

struct prot_entry {
	struct mstr name;   /* "army.mil", or ".mil" for a suffix entry */
	struct mstr label;  /* registrable label, A-label form ("" for a suffix entry) */
	struct mstr suffix; /* public suffix ("mil") */
	struct mstr conf;   /* confusable fold of the U-label */
	struct mstr dot;    /* label + suffix without dots and hyphens */
	uint64_t suffix_hash;
	bool is_suffix;
};

struct list_entry {
	struct mstr name; /* as written, for the verdict ("*.example.com") */
	struct mstr key;  /* normalised, without "*." */
	bool wildcard;
};

#define MATCH_POW_MAX 256

struct matcher {
	struct domain_ctx *dom;
	struct fold_ctx *fold;
	struct mh_table idx;
	/* Small keys asked on most checks, kept apart from the big index so
	 * their lookups stay in cache: TAG_DEL2LEN (also in idx) and
	 * TAG_CONFINV. */
	struct mh_table aux;
	struct prot_entry *prot;
	size_t nprot, prot_cap;
	struct list_entry *allow, *block;
	size_t nallow, nblock;
	char *arena;
	size_t arena_len, arena_cap;
	/* Per suffix, bit L set: a TAG_DEL2 label of length L has that suffix.
	 * Lets a check skip the ~50 distance-2 lookups when no long protected
	 * label of a near length shares the recipient's suffix. */
	unsigned max_name_labels; /* most labels in a protected name or suffix */
	uint64_t *del2_masks;
	size_t ndel2_masks, del2_masks_cap;
	uint64_t pow[MATCH_POW_MAX + 1]; /* MH_BASE^i */
};

static inline const char *mstr_ptr(const struct matcher *m, struct mstr s)
{
	return m->arena + s.off;
}

/* Hash of s[a..b) from prefix hashes P (P[i] = mh_poly(s, i)). */
static inline uint64_t match_sub_hash(const struct matcher *m, const uint64_t *P, size_t a,
				      size_t b)
{
	return P[b] - P[a] * m->pow[b - a];
}

/* Two characters per step on the dependent chain (P[i] -> P[i + 2]); the
 * odd prefix in between is computed off the chain. Same values as one at a
 * time, in half the latency. */
static inline void match_prefix_hashes(const char *s, size_t n, uint64_t *P)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	P[0] = 0;
	for (; i + 2 <= n; i += 2) {
		P[i + 1] = P[i] * MH_BASE + u[i] + 1;
		P[i + 2] = P[i] * MH_BASE2 + (u[i] + 1ULL) * MH_BASE + u[i + 1] + 1;
	}
	if (i < n)
		P[i + 1] = P[i] * MH_BASE + u[i] + 1;
}

/* Hash of s[0..n) with s[k] deleted. */
static inline uint64_t match_del1_hash(const struct matcher *m, const uint64_t *P, size_t n,
				       size_t k)
{
	return match_sub_hash(m, P, 0, k) * m->pow[n - 1 - k] + match_sub_hash(m, P, k + 1, n);
}

/* Hash of s[0..n) with s[j] and s[k] deleted (j < k). */
static inline uint64_t match_del2_hash(const struct matcher *m, const uint64_t *P, size_t n,
				       size_t j, size_t k)
{
	return match_sub_hash(m, P, 0, j) * m->pow[n - 2 - j] +
	       match_sub_hash(m, P, j + 1, k) * m->pow[n - 1 - k] + match_sub_hash(m, P, k + 1, n);
}

/* Length of the suffix-entry / label rules (README: "Bounds"). */
#define MATCH_DL1_MIN_LABEL 4 /* generic distance 1: protected labels of 4+ chars */
#define MATCH_DL2_MIN_LABEL 8 /* distance 2: labels of 8+ chars */
#define MATCH_TLDSWAP_MIN_LABEL 4

#endif
