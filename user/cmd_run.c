/* rcptwall run: placeholder until its issue lands (see issues). */
#include <stdio.h>

#include "cli.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "rcptwall run: not built yet\n");
	return RW_EXIT_FAILURE;
}
