/*
 * rcptwall check: judge domains or addresses against a policy and print one
 * tab-separated line per input:
 *
 *   INPUT <TAB> flag|ok|error <TAB> PROTECTED-ENTRY|- <TAB> DETECTOR|-
 *
 * It is how a sysadmin tries a policy, and how the matcher is tested from
 * outside. Input bytes are echoed with control characters replaced by '?',
 * so a hostile line cannot break the columns or the terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "match.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: rcptwall check [--protect FILE] [--allow FILE] [--block FILE]\n"
		"                      [DOMAIN-OR-ADDRESS ...]\n"
		"\n"
		"Tells whether domains (or the domain of user@domain addresses) are\n"
		"lookalikes of protected domains. With no arguments, reads one per line\n"
		"from standard input.\n"
		"\n"
		"  --protect FILE  protected domains, and whole suffixes written with a\n"
		"                  leading dot (.mil); replaces the embedded list\n"
		"  --allow FILE    never flagged (example.com, *.example.com)\n"
		"  --block FILE    always flagged (example.com, *.example.com)\n"
		"  -h, --help      this help\n"
		"\n"
		"List files: one entry per line, '#' starts a comment. Output, one line\n"
		"per input, tab-separated: the input, flag|ok|error, the protected\n"
		"entry (or -), the detector (or -). Exit status 0 when it ran, 2 on a\n"
		"usage error or a bad list file.\n");
}

/* The input as given, with bytes that would break a TSV line or a terminal
 * (C0 controls, DEL) shown as '?'. */
static void print_input(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		putchar(c < 0x20 || c == 0x7f ? '?' : c);
	}
}

static void check_one(const struct matcher *m, const char *s, size_t n,
		      struct match_verdict *v)
{
	enum match_result r;
	if (memchr(s, '\0', n))
		r = MATCH_ERROR; /* an embedded NUL would hide the rest of the line */
	else
		r = matcher_check(m, s, v);
	print_input(s, n);
	switch (r) {
	case MATCH_FLAG:
		printf("\tflag\t%s\t%s\n", v->protected_entry[0] ? v->protected_entry : "-",
		       v->detector ? v->detector : "-");
		break;
	case MATCH_OK:
		printf("\tok\t-\t-\n");
		break;
	default:
		printf("\terror\t-\t-\n");
		break;
	}
}

static int check_stdin(const struct matcher *m, struct match_verdict *v)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		check_one(m, line, (size_t)n, v);
		/* answer line by line: check may run as a co-process */
		fflush(stdout);
	}
	free(line);
	if (ferror(stdin)) {
		fprintf(stderr, "rcptwall check: reading standard input failed\n");
		return RW_EXIT_FAILURE;
	}
	return RW_EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"protect", required_argument, NULL, 'p'},
		{"allow", required_argument, NULL, 'a'},
		{"block", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct match_policy_files files = {0};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': files.protect = optarg; break;
		case 'a': files.allow = optarg; break;
		case 'b': files.block = optarg; break;
		case 'h': usage(stdout); return RW_EXIT_OK;
		default: usage(stderr); return RW_EXIT_USAGE;
		}
	}
	char err[512];
	struct matcher *m = matcher_new(&files, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "rcptwall check: %s\n", err);
		return RW_EXIT_USAGE;
	}
	struct match_verdict *v = malloc(sizeof(*v)); /* 2 KiB: keep it off the stack */
	int rc = RW_EXIT_OK;
	if (!v) {
		fprintf(stderr, "rcptwall check: out of memory\n");
		rc = RW_EXIT_FAILURE;
	} else if (optind >= argc) {
		rc = check_stdin(m, v);
	} else {
		for (int i = optind; i < argc; i++)
			check_one(m, argv[i], strlen(argv[i]), v);
	}
	if (fflush(stdout) != 0 && rc == RW_EXIT_OK) {
		fprintf(stderr, "rcptwall check: writing standard output failed\n");
		rc = RW_EXIT_FAILURE;
	}
	free(v);
	matcher_free(m);
	return rc;
}
