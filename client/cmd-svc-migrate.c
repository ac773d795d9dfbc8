/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl migrate --qemu QMP_SOCKET --to HOST:PORT [--downtime MS] [--max-rounds N]
 * [--strict-downtime]: asks uffsnapd for a migration job (CONTROL.md `migrate`) and, unless
 * --no-wait, follows it to its end, a line per pre-copy round. As `snapshot --qemu`, the client
 * connects to the guest's QMP socket itself and passes the connection, its greeting unread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-meta.h"
#include "cli-svc-show.h"
#include "cli-svc.h"
#include "cmd-svc.h"

/* The daemon's limits (CONTROL.md, migrate: as snapshot's pre-copy). */
#define MIG_DOWNTIME_MAX   60000
#define MIG_MAX_ROUNDS_MAX 63

/* "Not finished yet" for the event handlers, next to exit statuses (>= 0). */
#define MIG_CONTINUE (-1)

struct mig_cmd {
	struct cli_svc svc;
	const char *qemu, *to;
	json_int_t downtime, max_rounds; /* 0: the daemon's defaults */
	bool strict_downtime, no_wait;
	int qmp_fd;
	json_int_t job, pid;
	struct cli_progress progress;
	bool cancelling;
};

static int mig_number(struct mig_cmd *m, const char *what, const char *arg, uint64_t max,
		      json_int_t *ret)
{
	uint64_t v;

	if (cli_parse_u64(arg, &v) < 0 || v == 0 || v > max)
		return cli_usage_error(m->svc.inv, "invalid %s '%s' (1..%" PRIu64 ")", what, arg,
				       max);
	*ret = (json_int_t)v;
	return 0;
}

static int mig_parse(struct mig_cmd *m, int argc, char **argv)
{
	static const struct option opts[] = {{"qemu", required_argument, NULL, 'q'},
					     {"to", required_argument, NULL, 't'},
					     {"downtime", required_argument, NULL, 'D'},
					     {"max-rounds", required_argument, NULL, 'R'},
					     {"strict-downtime", no_argument, NULL, 'T'},
					     {"no-wait", no_argument, NULL, 'n'},
					     CLI_SVC_LONGOPTS,
					     {NULL, 0, NULL, 0}};
	int c, r = 0;

	while (!r && (c = cli_getopt(m->svc.inv, argc, argv, "", opts)) != -1) {
		if (c == '?')
			return CLI_EXIT_USAGE;
		if (c == 'q')
			m->qemu = optarg;
		else if (c == 't')
			m->to = optarg;
		else if (c == 'D')
			r = mig_number(m, "--downtime", optarg, MIG_DOWNTIME_MAX, &m->downtime);
		else if (c == 'R')
			r = mig_number(m, "--max-rounds", optarg, MIG_MAX_ROUNDS_MAX,
				       &m->max_rounds);
		else if (c == 'T')
			m->strict_downtime = true;
		else if (c == 'n')
			m->no_wait = true;
		else if (!cli_svc_option(&m->svc, c, optarg))
			return CLI_EXIT_USAGE;
	}
	if (r)
		return r;
	if (!cli_svc_no_operands(&m->svc, argc, argv))
		return CLI_EXIT_USAGE;
	if (!m->qemu || !m->to)
		return cli_usage_error(m->svc.inv, "give --qemu QMP_SOCKET (the guest) and --to "
						   "HOST:PORT (a 'uffsnapd --receive --qemu')");
	return 0;
}

