/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl: the command-line client of uffsnap. Commands are rows of the table below (groups
 * have their own table, e.g. cmd-image.c); dispatch and --help are generated from the tables.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli-args.h"
#include "cli-command.h"
#include "cli-svc.h"
#include "cmd-image.h"
#include "cmd-qemu.h"
#include "cmd-svc.h"
#include "uffsnap/image.h"

static const struct cli_command uffsnapctl_commands[] = {
    {
	.name = "image",
	.help = "inspect, verify and read snapshot image files (no daemon needed)",
	.sub = cmd_image_commands,
    },
    {
	.name = "qemu",
	.help = "QEMU guests' images: restore one into a stock QEMU (no daemon needed)",
	.sub = cmd_qemu_commands,
    },
    /* Service-mode commands: they talk to uffsnapd's control socket (cmd-svc-*.c). */
    {
	.name = "snapshot",
	.handler = cmd_svc_snapshot,
	.help = "snapshot a running process or QEMU guest through uffsnapd and follow the job to "
		"its end",
	.usage = "(--pid PID | --qemu QMP_SOCKET) (--output FILE | --file NAME | --to HOST:PORT) "
		 "[--strict] [--window N] [--copy-threads N] [--mem-limit MIB] [--precopy "
		 "[--downtime MS] [--max-rounds N] [--strict-downtime]] [--force] [--no-wait]\n"
		 "       uffsnapctl snapshot --pid PID --file NAME --incremental --every S "
		 "[--count N] [--downtime MS] [--max-rounds N] [--strict-downtime]",
	.options =
	    "  --pid PID       the process to snapshot (one you could ptrace yourself)\n"
	    "  --qemu QMP_SOCKET\n"
	    "                  or the guest of the QEMU serving this QMP socket (a QEMU you\n"
	    "                  could ptrace yourself; guest RAM a share=on memory backend):\n"
	    "                  uffsnapctl connects to it and passes the connection to uffsnapd,\n"
	    "                  which stops the vCPUs only while it saves the device state\n"
	    "  --output FILE   write the image to FILE ('-': stdout; messages go to stderr):\n"
	    "                  uffsnapctl passes uffsnapd a new file that gets FILE's name only\n"
	    "                  when the job completes (replacing one only with --force)\n"
	    "  --file NAME     write the image to NAME in uffsnapd's snapshot directory\n"
	    "                  ([A-Za-z0-9._-], not starting with '.' or '-'; never\n"
	    "                  overwritten; yours: your uid and gid, mode 0600)\n"
	    "  --to HOST:PORT  stream the image to a receiver ('uffsnapd --receive', or a\n"
	    "                  'receive' job) with uffsnapd's key (uffsnapd --service --key)\n"
	    "  --strict        fail if the target discards memory not yet saved, or memory\n"
	    "                  is written where write protection cannot see it (io_uring\n"
	    "                  buffers it cannot copy, shared memory another process maps\n"
	    "                  writable), instead of recording it in the image\n"
	    "  --window N      pages saved around each write fault, 1..512 (default 16)\n"
	    "  --copy-threads N  threads saving what the target has not written, 1..8\n"
	    "                  (default: half the CPUs, at most 4)\n"
	    "  --mem-limit MIB image data held in memory while the output lags (uffsnapd\n"
	    "                  --mem-limit; at most the daemon's --max-job-mem, default 256):\n"
	    "                  with --output or --file (default 32) writes of the target then\n"
	    "                  wait for it; with --to (default 44, half for the copies of\n"
	    "                  written pages, half for the stream) the rest is spooled\n"
	    "  --precopy       pre-copy (uffsnapd --precopy): copy while the target runs, then\n"
	    "                  what it wrote meanwhile, and hold it only for the last round;\n"
	    "                  no write of the target ever waits (a process, not --qemu)\n"
	    "  --downtime MS   pre-copy: the final hold's budget, 1..60000 (default 50)\n"
	    "  --max-rounds N  pre-copy: rounds before giving up converging, 1..63 (default 10)\n"
	    "  --strict-downtime  pre-copy: fail instead when it does not converge\n"
	    "  --incremental   a chain (pre-copy): an image every --every S seconds, 1..86400,\n"
	    "                  NAME-0000.img (full), NAME-0001.img (what changed since), ...\n"
	    "                  in the snapshot directory, each named once complete and verified;\n"
	    "                  --count N images, 1..1000000 (default: until Ctrl-C)\n"
	    "  --force         replace FILE if it exists\n"
	    "  --no-wait       print the job's id and return at once (not with --output FILE)\n" CLI_SVC_OPTIONS_HELP
	    "\nWithout --no-wait it waits for the job to end, showing progress on stderr, prints\n"
	    "the summary and exits 0 when the image is complete, 1 when the job failed or was\n"
	    "cancelled (FILE, or the --file NAME, is then left as it was: nothing is created).\n"
	    "Ctrl-C cancels the job. A chain prints a line per image as it is named; it exits\n"
	    "0 after --count images, or when Ctrl-C ended it (the images complete by then\n"
	    "stay; the one in progress leaves nothing), 1 when it failed (the complete images\n"
	    "stay too).\n",
    },
    {
	.name = "migrate",
	.handler = cmd_svc_migrate,
	.help = "live-migrate a QEMU guest through uffsnapd to a 'uffsnapd --receive --qemu' and "
		"follow the job to its end",
	.usage = "--qemu QMP_SOCKET --to HOST:PORT [--downtime MS] [--max-rounds N] "
		 "[--strict-downtime] [--no-wait]",
	.options =
	    "  --qemu QMP_SOCKET\n"
	    "                  the guest of the QEMU serving this QMP socket (a QEMU you could\n"
	    "                  ptrace yourself; guest RAM a share=on memory backend):\n"
	    "                  uffsnapctl connects to it and passes the connection to uffsnapd\n"
	    "  --to HOST:PORT  the migration receiver ('uffsnapd --receive --qemu DEST_QMP'),\n"
	    "                  holding uffsnapd's key (uffsnapd --service --key)\n"
	    "  --downtime MS   the last round's budget, 1..60000 (default 50)\n"
	    "  --max-rounds N  rounds before giving up converging, 1..63 (default 10)\n"
	    "  --strict-downtime  fail instead of copying a longer last round\n"
	    "  --no-wait       print the job's id and return at once\n" CLI_SVC_OPTIONS_HELP
	    "\nThe guest's RAM goes as pre-copy rounds (a line each) while it runs, its device\n"
	    "state through QEMU's own migration at the switch-over; the guest then runs at the\n"
	    "destination and the source stays paused (postmigrate). Exits 0 when the migration\n"
	    "completed, 1 when it failed or was cancelled: before the switch-over the guest\n"
	    "runs on at the source as before. Ctrl-C cancels the job.\n",
    },
    {
	.name = "receive",
	.handler = cmd_svc_receive,
	.help = "start a receiver job in uffsnapd (root or uffsnapd's user) and show what it gets",
	.usage = "--listen ADDR:PORT [--no-wait]",
	.options =
	    "  --listen ADDR:PORT\n"
	    "                  accept senders there ([ADDR]:PORT for IPv6; port 0: any free\n"
	    "                  one, shown); they must hold uffsnapd's key (--service --key)\n"
	    "  --no-wait       print the job's id and return at once\n" CLI_SVC_OPTIONS_HELP
	    "\nImages go to received/ in uffsnapd's snapshot directory, each verified as it\n"
	    "arrives; an interrupted one stays there as NAME.img.partial (incomplete). Without\n"
	    "--no-wait it prints each image as it completes until Ctrl-C, which stops the job\n"
	    "(as 'uffsnapctl cancel ID' does).\n",
    },
    {
	.name = "jobs",
	.handler = cmd_svc_jobs,
	.help = "list your snapshot jobs (all jobs for root): running and recently ended",
	.options = CLI_SVC_OPTIONS_HELP,
    },
    {
	.name = "job",
	.handler = cmd_svc_job,
	.help = "show one job: state, progress, output, statistics or error",
	.usage = "ID",
	.options = CLI_SVC_OPTIONS_HELP,
    },
    {
	.name = "cancel",
	.handler = cmd_svc_cancel,
	.help = "cancel a running job; the target is released and the image left incomplete",
	.usage = "ID",
	.options = CLI_SVC_OPTIONS_HELP,
    },
    {
	.name = "watch",
	.handler = cmd_svc_watch,
	.help = "print the events of your jobs (all jobs for root) until interrupted",
	.options = CLI_SVC_OPTIONS_HELP,
    },
    {
	.name = "status",
	.handler = cmd_svc_status,
	.help = "show uffsnapd's version, kernel features, limits and running jobs",
	.options = CLI_SVC_OPTIONS_HELP,
    },
    {.name = NULL},
};

