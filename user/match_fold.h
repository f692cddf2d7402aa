/*
 * Canonical folds of a label: two labels that fold to the same string are
 * lookalikes of one kind, so the matcher compares folds by hash instead of
 * enumerating permutations.
 *
 *   confusable fold: UTS #39 skeleton (ICU uspoof) for non-ASCII, marks
 *     stripped, then ASCII lookalike classes (0/o, 1/l/i, rn/m, vv/w, cl/d,
 *     ...), runs of m-like letters collapsed. Covers homoglyph and
 *     Cyrillic permutations, also with two substitutions at once.
 *   strip fold: the label with hyphens and dots removed. Covers hyphenation,
 *     subdomain (a dot inserted) and dot omission.
 */
#ifndef RCPTWALL_MATCH_FOLD_H
#define RCPTWALL_MATCH_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#define FOLD_MAX 256 /* a label is at most 63 octets in A-label form; its
		      * U-label and skeleton stay far below this */

struct fold_ctx; /* ICU spoof checker; read-only after creation */

struct fold_ctx *fold_ctx_new(char *err, size_t errlen);
void fold_ctx_free(struct fold_ctx *ctx);

/*
 * Confusable fold of a U-label (UTF-8, lowercase). Writes at most FOLD_MAX
 * bytes into out and returns the length, or -1 when the label cannot be
 * folded (too long, ICU error). ASCII input needs no ICU call and no
 * allocation.
 */
int fold_confusable(const struct fold_ctx *ctx, const char *label, size_t len, char *out);

/*
 * The characters of an ASCII label that its confusable fold keeps as they
 * are, in order: after the class map, everything but the letters the pair
 * and run rules read or write (v c b l h k w m). Two ASCII labels with the
 * same fold have the same invariant string, so a hash of it rules out most
 * fold lookups without computing the fold. Writes at most FOLD_MAX bytes
 * into out and returns the length, or -1 for a byte >= 0x80 or a label too
 * long to fold.
 */
int fold_invariant(const char *label, size_t len, char *out);

/* Copies s without the characters '-' and '.'; out holds FOLD_MAX bytes.
 * Returns the length, or -1 when s is too long. */
int fold_strip(const char *s, size_t len, char *out);

#endif
