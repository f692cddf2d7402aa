/*
 * Public suffix lookup for the hot path.
 *
 * libpsl answers one psl_is_public_suffix2() in about 300 ns here, and the
 * public suffix of a name needs one call per label: more than the whole
 * budget of a recipient check. So the ICANN rules of Debian's list are read
 * once into a hash set, and every rule is checked against libpsl (loaded
 * from the same file) at load time: libpsl stays the authority, the index
 * is only a faster way to ask it. If the two disagree on any rule, the
 * index is not used and domain.c asks libpsl directly.
 */
#ifndef RCPTWALL_SUFFIX_INDEX_H
#define RCPTWALL_SUFFIX_INDEX_H

#include <libpsl.h>
#include <stdbool.h>
#include <stddef.h>

/* Debian's list (package publicsuffix). */
#define SUFFIX_LIST_PATH "/usr/share/publicsuffix/public_suffix_list.dat"

struct suffix_index;

/* Loads the ICANN section of path and checks it against psl. Returns NULL
 * with a message in err when the file cannot be read or libpsl disagrees. */
struct suffix_index *suffix_index_load(const char *path, const psl_ctx_t *psl, char *err,
				       size_t errlen);
void suffix_index_free(struct suffix_index *idx);

/*
 * The public suffix of name[0..len) (A-label form, lowercase, no trailing
 * dot) by the PSL algorithm over ICANN rules: exception rules first, then
 * the longest matching rule or wildcard, else the last label (the implicit
 * "*" rule). Returns the offset of the suffix in name; *listed tells
 * whether an explicit rule matched.
 */
size_t suffix_index_find(const struct suffix_index *idx, const char *name, size_t len,
			 bool *listed);

size_t suffix_index_rules(const struct suffix_index *idx);

#endif
