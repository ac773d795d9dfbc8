/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl snapshot (--pid PID | --qemu QMP_SOCKET) (--output FILE | --file NAME | --to
 * HOST:PORT): asks uffsnapd for a snapshot job and, unless --no-wait, follows it to its end.
 * --precopy asks for a pre-copy snapshot; --incremental --every S for a chain of images
 * NAME-NNNN.img in the snapshot directory, one line per image as each is named.
 * With --output the client creates FILE itself and passes the descriptor (the daemon never
 * opens a path for a client: CONTROL.md, Authorization); with --file the daemon creates NAME
 * in its snapshot directory; with --to the daemon streams the image to a receiver with its own
 * key. With --qemu the client connects to the guest's QMP socket and passes the connection,
 * its greeting unread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cli-svc-show.h"
#include "cli-svc.h"
#include "cmd-svc.h"
#include "sys/out-file.h"

/* The daemon's limits (CONTROL.md, snapshot). */
#define SNAP_WINDOW_MAX	    512
#define SNAP_COPY_THREADS_MAX 8
#define SNAP_MEM_LIMIT_MAX    1048576 /* MiB; the daemon's --max-job-mem may allow less */
#define SNAP_DOWNTIME_MAX   60000
#define SNAP_MAX_ROUNDS_MAX 63
#define SNAP_EVERY_MAX	    86400
#define SNAP_COUNT_MAX	    1000000
/* Images hold another process's memory: readable by their owner only. */
#define SNAP_FILE_MODE 0600

/* "Not finished yet" for the event handlers, next to exit statuses (>= 0). */
#define SNAP_CONTINUE (-1)

struct snap_cmd {
	struct cli_svc svc;
	json_int_t pid, window, copy_threads, mem_limit; /* 0: the daemon's default */
	/* --precopy and its budget (0: the daemon's defaults); --incremental: a chain */
	bool precopy, strict_downtime, incremental;
	json_int_t downtime, max_rounds, every, count;
	json_int_t images; /* a chain's CHAIN_IMAGE events seen */
	const char *output, *file, *to;
	const char *qemu; /* a guest's QMP socket, instead of pid */
	bool strict, force, no_wait;
	int fd;		     /* passed to the daemon: stdout, or out.fd */
	int qmp_fd;	     /* --qemu: our connection to it, passed to the daemon */
	struct out_file out; /* --output FILE: named only once the job completed */
	json_int_t job;
	struct cli_progress progress;
	bool cancelling;
};

static int snap_number(struct snap_cmd *s, const char *what, const char *arg, uint64_t max,
		       json_int_t *ret)
{
	uint64_t v;

	if (cli_parse_u64(arg, &v) < 0 || v == 0 || v > max) {
		if (max == INT32_MAX)
			return cli_usage_error(s->svc.inv, "invalid %s '%s' (a positive number)",
					       what, arg);
		return cli_usage_error(s->svc.inv, "invalid %s '%s' (1..%" PRIu64 ")", what, arg,
				       max);
	}
	*ret = (json_int_t)v;
	return 0;
}

static int snap_option(struct snap_cmd *s, int c)
{
	switch (c) {
	case 'p':
		return snap_number(s, "pid", optarg, INT32_MAX, &s->pid);
	case 'w':
		return snap_number(s, "--window", optarg, SNAP_WINDOW_MAX, &s->window);
	case 'Y':
		return snap_number(s, "--copy-threads", optarg, SNAP_COPY_THREADS_MAX,
				   &s->copy_threads);
	case 'L':
		return snap_number(s, "--mem-limit", optarg, SNAP_MEM_LIMIT_MAX, &s->mem_limit);
	case 'P':
		s->precopy = true;
		return 0;
	case 'D':
		return snap_number(s, "--downtime", optarg, SNAP_DOWNTIME_MAX, &s->downtime);
	case 'R':
		return snap_number(s, "--max-rounds", optarg, SNAP_MAX_ROUNDS_MAX, &s->max_rounds);
	case 'T':
		s->strict_downtime = true;
		return 0;
	case 'I':
		s->incremental = true;
		return 0;
	case 'E':
		return snap_number(s, "--every", optarg, SNAP_EVERY_MAX, &s->every);
	case 'C':
		return snap_number(s, "--count", optarg, SNAP_COUNT_MAX, &s->count);
	case 'q':
		s->qemu = optarg;
		return 0;
	case 'o':
		s->output = optarg;
		return 0;
	case 'f':
		s->file = optarg;
		return 0;
	case 't':
		s->to = optarg;
		return 0;
	case 's':
		s->strict = true;
		return 0;
	case 'F':
		s->force = true;
		return 0;
	case 'n':
		s->no_wait = true;
		return 0;
	default:
		return cli_svc_option(&s->svc, c, optarg) ? 0 : CLI_EXIT_USAGE;
	}
}

