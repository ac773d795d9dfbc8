/* SPDX-License-Identifier: MIT */
/*
 * Command tables for uffsnapctl (the wireguard-tools wg.c pattern): every command, and every
 * group of commands, is one row of a { name, handler, help } table; dispatch and --help are
 * generated from the tables, so adding a command is adding a row.
 */
#pragma once

#include <stdio.h>

/* Exit statuses of every command. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1, /* the input is bad, incomplete, or an I/O error happened */
	CLI_EXIT_USAGE = 2,   /* the command line is wrong */
};

struct cli_command;

/* What a handler knows about how it was called. */
struct cli_invocation {
	const char *path;	       /* "uffsnapctl image read": for messages */
	const struct cli_command *cmd; /* the row being run */
};

/*
 * A handler gets argv starting at its own name (argv[0]) and returns an exit status. It prints
 * its own one-line errors on stderr; --help has already been handled by the dispatcher.
 */
typedef int (*cli_handler_t)(const struct cli_invocation *inv, int argc, char **argv);

struct cli_command {
	const char *name;
	cli_handler_t handler;	       /* NULL for a group */
	const char *help;	       /* one line */
	const char *usage;	       /* arguments after the name, e.g. "FILE [--json]" */
	const char *options;	       /* optional: the options explained, one per line */
	const struct cli_command *sub; /* a group's commands, ended by a row with name NULL */
};

/*
 * Runs the command argv[0] names from table (ended by a NULL name), descending into groups.
 * prefix is the command path so far ("uffsnapctl"). Returns an exit status.
 */
int cli_dispatch(const struct cli_command *table, const char *prefix, int argc, char **argv);

/* Prints the generated help of a table, one line per command, groups expanded. */
void cli_print_commands(FILE *f, const struct cli_command *table, const char *prefix);

/* Prints "PATH: MESSAGE" and the hint to --help on stderr as one line; returns CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const struct cli_invocation *inv,
							  const char *fmt, ...);

/* True if argv (up to a "--") asks for help. */
int cli_wants_help(int argc, char **argv);
