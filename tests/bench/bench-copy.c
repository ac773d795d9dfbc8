/* SPDX-License-Identifier: MIT */
/*
 * Copy throughput: SIZE MiB of touched anonymous memory (an idle target: no writers, so the
 * figure is the background copy alone) is read four ways in the same run:
 *   raw       process_vm_readv() of the whole region into a 4 MiB buffer, the best of two
 *             passes: the kernel's own bandwidth for reading another mm, the ceiling
 *   naive     the simplest copier that also writes what it reads: process_vm_readv() in 1 MiB
 *             chunks, each written with write(2) to DIR/bench-copy-naive.img (issue 19's
 *             baseline for uffsnapd's copy), the best of two passes: on this VM the first
 *             writes into memory the host has not backed yet, several times slower, and
 *             uffsnapd, which runs after it, would write into memory it warmed
 *   file      uffsnapd --output DIR/bench-copy.img --copy-threads 1 (DIR: tmpfs, so no
 *             disk is measured)
 *   file2     the same with --copy-threads 2
 *   receiver  uffsnapd --to 127.0.0.1:PORT, received by uffsnapd --receive into RDIR
 * GB/s = image bytes / uffsnapd's duration_ns (from arming to the verified end). Prints one
 * JSON object.
 *
 * usage: bench-copy UFFSNAPD SIZE_MIB thp|nothp DIR KEYFILE PORT RDIR
 */
#include "bench-lib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RAW_BUF	  (4ul << 20)
#define NAIVE_BUF (1ul << 20)

/* Nanoseconds to read all of m through process_vm_readv(); -errno. */
static int64_t raw_pass(const struct bench_mem *m, uint8_t *buf)
{
	uint64_t t0 = bench_now_ns();

	for (size_t off = 0; off < m->size; off += RAW_BUF) {
		size_t n = m->size - off < RAW_BUF ? m->size - off : RAW_BUF;
		struct iovec l = {buf, n}, r = {m->p + off, n};

		if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != (ssize_t)n)
			return -errno;
	}
	return (int64_t)(bench_now_ns() - t0);
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

static void do_raw(const struct bench_mem *m, FILE *out)
{
	uint8_t *buf = malloc(RAW_BUF);
	int64_t a = buf ? raw_pass(m, buf) : -ENOMEM, b = buf ? raw_pass(m, buf) : -ENOMEM;
	int64_t best = a > 0 && (b <= 0 || a < b) ? a : b;

	free(buf);
	fprintf(out, "\"raw\":{\"ok\":%s,\"ns\":%" PRId64 ",\"gbps\":%.3f}",
		best > 0 ? "true" : "false", best, best > 0 ? gbps(m->size, (uint64_t)best) : 0.0);
}

/* The naive copier into path: process_vm_readv() 1 MiB at a time, write(2) each; ns or -errno. */
static int64_t naive_pass(const struct bench_mem *m, const char *path)
{
	uint8_t *buf = malloc(NAIVE_BUF);
	uint64_t t0 = bench_now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int64_t r = 0;

	for (size_t off = 0; buf && fd >= 0 && r == 0 && off < m->size; off += NAIVE_BUF) {
		size_t n = m->size - off < NAIVE_BUF ? m->size - off : NAIVE_BUF;
		struct iovec l = {buf, n}, rv = {m->p + off, n};

		if (process_vm_readv(getpid(), &l, 1, &rv, 1, 0) != (ssize_t)n ||
		    write(fd, buf, n) != (ssize_t)n)
			r = -errno;
	}
	if (!buf || fd < 0)
		r = -ENOMEM;
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = (int64_t)(bench_now_ns() - t0);
	free(buf);
	unlink(path);
	return r;
}

static void do_naive(const struct bench_mem *m, const char *dir, FILE *out)
{
	char path[4096];
	int64_t ns, again;

	snprintf(path, sizeof(path), "%s/bench-copy-naive.img", dir);
	ns = naive_pass(m, path);
	again = naive_pass(m, path);
	if (again > 0 && (ns <= 0 || again < ns))
		ns = again;
	fprintf(out, ",\"naive\":{\"ok\":%s,\"ns\":%" PRId64 ",\"gbps\":%.3f}",
		ns > 0 ? "true" : "false", ns, ns > 0 ? gbps(m->size, (uint64_t)ns) : 0.0);
}

static void snap_json(FILE *out, const char *name, int r, const struct bench_run *run)
{
	uint64_t bytes = bench_json_u64(run->out, "bytes");
	uint64_t dur = bench_json_u64(run->out, "duration_ns");

	fprintf(out,
		",\"%s\":{\"ok\":%s,\"wall_ns\":%" PRIu64 ",\"gbps\":%.3f,\"wall_gbps\":%.3f,"
		"\"hwm_kib\":%ld,\"stats\":%s",
		name, r ? "false" : "true", run->wall_ns, gbps(bytes, dur),
		gbps(bytes, run->wall_ns), run->hwm_kib, run->out[0] == '{' ? run->out : "null");
}

int main(int argc, char **argv)
{
	struct bench_mem m = {0};
	struct bench_run run;
	char path[4096], pid[16], to[32];
	long rx_hwm = 0;
	pid_t rx;
	char *buf;
	size_t len;
	FILE *out;
	int r;

	if (argc < 8) {
		fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR KEYFILE PORT RDIR\n",
			argv[0]);
		return 2;
	}
	if (bench_mem_populate(&m, (size_t)atol(argv[2]) << 20, !strcmp(argv[3], "thp")) < 0)
		return perror("populate"), 1;
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-copy.img", argv[4]);
	snprintf(to, sizeof(to), "127.0.0.1:%s", argv[6]);
	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"copy\",\"size_mib\":%s,\"thp\":%s,", argv[2],
		strcmp(argv[3], "thp") ? "false" : "true");
	do_raw(&m, out);
	do_naive(&m, argv[4], out);

	static const char *const threads[][2] = {{"file", "1"}, {"file2", "2"}};

	for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
		char *file_argv[] = {
		    argv[1],   "--pid",	 pid,	    "--output",	      path,
		    "--force", "--json", "--quiet", "--copy-threads", (char *)threads[i][1],
		    NULL};

		r = bench_run(file_argv, &run);
		unlink(path);
		snap_json(out, threads[i][0], r, &run);
		fputc('}', out);
	}

	rx = bench_receiver_start(argv[1], atoi(argv[6]), argv[7], argv[5]);
	char *to_argv[] = {argv[1], "--pid", pid,      "--to",	  to,
			   "--key", argv[5], "--json", "--quiet", NULL};
	r = rx > 0 ? bench_run(to_argv, &run) : rx;
	if (rx <= 0)
		memset(&run, 0, sizeof(run));
	snap_json(out, "receiver", r, &run);
	fprintf(out, ",\"image_bytes\":%" PRIu64, bench_dir_bytes(argv[7], ".img"));
	bench_receiver_stop(rx, &rx_hwm);
	bench_dir_clean(argv[7], ".img");
	fprintf(out, ",\"receiver_hwm_kib\":%ld}}\n", rx_hwm);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	bench_mem_free(&m);
	return 0;
}
