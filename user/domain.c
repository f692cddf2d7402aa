/* Domain normalisation with libidn2 and libpsl (see domain.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <libpsl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "domain.h"
#include "suffix_index.h"

struct domain_ctx {
	psl_ctx_t *psl;
	struct suffix_index *index; /* NULL: ask libpsl on every name (slow) */
};

struct domain_ctx *domain_ctx_new(char *err, size_t errlen)
{
	struct domain_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, errlen, "public suffix list: out of memory");
		return NULL;
	}
	/* Debian's list, so libpsl and the fast index read the same data;
	 * without the file, whatever libpsl has (psl_latest). */
	ctx->psl = psl_load_file(SUFFIX_LIST_PATH);
	if (!ctx->psl)
		ctx->psl = psl_latest(NULL);
	if (!ctx->psl) {
		snprintf(err, errlen, "public suffix list: cannot load (is the publicsuffix package installed?)");
		free(ctx);
		return NULL;
	}
	char ierr[256];
	ctx->index = suffix_index_load(SUFFIX_LIST_PATH, ctx->psl, ierr, sizeof(ierr));
	if (!ctx->index)
		fprintf(stderr, "rcptwall: public suffix index not used, asking libpsl per name (slower): %s\n",
			ierr);
	return ctx;
}

void domain_ctx_free(struct domain_ctx *ctx)
{
	if (!ctx)
		return;
	suffix_index_free(ctx->index);
	psl_free(ctx->psl);
	free(ctx);
}

bool domain_is_listed_suffix(const struct domain_ctx *ctx, const char *s, bool icann_only)
{
	int type = (icann_only ? PSL_TYPE_ICANN : PSL_TYPE_ANY) | PSL_TYPE_NO_STAR_RULE;
	return psl_is_public_suffix2(ctx->psl, s, type) != 0;
}

static bool is_ascii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static unsigned char ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* "[...]" per RFC 5321 4.1.3: IPv4, "IPv6:" + IPv6, or "tag:content". */
static int parse_bracket_literal(const char *in, size_t len, struct domain_name *out,
				 const char **why)
{
	char inner[DOMAIN_ASCII_MAX];
	if (len < 3 || in[len - 1] != ']') {
		*why = "malformed address literal";
		return -EINVAL;
	}
	size_t n = len - 2;
	if (n >= sizeof(inner)) {
		*why = "address literal too long";
		return -EINVAL;
	}
	memcpy(inner, in + 1, n);
	inner[n] = '\0';
	unsigned char addr[16];
	bool ok = false;
	if (n > 5 && !strncasecmp(inner, "IPv6:", 5)) {
		ok = inet_pton(AF_INET6, inner + 5, addr) == 1;
	} else if (inet_pton(AF_INET, inner, addr) == 1) {
		ok = true;
	} else {
		/* General-address-literal: Standardized-tag ":" 1*dcontent */
		const char *colon = memchr(inner, ':', n);
		ok = colon && colon > inner && colon[1] != '\0';
		for (const char *p = inner; ok && p < colon; p++)
			ok = is_ascii_alnum(ascii_lower((unsigned char)*p)) || *p == '-';
		for (const char *p = colon ? colon + 1 : inner; ok && *p; p++)
			ok = *p >= 33 && *p <= 126 && *p != '[' && *p != ']' && *p != '\\';
	}
	if (!ok) {
		*why = "malformed address literal";
		return -EINVAL;
	}
	out->kind = DOMAIN_LITERAL;
	memcpy(out->ascii, in, len);
	out->ascii[len] = '\0';
	out->ascii_len = len;
	memcpy(out->unicode, out->ascii, len + 1);
	out->unicode_len = len;
	return 0;
}

/*
 * Checks an ASCII name in LDH form and writes it lowercased into dst
 * (DOMAIN_ASCII_MAX). *needs_idna is set when a label starts with "xn--"
 * (an A-label that libidn2 must validate) or a byte is not ASCII; then dst
 * is not filled and no error is returned.
 */