static void uffsnapctl_help(FILE *f)
{
	fprintf(f, "Usage: uffsnapctl [--socket PATH] [--json] COMMAND [ARGS...]\n"
		   "       uffsnapctl --help | --version\n\n"
		   "Consistent point-in-time snapshots of a running process's memory.\n\n"
		   "Commands:\n");
	cli_print_commands(f, uffsnapctl_commands, "");
	fprintf(f,
		"\nOptions of the service commands (snapshot, migrate, receive, jobs, job, cancel,\n"
		"watch, status), before or after the command's name:\n" CLI_SVC_OPTIONS_HELP
		"\nRun 'uffsnapctl COMMAND --help' for a command's options.\n"
		"Exit status: 0 success, 1 failure (bad, incomplete or unreadable input, a\n"
		"refused request, a failed or cancelled job), 2 usage error.\n");
}

/* The options that may come before the command, kept as written to be handed to it. */
struct uffsnapctl_globals {
	char *argv[8];
	int argc;
};

static const struct option uffsnapctl_global_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    CLI_SVC_LONGOPTS,
    {NULL, 0, NULL, 0},
};

/*
 * The options before the command ('+': getopt_long() stops at its name). --help and --version
 * are answered here; --socket and --json are the service commands' own, so their words go to
 * the command. Returns -1 to run the command at argv[optind], else an exit status.
 */
