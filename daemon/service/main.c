/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd --service: the control socket's event loop (proto/CONTROL.md). Start-up order:
 * take systemd's sockets, open everything that needs privileges (socket, snapshot directory,
 * /dev/userfaultfd, process events), drop privileges, then tell systemd we are ready.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "service/main.h"
#include "sys/args.h"
#include "sys/notify.h"
#include "service/commands.h"
#include "service/job.h"

uint64_t svc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void svc_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uffsnapd: %s\n", buf);
}

static void svc_usage(FILE *f)
{
	char cmds[3072];

	ctl_commands_help(svc_commands, cmds, sizeof(cmds));
	fprintf(f,
		"usage: uffsnapd --service [options]\n"
		"\n"
		"Run as a service: take snapshot jobs from clients on a Unix control socket\n"
		"(JSON lines, protocol in proto/CONTROL.md). A client may snapshot only a process\n"
		"it could ptrace itself. Stops on SIGTERM, SIGINT, SIGHUP or SIGQUIT, cancelling\n"
		"running jobs (each target released, each image left incomplete).\n"
		"\n"
		"  --control PATH       the socket (default " SVC_DEFAULT_CONTROL "; its\n"
		"                       directory is created 0750; the socket is mode 0660, group\n"
		"                       '" SVC_SOCKET_GROUP
		"' if it exists); ignored when systemd\n"
		"                       passes a socket\n"
		"  --snapshot-dir DIR   where 'file' outputs are created (default\n"
		"                       " SVC_DEFAULT_SNAPDIR ")\n"
		"  --user NAME          run as NAME after set-up, keeping only the capabilities a\n"
		"                       snapshot needs\n"
		"  --key FILE           the stream key (64+ hex digits, mode 0600), read once at\n"
		"                       start-up: 'snapshot' with 'to' and 'receive' use it\n"
		"                       (without it they are refused; clients never name a key)\n"
		"  --allow-quit         accept 'quit' from root or the daemon's own user\n"
		"  --max-jobs N         jobs (snapshot and receive) running at once (default 16)\n"
		"  --max-clients N      connected clients (default 64)\n"
		"  --max-user-jobs N    running jobs per uid (default 4), --max-user-clients N\n"
		"                       connections per uid (default 8): root, the daemon's uid\n"
		"                       and group are exempt, and have %d jobs and %d connections\n"
		"                       of the totals to themselves\n"
		"  --idle-timeout S     close a connection that sent no request for S seconds\n"
		"                       after connecting (default 30)\n"
		"  --max-job-mem MIB    the largest 'mem-limit' a snapshot job may ask (default\n"
		"                       %d, at most %d): memory each running job may hold for\n"
		"                       an output that lags\n"
		"  -h, --help           this text\n"
		"\n"
		"Commands on the socket:\n%s",
		SVC_RESERVED_JOBS, SVC_RESERVED_CLIENTS, SVC_DEFAULT_JOB_MEM_MIB,
		SVC_MAX_JOB_MEM_MIB, cmds);
}

/* The largest value of the numeric options (--max-jobs ... --idle-timeout). */
#define SVC_MAX_COUNT 100000

static unsigned *count_opt(struct svc_opts *o, int c)
{
	switch (c) {
	case 'j':
		return &o->max_jobs;
	case 'm':
		return &o->max_clients;
	case 'J':
		return &o->max_user_jobs;
	case 'M':
		return &o->max_user_clients;
	default:
		return &o->idle_timeout_s;
	}
}

static const char *count_name(const struct option *opts, int c)
{
	while (opts->name && opts->val != c)
		opts++;
	return opts->name ? opts->name : "?";
}

