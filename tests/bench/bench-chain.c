/* SPDX-License-Identifier: MIT */
/*
 * Incremental chains (issue 17): how big is an increment against the memory the target
 * actually dirtied, and against a full image? The benchmark process is the target: SIZE MiB
 * of touched anonymous memory. uffsnapd --incremental takes a chain of images of it, one
 * every EVERY seconds. After each image is complete (its --json line read), the benchmark
 * stores one byte into each of a known number of distinct random pages (a fraction of its
 * memory: 0.1%, 1%, 10%, 50%; SIZE_MIB a power of two), at once, then waits: the next image holds those pages and
 * nothing else of the target's memory but what the benchmark's own stack, heap and stdio
 * touch meanwhile. An increment "raced" when those stores may have still been running at the
 * next image's start (then the figures of that image are left out of the medians: never
 * seen here with EVERY well above the full image's time).
 *
 * Prints one JSON object: the full image's size and time; per fraction, the bytes dirtied,
 * the increment's file size and copied bytes, their ratio to the bytes dirtied, its size
 * against the full image's, and how long the target was held for it.
 *
 * usage: bench-chain UFFSNAPD SIZE_MIB DIR EVERY_S
 */
#include "bench-lib.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const double fractions[] = {0.001, 0.01, 0.1, 0.5};
#define NFRAC (sizeof(fractions) / sizeof(fractions[0]))

struct image {
	char path[4096];
	uint64_t file_bytes, bytes, held_ns, duration_ns;
	bool ok;
};

/* Parses one --json line of uffsnapd --incremental. */
static int parse_image(const char *line, struct image *im)
{
	const char *p = strstr(line, "\"image\":\"");
	struct stat st;
	size_t n;

	if (!p)
		return -EBADMSG;
	p += strlen("\"image\":\"");
	n = strcspn(p, "\"");
	if (n >= sizeof(im->path))
		return -ENAMETOOLONG;
	memcpy(im->path, p, n);
	im->path[n] = 0;
	im->ok = strstr(line, "\"ok\":true") != NULL;
	im->bytes = bench_json_u64(line, "bytes"); /* the first: the image's, not a round's */
	im->held_ns = bench_json_u64(line, "held_ns");
	im->duration_ns = bench_json_u64(line, "duration_ns");
	im->file_bytes = stat(im->path, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/*
 * Stores into n distinct pages of m, scattered: page (k * a + b) mod pages for k < n, a odd
 * and pages a power of two, so distinct. No memory of its own: a table of page numbers would
 * itself be dirty memory in the next increment.
 */
static void dirty(struct bench_mem *m, size_t n, uint64_t b)
{
	size_t pages = m->size / BENCH_PAGE;
	const uint64_t a = 0x9e3779b97f4a7c15ull; /* odd */

	for (size_t k = 0; k < n && k < pages; k++) {
		uint64_t page = (k * a + b) & (pages - 1);

		m->p[page * BENCH_PAGE + (k * 64) % BENCH_PAGE] ^= 0x5a;
	}
}

int main(int argc, char **argv)
{
	struct bench_mem mem = {0};
	struct image im[NFRAC + 1] = {0};
	uint64_t dirtied[NFRAC] = {0}, done_at[NFRAC] = {0}, t0;
	char dir[4096], pid[16], count[8], every[16], *line = NULL;
	size_t cap = 0, size, got = 0;
	unsigned every_s;
	bool thp = false;
	FILE *in;
	int fd = -1, st = 0;
	pid_t child;

	if (argc != 5)
		return fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB DIR EVERY_S\n", argv[0]), 2;
	size = (size_t)atol(argv[2]) << 20;
	if (!size || (size & (size - 1)))
		return fprintf(stderr, "%s: SIZE_MIB must be a power of two\n", argv[0]), 2;
	every_s = (unsigned)atoi(argv[4]);
	snprintf(dir, sizeof(dir), "%s/bench-chain.%d", argv[3], getpid());
	if (mkdir(dir, 0700) < 0)
		return perror(dir), 1;
	if (bench_mem_populate(&mem, size, thp) < 0)
		return perror("populate"), 1;
	srandom(1);
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(count, sizeof(count), "%zu", NFRAC + 1);
	snprintf(every, sizeof(every), "%u", every_s);
	{
		char *av[] = {argv[1],	"--pid",   pid, "--incremental", "--every", every,
			      "--count", count,   "--dir", dir,		  "--json",  NULL};

		t0 = bench_now_ns();
		child = bench_spawn(av, &fd);
	}
	if (child < 0 || !(in = fdopen(fd, "r")))
		return perror("uffsnapd"), 1;
	while (got <= NFRAC && getline(&line, &cap, in) > 0) {
		if (line[0] != '{' || parse_image(line, &im[got]) < 0)
			continue;
		if (got < NFRAC) {
			size_t n = (size_t)(fractions[got] * (double)(size / BENCH_PAGE));

			dirty(&mem, n, (uint64_t)random());
			dirtied[got] = n * BENCH_PAGE;
			done_at[got] = bench_now_ns() - t0;
		}
		got++;
	}
	fclose(in);
	waitpid(child, &st, 0);
	free(line);
	printf("{\"bench\":\"chain\",\"size_mib\":%zu,\"every_s\":%u,\"ok\":%s,\"full\":{"
	       "\"file_bytes\":%" PRIu64 ",\"held_ns\":%" PRIu64 ",\"duration_ns\":%" PRIu64 "}",
	       size >> 20, every_s, got == NFRAC + 1 && WIFEXITED(st) && !WEXITSTATUS(st) ?
	       "true" : "false", im[0].file_bytes, im[0].held_ns, im[0].duration_ns);
	for (size_t i = 0; i < NFRAC && i + 1 < got; i++) {
		const struct image *x = &im[i + 1];
		/* image i+1 starts at t0 + (i+1) * every, or as soon as image i ended if later */
		bool raced = done_at[i] + 100000000ull > (uint64_t)(i + 1) * every_s * 1000000000ull;

		printf(",\"inc_%gpct\":{\"fraction\":%g,\"ok\":%s,\"raced\":%s,"
		       "\"dirtied_bytes\":%" PRIu64 ",\"dirty_rate_bps\":%" PRIu64 ","
		       "\"file_bytes\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"held_ns\":%" PRIu64 ","
		       "\"duration_ns\":%" PRIu64 "%s",
		       fractions[i] * 100, fractions[i], x->ok ? "true" : "false",
		       raced ? "true" : "false", dirtied[i], dirtied[i] / every_s, x->file_bytes,
		       x->bytes, x->held_ns, x->duration_ns, raced ? "}" : "");
		if (!raced)
			printf(",\"file_per_dirtied\":%.4f,\"bytes_per_dirtied\":%.4f,"
			       "\"file_per_full\":%.4f}",
			       (double)x->file_bytes / (double)dirtied[i],
			       (double)x->bytes / (double)dirtied[i],
			       (double)x->file_bytes / (double)(im[0].file_bytes ?: 1));
	}
	printf("}\n");
	if (!getenv("BENCH_KEEP")) {
		bench_dir_clean(dir, ".img");
		rmdir(dir);
	}
	bench_mem_free(&mem);
	return 0;
}
