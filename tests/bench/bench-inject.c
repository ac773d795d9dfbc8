/* SPDX-License-Identifier: MIT */
/*
 * The injected-register window: while target_uffd_create() runs syscalls inside a held
 * target, one of its threads holds registers that are not its own; if the tracer dies then,
 * the thread runs on with them and the target crashes. This measures, over RUNS runs against
 * a target of BUSY threads spinning in user space (plus its main thread blocked in read()):
 *   span:   from the first injected syscall's start to the last one's end (registers restored),
 *   window: the sum of the injected syscalls' own times (the thread holds injected registers),
 *   create: the whole target_uffd_create() call,
 * and the number of injected syscalls. Prints one JSON object; times in microseconds.
 *
 * usage: bench-inject [RUNS [BUSY [poll]]]   ("poll": leave SIGCHLD unblocked, so that the
 * waits for the target poll instead of sleeping until the ptrace stop's SIGCHLD)
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target/attach.h"
#include "target/uffd.h"

#define MAX_BUSY 64

struct timing {
	uint64_t start, first, last, window, begin_step;
	unsigned int nremote;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int on_step(void *arg, const struct target_uffd_step *s)
{
	struct timing *tm = arg;
	uint64_t t = now_ns();

	if (!s->remote)
		return 0;
	if (s->phase == TARGET_UFFD_BEFORE) {
		tm->begin_step = t;
		if (!tm->first)
			tm->first = t;
		return 0;
	}
	tm->window += t - tm->begin_step;
	tm->last = t;
	tm->nremote++;
	return 0;
}

static void *spin(void *arg)
{
	volatile uint64_t *x = arg;

	for (;;)
		(*x)++;
	return NULL;
}

static pid_t target_start(int busy, int *ret_pipe)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		static uint64_t counters[MAX_BUSY * 8];
		pthread_t th;
		char c;

		close(p[1]);
		for (int i = 0; i < busy; i++)
			if (pthread_create(&th, NULL, spin, &counters[i * 8]))
				_exit(2);
		while (read(p[0], &c, 1) != 0)
			;
		_exit(0);
	}
	close(p[0]);
	*ret_pipe = p[1];
	return pid;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void print_stats(const char *name, uint64_t *v, int n, const char *sep)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	printf("\"%s\":{\"median_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}%s", name,
	       v[n / 2] / 1e3, v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3, v[n - 1] / 1e3,
	       sep);
}

/* As the holder does (target/holder.c: run_first()): a real-time tracer where allowed. */
static void run_first(void)
{
	struct sched_param sp = {.sched_priority = 1};

	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
		setpriority(PRIO_PROCESS, 0, -20);
}

static int one_run(pid_t pid, int devfd, struct timing *tm)
{
	struct target_uffd_hooks hooks = {.step = on_step, .arg = tm};
	struct target_error err;
	struct target *t = NULL;
	int uffd = -EBADF, r;

	r = target_attach(pid, &t, &err);
	if (r < 0) {
		fprintf(stderr, "attach: %s\n", err.msg);
		return r;
	}
	tm->start = now_ns();
	r = target_uffd_create_hooked(t, devfd, &hooks, &uffd);
	tm->last = tm->last ? tm->last : now_ns();
	if (r == 0)
		close(uffd);
	target_free(t);
	return r;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 200, busy = argc > 2 ? atoi(argv[2]) : 4;
	bool poll = argc > 3 && !strcmp(argv[3], "poll");
	uint64_t *span, *window, *create;
	int devfd, pipefd, status, r = 0;
	unsigned int nremote = 0;
	pid_t pid;

	if (runs < 1 || busy < 0 || busy > MAX_BUSY)
		return fprintf(stderr, "usage: bench-inject [RUNS [BUSY [poll]]]\n"), 2;
	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd < 0)
		return fprintf(stderr, "/dev/userfaultfd: %m\n"), 77;
	if (!poll && target_wait_prepare() < 0)
		return fprintf(stderr, "target_wait_prepare: %m\n"), 1;
	span = calloc((size_t)runs, sizeof(*span));
	window = calloc((size_t)runs, sizeof(*window));
	create = calloc((size_t)runs, sizeof(*create));
	pid = target_start(busy, &pipefd);
	if (!span || !window || !create || pid < 0)
		return fprintf(stderr, "setup: %m\n"), 1;
	run_first();
	usleep(100000); /* let the threads start spinning */
	for (int i = 0; i < runs && r == 0; i++) {
		struct timing tm = {0};

		r = one_run(pid, devfd, &tm);
		span[i] = tm.last - tm.first;
		window[i] = tm.window;
		create[i] = tm.last - tm.start;
		nremote = tm.nremote;
	}
	close(pipefd);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (r < 0)
		return fprintf(stderr, "target_uffd_create: %s\n", strerror(-r)), 1;
	printf("{\"runs\":%d,\"busy_threads\":%d,\"wait\":\"%s\",\"injected_syscalls\":%u,", runs,
	       busy, poll ? "poll" : "sigchld", nremote);
	print_stats("span", span, runs, ",");
	print_stats("window", window, runs, ",");
	print_stats("create", create, runs, "}\n");
	return 0;
}
