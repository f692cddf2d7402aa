/* rcptwall check: placeholder until its issue lands (see issues). */
#include <stdio.h>

#include "cli.h"

int cmd_check(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "rcptwall check: not built yet\n");
	return RW_EXIT_FAILURE;
}
