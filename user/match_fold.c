/* Canonical folds of labels (see match_fold.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uspoof.h>

#include "match_fold.h"

struct fold_ctx {
	USpoofChecker *spoof;
};

struct fold_ctx *fold_ctx_new(char *err, size_t errlen)
{
	struct fold_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, errlen, "confusable skeletons: out of memory");
		return NULL;
	}
	UErrorCode status = U_ZERO_ERROR;
	ctx->spoof = uspoof_open(&status);
	if (U_FAILURE(status)) {
		snprintf(err, errlen, "confusable skeletons: uspoof_open: %s", u_errorName(status));
		free(ctx);
		return NULL;
	}
	return ctx;
}

void fold_ctx_free(struct fold_ctx *ctx)
{
	if (!ctx)
		return;
	uspoof_close(ctx->spoof);
	free(ctx);
}

/* Letters the UTS #39 tables leave alone (or map to another non-Latin
 * letter) but that pass for Latin ones in a domain: small capitals, hooks,
 * letters ICU keeps as one code point. Applied before and after the
 * skeleton. */
static const struct {
	uint32_t cp;
	char ascii;
} extra_glyphs[] = {
	/* small capitals */
	{0x1D00, 'a'}, {0x0299, 'b'}, {0x1D04, 'c'}, {0x1D05, 'd'}, {0x1D07, 'e'},
	{0xA730, 'f'}, {0x0262, 'g'}, {0x029C, 'h'}, {0x026A, 'i'}, {0x1D0A, 'j'},
	{0x1D0B, 'k'}, {0x029F, 'l'}, {0x1D0D, 'm'}, {0x0274, 'n'}, {0x1D0F, 'o'},
	{0x1D18, 'p'}, {0x0280, 'r'}, {0xA731, 's'}, {0x1D1B, 't'}, {0x1D1C, 'u'},
	{0x1D20, 'v'}, {0x1D21, 'w'}, {0x028F, 'y'}, {0x1D22, 'z'},
	/* hooks, strokes, other single code points */
	{0x0185, 'b'}, {0x0188, 'c'}, {0x2C68, 'h'}, {0x2C6A, 'k'}, {0xA791, 'n'},
	{0x00FE, 'p'}, {0x027E, 'r'}, {0x01AB, 't'}, {0x0289, 'u'}, {0x2C71, 'v'},
	{0x2C74, 'v'}, {0x1D8C, 'v'}, {0x2C73, 'w'}, {0x2C6C, 'z'}, {0x01DD, 'a'},
	{0x029D, 'j'}, {0x0259, 'a'}, {0x0131, 'i'}, {0x0138, 'k'},
	/* Cyrillic letters with no UTS #39 Latin prototype */
	{0x043C, 'm'}, {0x043A, 'k'}, {0x0442, 't'}, {0x0432, 'b'}, {0x043D, 'h'},
};

static char extra_glyph(uint32_t cp)
{
	for (size_t k = 0; k < sizeof(extra_glyphs) / sizeof(extra_glyphs[0]); k++)
		if (extra_glyphs[k].cp == cp)
			return extra_glyphs[k].ascii;
	return 0;
}

/* Decodes one UTF-8 sequence at s (n bytes available). Returns its length
 * (1 for an invalid byte, which is then passed through as is). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80 || n < 2) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0) {
		*cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if ((s[0] & 0xF0) == 0xE0 && n >= 3) {
		*cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if ((s[0] & 0xF8) == 0xF0 && n >= 4) {
		*cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
		      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	*cp = s[0];
	return 1;
}

/*
 * Skeleton of a non-ASCII label, then: combining marks dropped (the
 * skeleton is in NFD, so "à" arrives as "a" + U+0300) and the extra glyphs
 * mapped. Output stays UTF-8 for code points with no Latin lookalike.
 */
/* Replaces the extra glyphs by their Latin letter (UTF-8 in, UTF-8 out). */
static int premap_glyphs(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t step = utf8_decode((const unsigned char *)in + i, len - i, &cp);
		char mapped = cp >= 0x80 ? extra_glyph(cp) : 0;
		if (o + step >= FOLD_MAX)
			return -1;
		if (mapped)
			out[o++] = mapped;
		else
			memcpy(out + o, in + i, step), o += step;
		i += step;
	}
	return (int)o;
}

static int skeleton_latin(const struct fold_ctx *ctx, const char *label, size_t len,
			  char *out)
{
	char pre[FOLD_MAX], skel[FOLD_MAX * 4];
	int pn = premap_glyphs(label, len, pre);
	if (pn < 0)
		return -1;
	UErrorCode status = U_ZERO_ERROR;
	int32_t n = uspoof_getSkeletonUTF8(ctx->spoof, 0, pre, pn, skel,
					   (int32_t)sizeof(skel), &status);
	if (U_FAILURE(status) || n < 0 || (size_t)n >= sizeof(skel))
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < (size_t)n;) {
		uint32_t cp;
		size_t step = utf8_decode((const unsigned char *)skel + i, (size_t)n - i, &cp);
		if (cp >= 0x300 && cp <= 0x36F) {
			i += step;
			continue;
		}
		char mapped = extra_glyph(cp);
		if (o + step >= FOLD_MAX)
			return -1;
		if (mapped)
			out[o++] = mapped;
		else
			memcpy(out + o, skel + i, step), o += step;
		i += step;
	}
	return (int)o;
}

