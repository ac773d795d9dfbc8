/* SPDX-License-Identifier: MIT */
/*
 * Receiver mode: `uffsnapd --receive --listen ADDR:PORT --dir DIR --key FILE`. Parses the
 * command line, opens what the receiver needs and runs it (stream/recv.c) until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "sys/args.h"
#include "stream/addr.h"
#include "stream/main.h"
#include "stream/recv.h"

struct recv_cli {
	struct recv_common rc;
	const char *dir;
	struct recv_opts o;
};

/* The options, their help, in one table: --help is generated from it. */
static const struct args_opt recv_opt_table[] = {
    {{"receive", no_argument, NULL, 'R'}, NULL, "receiver mode (this text)"},
    {{"listen", required_argument, NULL, 'l'},
     "ADDR:PORT",
     "where to accept senders ([ADDR]:PORT for IPv6, :PORT for any address)"},
    {{"dir", required_argument, NULL, 'd'},
     "DIR",
     "where images go: NAME-SESSION.img.partial, renamed to .img when complete"},
    {{"key", required_argument, NULL, 'k'},
     "FILE",
     "the pre-shared key: >= 64 hex digits, mode 0600, the same file as the senders'"},
    {{"resume-timeout", required_argument, NULL, 'r'},
     "SECONDS",
     "keep an interrupted stream this long for its sender to resume (default 60)"},
    {{"idle-timeout", required_argument, NULL, 'i'},
     "SECONDS",
     "drop a connection that sends nothing for this long (default 60)"},
    {{"handshake-timeout", required_argument, NULL, 't'},
     "SECONDS",
     "a sender must authenticate within this time (default 10)"},
    {{"max-conns", required_argument, NULL, 'm'},
     "N",
     "connections at once (default 64); when full, an unauthenticated one makes room"},
    {{"progress-interval", required_argument, NULL, 'p'},
     "SECONDS",
     "log each stream's progress and throughput this often (default 5)"},
    {{"quiet", no_argument, NULL, 'q'}, NULL, "log warnings only, no progress"},
    {{"help", no_argument, NULL, 'h'}, NULL, "this text"},
};

#define NOPTS (sizeof(recv_opt_table) / sizeof(recv_opt_table[0]))

static void recv_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: uffsnapd --receive --listen ADDR:PORT --dir DIR --key FILE [options]\n\n"
	    "Receive snapshots streamed by 'uffsnapd --pid PID --to HOST:PORT --key FILE'\n"
	    "from any number of senders at once; each is authenticated with the shared key,\n"
	    "checked as it arrives and kept as an image in DIR (proto/STREAM.md).\n"
	    "(With --qemu SOCKET: a migration receiver, see --receive --qemu SOCKET --help.)\n\n");
	args_table_help(f, recv_opt_table, NOPTS);
	fprintf(
	    f, "\nRuns until SIGTERM, SIGINT or SIGHUP; interrupted images stay as .partial (incomplete).\n"
	       "Exit status: 0 stopped by a signal, 1 cannot run, 2 usage error.\n");
}

/* The largest value of the numeric options: a day, in seconds (and as --max-conns). */
#define RECV_MAX_VALUE 86400

int recv_common_opt(struct recv_common *c, int o)
{
	switch (o) {
	case 'l':
		c->listen = optarg;
		return 0;
	case 'k':
		c->key_file = optarg;
		return 0;
	case 'r':
		return args_parse_uint(optarg, RECV_MAX_VALUE, &c->resume_timeout_s);
	case 'i':
		return args_parse_uint(optarg, RECV_MAX_VALUE, &c->idle_timeout_s);
	case 't':
		return args_parse_uint(optarg, RECV_MAX_VALUE, &c->handshake_timeout_s);
	case 'q':
		c->quiet = true;
		return 0;
	}
	return 1;
}