static bool snap_to_stdout(const struct snap_cmd *s)
{
	return s->output && !strcmp(s->output, "-");
}

/* What goes only with --precopy or --incremental (the daemon checks it too). */
static int snap_check_precopy(struct snap_cmd *s)
{
	if (!s->incremental && (s->every || s->count))
		return cli_usage_error(s->svc.inv, "--every and --count go with --incremental");
	if (s->incremental && (!s->every || !s->file))
		return cli_usage_error(s->svc.inv, "--incremental needs --every SECONDS and --file "
						   "NAME (the images' name prefix)");
	if (s->incremental && s->qemu)
		return cli_usage_error(s->svc.inv, "--incremental is for --pid PID, not --qemu");
	if (s->incremental && (s->mem_limit || s->copy_threads))
		return cli_usage_error(s->svc.inv,
				       "--mem-limit and --copy-threads are not for --incremental");
	if (!s->precopy && !s->incremental && (s->downtime || s->max_rounds || s->strict_downtime))
		return cli_usage_error(s->svc.inv, "--downtime, --max-rounds and --strict-downtime "
						   "go with --precopy or --incremental");
	if (s->precopy && s->qemu)
		return cli_usage_error(s->svc.inv, "--precopy is for --pid PID, not --qemu");
	return 0;
}

static int snap_parse(struct snap_cmd *s, int argc, char **argv)
{
	static const struct option opts[] = {{"pid", required_argument, NULL, 'p'},
					     {"qemu", required_argument, NULL, 'q'},
					     {"output", required_argument, NULL, 'o'},
					     {"file", required_argument, NULL, 'f'},
					     {"to", required_argument, NULL, 't'},
					     {"strict", no_argument, NULL, 's'},
					     {"window", required_argument, NULL, 'w'},
					     {"copy-threads", required_argument, NULL, 'Y'},
					     {"mem-limit", required_argument, NULL, 'L'},
					     {"force", no_argument, NULL, 'F'},
					     {"no-wait", no_argument, NULL, 'n'},
					     {"precopy", no_argument, NULL, 'P'},
					     {"downtime", required_argument, NULL, 'D'},
					     {"max-rounds", required_argument, NULL, 'R'},
					     {"strict-downtime", no_argument, NULL, 'T'},
					     {"incremental", no_argument, NULL, 'I'},
					     {"every", required_argument, NULL, 'E'},
					     {"count", required_argument, NULL, 'C'},
					     CLI_SVC_LONGOPTS,
					     {NULL, 0, NULL, 0}};
	int c, r;

	while ((c = cli_getopt(s->svc.inv, argc, argv, "p:o:", opts)) != -1) {
		if (c == '?')
			return CLI_EXIT_USAGE;
		r = snap_option(s, c);
		if (r)
			return r;
	}
	if (!cli_svc_no_operands(&s->svc, argc, argv))
		return CLI_EXIT_USAGE;
	if (!!s->pid + !!s->qemu != 1)
		return cli_usage_error(s->svc.inv, "give exactly one of --pid PID and --qemu "
						   "QMP_SOCKET");
	if (!!s->output + !!s->file + !!s->to != 1)
		return cli_usage_error(s->svc.inv, "give exactly one of --output FILE, --file NAME "
						   "and --to HOST:PORT");
	if (s->force && (!s->output || snap_to_stdout(s)))
		return cli_usage_error(s->svc.inv, "--force applies to --output FILE (a --file name "
						   "is never overwritten)");
	r = snap_check_precopy(s);
	if (r)
		return r;
	if (s->no_wait && s->output && !snap_to_stdout(s))
		return cli_usage_error(s->svc.inv, "--no-wait cannot go with --output FILE: the "
						   "image gets its name when the job completes");
	return 0;
}

