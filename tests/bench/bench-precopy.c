/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy against fork() and against the write-protect snapshot (issue 17): a process with
 * SIZE MiB of touched anonymous memory and one writer storing into random pages at RATE
 * stores per second (paced: a dirty rate, not a CPU hog) is snapshotted by fork() (a
 * BGSAVE-style snapshot: the child writes the memory to a file), by uffsnapd (write
 * protection: a write to a page not yet saved waits for it) and by uffsnapd --precopy (rounds
 * of the dirty log, then one hold). The writer measures how long it was stopped: the longest
 * gap between two of its consecutive stores. Each method runs on freshly populated memory.
 * Images go to DIR and are deleted. Prints one JSON object.
 *
 * usage: bench-precopy UFFSNAPD SIZE_MIB thp|nothp DIR RATE
 */
#include "bench-lib.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define QUIET_US 1000000

struct pc_ctx {
	const char *uffsnapd, *dir;
	size_t size;
	bool thp;
	uint64_t rate;
	struct bench_mem mem;
	struct bench_writers ws;
};

static int fresh(struct pc_ctx *c)
{
	return bench_fresh(&c->mem, c->size, c->thp, &c->ws, 1, BENCH_RANDOM, c->rate);
}

static void do_fork(struct pc_ctx *c, FILE *out)
{
	struct bench_phase quiet, ph;
	char path[4096];
	uint64_t call_ns, t0, child_ns;
	pid_t pid;
	int st = 0;

	usleep(QUIET_US);
	bench_phase_next(&c->ws, &quiet);
	snprintf(path, sizeof(path), "%s/bench-precopy-fork.img", c->dir);
	t0 = bench_now_ns();
	pid = bench_fork_snapshot(&c->mem, path, &call_ns);
	if (pid > 0)
		waitpid(pid, &st, 0);
	child_ns = bench_now_ns() - t0;
	bench_phase_next(&c->ws, &ph);
	unlink(path);
	bench_phase_json(out, "quiet", &quiet);
	fprintf(out, ",\"fork\":{\"call_ns\":%" PRIu64 ",\"child_ns\":%" PRIu64 ",\"ok\":%s,",
		call_ns, child_ns, pid > 0 && st == 0 ? "true" : "false");
	bench_phase_json(out, "writers", &ph);
	fputc('}', out);
}

static void do_uffsnapd(struct pc_ctx *c, FILE *out, const char *name, bool precopy)
{
	struct bench_phase ph;
	struct bench_run run;
	char path[4096], pid[16];
	char *argv[] = {(char *)c->uffsnapd, "--pid", pid, "--output", path, "--force",
			"--json", "--quiet", precopy ? "--precopy" : NULL, NULL};
	int r;

	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-precopy-uffsnap.img", c->dir);
	r = bench_run(argv, &run);
	bench_phase_next(&c->ws, &ph);
	unlink(path);
	fprintf(out, ",\"%s\":{\"ok\":%s,\"wall_ns\":%" PRIu64 ",", name, r ? "false" : "true",
		run.wall_ns);
	bench_phase_json(out, "writers", &ph);
	fprintf(out, ",\"stats\":%s}", run.out[0] == '{' ? run.out : "null");
}

int main(int argc, char **argv)
{
	struct pc_ctx c = {0};
	char *buf;
	size_t len;
	FILE *out;

	if (argc != 6)
		return fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR RATE\n", argv[0]),
		       2;
	c.uffsnapd = argv[1];
	c.size = (size_t)atol(argv[2]) << 20;
	c.thp = !strcmp(argv[3], "thp");
	c.dir = argv[4];
	c.rate = strtoull(argv[5], NULL, 10);
	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"precopy\",\"size_mib\":%zu,\"thp\":%s,\"rate\":%" PRIu64 ",",
		c.size >> 20, c.thp ? "true" : "false", c.rate);
	if (fresh(&c) < 0)
		return perror("populate"), 1;
	do_fork(&c, out);
	bench_writers_stop(&c.ws);
	if (fresh(&c) < 0)
		return perror("populate"), 1;
	do_uffsnapd(&c, out, "uffsnapd", false);
	bench_writers_stop(&c.ws);
	if (fresh(&c) < 0)
		return perror("populate"), 1;
	do_uffsnapd(&c, out, "precopy", true);
	bench_writers_stop(&c.ws);
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	return 0;
}