static int check_ldh(const char *in, size_t len, char *dst, bool *needs_idna, const char **why)
{
	*needs_idna = false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)in[i] >= 0x80) {
			*needs_idna = true;
			return 0;
		}
	}
	if (len >= DOMAIN_ASCII_MAX) {
		*why = "name longer than 253 octets";
		return -EINVAL;
	}
	size_t label_start = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? ascii_lower((unsigned char)in[i]) : '.';
		if (c == '.') {
			size_t ll = i - label_start;
			if (ll == 0) {
				*why = "empty label";
				return -EINVAL;
			}
			if (ll > 63) {
				*why = "label longer than 63 octets";
				return -EINVAL;
			}
			if (dst[label_start] == '-' || dst[i - 1] == '-') {
				*why = "label starts or ends with a hyphen";
				return -EINVAL;
			}
			/* memcmp, not strncmp: the 4 bytes are checked LDH characters,
			 * no NUL among them, and this compiles to one comparison */
			if (ll >= 4 && !memcmp(dst + label_start, "xn--", 4))
				*needs_idna = true;
			label_start = i + 1;
		} else if (!is_ascii_alnum(c) && c != '-') {
			*why = "character not allowed in a domain name";
			return -EINVAL;
		}
		if (i < len)
			dst[i] = (char)c;
	}
	dst[len] = '\0';
	return 0;
}

/* IDNA2008 via libidn2: to A-labels, back to U-labels, and the round trip
 * must give the same A-labels (catches bogus "xn--" labels). */
static int idna_convert(const char *in, size_t len, struct domain_name *out, const char **why)
{
	char buf[DOMAIN_UNICODE_MAX];
	if (len >= sizeof(buf)) {
		*why = "name too long";
		return -EINVAL;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		*why = "NUL byte in name";
		return -EINVAL;
	}
	char *a = NULL, *u = NULL, *again = NULL;
	int rc = -EINVAL;
	int flags = IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL;
	if (idn2_to_ascii_8z(buf, &a, flags) != IDN2_OK) {
		*why = "invalid IDNA";
		goto out;
	}
	bool again_idna;
	if (check_ldh(a, strlen(a), out->ascii, &again_idna, why) < 0)
		goto out;
	if (idn2_to_unicode_8z8z(out->ascii, &u, 0) != IDN2_OK ||
	    idn2_to_ascii_8z(u, &again, flags) != IDN2_OK || strcmp(again, out->ascii)) {
		*why = "invalid IDNA (A-label does not round-trip)";
		goto out;
	}
	size_t ulen = strlen(u);
	if (ulen >= sizeof(out->unicode)) {
		*why = "name too long";
		goto out;
	}
	memcpy(out->unicode, u, ulen + 1);
	out->unicode_len = ulen;
	out->ascii_len = strlen(out->ascii);
	out->idn = strcmp(out->ascii, out->unicode) != 0;
	rc = 0;
out:
	free(a); /* libidn2 allocates with malloc */
	free(u);
	free(again);
	return rc;
}

/* Offset of the k-th label counted from the end (k = 1: the last one). */
static size_t label_offset_from_end(const char *s, size_t len, unsigned k)
{
	size_t i = len;
	while (i > 0) {
		if (s[i - 1] == '.' && --k == 0)
			return i;
		i--;
	}
	return 0;
}

static unsigned count_labels(const char *s, size_t len)
{
	unsigned n = len ? 1 : 0;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '.';
	return n;
}

/* A dotted name whose last label is all digits is an IPv4 address written
 * without brackets, or not a domain at all (RFC 3696: no numeric TLD). */
static int check_numeric_tld(struct domain_name *out, const char **why)
{
	size_t last = label_offset_from_end(out->ascii, out->ascii_len, 1);
	for (size_t i = last; i < out->ascii_len; i++)
		if (out->ascii[i] < '0' || out->ascii[i] > '9')
			return 0;
	unsigned char addr[4];
	if (inet_pton(AF_INET, out->ascii, addr) == 1) {
		out->kind = DOMAIN_LITERAL;
		return 0;
	}
	*why = "numeric top-level label";
	return -EINVAL;
}