/*
 * stdout for '-'; else a temporary beside FILE that gets FILE's name only when the job
 * completes (daemon/sys/out-file.h): a refused or failed job leaves FILE as it was.
 */
static int snap_open_output(struct snap_cmd *s)
{
	char e[128];
	int r;

	if (snap_to_stdout(s)) {
		if (isatty(STDOUT_FILENO))
			return cli_usage_error(s->svc.inv, "refusing to write an image to a "
							   "terminal; redirect stdout");
		/* the image takes stdout; every message (and --json) goes to stderr */
		s->fd = dup(STDOUT_FILENO);
		if (s->fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			return fprintf(stderr, "%s: cannot use stdout: %m\n", s->svc.inv->path),
			       CLI_EXIT_FAILURE;
		return 0;
	}
	r = out_file_open(&s->out, s->output, s->force, SNAP_FILE_MODE);
	s->fd = s->out.fd;
	if (r >= 0)
		return 0;
	if (r == -EEXIST)
		fprintf(stderr, "%s: %s exists (use --force to replace it)\n", s->svc.inv->path,
			s->output);
	else if (r == -EISDIR)
		fprintf(stderr, "%s: %s is a directory: name a file to write\n",
			s->svc.inv->path, s->output);
	else
		fprintf(stderr, "%s: cannot create %s: %s\n", s->svc.inv->path, s->output,
			cli_strerror(r, e, sizeof(e)));
	return CLI_EXIT_FAILURE;
}

/* The job completed: FILE gets its name (replacing an old one only with --force). */
static int snap_commit_output(struct snap_cmd *s)
{
	char e[128];
	int r;

	if (!s->output || snap_to_stdout(s))
		return CLI_EXIT_OK;
	r = s->out.in_place || fsync(s->out.fd) == 0 ? 0 : -errno;
	if (r >= 0)
		r = out_file_commit(&s->out);
	if (r >= 0)
		return CLI_EXIT_OK;
	fprintf(stderr, "%s: cannot name the image %s: %s\n", s->svc.inv->path, s->output,
		r == -EEXIST ? "it was created meanwhile (use --force to replace it)"
			     : cli_strerror(r, e, sizeof(e)));
	return CLI_EXIT_FAILURE;
}

static json_t *snap_arguments(const struct snap_cmd *s)
{
	json_t *a = s->qemu ? json_object() : json_pack("{s:I}", "pid", s->pid);

	if (a && s->file)
		json_object_set_new(a, "file", json_string(s->file));
	if (a && s->to)
		json_object_set_new(a, "to", json_string(s->to));
	if (a && s->strict)
		json_object_set_new(a, "strict", json_true());
	if (a && s->window)
		json_object_set_new(a, "window", json_integer(s->window));
	if (a && s->copy_threads)
		json_object_set_new(a, "copy-threads", json_integer(s->copy_threads));
	if (a && s->mem_limit)
		json_object_set_new(a, "mem-limit", json_integer(s->mem_limit));
	if (a && s->precopy)
		json_object_set_new(a, "precopy", json_true());
	if (a && s->downtime)
		json_object_set_new(a, "downtime", json_integer(s->downtime));
	if (a && s->max_rounds)
		json_object_set_new(a, "max-rounds", json_integer(s->max_rounds));
	if (a && s->strict_downtime)
		json_object_set_new(a, "strict-downtime", json_true());
	if (a && s->incremental)
		json_object_set_new(a, "incremental", json_true());
	if (a && s->every)
		json_object_set_new(a, "every", json_integer(s->every));
	if (a && s->count)
		json_object_set_new(a, "count", json_integer(s->count));
	return a;
}

/* Sends `snapshot`; on success s->job is the job's id. */
static int snap_start(struct snap_cmd *s)
{
	struct uffsnap_client_fd pass[2];
	json_t *args = snap_arguments(s), *ret = NULL;
	size_t npass = 0;
	uint64_t id;
	int r;

	if (!args)
		return CLI_EXIT_FAILURE;
	if (s->qemu)
		pass[npass++] = (struct uffsnap_client_fd){.fd = s->qmp_fd, .argument = "qemu"};
	if (s->output)
		pass[npass++] = (struct uffsnap_client_fd){.fd = s->fd, .argument = "fd"};
	r = cli_svc_call_fds(&s->svc, "snapshot", args, pass, npass, &ret);
	json_decref(args);
	if (r == CLI_EXIT_OK && (cli_json_u64(ret, "id", &id) < 0 || !id || id > INT64_MAX)) {
		fprintf(stderr, "%s: uffsnapd's reply names no job id\n", s->svc.inv->path);
		r = CLI_EXIT_FAILURE;
	}
	if (r == CLI_EXIT_OK) {
		s->job = (json_int_t)id;
		if (s->svc.json)
			cli_svc_print_json(ret);
	}
	json_decref(ret);
	return r;
}

/* What a failure or a cancel left, and where. */
static void snap_left_behind(const struct snap_cmd *s)
{
	if (s->to && !s->progress.sent)
		fprintf(stderr, "%s: nothing reached the receiver at %s\n", s->svc.inv->path,
			s->to);
	else if (s->to)
		fprintf(
		    stderr,
		    "%s: the receiver at %s keeps what it got as an incomplete .partial image\n",
		    s->svc.inv->path, s->to);
	else if (snap_to_stdout(s))
		fprintf(stderr, "%s: the image on stdout is incomplete\n", s->svc.inv->path);
	else if (s->output && !s->out.in_place)
		fprintf(stderr, "%s: %s was not written (left as it was)\n", s->svc.inv->path,
			s->output);
	else if (s->incremental)
		fprintf(stderr,
			"%s: the %" JSON_INTEGER_FORMAT " complete images of the chain stay in "
			"uffsnapd's snapshot directory (%s-NNNN.img); the one in progress, if "
			"any, was not kept\n",
			s->svc.inv->path, s->images, s->file);
	else if (!s->output)
		fprintf(stderr, "%s: no image %s was kept in uffsnapd's snapshot directory\n",
			s->svc.inv->path, s->file);
}

static int snap_ended(struct snap_cmd *s, const char *name, const json_t *d)
{
	const char *desc = cli_json_str(d, "desc");
	const char *where = s->output ? s->output : s->file ? s->file : s->to;
	const json_t *st = json_object_get(d, "stream");

	cli_progress_end(&s->progress);
	if (!strcmp(name, "JOB_COMPLETED")) {
		if (snap_commit_output(s) != CLI_EXIT_OK)
			return CLI_EXIT_FAILURE;
		if (!s->svc.json && s->incremental)
			printf("job %" JSON_INTEGER_FORMAT ": chain of pid %" JSON_INTEGER_FORMAT
			       " complete: %" JSON_INTEGER_FORMAT
			       " images %s-NNNN.img in uffsnapd's "
			       "snapshot directory; the last:\n",
			       s->job, s->pid, json_integer_value(json_object_get(d, "images")),
			       s->file);
		if (!s->svc.json && !s->incremental) {
			printf("job %" JSON_INTEGER_FORMAT ": snapshot of %s %" JSON_INTEGER_FORMAT
			       " complete: %s%s\n",
			       s->job, s->qemu ? "the QEMU guest of pid" : "pid", s->pid, where,
			       s->file ? " (in uffsnapd's snapshot directory)"
			       : s->to ? " (verified and stored by the receiver)"
				       : "");
			cli_svc_show_guest(stdout, json_object_get(d, "guest"));
		}
		if (!s->svc.json) {
			cli_svc_show_stats(stdout, json_object_get(d, "stats"));
			if (st)
				printf(
				    "  stream             %.1f MiB sent (%.1f MiB again after "
				    "%" JSON_INTEGER_FORMAT " reconnects), peak %.1f MiB in "
				    "memory, %.1f MiB spooled\n",
				    json_integer_value(json_object_get(st, "sent")) / 1048576.0,
				    json_integer_value(json_object_get(st, "resent")) / 1048576.0,
				    json_integer_value(json_object_get(st, "reconnects")),
				    json_integer_value(json_object_get(st, "mem_peak")) / 1048576.0,
				    json_integer_value(json_object_get(st, "spooled")) / 1048576.0);
		}
		return CLI_EXIT_OK;
	}
	if (!strcmp(name, "JOB_CANCELLED") && s->incremental && s->cancelling) {
		snap_left_behind(s); /* a chain until Ctrl-C: its images are what was asked for */
		return CLI_EXIT_OK;
	}
	if (!strcmp(name, "JOB_FAILED"))
		fprintf(stderr, "%s: job %" JSON_INTEGER_FORMAT " failed: %s\n", s->svc.inv->path,
			s->job, desc ? desc : "(no reason given)");
	else
		fprintf(stderr, "%s: job %" JSON_INTEGER_FORMAT " cancelled\n", s->svc.inv->path,
			s->job);
	snap_left_behind(s);
	return CLI_EXIT_FAILURE;
}

static int snap_event(struct snap_cmd *s, const char *name, const json_t *d)
{
	uint64_t done = 0, total = 0;

	if (!strcmp(name, "JOB_COMPLETED") || !strcmp(name, "JOB_FAILED") ||
	    !strcmp(name, "JOB_CANCELLED"))
		return snap_ended(s, name, d);
	if (!strcmp(name, "JOB_CREATED") && s->qemu)
		s->pid = json_integer_value(json_object_get(d, "pid")); /* QEMU's */
	if (!strcmp(name, "CHAIN_IMAGE"))
		s->images++;
	if (s->svc.json)
		return SNAP_CONTINUE;
	if (!strcmp(name, "CHAIN_IMAGE")) {
		cli_progress_end(&s->progress);
		s->progress.last_step = -1; /* the next image's progress starts again */
		cli_svc_show_chain_image(stdout, s->job, d);
		return SNAP_CONTINUE;
	}
	if (!strcmp(name, "JOB_PROGRESS") && cli_json_u64(d, "done", &done) >= 0 &&
	    cli_json_u64(d, "total", &total) >= 0) {
		s->progress.stream = cli_json_u64(d, "acked", &s->progress.acked) >= 0 &&
				     cli_json_u64(d, "sent", &s->progress.sent) >= 0;
		cli_progress_update(&s->progress, s->job, done, total);
	} else if (!strcmp(name, "TARGET_FORKED")) {
		cli_progress_end(&s->progress);
		cli_json_u64(d, "child", &done);
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": the target forked (child %" PRIu64
			"); recorded in the image\n",
			s->job, done);
	}
	return SNAP_CONTINUE;
}

