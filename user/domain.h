/*
 * Domain normalisation: the one place where a recipient domain (attacker
 * controlled bytes) becomes a name the matcher can compare.
 *
 * Lowercase, one trailing dot stripped, IDNA2008 (UTS #46 non-transitional)
 * to A-labels and back to U-labels with libidn2, public suffix and
 * registrable domain (eTLD+1) with libpsl (ICANN section of Debian's public
 * suffix list: freedesktop.org is a mail domain, not a suffix), address
 * literals recognised.
 * Pure-ASCII names that need no IDNA work take a path without allocation.
 */
#ifndef RCPTWALL_DOMAIN_H
#define RCPTWALL_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>

#define DOMAIN_ASCII_MAX   254  /* 253 octets of presentation form + NUL */
#define DOMAIN_UNICODE_MAX 1024 /* U-labels in UTF-8 are longer than A-labels */
#define DOMAIN_LABELS_MAX  127

enum domain_kind {
	DOMAIN_NAME = 0,
	DOMAIN_LITERAL = 1, /* [192.0.2.1], [IPv6:...], or a bare dotted IPv4 */
};

/* Public suffix data (libpsl); read-only once made, shareable by threads. */
struct domain_ctx;

struct domain_ctx *domain_ctx_new(char *err, size_t errlen);
void domain_ctx_free(struct domain_ctx *ctx);

/* Is s (lowercase, A-label or U-label form) a public suffix with an
 * explicit rule (not the "*" default)? icann_only leaves out the private
 * section (blogspot.com and the like). */
bool domain_is_listed_suffix(const struct domain_ctx *ctx, const char *s, bool icann_only);

struct domain_name {
	enum domain_kind kind;
	char ascii[DOMAIN_ASCII_MAX];     /* A-label form, lowercase, no trailing dot */
	char unicode[DOMAIN_UNICODE_MAX]; /* U-label form (== ascii when no IDN) */
	size_t ascii_len, unicode_len;
	bool idn;                 /* some label is an internationalised one */
	unsigned nlabels;
	unsigned suffix_labels;   /* labels in the public suffix */
	bool suffix_listed;       /* the suffix has an explicit ICANN rule */
	bool has_registrable;     /* nlabels > suffix_labels */
	/* Offsets into ascii / unicode: start of the registrable domain (eTLD+1)
	 * and of the public suffix. Valid for DOMAIN_NAME only. */
	size_t reg_off, suffix_off;
	size_t ureg_off, usuffix_off;
};

/*
 * Normalises len bytes at in (not NUL-terminated necessarily). Returns 0,
 * or -EINVAL with *why set to a static description of what is wrong
 * ("empty label", "invalid IDNA", ...). Never reads past in[len - 1].
 */
int domain_normalize(const struct domain_ctx *ctx, const char *in, size_t len,
		     struct domain_name *out, const char **why);

/* The registrable label: the label left of the public suffix
 * ("gmail" for mail.gmail.com), in A-label form. */
static inline const char *domain_reg_label(const struct domain_name *d, size_t *len)
{
	*len = d->suffix_off - 1 - d->reg_off;
	return d->ascii + d->reg_off;
}

/* The same label in U-label form (UTF-8). */
static inline const char *domain_reg_ulabel(const struct domain_name *d, size_t *len)
{
	*len = d->usuffix_off - 1 - d->ureg_off;
	return d->unicode + d->ureg_off;
}

#endif
