/* SPDX-License-Identifier: MIT */
/*
 * Extra memory: the peak memory a snapshot costs while the target rewrites all its memory
 * (one writer sweeping every page in order, forever), sampled every 20 ms:
 *   fork      Pss_Anon of parent + child (smaps_rollup) + the child's page tables (VmPTE),
 *             minus the parent's Pss_Anon before fork(): exactly the copy-on-write copies
 *   uffsnapd  VmHWM of uffsnapd and its holder + any growth of the target's Pss_Anon;
 *             to a file in DIR, and streamed to a receiver on loopback (+ the receiver's
 *             VmHWM; the sender's spool is a file on disk in DIR, its size in the stats)
 * The drop of MemAvailable is reported too; it includes other processes (noise). Each method
 * runs on fresh memory. Prints one JSON object.
 *
 * usage: bench-mem UFFSNAPD SIZE_MIB thp|nothp DIR KEYFILE PORT RDIR
 */
#include "bench-lib.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define POLL_US 20000

struct mem_ctx {
	const char *uffsnapd, *dir, *key, *port, *rdir;
	size_t size;
	bool thp;
	struct bench_mem mem;
	struct bench_writers ws;
	char spool[4096];
};

struct peak {
	long base_avail, avail_drop, extra;
};

static long kib(long v)
{
	return v < 0 ? 0 : v;
}

static void peak_max(long *p, long v)
{
	if (v > *p)
		*p = v;
}

static void sample_avail(struct peak *pk)
{
	peak_max(&pk->avail_drop,
		 pk->base_avail - kib(bench_proc_kib(0, "meminfo", "MemAvailable")));
}

static int fresh(struct mem_ctx *c)
{
	int r;

	bench_mem_free(&c->mem);
	r = bench_mem_populate(&c->mem, c->size, c->thp);
	if (r < 0)
		return r;
	memset(&c->ws, 0, sizeof(c->ws));
	r = bench_writers_start(&c->ws, &c->mem, 1, BENCH_SWEEP);
	usleep(300000);
	return r;
}

static void result_json(FILE *out, const char *name, const struct peak *pk,
			const struct bench_phase *ph, size_t pages)
{
	fprintf(out,
		",\"%s\":{\"extra_kib\":%ld,\"avail_drop_kib\":%ld,"
		"\"ns\":%" PRIu64 ",\"rewrites\":%.2f",
		name, pk->extra, pk->avail_drop, ph->ns, (double)ph->stores / pages);
}

static void do_fork(struct mem_ctx *c, FILE *out)
{
	struct peak pk = {.base_avail = kib(bench_proc_kib(0, "meminfo", "MemAvailable"))};
	struct bench_phase ph;
	long base = kib(bench_proc_kib(getpid(), "smaps_rollup", "Pss_Anon"));
	char path[4096];
	uint64_t call_ns;
	pid_t pid;
	int st = 0;

	snprintf(path, sizeof(path), "%s/bench-mem-fork.img", c->dir);
	bench_phase_next(&c->ws, &ph);
	pid = bench_fork_snapshot(&c->mem, path, &call_ns);
	while (pid > 0 && waitpid(pid, &st, WNOHANG) == 0) {
		long all = kib(bench_proc_kib(getpid(), "smaps_rollup", "Pss_Anon")) +
			   kib(bench_proc_kib(pid, "smaps_rollup", "Pss_Anon")) +
			   kib(bench_proc_kib(pid, "status", "VmPTE"));

		peak_max(&pk.extra, all - base);
		sample_avail(&pk);
		usleep(POLL_US);
	}
	bench_phase_next(&c->ws, &ph);
	unlink(path);
	result_json(out, "fork", &pk, &ph, c->size / BENCH_PAGE);
	fprintf(out, ",\"ok\":%s}", pid > 0 && st == 0 ? "true" : "false");
}

struct watch {
	struct mem_ctx *c;
	struct peak *pk;
	long base, growth;
};

static void sample(void *arg)
{
	struct watch *w = arg;

	peak_max(&w->growth, kib(bench_proc_kib(getpid(), "smaps_rollup", "Pss_Anon")) - w->base);
	sample_avail(w->pk);
}

