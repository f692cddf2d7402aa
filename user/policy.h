/*
 * Policy lists: protected, allow and block. A list file is plain text like
 * a Postfix map: one entry per line, blank lines ignored, '#' starts a
 * comment (at the start of a line or after whitespace). Only the syntax is
 * checked here; what an entry means is the matcher's business.
 */
#ifndef RCPTWALL_POLICY_H
#define RCPTWALL_POLICY_H

#include <stddef.h>

struct policy_entry {
	char *text;    /* the entry as written (UTF-8) */
	unsigned line; /* 1-based line in its source, 0 for embedded entries */
};

struct policy_list {
	struct policy_entry *v;
	size_t n, cap;
	char source[256]; /* file path, or "embedded default" */
};

/* Reads a list file. On error returns negative errno and writes
 * "FILE:LINE: problem" (or "FILE: problem") into err. */
int policy_list_load(const char *path, struct policy_list *out, char *err, size_t errlen);

/* Copies a NULL-terminated array of entries (the embedded default). */
int policy_list_from_array(const char *const *items, const char *source,
			   struct policy_list *out);

void policy_list_free(struct policy_list *l);

/* The embedded default policy (user/policy_default.c), NULL-terminated. */
extern const char *const policy_default_protect[];
extern const char *const policy_default_allow[];
extern const char *const policy_default_block[];

#endif
