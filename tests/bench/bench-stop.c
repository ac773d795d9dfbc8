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
 * usage: bench-stop UFFSNAPD SIZE_MIB thp|nothp DIR [WRITERS [nogcore [TMPFS]]]
 */
#include "bench-lib.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define AFTER_US 1000000
#define QUIET_US 1000000

struct stop_ctx {
	const char *uffsnapd, *dir;
	size_t size;
	bool thp;
	int writers;
	struct bench_mem mem;
	struct bench_writers ws;
};

static int fresh(struct stop_ctx *c)
{
	struct bench_phase warm;
	int r;

	bench_mem_free(&c->mem);
	r = bench_mem_populate(&c->mem, c->size, c->thp);
	if (r < 0)
		return r;
	memset(&c->ws, 0, sizeof(c->ws));
	r = bench_writers_start(&c->ws, &c->mem, c->writers, BENCH_RANDOM);
	usleep(200000);
	bench_phase_next(&c->ws, &warm);
	return r;
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

int main(int argc, char **argv)
{
	struct stop_ctx c = {0};
	const char *tmpfs;
	bool gcore;
	char *buf;
	size_t len;
	FILE *out;

	if (argc < 5) {
		fprintf(stderr,
			"usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR [WRITERS [nogcore [TMPFS]]]\n",
			argv[0]);
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
	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"%s\",\"size_mib\":%zu,\"thp\":%s,\"writers\":%d,",
		gcore ? "stop" : "stall", c.size >> 20, c.thp ? "true" : "false", c.writers);
	if (fresh(&c) < 0)
		return perror("populate"), 1;
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
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	return 0;
}
