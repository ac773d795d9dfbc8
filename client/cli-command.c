/* SPDX-License-Identifier: MIT */
/* Table-driven dispatch and generated help for uffsnapctl's commands. */
#include <getopt.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli-command.h"

/* Longest command path we build ("uffsnapctl image read"); names are short literals. */
#define CLI_PATH_MAX 128

static const struct cli_command *cli_find(const struct cli_command *table, const char *name)
{
	for (const struct cli_command *c = table; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return 0;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	}
	return 0;
}

int cli_usage_error(const struct cli_invocation *inv, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", inv->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see '%s --help')\n", inv->path);
	return CLI_EXIT_USAGE;
}

void cli_print_commands(FILE *f, const struct cli_command *table, const char *prefix)
{
	char path[CLI_PATH_MAX];

	for (const struct cli_command *c = table; c->name; c++) {
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? " " : "", c->name);
		if (c->sub) {
			cli_print_commands(f, c->sub, path);
			continue;
		}
		fprintf(f, "  %s%s%s\n      %s\n", path, c->usage ? " " : "",
			c->usage ? c->usage : "", c->help);
	}
}

static void cli_print_command_help(FILE *f, const struct cli_command *c, const char *path)
{
	if (c->sub) {
		fprintf(f, "Usage: %s COMMAND [ARGS...]\n\n%s\n\nCommands:\n", path, c->help);
		cli_print_commands(f, c->sub, "");
		fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", path);
		return;
	}
	fprintf(f, "Usage: %s%s%s\n\n%s\n", path, c->usage ? " " : "", c->usage ? c->usage : "",
		c->help);
	if (c->options)
		fprintf(f, "\nOptions:\n%s", c->options);
}

static int cli_dispatch_group(const struct cli_invocation *inv, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error(inv, "missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		cli_print_command_help(stdout, inv->cmd, inv->path);
		return CLI_EXIT_OK;
	}
	if (argv[1][0] == '-')
		return cli_usage_error(inv, "unknown option '%s'", argv[1]);
	return cli_dispatch(inv->cmd->sub, inv->path, argc - 1, argv + 1);
}

int cli_dispatch(const struct cli_command *table, const char *prefix, int argc, char **argv)
{
	struct cli_invocation inv = {.path = prefix};
	char path[CLI_PATH_MAX];

	if (argc < 1)
		return cli_usage_error(&inv, "missing command");
	inv.cmd = cli_find(table, argv[0]);
	if (!inv.cmd)
		return cli_usage_error(&inv, "unknown command '%s'", argv[0]);
	snprintf(path, sizeof(path), "%s %s", prefix, inv.cmd->name);
	inv.path = path;
	if (inv.cmd->sub)
		return cli_dispatch_group(&inv, argc, argv);
	if (cli_wants_help(argc - 1, argv + 1)) {
		cli_print_command_help(stdout, inv.cmd, path);
		return CLI_EXIT_OK;
	}
	optind = 0; /* glibc: 0 re-initialises getopt's state for the handler */
	return inv.cmd->handler(&inv, argc, argv);
}