static int uffsnapctl_globals(const struct cli_invocation *top, int argc, char **argv,
			      struct uffsnapctl_globals *g)
{
	int c, from = optind;

	while ((c = cli_getopt(top, argc, argv, "+hV", uffsnapctl_global_opts)) != -1) {
		switch (c) {
		case 'h':
			uffsnapctl_help(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("uffsnapctl %s (image format %d.%d, control protocol %d)\n",
			       UFFSNAP_VERSION, IMG_VERSION_MAJOR, IMG_VERSION_MINOR,
			       UFFSNAP_CLIENT_PROTOCOL);
			return CLI_EXIT_OK;
		case '?':
			return CLI_EXIT_USAGE;
		}
		if (g->argc + 2 > (int)(sizeof(g->argv) / sizeof(g->argv[0])))
			return cli_usage_error(top, "too many options before the command");
		while (from < optind) /* "--socket PATH" is two words, "--socket=PATH" one */
			g->argv[g->argc++] = argv[from++];
	}
	/* A word getopt_long() took that is no option's: "--", which is no command's either. */
	if (from < optind)
		return cli_usage_error(top, "unknown option '%s'", argv[from]);
	return -1;
}

/* How many words of argv name the command ("image info" is two), 0 if none. */
static int uffsnapctl_command_words(int argc, char **argv)
{
	const struct cli_command *table = uffsnapctl_commands, *c;
	int n = 0;

	while (n < argc && table) {
		for (c = table; c->name && strcmp(c->name, argv[n]); c++)
			;
		if (!c->name)
			return 0;
		n++;
		table = c->sub;
	}
	return table ? 0 : n;
}

/* Runs the command with the global options inserted right after its name. */
static int uffsnapctl_run(int argc, char **argv, const struct uffsnapctl_globals *g)
{
	int words = uffsnapctl_command_words(argc, argv), n = 0, r;
	char **args;

	if (!words || !g->argc)
		return cli_dispatch(uffsnapctl_commands, "uffsnapctl", argc, argv);
	args = calloc(argc + g->argc + 1, sizeof(*args));
	if (!args)
		return fprintf(stderr, "uffsnapctl: out of memory\n"), CLI_EXIT_FAILURE;
	for (int i = 0; i < argc; i++) {
		if (i == words)
			for (int k = 0; k < g->argc; k++)
				args[n++] = g->argv[k];
		args[n++] = argv[i];
	}
	for (int k = 0; words == argc && k < g->argc; k++)
		args[n++] = g->argv[k];
	r = cli_dispatch(uffsnapctl_commands, "uffsnapctl", n, args);
	free(args);
	return r;
}

int main(int argc, char **argv)
{
	struct cli_invocation top = {.path = "uffsnapctl"};
	struct uffsnapctl_globals g = {.argc = 0};
	int r = uffsnapctl_globals(&top, argc, argv, &g);

	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage_error(&top, "missing command");
	return uffsnapctl_run(argc - optind, argv + optind, &g);
}
