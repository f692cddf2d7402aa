/* Bounded Damerau-Levenshtein distance and typo classes (see match_edit.h). */
#include <string.h>

#include "match_edit.h"

static int min3(int a, int b, int c)
{
	int m = a < b ? a : b;
	return m < c ? m : c;
}

int edit_distance(const char *a, size_t na, const char *b, size_t nb, int max)
{
	if (na > EDIT_LABEL_MAX || nb > EDIT_LABEL_MAX)
		return max + 1;
	int diff = na > nb ? (int)(na - nb) : (int)(nb - na);
	if (diff > max)
		return max + 1;
	/* three rows: i-2, i-1, i */
	int rows[3][EDIT_LABEL_MAX + 1];
	int *pp = rows[0], *prev = rows[1], *cur = rows[2];
	for (size_t j = 0; j <= nb; j++)
		prev[j] = (int)j;
	for (size_t i = 1; i <= na; i++) {
		cur[0] = (int)i;
		int row_min = cur[0];
		for (size_t j = 1; j <= nb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int d = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			cur[j] = d;
			if (d < row_min)
				row_min = d;
		}
		if (row_min > max) /* every later row is at least this */
			return max + 1;
		int *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[nb] > max ? max + 1 : prev[nb];
}

/*
 * Keyboard rows; each row is shifted half a key right of the one above, so
 * the key at (row, col) touches (row-1, col), (row-1, col+1), (row, col+/-1),
 * (row+1, col-1), (row+1, col).
 */
static const char *const layouts[][4] = {
	{"1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"},  /* QWERTY */
	{"1234567890", "qwertzuiop", "asdfghjkl", "yxcvbnm"},  /* QWERTZ */
	{"1234567890", "azertyuiop", "qsdfghjklm", "wxcvbn"},  /* AZERTY */
};

static bool find_key(const char *const rows[4], char c, int *row, int *col)
{
	for (int r = 0; r < 4; r++) {
		const char *p = strchr(rows[r], c);
		if (c && p) {
			*row = r;
			*col = (int)(p - rows[r]);
			return true;
		}
	}
	return false;
}

bool edit_keys_adjacent(char a, char b)
{
	for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
		int ra, ca, rb, cb;
		if (!find_key(layouts[l], a, &ra, &ca) || !find_key(layouts[l], b, &rb, &cb))
			continue;
		if (ra == rb && (cb == ca - 1 || cb == ca + 1))
			return true;
		if (rb == ra - 1 && (cb == ca || cb == ca + 1))
			return true;
		if (rb == ra + 1 && (cb == ca - 1 || cb == ca))
			return true;
	}
	return false;
}

static bool is_vowel(char c)
{
	return c && strchr("aeiou", c) != NULL;
}

/* r is p with one character inserted at the first position they differ. */
static const char *classify_insertion(const char *p, size_t np, const char *r, size_t nr)
{
	size_t k = 0;
	while (k < np && p[k] == r[k])
		k++;
	char c = r[k];
	if (k == nr - 1)
		return k > 0 && r[k - 1] == c ? "repetition" : "addition";
	if ((k > 0 && r[k - 1] == c) || r[k + 1] == c)
		return "repetition";
	if ((k > 0 && edit_keys_adjacent(r[k - 1], c)) || edit_keys_adjacent(r[k + 1], c))
		return "insertion";
	return "damerau-levenshtein";
}

static const char *classify_substitution(char from, char to)
{
	unsigned x = (unsigned char)from ^ (unsigned char)to;
	if (x && !(x & (x - 1)))
		return "bitsquatting";
	if (is_vowel(from) && is_vowel(to))
		return "vowel-swap";
	if (edit_keys_adjacent(from, to))
		return "replacement";
	return "damerau-levenshtein";
}

const char *edit_classify(const char *p, size_t np, const char *r, size_t nr)
{
	if (nr == np + 1)
		return classify_insertion(p, np, r, nr);
	if (nr + 1 == np)
		return "omission";
	if (nr != np)
		return "damerau-levenshtein";
	size_t k = 0;
	while (k < np && p[k] == r[k])
		k++;
	if (k == np)
		return "damerau-levenshtein"; /* equal: not an edit */
	if (k + 1 < np && p[k] == r[k + 1] && p[k + 1] == r[k] && !memcmp(p + k + 2, r + k + 2, np - k - 2))
		return "transposition";
	return classify_substitution(p[k], r[k]);
}