static int svc_parse_args(int argc, char **argv, struct svc_opts *o)
{
	static const struct option opts[] = {
	    {"service", no_argument, NULL, 'S'},
	    {"control", required_argument, NULL, 'c'},
	    {"snapshot-dir", required_argument, NULL, 'd'},
	    {"user", required_argument, NULL, 'u'},
	    {"allow-quit", no_argument, NULL, 'q'},
	    {"max-jobs", required_argument, NULL, 'j'},
	    {"max-clients", required_argument, NULL, 'm'},
	    {"max-user-jobs", required_argument, NULL, 'J'},
	    {"max-user-clients", required_argument, NULL, 'M'},
	    {"idle-timeout", required_argument, NULL, 'i'},
	    {"max-job-mem", required_argument, NULL, 'L'},
	    {"key", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*o = (struct svc_opts){.control = SVC_DEFAULT_CONTROL,
			       .snapdir = SVC_DEFAULT_SNAPDIR,
			       .max_jobs = 16,
			       .max_clients = 64,
			       .max_user_jobs = 4,
			       .max_user_clients = 8,
			       .idle_timeout_s = 30,
			       .max_job_mem = (uint64_t)SVC_DEFAULT_JOB_MEM_MIB << 20};
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			break;
		case 'c':
			o->control = optarg;
			break;
		case 'd':
			o->snapdir = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'k':
			o->key_file = optarg;
			break;
		case 'q':
			o->allow_quit = true;
			break;
		case 'j':
		case 'm':
		case 'J':
		case 'M':
		case 'i':
			if (args_parse_uint(optarg, SVC_MAX_COUNT, count_opt(o, c)) < 0)
				return args_usage_error("--%s takes a number from 1 to %d",
							count_name(opts, c), SVC_MAX_COUNT);
			break;
		case 'L': {
			unsigned mib;

			if (args_parse_uint(optarg, SVC_MAX_JOB_MEM_MIB, &mib) < 0)
				return args_usage_error("--max-job-mem takes 1..%d MiB",
							SVC_MAX_JOB_MEM_MIB);
			o->max_job_mem = (uint64_t)mib << 20;
			break;
		}
		case 'h':
			svc_usage(stdout);
			return ARGS_DONE;
		default:
			return args_try_help("--service ");
		}
	}
	if (optind < argc)
		return args_usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

static void handle_signal(struct svc *svc)
{
	struct signalfd_siginfo si;

	if (read(svc->sigfd, &si, sizeof(si)) == sizeof(si)) {
		svc_log("%s: cancelling %u running job(s) and stopping", strsignal(si.ssi_signo),
			svc->running);
		svc->stopping = true;
	}
}

static void dispatch(struct svc *svc, struct epoll_event *ev)
{
	struct svc_client *c;

	switch (ev->data.u64) {
	case SVC_TAG_LISTEN:
		return svc_accept(svc);
	case SVC_TAG_SIGNAL:
		return handle_signal(svc);
	case SVC_TAG_TIMER:
		return svc_jobs_progress(svc);
	case SVC_TAG_JOBS:
		return svc_jobs_reap(svc);
	case SVC_TAG_PROCEV:
		return svc_procev_read(svc);
	}
	c = ev->data.ptr;
	if (c->dead)
		return;
	if (ev->events & EPOLLOUT)
		svc_client_output(c);
	if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		svc_client_input(c, svc_handle_line);
}

static void loop(struct svc *svc)
{
	struct epoll_event evs[32];
	unsigned last_running = ~0u;

	while (!svc->stopping) {
		int n = epoll_wait(svc->epfd, evs, 32, svc_clients_expire(svc));

		if (n < 0 && errno != EINTR) {
			svc_log("epoll_wait failed: %m; stopping");
			break;
		}
		for (int i = 0; i < n; i++)
			dispatch(svc, &evs[i]);
		svc_clients_reap(svc);
		if (svc->running != last_running) {
			last_running = svc->running;
			svc_notify("STATUS=%u job%s running", svc->running,
				   svc->running == 1 ? "" : "s");
		}
	}
}

/* Stopping: cancel, wait, tell the clients (best effort: sockets are non-blocking). */
static void shut_down(struct svc *svc)
{
	svc_notify("STOPPING=1");
	svc_jobs_cancel_all(svc, -ECANCELED);
	svc_jobs_wait_all(svc);
	for (struct svc_client *c = svc->clients; c; c = c->next)
		svc_client_output(c);
}

int svc_main(int argc, char **argv, void (*test_pause)(const char *point))
{
	struct svc svc;
	int r = svc_parse_args(argc, argv, &svc.o);

	if (r)
		return r == ARGS_DONE ? 0 : r;
	svc.o.test_pause = test_pause;
	r = svc_setup(&svc);
	if (r >= 0) {
		svc_log("service ready on %s (snapshot directory %s)", svc.o.control,
			svc.o.snapdir);
		svc_notify("READY=1\nSTATUS=0 jobs running");
		loop(&svc);
		shut_down(&svc);
		svc_log("stopped");
	}
	svc_teardown(&svc);
	return r < 0 ? 1 : 0;
}
