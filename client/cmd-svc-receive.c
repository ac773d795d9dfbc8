/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl receive --listen ADDR:PORT: asks uffsnapd for a receive job (CONTROL.md
 * "receive"): senders streaming with the daemon's key are written into received/ in its
 * snapshot directory. Unless --no-wait, prints each image as it completes until Ctrl-C, which
 * stops the job.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cli-svc.h"
#include "cmd-svc.h"

/* "Not finished yet" for the event handlers, next to exit statuses (>= 0). */
#define RECV_CONTINUE (-1)

struct recv_cmd {
	struct cli_svc svc;
	const char *listen;
	bool no_wait, cancelling;
	json_int_t job;
};

static int recv_parse(struct recv_cmd *r, int argc, char **argv)
{
	static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
					     {"no-wait", no_argument, NULL, 'n'},
					     CLI_SVC_LONGOPTS,
					     {NULL, 0, NULL, 0}};
	int c;

	while ((c = cli_getopt(r->svc.inv, argc, argv, "l:", opts)) != -1) {
		if (c == 'l')
			r->listen = optarg;
		else if (c == 'n')
			r->no_wait = true;
		else if (c == '?' || !cli_svc_option(&r->svc, c, optarg))
			return CLI_EXIT_USAGE;
	}
	if (!cli_svc_no_operands(&r->svc, argc, argv))
		return CLI_EXIT_USAGE;
	if (!r->listen)
		return cli_usage_error(r->svc.inv, "--listen ADDR:PORT is required");
	return 0;
}

/* Sends `receive`; on success r->job is the job and where the address it listens on. */
static int recv_start(struct recv_cmd *r, char *where, size_t len)
{
	json_t *args = json_pack("{s:s}", "listen", r->listen), *ret = NULL;
	uint64_t id;
	int rc;

	if (!args)
		return CLI_EXIT_FAILURE;
	rc = cli_svc_call(&r->svc, "receive", args, NULL, &ret);
	json_decref(args);
	if (rc == CLI_EXIT_OK && (cli_json_u64(ret, "id", &id) < 0 || !id || id > INT64_MAX)) {
		fprintf(stderr, "%s: uffsnapd's reply names no job id\n", r->svc.inv->path);
		rc = CLI_EXIT_FAILURE;
	}
	if (rc == CLI_EXIT_OK) {
		r->job = (json_int_t)id;
		snprintf(where, len, "%s", cli_json_str(ret, "listen") ?: r->listen);
		if (r->svc.json)
			cli_svc_print_json(ret);
	}
	json_decref(ret);
	return rc;
}

static int recv_event(struct recv_cmd *r, const char *name, const json_t *d)
{
	uint64_t bytes = 0, ns = 0;
	const char *desc = cli_json_str(d, "desc");

	cli_json_u64(d, "bytes", &bytes);
	cli_json_u64(d, "elapsed_ns", &ns);
	if (!strcmp(name, "IMAGE_RECEIVED") && !r->svc.json)
		printf("received %s from %s: %.1f MiB in %.1f s, verified\n",
		       cli_json_str(d, "file") ?: "?", cli_json_str(d, "peer") ?: "?",
		       bytes / 1048576.0, ns / 1e9);
	else if (!strcmp(name, "IMAGE_FAILED"))
		fprintf(stderr, "%s: %s from %s: %s\n", r->svc.inv->path,
			cli_json_str(d, "file") ?: "?", cli_json_str(d, "peer") ?: "?",
			desc ? desc : "failed");
	else if (!strcmp(name, "JOB_CANCELLED")) {
		fprintf(stderr, "job %" JSON_INTEGER_FORMAT ": the receiver stopped\n", r->job);
		return CLI_EXIT_OK;
	} else if (!strcmp(name, "JOB_FAILED")) {
		fprintf(stderr, "%s: job %" JSON_INTEGER_FORMAT " failed: %s\n", r->svc.inv->path,
			r->job, desc ? desc : "(no reason given)");
		return CLI_EXIT_FAILURE;
	}
	fflush(stdout);
	return RECV_CONTINUE;
}

/* Ctrl-C (or SIGTERM): the first stops the receiver, a second stops waiting for it. */
static int recv_interrupted(struct recv_cmd *r)
{
	json_t *args;

	if (r->cancelling) {
		fprintf(stderr,
			"%s: not waiting any longer; see 'uffsnapctl job %" JSON_INTEGER_FORMAT
			"'\n",
			r->svc.inv->path, r->job);
		return CLI_EXIT_FAILURE;
	}
	r->cancelling = true;
	fprintf(stderr, "%s: stopping job %" JSON_INTEGER_FORMAT "\n", r->svc.inv->path, r->job);
	args = json_pack("{s:I}", "id", r->job);
	if (args)
		cli_svc_call(&r->svc, "cancel", args, NULL, NULL);
	json_decref(args);
	return RECV_CONTINUE;
}

static int recv_wait(struct recv_cmd *r)
{
	json_t *ev = NULL, *d;
	uint64_t id;
	int rc;

	for (;;) {
		rc = cli_svc_next_event(&r->svc, &ev);
		if (rc)
			return rc;
		if (!ev) {
			rc = recv_interrupted(r);
		} else {
			d = json_object_get(ev, "data");
			rc = RECV_CONTINUE;
			if (cli_json_u64(d, "id", &id) >= 0 && id == (uint64_t)r->job) {
				if (r->svc.json)
					cli_svc_print_json(ev);
				rc = recv_event(r, cli_json_str(ev, "event") ?: "", d);
			}
			json_decref(ev);
		}
		if (rc != RECV_CONTINUE)
			return rc;
	}
}

static int recv_run(struct recv_cmd *r)
{
	char where[128];
	int rc;

	if (!r->no_wait && cli_svc_catch_signals(&r->svc) < 0)
		return CLI_EXIT_FAILURE;
	rc = recv_start(r, where, sizeof(where));
	if (rc != CLI_EXIT_OK)
		return rc;
	if (r->no_wait) {
		if (!r->svc.json)
			printf("job %" JSON_INTEGER_FORMAT " receiving on %s ('uffsnapctl cancel "
			       "%" JSON_INTEGER_FORMAT "' stops it)\n",
			       r->job, where, r->job);
		return CLI_EXIT_OK;
	}
	if (!r->svc.json)
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT
			": receiving on %s into received/ in uffsnapd's "
			"snapshot directory (Ctrl-C stops it)\n",
			r->job, where);
	return recv_wait(r);
}

int cmd_svc_receive(const struct cli_invocation *inv, int argc, char **argv)
{
	struct recv_cmd r = {0};
	int rc;

	cli_svc_init(&r.svc, inv);
	rc = recv_parse(&r, argc, argv);
	if (rc)
		return rc;
	rc = cli_svc_connect(&r.svc);
	if (rc == CLI_EXIT_OK)
		rc = recv_run(&r);
	cli_svc_close(&r.svc);
	return rc;
}
