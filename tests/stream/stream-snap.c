/* SPDX-License-Identifier: MIT */
/*
 * Test driver: what `uffsnapd --pid PID --to HOST:PORT --key FILE` does once wired, i.e. one
 * snapshot_take() into stream_sink_new()'s sink. Prints the sink's counters as progress lines
 * ("stream accepted=... sent=... ...") on stdout and a final line; exit 0 when the receiver
 * verified the image, 1 when the snapshot or the stream failed, 2 usage.
 *
 * usage: stream-snap --pid PID --to HOST:PORT --key FILE [--mem-limit MIB] [--spool DIR]
 *                    [--resume-timeout S] [--liveness S] [--name NAME]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

#include "snapshot.h"
#include "stream-sink.h"

struct drv {
	struct img_sink *sink;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void print_counters(struct img_sink *s, const char *what)
{
	struct stream_counters c;

	stream_sink_counters(s, &c);
	printf("%s accepted=%" PRIu64 " sent=%" PRIu64 " resent=%" PRIu64 " acked=%" PRIu64
	       " spooled=%" PRIu64 " mem_used=%" PRIu64 " mem_peak=%" PRIu64 " reconnects=%" PRIu64
	       " complete=%d elapsed_ms=%" PRIu64 "\n",
	       what, c.accepted, c.sent, c.resent, c.acked, c.spooled, c.mem_used, c.mem_peak,
	       c.reconnects, c.complete, c.elapsed_ns / 1000000);
	fflush(stdout);
}

/* Counters every 200 ms, also while flush() waits for the receiver after the snapshot. */
static void *printer(void *arg)
{
	struct drv *d = arg;
	struct timespec ts;

	pthread_mutex_lock(&d->lock);
	while (!d->done) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&d->cond, &d->lock, &ts);
		if (!d->done)
			print_counters(d->sink, "stream");
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"pid", required_argument, NULL, 'p'},
	    {"to", required_argument, NULL, 't'},
	    {"key", required_argument, NULL, 'k'},
	    {"mem-limit", required_argument, NULL, 'm'},
	    {"spool", required_argument, NULL, 's'},
	    {"resume-timeout", required_argument, NULL, 'r'},
	    {"liveness", required_argument, NULL, 'l'},
	    {"name", required_argument, NULL, 'n'},
	    {0},
	};
	struct stream_opts so = {0};
	struct snap_opts o = {.devuffd_fd = -1};
	struct snap_stats st = {0};
	struct snap_error err = {{0}};
	struct stream_error serr = {{0}};
	struct drv d = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	pthread_t th;
	const char *to = NULL, *key = NULL;
	pid_t pid = 0;
	int c, r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = atoi(optarg);
			break;
		case 't':
			to = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			so.mem_limit = strtoull(optarg, NULL, 10) << 20;
			break;
		case 's':
			so.spool_dir = optarg;
			break;
		case 'r':
			so.resume_timeout_s = atoi(optarg);
			break;
		case 'l':
			so.liveness_timeout_s = atoi(optarg);
			break;
		case 'n':
			so.name = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!pid || !to || !key)
		return fprintf(stderr, "usage: stream-snap --pid PID --to HOST:PORT --key FILE\n"),
		       2;
	signal(SIGPIPE, SIG_IGN);
	r = stream_sink_new(to, key, &so, &d.sink, &serr);
	if (r < 0) {
		fprintf(stderr, "stream-snap: %s\n", serr.msg[0] ? serr.msg : strerror(-r));
		return 1;
	}
	pthread_create(&th, NULL, printer, &d);
	r = snapshot_take(pid, &o, d.sink, &st, &err);
	pthread_mutex_lock(&d.lock);
	d.done = true;
	pthread_cond_signal(&d.cond);
	pthread_mutex_unlock(&d.lock);
	pthread_join(th, NULL);
	print_counters(d.sink, "final");
	if (r < 0) {
		stream_sink_error(d.sink, &serr);
		fprintf(stderr, "stream-snap: %s%s%s\n", err.msg[0] ? err.msg : strerror(-r),
			serr.msg[0] ? ": " : "", serr.msg);
	}
	img_sink_free(d.sink);
	return r < 0 ? 1 : 0;
}
