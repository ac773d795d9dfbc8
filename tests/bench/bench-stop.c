/* SPDX-License-Identifier: MIT */
/*
 * Stop time: how long the threads of a process with SIZE MiB of touched anonymous memory
 * cannot run while it is snapshotted by fork() (a BGSAVE-style snapshot: the child writes the
 * memory to a file), by uffsnapd, and by gdb's gcore. Two writer threads store into random
 * pages and measure the longest gap between two of their consecutive stores; a quiet phase
 * first measures that gap with no snapshot (scheduler noise). Each method runs on freshly
 * populated memory (copy-on-write after fork() splits huge pages). Images go to DIR (a disk
 * directory: an 8 GiB image does not belong in tmpfs) and are deleted. Prints one JSON object.
 *
 * The same program measures the write-fault stall (bench "stall"): with one writer, the
 * per-store latency distribution and the throughput during each snapshot and in the second
 * after it. Given TMPFS, it then snapshots once more with the image on that tmpfs directory
 * ("uffsnapd_tmpfs"): a write fault waits for the sink when the write-behind queue is full,
 * and the two runs side by side show how much of the worst store is the disk's.
 *
 * With --threads N (bench "threads", issue 19), idle threads make the process N threads in all
 * (the main thread and the writers count; never fewer than those): fork() copies the address
 * space whatever the number of threads, but every hold of uffsnapd stops each thread with
 * PTRACE_SEIZE + PTRACE_INTERRUPT, so its holds are measured against the fork() call at each N.
 *
 * usage: bench-stop [--threads N] UFFSNAPD SIZE_MIB thp|nothp DIR [WRITERS [nogcore [TMPFS]]]
 */
#include "bench-lib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define AFTER_US 1000000
#define QUIET_US 1000000

/*
 * Threads that do nothing: most threads of a JVM or a database wait on a condition variable
 * (a futex wait) nearly all the time. A ptrace interrupt ends such a wait with -ERESTARTSYS
 * (kernel/futex/waitwake.c: futex_wait()), and the kernel restarts it when the thread is
 * released: the thread never runs its own code. Each keeps glibc's default stack (a mapping of
 * its own), as a real thread does.
 */
struct idle_threads {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	int n;
	pthread_t *th;
};

struct stop_ctx {
	const char *uffsnapd, *dir;
	size_t size;
	bool thp;
	int writers;
	struct idle_threads idle;
	struct bench_mem mem;
	struct bench_writers ws;
};

static void *idle_main(void *arg)
{
	struct idle_threads *it = arg;

	pthread_mutex_lock(&it->lock);
	while (!it->stop)
		pthread_cond_wait(&it->cond, &it->lock);
	pthread_mutex_unlock(&it->lock);
	return NULL;
}

static int idle_start(struct idle_threads *it, int n)
{
	pthread_mutex_init(&it->lock, NULL);
	pthread_cond_init(&it->cond, NULL);
	it->th = calloc(n > 0 ? n : 1, sizeof(*it->th));
	if (!it->th)
		return -ENOMEM;
	for (; it->n < n; it->n++) {
		int r = pthread_create(&it->th[it->n], NULL, idle_main, it);

		if (r)
			return -r;
	}
	return 0;
}

static void idle_stop(struct idle_threads *it)
{
	pthread_mutex_lock(&it->lock);
	it->stop = true;
	pthread_cond_broadcast(&it->cond);
	pthread_mutex_unlock(&it->lock);
	for (int i = 0; i < it->n; i++)
		pthread_join(it->th[i], NULL);
	free(it->th);
}

static int fresh(struct stop_ctx *c)
{
	return bench_fresh(&c->mem, c->size, c->thp, &c->ws, c->writers, BENCH_RANDOM, 0);
}

static void do_fork(struct stop_ctx *c, FILE *out)
{
	struct bench_phase quiet, ph, after;
	char path[4096];
	uint64_t call_ns, t0, child_ns;
	pid_t pid;
	int st = 0;

	usleep(QUIET_US);
	bench_phase_next(&c->ws, &quiet);
	snprintf(path, sizeof(path), "%s/bench-stop-fork.img", c->dir);
	t0 = bench_now_ns();
	pid = bench_fork_snapshot(&c->mem, path, &call_ns);
	if (pid > 0)
		waitpid(pid, &st, 0);
	child_ns = bench_now_ns() - t0;
	bench_phase_next(&c->ws, &ph);
	usleep(AFTER_US);
	bench_phase_next(&c->ws, &after);
	unlink(path);
	bench_phase_json(out, "quiet", &quiet);
	fprintf(out, ",\"fork\":{\"call_ns\":%" PRIu64 ",\"child_ns\":%" PRIu64 ",\"ok\":%s,",
		call_ns, child_ns, pid > 0 && st == 0 ? "true" : "false");
	bench_phase_json(out, "writers", &ph);
	fputc(',', out);
	bench_phase_json(out, "after", &after);
	fputc('}', out);
}