static int recv_parse_opt(void *ctx, int o)
{
	struct recv_cli *c = ctx;
	int k = recv_common_opt(&c->rc, o);

	if (k <= 0)
		return k;
	switch (o) {
	case 'h':
		recv_usage(stdout);
		return ARGS_DONE;
	case 'R':
		return 0;
	case 'd':
		c->dir = optarg;
		return 0;
	case 'm':
		return args_parse_uint(optarg, RECV_MAX_VALUE, &c->o.max_conns);
	case 'p':
		return args_parse_uint(optarg, RECV_MAX_VALUE, &c->o.progress_interval_s);
	}
	return -EINVAL;
}

static int recv_parse(int argc, char **argv, struct recv_cli *c)
{
	char msg[160];
	int r =
	    args_table_parse(argc, argv, recv_opt_table, NOPTS, recv_parse_opt, c, "--receive ");

	if (r)
		return r;
	if (!c->rc.listen || !c->dir || !c->rc.key_file)
		return args_usage_error("--receive needs --listen, --dir and --key "
					"(see --receive --help)");
	if (stream_addr_check(c->rc.listen, msg, sizeof(msg)) < 0)
		return args_usage_error("--listen %s", msg);
	return 0;
}

static void recv_print(void *ctx, enum recv_log_level level, const char *msg)
{
	const struct recv_cli *c = ctx;
	struct timespec ts;
	struct tm tm;
	char when[32];

	if (c->rc.quiet && level == RECV_LOG_INFO)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "%s uffsnapd: %s%s\n", when, level == RECV_LOG_WARN ? "warning: " : "",
		msg);
}

int recv_stop_signalfd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP); /* a closed terminal: stop cleanly too, not die with 129 */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int recv_open(struct recv_cli *c, struct stream_key *key, int *lfd, int *dfd, int *sfd)
{
	char msg[512], where[80];

	if (stream_key_load(c->rc.key_file, key, msg, sizeof(msg)) < 0)
		return fprintf(stderr, "uffsnapd: %s\n", msg), -1;
	*dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd < 0)
		return fprintf(stderr, "uffsnapd: cannot open directory '%s': %m\n", c->dir), -1;
	*lfd = stream_listen(c->rc.listen, msg, sizeof(msg));
	if (*lfd < 0)
		return fprintf(stderr, "uffsnapd: %s\n", msg), -1;
	*sfd = recv_stop_signalfd();
	if (*sfd < 0)
		return fprintf(stderr, "uffsnapd: cannot watch signals: %m\n"), -1;
	stream_sockname(*lfd, where, sizeof(where));
	fprintf(stderr, "uffsnapd: receiving on %s into '%s'\n", where, c->dir);
	return 0;
}

int recv_main(int argc, char **argv)
{
	struct recv_cli c = {.rc = RECV_COMMON_DEFAULTS, .o = {.max_conns = 64}};
	struct stream_key key;
	int lfd = -EBADF, dfd = -EBADF, sfd = -EBADF, r;

	r = recv_parse(argc, argv, &c);
	if (r)
		return r == ARGS_DONE ? 0 : r;
	setvbuf(stderr, NULL, _IOLBF, 0);
	r = recv_open(&c, &key, &lfd, &dfd, &sfd);
	if (r == 0) {
		c.o.resume_timeout_s = c.rc.resume_timeout_s;
		c.o.idle_timeout_s = c.rc.idle_timeout_s;
		c.o.handshake_timeout_s = c.rc.handshake_timeout_s;
		c.o.listen_fd = lfd;
		c.o.dir_fd = dfd;
		c.o.stop_fd = sfd;
		c.o.key = &key;
		c.o.log = recv_print;
		c.o.log_ctx = &c;
		r = recv_run(&c.o);
		if (r < 0)
			fprintf(stderr, "uffsnapd: the receiver failed: %s\n", strerror(-r));
		else
			fprintf(stderr, "uffsnapd: stopped\n");
	}
	stream_key_wipe(&key);
	if (lfd >= 0)
		close(lfd);
	if (dfd >= 0)
		close(dfd);
	if (sfd >= 0)
		close(sfd);
	return r < 0 ? 1 : 0;
}
