/*
 * Edit distance between labels and the name of a one-edit typo.
 *
 * The matcher only calls these on candidates its index has found, never on
 * every protected entry.
 */
#ifndef RCPTWALL_MATCH_EDIT_H
#define RCPTWALL_MATCH_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#define EDIT_LABEL_MAX 63 /* longest label: RFC 1035 */

/*
 * Optimal-string-alignment Damerau-Levenshtein distance (insertions,
 * deletions, substitutions, transpositions of adjacent characters), bounded:
 * returns max + 1 as soon as the distance is known to exceed max. Strings
 * longer than EDIT_LABEL_MAX give max + 1.
 */
int edit_distance(const char *a, size_t na, const char *b, size_t nb, int max);

/*
 * For labels at distance 1 (protected p, recipient r): which typo turns p
 * into r. One of "addition", "repetition", "insertion", "omission",
 * "transposition", "bitsquatting", "vowel-swap", "replacement", or
 * "damerau-levenshtein" for an edit no typo class names (a non-adjacent
 * key, for example). Lookalike glyphs are found earlier, by their fold.
 */
const char *edit_classify(const char *p, size_t np, const char *r, size_t nr);

/* Are keys a and b neighbours on a QWERTY, QWERTZ or AZERTY keyboard? */
bool edit_keys_adjacent(char a, char b);

#endif