static int mig_start(struct mig_cmd *m)
{
	struct uffsnap_client_fd pass = {.fd = m->qmp_fd, .argument = "qemu"};
	json_t *args = json_pack("{s:s}", "to", m->to), *ret = NULL;
	uint64_t id;
	int r;

	if (!args)
		return CLI_EXIT_FAILURE;
	if (m->downtime)
		json_object_set_new(args, "downtime", json_integer(m->downtime));
	if (m->max_rounds)
		json_object_set_new(args, "max-rounds", json_integer(m->max_rounds));
	if (m->strict_downtime)
		json_object_set_new(args, "strict-downtime", json_true());
	r = cli_svc_call_fds(&m->svc, "migrate", args, &pass, 1, &ret);
	json_decref(args);
	if (r == CLI_EXIT_OK && (cli_json_u64(ret, "id", &id) < 0 || !id || id > INT64_MAX)) {
		fprintf(stderr, "%s: uffsnapd's reply names no job id\n", m->svc.inv->path);
		r = CLI_EXIT_FAILURE;
	}
	if (r == CLI_EXIT_OK) {
		m->job = (json_int_t)id;
		if (m->svc.json)
			cli_svc_print_json(ret);
	}
	json_decref(ret);
	return r;
}

static json_int_t mig_int(const json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

/* The summary of a completed migration (the statistics as `uffsnapctl job` shows them). */
static void mig_show(const struct mig_cmd *m, const json_t *d)
{
	const json_t *mi = json_object_get(d, "migration");

	printf("job %" JSON_INTEGER_FORMAT ": the QEMU guest of pid %" JSON_INTEGER_FORMAT
	       " migrated to %s; the source stays paused (postmigrate)\n",
	       m->job, m->pid, m->to);
	if (json_object_get(mi, "stopped_to_completed_ns"))
		printf("  stopped->completed %.3f ms here (QEMU's downtime %" JSON_INTEGER_FORMAT
		       " ms; the receiver measures the guest's)\n",
		       mig_int(mi, "stopped_to_completed_ns") / 1e6,
		       mig_int(mi, "qemu_downtime_ms"));
	printf("  switch-over        %.3f ms to pre-switchover, %.3f ms last round, %.3f ms "
	       "device state\n",
	       mig_int(mi, "to_switchover_ns") / 1e6, mig_int(mi, "final_round_ns") / 1e6,
	       mig_int(mi, "switchover_ns") / 1e6);
	cli_svc_show_stats(stdout, json_object_get(d, "stats"));
}

static int mig_ended(struct mig_cmd *m, const char *name, const json_t *d)
{
	const char *desc = cli_json_str(d, "desc");
	bool switched = json_is_true(json_object_get(json_object_get(d, "migration"), "switched"));

	cli_progress_end(&m->progress);
	if (!strcmp(name, "JOB_COMPLETED")) {
		if (!m->svc.json)
			mig_show(m, d);
		return CLI_EXIT_OK;
	}
	if (!strcmp(name, "JOB_FAILED"))
		fprintf(stderr, "%s: job %" JSON_INTEGER_FORMAT " failed: %s\n", m->svc.inv->path,
			m->job, desc ? desc : "(no reason given)");
	else
		fprintf(stderr, "%s: job %" JSON_INTEGER_FORMAT " cancelled\n", m->svc.inv->path,
			m->job);
	fprintf(stderr, "%s: %s\n", m->svc.inv->path,
		switched ? "the switch-over had begun: the guest is the destination's; the source "
			   "stays paused"
			 : "the guest runs at the source as before");
	return CLI_EXIT_FAILURE;
}

static int mig_event(struct mig_cmd *m, const char *name, const json_t *d)
{
	uint64_t done = 0, total = 0;

	if (!strcmp(name, "JOB_COMPLETED") || !strcmp(name, "JOB_FAILED") ||
	    !strcmp(name, "JOB_CANCELLED"))
		return mig_ended(m, name, d);
	if (!strcmp(name, "JOB_CREATED"))
		m->pid = mig_int(d, "pid"); /* QEMU's */
	if (m->svc.json)
		return MIG_CONTINUE;
	if (!strcmp(name, "MIGRATION_ROUND")) {
		cli_progress_end(&m->progress);
		m->progress.last_step = -1; /* the next round's progress starts again */
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": round %" JSON_INTEGER_FORMAT
			": %.1f MiB in %.3f ms\n",
			m->job, mig_int(d, "round"), mig_int(d, "bytes") / 1048576.0,
			mig_int(d, "ns") / 1e6);
	} else if (!strcmp(name, "JOB_PROGRESS") && cli_json_u64(d, "done", &done) >= 0 &&
		   cli_json_u64(d, "total", &total) >= 0) {
		m->progress.stream = cli_json_u64(d, "acked", &m->progress.acked) >= 0 &&
				     cli_json_u64(d, "sent", &m->progress.sent) >= 0;
		cli_progress_update(&m->progress, m->job, done, total);
	}
	return MIG_CONTINUE;
}

