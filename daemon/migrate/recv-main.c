/* SPDX-License-Identifier: MIT */
/*
 * Migration receiver mode: `uffsnapd --receive --listen ADDR:PORT --key FILE --qemu DEST_QMP`.
 * Parses the command line, opens the destination QEMU and the listening socket, runs one
 * migration (migrate/recv.c) and says how it ended.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "migrate/main.h"
#include "migrate/recv.h"
#include "stream/addr.h"
#include "stream/main.h"
#include "sys/args.h"

struct mrecv_cli {
	struct recv_common rc;
	const char *qemu;
	bool json;
	struct mrecv_opts o;
};

/* The options, their help, in one table: --help is generated from it. */
static const struct args_opt mrecv_opt_table[] = {
    {{"receive", no_argument, NULL, 'R'}, NULL, "receiver mode"},
    {{"qemu", required_argument, NULL, 'Q'},
     "SOCKET",
     "the destination QEMU's QMP socket: a migration receiver (this text)"},
    {{"listen", required_argument, NULL, 'l'},
     "ADDR:PORT",
     "where to accept the source ([ADDR]:PORT for IPv6, :PORT for any address)"},
    {{"key", required_argument, NULL, 'k'},
     "FILE",
     "the pre-shared key: >= 64 hex digits, mode 0600, the same file as the source's"},
    {{"incoming", required_argument, NULL, 'I'},
     "HOST:PORT",
     "where the destination QEMU listens for the device state (default: the address the "
     "source reached us on, a port QEMU picks)"},
    {{"resume-timeout", required_argument, NULL, 'r'},
     "SECONDS",
     "a source whose connection dropped must resume within this (default 60)"},
    {{"idle-timeout", required_argument, NULL, 'i'},
     "SECONDS",
     "drop a connection that sends nothing for this long (default 60)"},
    {{"handshake-timeout", required_argument, NULL, 't'},
     "SECONDS",
     "a sender must authenticate within this time (default 10)"},
    {{"json", no_argument, NULL, 'j'}, NULL, "the outcome as one JSON object on stdout"},
    {{"quiet", no_argument, NULL, 'q'}, NULL, "errors only"},
    {{"help", no_argument, NULL, 'h'}, NULL, "this text"},
};

#define NOPTS	  (sizeof(mrecv_opt_table) / sizeof(mrecv_opt_table[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: uffsnapd --receive --qemu SOCKET --listen ADDR:PORT --key FILE "
		   "[options]\n\n"
		   "Receive ONE live migration of a QEMU guest from 'uffsnapd --qemu SOCKET "
		   "--migrate --to\nHOST:PORT --key FILE': its RAM is written into the memory "
		   "backend files of the\ndestination QEMU (started with the guest's "
		   "configuration, memory-backend-file\nshare=on and -incoming defer), whose own "
		   "migration then brings the device state.\n\n");
	args_table_help(f, mrecv_opt_table, NOPTS);
	fprintf(f, "\nExit status: 0 the guest runs here, 1 the migration failed (the source "
		   "runs on), 2 usage error.\n");
}

static int parse_opt(void *ctx, int o)
{
	struct mrecv_cli *c = ctx;
	int k = recv_common_opt(&c->rc, o);

	if (k <= 0)
		return k;
	switch (o) {
	case 'h':
		usage(stdout);
		return ARGS_DONE;
	case 'R':
		return 0;
	case 'Q':
		c->qemu = optarg;
		return 0;
	case 'I':
		c->o.incoming = optarg;
		return 0;
	case 'j':
		c->json = true;
		return 0;
	}
	return -EINVAL;
}

static int parse(int argc, char **argv, struct mrecv_cli *c)
{
	char msg[160];
	int r = args_table_parse(argc, argv, mrecv_opt_table, NOPTS, parse_opt, c,
				 "--receive --qemu SOCKET ");

	if (r)
		return r;
	if (!c->rc.listen || !c->rc.key_file || !c->qemu)
		return args_usage_error("--receive --qemu needs --listen and --key (see "
					"--receive --qemu SOCKET --help)");
	if (stream_addr_check(c->rc.listen, msg, sizeof(msg)) < 0)
		return args_usage_error("--listen %s", msg);
	if (c->o.incoming && stream_addr_check(c->o.incoming, msg, sizeof(msg)) < 0)
		return args_usage_error("--incoming %s", msg);
	return 0;
}

