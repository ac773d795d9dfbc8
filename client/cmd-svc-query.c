/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl jobs | job ID | cancel ID | status: one control command each, its reply shown
 * for a person, or printed as JSON with --json.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli-meta.h"
#include "cli-svc-show.h"
#include "cli-svc.h"
#include "cmd-svc.h"

/* How long `cancel` waits for the job's end event before it says only "requested". */
#define CANCEL_WAIT_MS 10000

struct query {
	const char *command; /* control command */
	bool takes_id;	     /* one operand: the job id, sent as {"id": N} */
	int (*show)(struct cli_svc *s, const json_t *ret, json_int_t id);
};

static int show_jobs(struct cli_svc *s, const json_t *ret, json_int_t id)
{
	cli_svc_show_jobs(ret);
	return CLI_EXIT_OK;
}

static int show_job(struct cli_svc *s, const json_t *ret, json_int_t id)
{
	cli_svc_show_job(ret);
	return CLI_EXIT_OK;
}

static int show_status(struct cli_svc *s, const json_t *ret, json_int_t id)
{
	printf("socket: %s\n", cli_svc_socket(s));
	cli_svc_show_tree(ret, 0);
	return CLI_EXIT_OK;
}

/* The job's end event, if it comes within CANCEL_WAIT_MS; else NULL. */
static json_t *cancel_end_event(struct cli_svc *s, json_int_t id)
{
	json_t *ev = NULL;
	uint64_t v;

	while (uffsnap_client_next_event(s->client, CANCEL_WAIT_MS, &ev) >= 0) {
		const char *name = cli_json_str(ev, "event");

		if (name && strcmp(name, "JOB_PROGRESS") && strcmp(name, "JOB_CREATED") &&
		    strcmp(name, "TARGET_FORKED") &&
		    cli_json_u64(json_object_get(ev, "data"), "id", &v) >= 0 && v == (uint64_t)id)
			return ev;
		json_decref(ev);
	}
	return NULL;
}

static int show_cancel(struct cli_svc *s, const json_t *ret, json_int_t id)
{
	json_t *ev = cancel_end_event(s, id);
	const char *name = cli_json_str(ev, "event");

	if (!name)
		printf("job %" JSON_INTEGER_FORMAT
		       ": cancel requested ('uffsnapctl job %" JSON_INTEGER_FORMAT
		       "' shows when it has ended)\n",
		       id, id);
	else if (!strcmp(name, "JOB_CANCELLED"))
		printf("job %" JSON_INTEGER_FORMAT ": cancelled; the image in progress is "
		       "incomplete (a chain's complete images stay)\n",
		       id);
	else
		printf("job %" JSON_INTEGER_FORMAT ": ended before the cancel took effect (%s)\n",
		       id, name);
	json_decref(ev);
	return CLI_EXIT_OK;
}

static int svc_query_parse(struct cli_svc *s, const struct query *q, int argc, char **argv,
			   json_int_t *ret_id)
{
	static const struct option opts[] = {CLI_SVC_LONGOPTS, {NULL, 0, NULL, 0}};
	int c;

	while ((c = cli_getopt(s->inv, argc, argv, "", opts)) != -1)
		if (c == '?' || !cli_svc_option(s, c, optarg))
			return CLI_EXIT_USAGE;
	if (!q->takes_id)
		return cli_svc_no_operands(s, argc, argv) ? 0 : CLI_EXIT_USAGE;
	if (optind >= argc)
		return cli_usage_error(s->inv, "missing job ID");
	if (cli_svc_parse_job_id(s, argv[optind++], ret_id) < 0)
		return CLI_EXIT_USAGE;
	return cli_svc_no_operands(s, argc, argv) ? 0 : CLI_EXIT_USAGE;
}

static int svc_query(const struct cli_invocation *inv, int argc, char **argv, const struct query *q)
{
	json_t *args = NULL, *ret = NULL;
	struct cli_svc s;
	json_int_t id = 0;
	int r;

	cli_svc_init(&s, inv);
	r = svc_query_parse(&s, q, argc, argv, &id);
	if (r)
		return r;
	r = cli_svc_connect(&s);
	if (r == CLI_EXIT_OK && q->takes_id)
		args = json_pack("{s:I}", "id", id);
	if (r == CLI_EXIT_OK)
		r = cli_svc_call(&s, q->command, args, NULL, &ret);
	if (r == CLI_EXIT_OK && s.json)
		cli_svc_print_json(ret);
	else if (r == CLI_EXIT_OK)
		r = q->show(&s, ret, id);
	json_decref(args);
	json_decref(ret);
	cli_svc_close(&s);
	return r;
}

int cmd_svc_jobs(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct query q = {"query-jobs", false, show_jobs};

	return svc_query(inv, argc, argv, &q);
}

int cmd_svc_job(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct query q = {"query-job", true, show_job};

	return svc_query(inv, argc, argv, &q);
}

int cmd_svc_cancel(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct query q = {"cancel", true, show_cancel};

	return svc_query(inv, argc, argv, &q);
}

int cmd_svc_status(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct query q = {"query-status", false, show_status};

	return svc_query(inv, argc, argv, &q);
}
