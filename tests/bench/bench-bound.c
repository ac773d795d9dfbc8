/* SPDX-License-Identifier: MIT */
/*
 * Memory against stalls when the output is slower than the target's writes (bench "bound",
 * issue 19). The image goes into a FIFO that this program reads at RATE MB/s, a slow disk or
 * a slow pipe (`uffsnapd --output - | ssh ...`). One writer thread stores into random pages of
 * SIZE MiB of touched anonymous memory, as fast as it can. A write to a page not yet saved is
 * copied into uffsnapd's write-behind queue; when the queue holds --mem-limit MiB, the write
 * waits for the output. For each bound, on fresh memory: the writer's longest gap between two
 * stores, its stores/s, how many write faults waited for the output and the longest such wait,
 * and uffsnapd's peak memory (VmHWM of it and its children). fork() runs first, its child
 * writing the memory into the same slow reader: its parent never waits for the output but
 * pays in copied pages. Prints one JSON object.
 *
 * usage: bench-bound UFFSNAPD SIZE_MIB thp|nothp DIR RATE_MBPS BOUND_MIB[,BOUND_MIB...]
 */
#include "bench-lib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QUIET_US   1000000
#define READ_CHUNK (1u << 20)

struct reader {
	pthread_t th;
	const char *fifo;
	uint64_t rate; /* bytes per second */
	uint64_t bytes;
};

/* Opens the FIFO (the writer opens the other end) and reads it to its end, paced. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char *buf = malloc(READ_CHUNK);
	int fd = open(r->fifo, O_RDONLY | O_CLOEXEC);
	uint64_t t0 = bench_now_ns();
	ssize_t n;

	while (buf && fd >= 0 && (n = read(fd, buf, READ_CHUNK)) > 0) {
		uint64_t due;

		r->bytes += (uint64_t)n;
		due = t0 + r->bytes * 1000000000ull / r->rate;
		for (uint64_t now = bench_now_ns(); now < due; now = bench_now_ns()) {
			struct timespec ts = {0, (long)(due - now)};

			if (due - now >= 1000000000ull)
				ts = (struct timespec){1, 0};
			nanosleep(&ts, NULL);
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int reader_start(struct reader *r, const char *fifo, uint64_t rate)
{
	*r = (struct reader){.fifo = fifo, .rate = rate};
	return -pthread_create(&r->th, NULL, reader_main, r);
}

struct bound_ctx {
	const char *uffsnapd, *fifo;
	size_t size;
	bool thp;
	uint64_t rate;
	struct bench_mem mem;
	struct bench_writers ws;
};

static int fresh(struct bound_ctx *c)
{
	return bench_fresh(&c->mem, c->size, c->thp, &c->ws, 1, BENCH_RANDOM, 0);
}

static void do_fork(struct bound_ctx *c, FILE *out)
{
	struct bench_phase quiet, ph;
	struct reader rd;
	uint64_t call_ns = 0, t0;
	pid_t pid = -1;
	int st = 0;

	usleep(QUIET_US);
	bench_phase_next(&c->ws, &quiet);
	t0 = bench_now_ns();
	if (reader_start(&rd, c->fifo, c->rate) == 0) {
		pid = bench_fork_snapshot(&c->mem, c->fifo, &call_ns);
		if (pid > 0)
			waitpid(pid, &st, 0);
		pthread_join(rd.th, NULL);
	}
	bench_phase_next(&c->ws, &ph);
	bench_phase_json(out, "quiet", &quiet);
	fprintf(out,
		",\"fork\":{\"call_ns\":%" PRIu64 ",\"wall_ns\":%" PRIu64
		",\"ok\":%s,\"bytes\":%" PRIu64 ",",
		call_ns, bench_now_ns() - t0, pid > 0 && st == 0 ? "true" : "false", rd.bytes);
	bench_phase_json(out, "writers", &ph);
	fputc('}', out);
}

/* One snapshot with --mem-limit bound, as JSON member "b<bound>". */
static void do_uffsnapd(struct bound_ctx *c, FILE *out, unsigned bound)
{
	char pid[16], limit[16];
	char *argv[] = {(char *)c->uffsnapd, "--pid", pid,	"--output", (char *)c->fifo,
			"--mem-limit",	     limit,   "--json", "--quiet",  NULL};
	struct bench_phase ph;
	struct bench_run run = {0};
	struct reader rd;
	int r = -1;

	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(limit, sizeof(limit), "%u", bound);
	if (reader_start(&rd, c->fifo, c->rate) == 0) {
		r = bench_run(argv, &run);
		pthread_join(rd.th, NULL);
	}
	bench_phase_next(&c->ws, &ph);
	fprintf(out,
		",\"b%u\":{\"bound_mib\":%u,\"ok\":%s,\"wall_ns\":%" PRIu64 ",\"hwm_kib\":%ld,"
		"\"bytes\":%" PRIu64 ",",
		bound, bound, r ? "false" : "true", run.wall_ns, run.hwm_kib, rd.bytes);
	bench_phase_json(out, "writers", &ph);
	fprintf(out, ",\"stats\":%s}", run.out[0] == '{' ? run.out : "null");
}

int main(int argc, char **argv)
{
	struct bound_ctx c = {0};
	unsigned bounds[16], nb = 0;
	char fifo[4096], *list, *tok, *save = NULL, *buf;
	size_t len;
	FILE *out;

	if (argc != 7) {
		fprintf(stderr,
			"usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR RATE_MBPS "
			"BOUND_MIB[,BOUND_MIB...]\n",
			argv[0]);
		return 2;
	}
	c.uffsnapd = argv[1];
	c.size = (size_t)atol(argv[2]) << 20;
	c.thp = !strcmp(argv[3], "thp");
	c.rate = (uint64_t)atol(argv[5]) * 1000000;
	list = strdup(argv[6]);
	for (tok = strtok_r(list, ",", &save); tok && nb < 16; tok = strtok_r(NULL, ",", &save))
		bounds[nb++] = (unsigned)atoi(tok);
	if (!c.size || !c.rate || !nb)
		return fprintf(stderr, "bench-bound: bad size, rate or bounds\n"), 2;
	snprintf(fifo, sizeof(fifo), "%s/bench-bound-%d.fifo", argv[4], getpid());
	c.fifo = fifo;
	unlink(fifo);
	if (mkfifo(fifo, 0600) < 0)
		return perror("mkfifo"), 1;
	if (fresh(&c) < 0)
		return unlink(fifo), perror("populate"), 1;
	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"bound\",\"size_mib\":%zu,\"thp\":%s,\"rate_mbps\":%s,",
		c.size >> 20, c.thp ? "true" : "false", argv[5]);
	do_fork(&c, out);
	bench_writers_stop(&c.ws);
	for (unsigned i = 0; i < nb; i++) {
		if (fresh(&c) < 0)
			return unlink(fifo), perror("populate"), 1;
		do_uffsnapd(&c, out, bounds[i]);
		bench_writers_stop(&c.ws);
	}
	unlink(fifo);
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	free(list);
	return 0;
}