/* Ctrl-C (or SIGTERM): the first cancels the job, a second stops waiting for it to end. */
static int snap_interrupted(struct snap_cmd *s)
{
	json_t *args;

	cli_progress_end(&s->progress);
	if (s->cancelling) {
		fprintf(stderr,
			"%s: not waiting any longer; see 'uffsnapctl job %" JSON_INTEGER_FORMAT
			"'\n",
			s->svc.inv->path, s->job);
		return CLI_EXIT_FAILURE;
	}
	s->cancelling = true;
	fprintf(stderr,
		"%s: interrupted: cancelling job %" JSON_INTEGER_FORMAT
		" (interrupt again to stop waiting)\n",
		s->svc.inv->path, s->job);
	args = json_pack("{s:I}", "id", s->job);
	if (args)
		cli_svc_call(&s->svc, "cancel", args, NULL, NULL);
	json_decref(args);
	/*
	 * Either way, wait for the job's end event: a job that ended meanwhile refuses the cancel
	 * and its event is on its way; a broken connection is reported by the next wait.
	 */
	return SNAP_CONTINUE;
}

static int snap_wait(struct snap_cmd *s)
{
	json_t *ev = NULL, *d;
	uint64_t id;
	int r;

	for (;;) {
		r = cli_svc_next_event(&s->svc, &ev);
		if (r) {
			cli_progress_end(&s->progress);
			snap_left_behind(s);
			return r;
		}
		if (!ev) {
			r = snap_interrupted(s);
		} else {
			d = json_object_get(ev, "data");
			r = SNAP_CONTINUE;
			if (cli_json_u64(d, "id", &id) >= 0 && id == (uint64_t)s->job) {
				if (s->svc.json)
					cli_svc_print_json(ev);
				r = snap_event(s, cli_json_str(ev, "event") ?: "", d);
			}
			json_decref(ev);
		}
		if (r != SNAP_CONTINUE)
			return r;
	}
}