static void print_log(void *ctx, const char *msg)
{
	const struct mrecv_cli *c = ctx;
	struct timespec ts;
	struct tm tm;
	char when[32];

	if (c->rc.quiet)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "%s uffsnapd: %s\n", when, msg);
}

/* The guest's downtime: the source's stop (its image says when) to the RESUME here. */
static int64_t downtime_ns(const struct mrecv_stats *st)
{
	return st->stopped_realtime_ns && st->resumed_realtime_ns
		   ? st->resumed_realtime_ns - st->stopped_realtime_ns
		   : -1;
}

static void report(const struct mrecv_cli *c, const struct mrecv_stats *st, int k, const char *msg)
{
	if (c->json) {
		json_t *j = json_pack(
		    "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "ok", k >= 0,
		    "bytes", (json_int_t)st->bytes, "pages_written", (json_int_t)st->pages_written,
		    "pages_zeroed", (json_int_t)st->pages_zeroed, "reconnects",
		    (json_int_t)st->reconnects, "elapsed_ns", (json_int_t)st->elapsed_ns,
		    "stopped_realtime_ns", (json_int_t)st->stopped_realtime_ns,
		    "resumed_realtime_ns", (json_int_t)st->resumed_realtime_ns, "downtime_ns",
		    (json_int_t)downtime_ns(st), "uri", st->uri, "sender", st->sender);

		if (j && k < 0)
			json_object_set_new(j, "error", json_string(msg));
		if (j)
			json_dumpf(j, stdout, JSON_COMPACT), fputc('\n', stdout);
		json_decref(j);
	} else if (k >= 0 && !c->rc.quiet) {
		printf("uffsnapd: the guest runs here, migrated from '%s'\n"
		       "  downtime           %.3f ms (source stopped -> running here, by the two "
		       "hosts' clocks)\n"
		       "  stream             %.1f MiB, %" PRIu64 " pages written (%" PRIu64
		       " zero), %" PRIu64 " reconnects, %.3f s\n",
		       st->sender, downtime_ns(st) / 1e6, st->bytes / 1048576.0, st->pages_written,
		       st->pages_zeroed, st->reconnects, st->elapsed_ns / 1e9);
	}
	if (k < 0)
		fprintf(stderr, "uffsnapd: the migration failed: %s\n", msg);
}

int migrate_recv_main(int argc, char **argv)
{
	struct mrecv_cli c = {.rc = RECV_COMMON_DEFAULTS};
	struct stream_key key = {0};
	struct mrecv_stats st = {0};
	struct mdest *d = NULL;
	char msg[512] = "", where[80];
	int lfd = -EBADF, sfd = -EBADF, k = parse(argc, argv, &c);

	if (k)
		return k == ARGS_DONE ? 0 : k;
	setvbuf(stderr, NULL, _IOLBF, 0);
	k = stream_key_load(c.rc.key_file, &key, msg, sizeof(msg));
	if (k >= 0)
		k = mdest_open(c.qemu, &d, msg, sizeof(msg));
	if (k >= 0 && (lfd = k = stream_listen(c.rc.listen, msg, sizeof(msg))) >= 0)
		k = sfd = recv_stop_signalfd();
	if (k >= 0) {
		stream_sockname(lfd, where, sizeof(where));
		print_log(&c, "waiting for the source");
		fprintf(stderr, "uffsnapd: migration receiver on %s for QEMU at %s\n", where,
			c.qemu);
		c.o.resume_timeout_s = c.rc.resume_timeout_s;
		c.o.idle_timeout_s = c.rc.idle_timeout_s;
		c.o.handshake_timeout_s = c.rc.handshake_timeout_s;
		c.o.listen_fd = lfd;
		c.o.stop_fd = sfd;
		c.o.key = &key;
		c.o.log = print_log;
		c.o.log_ctx = &c;
		k = mrecv_run(&c.o, d, &st, msg, sizeof(msg));
	}
	report(&c, &st, k, msg);
	stream_key_wipe(&key);
	mdest_free(d);
	if (lfd >= 0)
		close(lfd);
	if (sfd >= 0)
		close(sfd);
	return k < 0 ? 1 : 0;
}