/* One representative per class of ASCII characters that pass for each
 * other in a domain name (0 in the table: the character stands for itself,
 * uppercase aside). A table, not a switch: this runs on every recipient. */
static const char class_table[256] = {
	['0'] = 'o', ['1'] = 'l', ['i'] = 'l', ['|'] = 'l', ['I'] = 'l',
	['n'] = 'm', ['r'] = 'm', ['N'] = 'm', ['R'] = 'm', ['M'] = 'm',
	['d'] = 'b', ['D'] = 'b', ['B'] = 'b', ['e'] = 'c', ['E'] = 'c', ['C'] = 'c',
	['q'] = 'g', ['Q'] = 'g', ['G'] = 'g', ['3'] = '8', ['9'] = '6', ['5'] = 's',
	['S'] = 's', ['O'] = 'o', ['L'] = 'l',
};

static char ascii_class(char c)
{
	/* without branches: the table hits are frequent letters (n, r, e,
	 * d, i), a branch on them is mispredicted all the time */
	unsigned char u = (unsigned char)c, t = (unsigned char)class_table[u];
	unsigned char lower = (unsigned char)(u + 32 * ((unsigned char)(u - 'A') < 26));
	return (char)(t + (t == 0) * lower);
}

/* Pairs (after ascii_class) that read as one letter: vv -> w, cl/bl/lb ->
 * d (class b), lh -> h, lk/lc -> k. Returns the letter or 0. */
static char ascii_pair(char a, char b)
{
	if (a == 'v' && b == 'v')
		return 'w';
	if ((a == 'c' && b == 'l') || (a == 'b' && b == 'l') || (a == 'l' && b == 'b'))
		return 'b';
	if (a == 'l' && b == 'h')
		return 'h';
	if (a == 'l' && (b == 'k' || b == 'c'))
		return 'k';
	return 0;
}

/* One left-to-right pass of the pair rules and the m-run collapse over
 * cls[0..len) into out; returns the new length. */
static size_t pair_pass(const char *cls, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		char c = cls[i];
		/* only v, c, b and l start a pair: skip the rules for the rest */
		bool may_pair = c == 'v' || c == 'c' || c == 'b' || c == 'l';
		char pair = may_pair && i + 1 < len ? ascii_pair(cls[i], cls[i + 1]) : 0;
		/* "clk": the l belongs to "lk" (k), not to "cl" (d) */
		if (pair && cls[i + 1] == 'l' && i + 2 < len && cls[i + 2] == 'k')
			pair = 0;
		if (pair) {
			c = pair;
			i += 2;
		} else {
			i++;
		}
		/* runs of the m class collapse: "rn", "nn", "rr" and "m" all end as
		 * one 'm'. Other runs stay: "nec" must not fold like "me". */
		if (c == 'm' && o > 0 && out[o - 1] == 'm')
			continue;
		out[o++] = c;
	}
	return o;
}

/*
 * Class map, then pair passes until nothing changes: a greedy single pass
 * depends on where a pair starts ("recliff" would keep an l that "rediff"
 * loses), the fixpoint does not. Every pass that changes something makes
 * the string shorter, so this ends.
 */
static int fold_ascii_classes(const char *in, size_t len, char *out)
{
	char buf[FOLD_MAX];
	if (len >= FOLD_MAX)
		return -1;
	for (size_t i = 0; i < len; i++)
		buf[i] = ascii_class(in[i]);
	for (;;) {
		size_t n = pair_pass(buf, len, out);
		if (n == len)
			return (int)n;
		memcpy(buf, out, n);
		len = n;
	}
}

int fold_confusable(const struct fold_ctx *ctx, const char *label, size_t len, char *out)
{
	bool ascii = true;
	for (size_t i = 0; i < len; i++)
		ascii = ascii && (unsigned char)label[i] < 0x80;
	if (ascii)
		return fold_ascii_classes(label, len, out);
	char latin[FOLD_MAX];
	int n = skeleton_latin(ctx, label, len, latin);
	if (n < 0)
		return -1;
	return fold_ascii_classes(latin, (size_t)n, out);
}

#define LETTER_BIT(c) (1ULL << ((c) - 'b'))
#define PAIR_LETTERS                                                                      \
	(LETTER_BIT('b') | LETTER_BIT('c') | LETTER_BIT('h') | LETTER_BIT('k') | LETTER_BIT('l') | \
	 LETTER_BIT('m') | LETTER_BIT('v') | LETTER_BIT('w'))

int fold_invariant(const char *label, size_t len, char *out)
{
	if (len >= FOLD_MAX)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)label[i] >= 0x80)
			return -1;
		char c = ascii_class(label[i]);
		/* the letters pair_pass() reads or writes (b c h k l v w) and the
		 * m runs it collapses, as bits from 'b' up: a mask, not a chain of
		 * mispredicted comparisons */
		unsigned d = (unsigned char)(c - 'b');
		uint64_t touched = (PAIR_LETTERS >> (d & 63)) & (d < 64);
		out[o] = c;
		o += !touched;
	}
	return (int)o;
}

int fold_strip(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '-' || s[i] == '.')
			continue;
		if (o + 1 >= FOLD_MAX)
			return -1;
		out[o++] = s[i];
	}
	return (int)o;
}