/* Ctrl-C (or SIGTERM): the first cancels the job, a second stops waiting for it to end. */
static int mig_interrupted(struct mig_cmd *m)
{
	json_t *args;

	cli_progress_end(&m->progress);
	if (m->cancelling) {
		fprintf(stderr,
			"%s: not waiting any longer; see 'uffsnapctl job %" JSON_INTEGER_FORMAT
			"'\n",
			m->svc.inv->path, m->job);
		return CLI_EXIT_FAILURE;
	}
	m->cancelling = true;
	fprintf(stderr,
		"%s: interrupted: cancelling job %" JSON_INTEGER_FORMAT
		" (interrupt again to stop waiting)\n",
		m->svc.inv->path, m->job);
	args = json_pack("{s:I}", "id", m->job);
	if (args)
		cli_svc_call(&m->svc, "cancel", args, NULL, NULL);
	json_decref(args);
	return MIG_CONTINUE; /* its end event is on its way either way */
}

static int mig_wait(struct mig_cmd *m)
{
	json_t *ev = NULL, *d;
	uint64_t id;
	int r;

	for (;;) {
		r = cli_svc_next_event(&m->svc, &ev);
		if (r) {
			cli_progress_end(&m->progress);
			return r;
		}
		if (!ev) {
			r = mig_interrupted(m);
		} else {
			d = json_object_get(ev, "data");
			r = MIG_CONTINUE;
			if (cli_json_u64(d, "id", &id) >= 0 && id == (uint64_t)m->job) {
				if (m->svc.json)
					cli_svc_print_json(ev);
				r = mig_event(m, cli_json_str(ev, "event") ?: "", d);
			}
			json_decref(ev);
		}
		if (r != MIG_CONTINUE)
			return r;
	}
}

static int mig_run(struct mig_cmd *m)
{
	int r;

	if (!m->no_wait && cli_svc_catch_signals(&m->svc) < 0)
		return CLI_EXIT_FAILURE;
	r = cli_svc_connect_qmp(&m->svc, m->qemu, &m->qmp_fd);
	if (r != CLI_EXIT_OK)
		return r;
	r = mig_start(m);
	close(m->qmp_fd); /* the daemon has its own: QEMU must see only one client */
	m->qmp_fd = -EBADF;
	if (r != CLI_EXIT_OK)
		return r;
	if (m->no_wait) {
		if (!m->svc.json)
			printf("job %" JSON_INTEGER_FORMAT
			       " started ('uffsnapctl job %" JSON_INTEGER_FORMAT "' shows it)\n",
			       m->job, m->job);
		return CLI_EXIT_OK;
	}
	if (!m->svc.json)
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": migration of the QEMU guest at %s to the "
			"receiver at %s (Ctrl-C cancels it before the switch-over)\n",
			m->job, m->qemu, m->to);
	return mig_wait(m);
}

int cmd_svc_migrate(const struct cli_invocation *inv, int argc, char **argv)
{
	struct mig_cmd m = {.qmp_fd = -EBADF, .progress = {.last_step = -1}};
	int r;

	cli_svc_init(&m.svc, inv);
	m.progress.tty = isatty(STDERR_FILENO);
	r = mig_parse(&m, argc, argv);
	if (r)
		return r;
	r = cli_svc_connect(&m.svc);
	if (r == CLI_EXIT_OK)
		r = mig_run(&m);
	cli_svc_close(&m.svc);
	if (m.qmp_fd >= 0)
		close(m.qmp_fd);
	return r;
}
