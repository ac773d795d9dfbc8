/* SPDX-License-Identifier: MIT */
/*
 * Image size vs the target's non-zero resident memory. The resident pages of every readable
 * VMA are found in /proc/PID/pagemap (present or swapped) and read with process_vm_readv();
 * those with a non-zero byte are the memory an image has to carry, except those of read-only
 * file mappings (program text: the image records the file, not the pages), counted apart.
 *
 *   bench-size UFFSNAPD SIZE_MIB thp|nothp DIR
 *       the benchmark is the target: SIZE MiB where, of every 4 pages, 2 hold data, 1 was
 *       written and then zeroed (resident, all zero) and 1 was never touched; it is scanned,
 *       snapshotted to DIR/bench-size.img, and the image's size reported beside the scan
 *   bench-size --pid PID
 *       only the scan of another process (the Redis benchmark snapshots it itself)
 * Prints one JSON object.
 */
#include "bench-lib.h"
#include "test-proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SCAN_PAGES 512 /* pagemap entries and pages read at once: 2 MiB */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)

struct scan {
	pid_t pid;
	int pagemap;
	uint64_t resident, nonzero, unreadable;
	uint64_t nonzero_file_ro; /* in read-only file mappings: the image holds a reference */
	bool file_ro;
	uint8_t buf[SCAN_PAGES * BENCH_PAGE];
};

static bool page_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < BENCH_PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* One run of up to SCAN_PAGES pages starting at addr. */
static void scan_run(struct scan *s, uint64_t addr, size_t n)
{
	uint64_t pm[SCAN_PAGES];
	struct iovec l = {s->buf, n * BENCH_PAGE}, r = {(void *)addr, n * BENCH_PAGE};
	ssize_t got;

	if (pread(s->pagemap, pm, n * 8, (off_t)(addr / BENCH_PAGE * 8)) != (ssize_t)(n * 8))
		return;
	got = process_vm_readv(s->pid, &l, 1, &r, 1, 0);
	for (size_t i = 0; i < n; i++) {
		if (!(pm[i] & (PM_PRESENT | PM_SWAPPED)))
			continue;
		s->resident += BENCH_PAGE;
		if (got < (ssize_t)((i + 1) * BENCH_PAGE))
			s->unreadable += BENCH_PAGE;
		else if (!page_zero(s->buf + i * BENCH_PAGE))
			*(s->file_ro ? &s->nonzero_file_ro : &s->nonzero) += BENCH_PAGE;
	}
}

static int scan_process(struct scan *s)
{
	char path[64], line[512], perms[8];
	uint64_t lo, hi;
	FILE *maps;

	s->pagemap = test_proc_open(s->pid, "pagemap", O_RDONLY);
	if (s->pagemap < 0)
		return s->pagemap;
	test_proc_path(path, sizeof(path), s->pid, "maps");
	maps = fopen(path, "re");
	if (!maps) {
		close(s->pagemap);
		return -errno;
	}
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
			continue;
		s->file_ro = perms[1] != 'w' && strchr(line, '/');
		for (uint64_t a = lo; a < hi; a += SCAN_PAGES * BENCH_PAGE) {
			uint64_t n = (hi - a) / BENCH_PAGE;
			scan_run(s, a, n < SCAN_PAGES ? n : SCAN_PAGES);
		}
	}
	fclose(maps);
	close(s->pagemap);
	return 0;
}

static void scan_json(FILE *out, const struct scan *s)
{
	fprintf(out,
		"\"resident_bytes\":%" PRIu64 ",\"nonzero_resident_bytes\":%" PRIu64
		",\"nonzero_file_ro_bytes\":%" PRIu64 ",\"unreadable_bytes\":%" PRIu64,
		s->resident, s->nonzero, s->nonzero_file_ro, s->unreadable);
}

/* Of every 4 pages: 2 data, 1 written then zeroed, 1 never touched. */
static int mixed_memory(struct bench_mem *m, size_t size, bool thp)
{
	m->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->p == MAP_FAILED)
		return -errno;
	m->size = size;
	madvise(m->p, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t pg = 0; pg < size / BENCH_PAGE; pg++) {
		uint8_t *p = m->p + pg * BENCH_PAGE;

		if (pg % 4 == 3)
			continue;
		for (size_t i = 0; i < BENCH_PAGE; i += 64)
			p[i] = (uint8_t)((pg + i) * 2654435761u >> 24) | 1;
		if (pg % 4 == 2)
			memset(p, 0, BENCH_PAGE);
	}
	return 0;
}

static int self_target(char **argv, struct scan *s, FILE *out)
{
	struct bench_mem m = {0};
	struct bench_run run;
	char path[4096], pid[16];
	char *uargv[] = {argv[1],   "--pid",  pid,	 "--output", path,
			 "--force", "--json", "--quiet", NULL};
	struct stat st = {0};
	int r = mixed_memory(&m, (size_t)atol(argv[2]) << 20, !strcmp(argv[3], "thp"));

	if (r < 0)
		return r;
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-size.img", argv[4]);
	s->pid = getpid();
	r = scan_process(s);
	if (r >= 0)
		r = bench_run(uargv, &run);
	stat(path, &st);
	unlink(path);
	fprintf(out, "\"size_mib\":%s,\"thp\":%s,\"ok\":%s,", argv[2],
		strcmp(argv[3], "thp") ? "false" : "true", r < 0 ? "false" : "true");
	scan_json(out, s);
	fprintf(out, ",\"image_bytes\":%jd,\"ratio_image_over_nonzero\":%.4f,\"stats\":%s",
		(intmax_t)st.st_size, s->nonzero ? (double)st.st_size / (double)s->nonzero : 0.0,
		r < 0 || run.out[0] != '{' ? "null" : run.out);
	bench_mem_free(&m);
	return r;
}

int main(int argc, char **argv)
{
	struct scan *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return 1;
	printf("{\"bench\":\"size\",");
	if (argc == 3 && !strcmp(argv[1], "--pid")) {
		s->pid = atoi(argv[2]);
		r = scan_process(s);
		scan_json(stdout, s);
	} else if (argc == 5) {
		r = self_target(argv, s, stdout);
	} else {
		fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR | --pid PID\n", argv[0]);
		return 2;
	}
	printf("}\n");
	free(s);
	return r < 0;
}
