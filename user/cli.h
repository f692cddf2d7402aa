/* Subcommands of the rcptwall binary; main.c only dispatches. */
#ifndef RCPTWALL_CLI_H
#define RCPTWALL_CLI_H

/* Exit codes shared by every subcommand. */
enum rw_exit {
	RW_EXIT_OK = 0,
	RW_EXIT_FAILURE = 1, /* runtime failure (attach, load, I/O) */
	RW_EXIT_USAGE = 2,   /* bad command line or configuration */
};

int cmd_run(int argc, char **argv);   /* user/cmd_run.c */
int cmd_check(int argc, char **argv); /* user/cmd_check.c */

#endif