/* Samples while uffsnapd (pid) runs; its exit and VmHWM through run. */
static int watch_uffsnapd(struct mem_ctx *c, pid_t pid, int fd, struct peak *pk,
			  struct bench_run *run)
{
	struct watch w = {c, pk, kib(bench_proc_kib(getpid(), "smaps_rollup", "Pss_Anon")), 0};
	int r = bench_watch(pid, fd, bench_now_ns(), sample, &w, run);

	pk->extra = run->hwm_kib + w.growth;
	return r;
}

static void do_uffsnapd(struct mem_ctx *c, FILE *out, bool stream)
{
	struct peak pk = {.base_avail = kib(bench_proc_kib(0, "meminfo", "MemAvailable"))};
	struct bench_phase ph;
	struct bench_run run = {0};
	char path[4096], pid[16], to[32];
	char *file_argv[] = {(char *)c->uffsnapd, "--pid",  pid,       "--output", path,
			     "--force",		  "--json", "--quiet", NULL};
	char *to_argv[] = {
	    (char *)c->uffsnapd, "--pid",	pid,	  "--to",   to,	       "--key",
	    (char *)c->key,	 "--spool-dir", c->spool, "--json", "--quiet", NULL};
	long rx_hwm = 0;
	pid_t rx = 0, u;
	int fd = -1, r = -1;

	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(path, sizeof(path), "%s/bench-mem-uffsnap.img", c->dir);
	snprintf(to, sizeof(to), "127.0.0.1:%s", c->port);
	if (stream)
		rx = bench_receiver_start(c->uffsnapd, atoi(c->port), c->rdir, c->key);
	bench_phase_next(&c->ws, &ph);
	u = rx < 0 ? rx : bench_spawn(stream ? to_argv : file_argv, &fd);
	if (u > 0)
		r = watch_uffsnapd(c, u, fd, &pk, &run);
	bench_phase_next(&c->ws, &ph);
	bench_receiver_stop(rx, &rx_hwm);
	pk.extra += kib(rx_hwm);
	unlink(path);
	bench_dir_clean(c->rdir, ".img");
	result_json(out, stream ? "uffsnapd_stream" : "uffsnapd_file", &pk, &ph,
		    c->size / BENCH_PAGE);
	fprintf(out, ",\"ok\":%s,\"hwm_kib\":%ld,\"receiver_hwm_kib\":%ld,\"stats\":%s}",
		r ? "false" : "true", run.hwm_kib, kib(rx_hwm),
		run.out[0] == '{' ? run.out : "null");
}

int main(int argc, char **argv)
{
	struct mem_ctx c = {0};
	char *buf;
	size_t len;
	FILE *out;

	if (argc < 8) {
		fprintf(stderr, "usage: %s UFFSNAPD SIZE_MIB thp|nothp DIR KEYFILE PORT RDIR\n",
			argv[0]);
		return 2;
	}
	c.uffsnapd = argv[1];
	c.size = (size_t)atol(argv[2]) << 20;
	c.thp = !strcmp(argv[3], "thp");
	c.dir = argv[4], c.key = argv[5], c.port = argv[6], c.rdir = argv[7];
	snprintf(c.spool, sizeof(c.spool), "%s/spool", c.dir);
	mkdir(c.spool, 0700);
	out = open_memstream(&buf, &len);
	fprintf(out, "{\"bench\":\"mem\",\"size_mib\":%zu,\"thp\":%s", c.size >> 20,
		c.thp ? "true" : "false");
	for (int i = 0; i < 3; i++) {
		if (fresh(&c) < 0)
			return perror("populate"), 1;
		if (i == 0)
			do_fork(&c, out);
		else
			do_uffsnapd(&c, out, i == 2);
		bench_writers_stop(&c.ws);
	}
	fputs("}\n", out);
	fclose(out);
	fputs(buf, stdout);
	free(buf);
	bench_dir_clean(c.spool, "");
	rmdir(c.spool);
	return 0;
}
