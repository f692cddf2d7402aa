/*
 * Lookalike matcher: decides whether a recipient domain is a lookalike of a
 * protected domain, with the protected entry and the detector that fired.
 *
 * A matcher is built once from a policy (protected, allow and block lists)
 * and is then read-only: matcher_check() may be called from any thread, and
 * a reload builds a new matcher and swaps it in.
 */
#ifndef RCPTWALL_MATCH_H
#define RCPTWALL_MATCH_H

#include <stdbool.h>
#include <stddef.h>

/* A domain name in presentation form never exceeds 253 octets; U-labels
 * in UTF-8 can be longer than their A-label form. */
#define MATCH_DOMAIN_MAX 1024

enum match_result {
	MATCH_OK = 0,    /* not a lookalike (or allowed, or itself protected) */
	MATCH_FLAG = 1,  /* lookalike of a protected entry, or on the block list */
	MATCH_ERROR = 2, /* not a domain or address we can judge */
};

struct match_verdict {
	enum match_result result;
	char domain[MATCH_DOMAIN_MAX];    /* normalised A-label form, "" on error */
	char protected_entry[MATCH_DOMAIN_MAX]; /* entry it imitates, or "" */
	const char *detector;             /* static name ("omission", "block-list"...), or NULL */
	int distance;                     /* edit distance where one applies, else -1 */
	const char *reason;               /* MATCH_OK: why (e.g. "allow-list", "protected"); MATCH_ERROR: what is wrong */
};

/* The lists a matcher is built from: file paths, NULL for the embedded default. */
struct match_policy_files {
	const char *protect;
	const char *allow;
	const char *block;
};

struct matcher;

/*
 * Builds a matcher. On error returns NULL and writes a message naming the
 * file, line and problem into err.
 */
struct matcher *matcher_new(const struct match_policy_files *files, char *err, size_t errlen);
void matcher_free(struct matcher *m);

/* Judges one domain or mailbox (local@domain; the domain part is judged). */
enum match_result matcher_check(const struct matcher *m, const char *input,
				struct match_verdict *out);

/* Counts for logs and benchmarks. */
struct matcher_info {
	size_t protected_entries, allow_entries, block_entries;
	size_t mem_bytes;
};
void matcher_info(const struct matcher *m, struct matcher_info *out);

#endif /* RCPTWALL_MATCH_H */
