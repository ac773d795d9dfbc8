/* SPDX-License-Identifier: MIT */
/*
 * Core files: how long a process with SIZE MiB of touched anonymous memory cannot run while
 * `uffsnapd --core` writes its ELF core, beside gdb's gcore of the same memory in the same
 * run. As in bench-stop, two writer threads store into random pages and the figure is the
 * longest gap between two of their consecutive stores (the process is its own target), with a
 * quiet phase first for the scheduler's noise; uffsnapd's own hold comes from its summary.
 * Cores go to DIR (a disk directory) and are deleted. Prints one JSON object.
 *
 * usage: bench-core UFFSNAPD SIZE_MIB thp|nothp DIR
 */
#include "bench-lib.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUIET_US 1000000

/* Runs argv while the writers run; the phase covers exactly the tool's run. */
static void measure(FILE *out, const char *name, char *const argv[], struct bench_writers *ws)
{
	struct bench_phase quiet, ph;
	struct bench_run run;
	int r;

	usleep(QUIET_US);
	bench_phase_next(ws, &quiet);
	r = bench_run(argv, &run);
	bench_phase_next(ws, &ph);
	fprintf(out, ",\"%s\":{\"ok\":%s,\"wall_ns\":%" PRIu64 ",", name, r ? "false" : "true",
		run.wall_ns);
	bench_phase_json(out, "quiet", &quiet);
	fputc(',', out);
	bench_phase_json(out, "writers", &ph);
	fprintf(out, ",\"stats\":%s}", run.out[0] == '{' ? run.out : "null");
}

int main(int argc, char **argv)
{
	struct bench_mem mem = {0};
	struct bench_writers ws;
	char path[4096], prefix[4096], pid[16];
	size_t size, len;
	char *buf;
	bool thp;
	FILE *out;

	if (argc < 5)
		return fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR\n", argv[0]), 2;
	size = (size_t)atol(argv[2]) << 20;
	thp = !strcmp(argv[3], "thp");
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-core-uffsnap.core", argv[4]);
	snprintf(prefix, sizeof(prefix), "%s/bench-core-gcore", argv[4]);
	char *ufs[] = {argv[1], "--pid", pid, "--core", path, "--force", "--json", "--quiet", NULL};
	char *gc[] = {"gcore", "-o", prefix, pid, NULL};

	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"core\",\"size_mib\":%zu,\"thp\":%s", size >> 20,
		thp ? "true" : "false");
	if (bench_fresh(&mem, size, thp, &ws, 2, BENCH_RANDOM, 0) < 0)
		return perror("populate"), 1;
	measure(out, "uffsnapd_core", ufs, &ws);
	bench_writers_stop(&ws);
	unlink(path);
	if (bench_fresh(&mem, size, thp, &ws, 2, BENCH_RANDOM, 0) < 0)
		return perror("populate"), 1;
	measure(out, "gcore", gc, &ws);
	bench_writers_stop(&ws);
	bench_dir_clean(argv[4], "bench-core-gcore");
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	return 0;
}