/* One uffsnapd snapshot with the image in dir, as JSON member name. */
static void do_uffsnapd(struct stop_ctx *c, FILE *out, const char *name, const char *dir)
{
	struct bench_phase ph, after;
	struct bench_run run;
	char path[4096], pid[16];
	char *argv[] = {(char *)c->uffsnapd, "--pid",  pid,	  "--output", path,
			"--force",	     "--json", "--quiet", NULL};
	int r;

	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-stop-uffsnap.img", dir);
	r = bench_run(argv, &run);
	bench_phase_next(&c->ws, &ph);
	usleep(AFTER_US);
	bench_phase_next(&c->ws, &after);
	unlink(path);
	fprintf(out, ",\"%s\":{\"ok\":%s,\"wall_ns\":%" PRIu64 ",", name, r ? "false" : "true",
		run.wall_ns);
	bench_phase_json(out, "writers", &ph);
	fputc(',', out);
	bench_phase_json(out, "after", &after);
	fprintf(out, ",\"stats\":%s}", run.out[0] == '{' ? run.out : "null");
}

static void do_gcore(struct stop_ctx *c, FILE *out)
{
	struct bench_phase ph;
	struct bench_run run;
	char prefix[4096], pid[16];
	char *argv[] = {"gcore", "-o", prefix, pid, NULL};
	int r;

	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(prefix, sizeof(prefix), "%s/bench-stop-core", c->dir);
	r = bench_run(argv, &run);
	bench_phase_next(&c->ws, &ph);
	bench_dir_clean(c->dir, "bench-stop-core");
	fprintf(out, ",\"gcore\":{\"ok\":%s,\"wall_ns\":%" PRIu64 ",", r ? "false" : "true",
		run.wall_ns);
	bench_phase_json(out, "writers", &ph);
	fputc('}', out);
}

/* The process's threads, counted by the kernel (/proc/self/status "Threads:"). */
static long threads_now(void)
{
	return bench_proc_kib(getpid(), "status", "Threads"); /* a plain number, not KiB */
}

int main(int argc, char **argv)
{
	const char *prog = argv[0], *tmpfs, *bench;
	struct stop_ctx c = {0};
	int asked = 0, r;
	bool gcore;
	char *buf;
	size_t len;
	FILE *out;

	if (argc > 2 && !strcmp(argv[1], "--threads")) {
		asked = atoi(argv[2]);
		argc -= 2, argv += 2;
	}
	if (argc < 5 || asked < 0) {
		fprintf(stderr,
			"usage: %s [--threads N] UFFSNAPD SIZE_MIB thp|nothp DIR [WRITERS [nogcore "
			"[TMPFS]]]\n",
			prog);
		return 2;
	}
	c.uffsnapd = argv[1];
	c.size = (size_t)atol(argv[2]) << 20;
	c.thp = !strcmp(argv[3], "thp");
	c.dir = argv[4];
	c.writers = argc > 5 ? atoi(argv[5]) : 2;
	if (c.writers < 1 || c.writers > BENCH_MAX_WRITERS)
		c.writers = 2;
	gcore = !(argc > 6 && !strcmp(argv[6], "nogcore"));
	tmpfs = argc > 7 ? argv[7] : NULL;
	bench = asked ? "threads" : gcore ? "stop" : "stall";
	/* The main thread and the writers are threads too: idle ones make up the rest. */
	r = idle_start(&c.idle, asked - 1 - c.writers);
	if (r < 0)
		return fprintf(stderr, "idle threads: %s\n", strerror(-r)), 1;
	if (fresh(&c) < 0)
		return perror("populate"), 1;
	out = open_memstream(&buf, &len);
	fprintf(out,
		"{\"bench\":\"%s\",\"size_mib\":%zu,\"thp\":%s,\"writers\":%d,\"threads\":%ld,",
		bench, c.size >> 20, c.thp ? "true" : "false", c.writers, threads_now());
	if (asked)
		fprintf(out, "\"threads_asked\":%d,", asked);
	do_fork(&c, out);
	bench_writers_stop(&c.ws);
	if (fresh(&c) < 0)
		return perror("populate"), 1;
	do_uffsnapd(&c, out, "uffsnapd", c.dir);
	bench_writers_stop(&c.ws);
	if (tmpfs) {
		if (fresh(&c) < 0)
			return perror("populate"), 1;
		do_uffsnapd(&c, out, "uffsnapd_tmpfs", tmpfs);
		bench_writers_stop(&c.ws);
	}
	if (gcore) {
		if (fresh(&c) < 0)
			return perror("populate"), 1;
		do_gcore(&c, out);
		bench_writers_stop(&c.ws);
	}
	idle_stop(&c.idle);
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	return 0;
}
