/* Policy list files (see policy.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define POLICY_LINE_MAX 4096 /* longer lines are an error, not truncated */

static int append(struct policy_list *l, const char *text, size_t len, unsigned line)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct policy_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	char *copy = strndup(text, len);
	if (!copy)
		return -ENOMEM;
	l->v[l->n].text = copy;
	l->v[l->n].line = line;
	l->n++;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* One line: strips the comment and blanks; a second field is an error
 * (rcptwall lists have no right-hand side). */
static int parse_line(struct policy_list *l, char *s, size_t len, unsigned line,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '#' && (i == 0 || is_blank(s[i - 1]))) {
			len = i;
			break;
		}
		if (s[i] == '\0') {
			snprintf(err, errlen, "%s:%u: NUL byte in line", l->source, line);
			return -EINVAL;
		}
	}
	size_t b = 0;
	while (b < len && is_blank(s[b]))
		b++;
	size_t e = b;
	while (e < len && !is_blank(s[e]))
		e++;
	if (e == b)
		return 0;
	for (size_t i = e; i < len; i++) {
		if (!is_blank(s[i])) {
			snprintf(err, errlen, "%s:%u: more than one entry on the line (text after '%.*s')",
				 l->source, line, (int)(e - b > 200 ? 200 : e - b), s + b);
			return -EINVAL;
		}
	}
	int rc = append(l, s + b, e - b, line);
	if (rc < 0)
		snprintf(err, errlen, "%s:%u: out of memory", l->source, line);
	return rc;
}

int policy_list_load(const char *path, struct policy_list *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->source, sizeof(out->source), "%s", path);
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int rc = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > POLICY_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				 POLICY_LINE_MAX);
			rc = -EINVAL;
			break;
		}
		rc = parse_line(out, line, (size_t)n, lineno, err, errlen);
		if (rc < 0)
			break;
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
	}
	free(line);
	fclose(f);
	if (rc < 0)
		policy_list_free(out);
	return rc;
}

int policy_list_from_array(const char *const *items, const char *source,
			   struct policy_list *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->source, sizeof(out->source), "%s", source);
	for (size_t i = 0; items[i]; i++) {
		if (append(out, items[i], strlen(items[i]), 0) < 0) {
			policy_list_free(out);
			return -ENOMEM;
		}
	}
	return 0;
}

void policy_list_free(struct policy_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