/*
 * The public suffix by the ICANN section of the list only: the private
 * section (freedesktop.org, iki.fi, blogspot.com) exists for cookie
 * isolation between hosted sites, and those names are real mail domains.
 * The longest suffix wins, so try from the leftmost label; the implicit "*"
 * rule makes an unknown top-level label a suffix of its own.
 */
static const char *icann_suffix(const struct domain_ctx *ctx, const char *name)
{
	for (const char *s = name; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
		if (psl_is_public_suffix2(ctx->psl, s, PSL_TYPE_ICANN))
			return s;
	return NULL;
}

static void locate_suffix(const struct domain_ctx *ctx, struct domain_name *out)
{
	out->nlabels = count_labels(out->ascii, out->ascii_len);
	if (ctx->index) {
		bool listed;
		size_t off = suffix_index_find(ctx->index, out->ascii, out->ascii_len, &listed);
		out->suffix_labels = count_labels(out->ascii + off, out->ascii_len - off);
		out->suffix_listed = listed;
	} else {
		/* libpsl wants lowercase UTF-8; the U-label form has the same labels. */
		const char *suffix = icann_suffix(ctx, out->unicode);
		if (!suffix)
			suffix = out->unicode + label_offset_from_end(out->unicode, out->unicode_len, 1);
		out->suffix_labels = count_labels(suffix, strlen(suffix));
		out->suffix_listed = domain_is_listed_suffix(ctx, suffix, true);
	}
	out->has_registrable = out->nlabels > out->suffix_labels;
	out->suffix_off = label_offset_from_end(out->ascii, out->ascii_len, out->suffix_labels);
	out->reg_off = out->has_registrable
			       ? label_offset_from_end(out->ascii, out->ascii_len, out->suffix_labels + 1)
			       : out->suffix_off;
	if (!out->idn) { /* the same string: the same offsets, no second scan */
		out->usuffix_off = out->suffix_off;
		out->ureg_off = out->reg_off;
		return;
	}
	out->usuffix_off = label_offset_from_end(out->unicode, out->unicode_len, out->suffix_labels);
	out->ureg_off = out->has_registrable ? label_offset_from_end(out->unicode, out->unicode_len,
								     out->suffix_labels + 1)
					     : out->usuffix_off;
}

/* Clears the fields without touching the two large buffers (hot path). */
static void reset_name(struct domain_name *out)
{
	out->kind = DOMAIN_NAME;
	out->ascii[0] = out->unicode[0] = '\0';
	out->ascii_len = out->unicode_len = 0;
	out->idn = false;
	out->nlabels = out->suffix_labels = 0;
	out->suffix_listed = out->has_registrable = false;
	out->reg_off = out->suffix_off = out->ureg_off = out->usuffix_off = 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int domain_normalize(const struct domain_ctx *ctx, const char *in, size_t len,
		     struct domain_name *out, const char **why)
{
	reset_name(out);
	while (len && is_space(in[0]))
		in++, len--;
	while (len && is_space(in[len - 1]))
		len--;
	if (len == 0) {
		*why = "empty name";
		return -EINVAL;
	}
	if (in[0] == '[')
		return parse_bracket_literal(in, len, out, why);
	if (in[len - 1] == '.') /* one trailing dot: the root */
		len--;
	if (len == 0 || in[len - 1] == '.') {
		*why = "empty label";
		return -EINVAL;
	}
	bool needs_idna;
	int rc = check_ldh(in, len, out->ascii, &needs_idna, why);
	if (rc < 0)
		return rc;
	if (needs_idna) {
		rc = idna_convert(in, len, out, why);
		if (rc < 0)
			return rc;
	} else {
		out->ascii_len = len;
		memcpy(out->unicode, out->ascii, len + 1);
		out->unicode_len = len;
	}
	out->kind = DOMAIN_NAME;
	rc = check_numeric_tld(out, why);
	if (rc < 0 || out->kind == DOMAIN_LITERAL)
		return rc;
	locate_suffix(ctx, out);
	return 0;
}
