/* SPDX-License-Identifier: MIT */
/*
 * Shared parts of the benchmark programs: the benchmark process is itself the target (its
 * memory, its writer threads), so every method (fork(), uffsnapd, gcore) is measured from the
 * inside: the writers time their own stores. Helpers return -errno; the programs print.
 */
#ifndef UFFSNAP_BENCH_LIB_H
#define UFFSNAP_BENCH_LIB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/types.h>

#define BENCH_PAGE	  4096ul
#define BENCH_MAX_WRITERS 4

uint64_t bench_now_ns(void);

/* Log-linear latency histogram: 16 sub-buckets per power of two (about 6% resolution). */
#define BENCH_HIST_BUCKETS 1024
struct bench_hist {
	uint64_t n, max;
	uint64_t b[BENCH_HIST_BUCKETS];
};
void bench_hist_add(struct bench_hist *h, uint64_t v);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
uint64_t bench_hist_pct(const struct bench_hist *h, double q);
/* Prints "p50_ns":..,"p99_ns":..,"p999_ns":..,"max_ns":.. (no braces). */
void bench_hist_json(FILE *f, const struct bench_hist *h);

/* Anonymous memory, every page touched with a non-zero byte. */
struct bench_mem {
	uint8_t *p;
	size_t size;
};
int bench_mem_populate(struct bench_mem *m, size_t size, bool thp);
void bench_mem_free(struct bench_mem *m);

/*
 * Writer threads storing one byte into a page per iteration: random pages, or a sweep over
 * every page in order (a workload that rewrites all its memory). Each writer times every store
 * (histogram) and the longest gap between two consecutive stores (how long it was stopped).
 * Phases: bench_phase_next() ends the running phase and returns its figures.
 */
enum bench_pattern { BENCH_RANDOM, BENCH_SWEEP };
struct bench_slot {
	struct bench_hist hist;
	uint64_t stores, max_gap_ns;
};
struct bench_writer {
	pthread_t th;
	struct bench_writers *ws;
	int idx;
	atomic_int ack;
	struct bench_slot slot[2];
};
struct bench_writers {
	struct bench_mem *mem;
	enum bench_pattern pattern;
	int n;
	uint64_t rate; /* stores per second per writer, paced by spinning; 0: as fast as it can */
	atomic_int stop, phase;
	uint64_t phase_t0, phase_steal0;
	struct bench_writer w[BENCH_MAX_WRITERS];
};
/*
 * steal_ms: CPU time the hypervisor gave the machine's virtual CPUs to others during the
 * phase (/proc/stat "steal", all CPUs, 10 ms resolution). On this project's VM the host's
 * disk I/O for the guest is billed against its CPUs: an fsync of a big image stops every
 * thread of every process for tens of milliseconds, whoever wrote the data.
 */
struct bench_phase {
	uint64_t ns, stores, stores_per_s, max_gap_ns, steal_ms;
	struct bench_hist hist;
};
int bench_writers_start(struct bench_writers *ws, struct bench_mem *m, int n,
			enum bench_pattern pattern);
void bench_writers_stop(struct bench_writers *ws);
/*
 * Fresh memory for the next method (copy-on-write after fork() splits huge pages): m freed and
 * populated again, then n writers (pattern; rate stores/s each, 0: as fast as they can) started
 * on it; after 200 ms the warm-up phase is discarded. 0 or -errno.
 */
int bench_fresh(struct bench_mem *m, size_t size, bool thp, struct bench_writers *ws, int n,
		enum bench_pattern pattern, uint64_t rate);
void bench_phase_next(struct bench_writers *ws, struct bench_phase *ret);
void bench_phase_json(FILE *f, const char *name, const struct bench_phase *p);

/* Runs argv, first line of its stdout into out; wall time and rusage (ru_maxrss = VmHWM). */
struct bench_run {
	char out[4096];
	uint64_t wall_ns;
	struct rusage ru;
	long hwm_kib; /* VmHWM of the program and its children, polled while it ran */
	int status;
};
int bench_spawn(char *const argv[], int *ret_out_fd);
int bench_run(char *const argv[], struct bench_run *ret); /* spawn + watch */
/* Reads the first line from fd, waits for pid. */
int bench_finish(pid_t pid, int fd, uint64_t t0, struct bench_run *ret);
/*
 * Waits for pid (output on fd) while polling every 20 ms the VmHWM of it and its children
 * (ru_maxrss cannot be used: execve() keeps the forking benchmark's own peak in it) and
 * calling sample(arg) if not NULL; then bench_finish().
 */
int bench_watch(pid_t pid, int fd, uint64_t t0, void (*sample)(void *), void *arg,
		struct bench_run *ret);
/* Extracts a number field from a one-line JSON object; 0 when absent. */
uint64_t bench_json_u64(const char *json, const char *key);

/*
 * A fork() snapshot like Redis BGSAVE: the child writes the memory to path (syncing it as
 * BGSAVE does, if a regular file) and exits; the parent pays copy-on-write meanwhile. ret_call_ns: how long fork() stopped the caller.
 */
pid_t bench_fork_snapshot(const struct bench_mem *m, const char *path, uint64_t *ret_call_ns);

/* A field of /proc/meminfo, /proc/PID/status or /proc/PID/smaps_rollup, in KiB; -errno. */
long bench_proc_kib(pid_t pid, const char *file, const char *field);

/* A receiver (uffsnapd --receive) on 127.0.0.1:port, ready to accept when this returns. */
pid_t bench_receiver_start(const char *uffsnapd, int port, const char *dir, const char *key);
/* Stops it with SIGTERM; ret_hwm_kib: its VmHWM just before. */
void bench_receiver_stop(pid_t pid, long *ret_hwm_kib);

/* Total bytes of files in dir whose name contains part (images, spool files). */
uint64_t bench_dir_bytes(const char *dir, const char *part);
void bench_dir_clean(const char *dir, const char *part);

#endif
