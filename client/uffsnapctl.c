/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl: the command-line client of uffsnap. Commands are rows of the table below (groups
 * have their own table, e.g. cmd-image.c); dispatch and --help are generated from the tables.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli-command.h"
#include "cmd-image.h"
#include "uffsnap/image.h"

static const struct cli_command uffsnapctl_commands[] = {
    {
	.name = "image",
	.help = "inspect, verify and read snapshot image files (no daemon needed)",
	.sub = cmd_image_commands,
    },
    /*
     * Service-mode commands, talking to uffsnapd's control socket, go here as rows (or a
     * group): snapshot, jobs, job, cancel, watch, status.
     */
    {.name = NULL},
};

static void uffsnapctl_help(FILE *f)
{
	fprintf(f, "Usage: uffsnapctl [--help | --version] COMMAND [ARGS...]\n\n"
		   "Consistent point-in-time snapshots of a running process's memory.\n\n"
		   "Commands:\n");
	cli_print_commands(f, uffsnapctl_commands, "");
	fprintf(f, "\nRun 'uffsnapctl COMMAND --help' for a command's options.\n"
		   "Exit status: 0 success, 1 failure (bad, incomplete or unreadable input),\n"
		   "2 usage error.\n");
}

int main(int argc, char **argv)
{
	struct cli_invocation top = {.path = "uffsnapctl"};

	if (argc < 2)
		return cli_usage_error(&top, "missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		uffsnapctl_help(stdout);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("uffsnapctl %s (image format %d.%d)\n", UFFSNAP_VERSION, IMG_VERSION_MAJOR,
		       IMG_VERSION_MINOR);
		return CLI_EXIT_OK;
	}
	if (argv[1][0] == '-' && argv[1][1])
		return cli_usage_error(&top, "unknown option '%s'", argv[1]);
	return cli_dispatch(uffsnapctl_commands, "uffsnapctl", argc - 1, argv + 1);
}