static int snap_run(struct snap_cmd *s)
{
	int r;

	if (!s->no_wait && cli_svc_catch_signals(&s->svc) < 0)
		return CLI_EXIT_FAILURE;
	if (s->qemu && (r = cli_svc_connect_qmp(&s->svc, s->qemu, &s->qmp_fd)) != CLI_EXIT_OK)
		return r;
	if (s->output && (r = snap_open_output(s)) != CLI_EXIT_OK)
		return r;
	r = snap_start(s);
	if (snap_to_stdout(s))
		close(s->fd); /* the daemon has its own copy: the reader sees its end */
	if (s->qmp_fd >= 0)   /* the daemon has its own: QEMU must see only one client */
		close(s->qmp_fd);
	s->qmp_fd = -EBADF;
	if (r != CLI_EXIT_OK)
		return r; /* a temporary goes in cmd_svc_snapshot() */
	if (s->no_wait) {
		if (!s->svc.json)
			printf("job %" JSON_INTEGER_FORMAT
			       " started ('uffsnapctl job %" JSON_INTEGER_FORMAT "' shows it)\n",
			       s->job, s->job);
		return CLI_EXIT_OK;
	}
	if (!s->svc.json && s->qemu)
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": snapshot of the QEMU guest at %s to %s%s "
			"(Ctrl-C cancels)\n",
			s->job, s->qemu, s->to ? "the receiver at " : "",
			s->output ? s->output
			: s->file ? s->file
				  : s->to);
	else if (!s->svc.json && s->incremental)
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": chain of pid %" JSON_INTEGER_FORMAT
			", an image every %" JSON_INTEGER_FORMAT " s%s into %s-NNNN.img (Ctrl-C "
			"ends it)\n",
			s->job, s->pid, s->every, s->count ? "" : " until Ctrl-C", s->file);
	else if (!s->svc.json)
		fprintf(stderr,
			"job %" JSON_INTEGER_FORMAT ": snapshot of pid %" JSON_INTEGER_FORMAT
			" to %s%s (Ctrl-C cancels)\n",
			s->job, s->pid, s->to ? "the receiver at " : "",
			s->output ? s->output
			: s->file ? s->file
				  : s->to);
	return snap_wait(s);
}

int cmd_svc_snapshot(const struct cli_invocation *inv, int argc, char **argv)
{
	struct snap_cmd s = {
	    .fd = -EBADF, .qmp_fd = -EBADF, .out = OUT_FILE_INIT, .progress = {.last_step = -1}};
	int r;

	cli_svc_init(&s.svc, inv);
	s.progress.tty = isatty(STDERR_FILENO);
	r = snap_parse(&s, argc, argv);
	if (r)
		return r;
	r = cli_svc_connect(&s.svc);
	if (r == CLI_EXIT_OK)
		r = snap_run(&s);
	cli_svc_close(&s.svc);
	if (s.qmp_fd >= 0)
		close(s.qmp_fd);
	out_file_close(&s.out); /* unless named: a job that did not complete leaves nothing */
	return r;
}
