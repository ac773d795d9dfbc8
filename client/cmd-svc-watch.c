/* SPDX-License-Identifier: MIT */
/* uffsnapctl watch: prints the daemon's events (of the jobs you may see) until interrupted. */
#include <errno.h>
#include <stdio.h>

#include "cli-svc-show.h"
#include "cli-svc.h"
#include "cmd-svc.h"

static int watch_loop(struct cli_svc *s)
{
	json_t *ev = NULL;
	int r;

	for (;;) {
		r = cli_svc_next_event(s, &ev);
		if (r)
			return r;
		if (!ev)
			return CLI_EXIT_OK; /* Ctrl-C or SIGTERM: the normal way to stop watching */
		if (s->json)
			cli_svc_print_json(ev);
		else
			cli_svc_show_event(ev);
		json_decref(ev);
	}
}

int cmd_svc_watch(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct option opts[] = {CLI_SVC_LONGOPTS, {NULL, 0, NULL, 0}};
	struct cli_svc s;
	int c, r;

	cli_svc_init(&s, inv);
	while ((c = cli_getopt(inv, argc, argv, "", opts)) != -1)
		if (c == '?' || !cli_svc_option(&s, c, optarg))
			return CLI_EXIT_USAGE;
	if (!cli_svc_no_operands(&s, argc, argv))
		return CLI_EXIT_USAGE;
	if (cli_svc_catch_signals(&s) < 0) {
		fprintf(stderr, "%s: cannot set up signal handling\n", inv->path);
		return CLI_EXIT_FAILURE;
	}
	r = cli_svc_connect(&s);
	/* a connection that sends no request is closed after --idle-timeout (CONTROL.md) */
	if (r == CLI_EXIT_OK)
		r = cli_svc_call(&s, "query-status", NULL, NULL, NULL);
	if (r == CLI_EXIT_OK) {
		/* On stderr even with --json: a script may wait for it before it starts a job. */
		fprintf(stderr, "watching %s (Ctrl-C stops)\n", cli_svc_socket(&s));
		r = watch_loop(&s);
	}
	cli_svc_close(&s);
	return r;
}
