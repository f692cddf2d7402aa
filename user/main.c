/* rcptwall: entry point. Dispatches to the subcommands in user/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define RCPTWALL_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: rcptwall COMMAND [OPTIONS]\n"
		"\n"
		"Blocks outbound SMTP to lookalike domains (army.ml for army.mil).\n"
		"\n"
		"Commands:\n"
		"  run      attach to the network, watch outbound SMTP, log or block\n"
		"  check    tell whether domains or addresses are lookalikes\n"
		"\n"
		"  rcptwall COMMAND --help   options of one command\n"
		"  rcptwall --version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return RW_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return RW_EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("rcptwall %s\n", RCPTWALL_VERSION);
		return RW_EXIT_OK;
	}
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 1, argv + 1);
	fprintf(stderr, "rcptwall: unknown command '%s' (try: rcptwall --help)\n", cmd);
	return RW_EXIT_USAGE;
}
