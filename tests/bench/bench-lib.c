/* SPDX-License-Identifier: MIT */
#include "bench-lib.h"
#include "test-proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static unsigned hist_idx(uint64_t v)
{
	unsigned e;

	if (v < 16)
		return (unsigned)v;
	e = 63 - __builtin_clzll(v); /* >= 4 */
	return (e - 3) * 16 + (unsigned)((v >> (e - 4)) & 15);
}

/* The middle of bucket i. */
static uint64_t hist_val(unsigned i)
{
	unsigned e = i / 16 + 3, sub = i % 16;

	if (i < 16)
		return i;
	return ((16ull + sub) << (e - 4)) + ((1ull << (e - 4)) >> 1);
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->b[hist_idx(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->n += src->n;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t bench_hist_pct(const struct bench_hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;

	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = hist_val(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

void bench_hist_json(FILE *f, const struct bench_hist *h)
{
	fprintf(f,
		"\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
		",\"max_ns\":%" PRIu64,
		bench_hist_pct(h, 0.50), bench_hist_pct(h, 0.99), bench_hist_pct(h, 0.999), h->max);
}

int bench_mem_populate(struct bench_mem *m, size_t size, bool thp)
{
	m->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->p == MAP_FAILED) {
		m->p = NULL;
		return -errno;
	}
	m->size = size;
	madvise(m->p, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	/* Distinct, non-zero bytes in every page so no page is all zero. */
	for (size_t i = 0; i < size; i += 64)
		m->p[i] = (uint8_t)((i >> 6) * 2654435761u >> 24) | 1;
	return 0;
}

void bench_mem_free(struct bench_mem *m)
{
	if (m->p)
		munmap(m->p, m->size);
	m->p = NULL;
}

static void writer_slot_reset(struct bench_writer *w, int ph, uint64_t *last)
{
	memset(&w->slot[ph & 1], 0, sizeof(w->slot[0]));
	atomic_store(&w->ack, ph);
	*last = bench_now_ns();
}

/*
 * Spins until the store due at due, and returns when the next is. A writer that fell behind
 * (it was stopped) starts afresh rather than catch up in a burst.
 */
static uint64_t pace(uint64_t due, uint64_t period)
{
	uint64_t now = bench_now_ns();

	if (!due || now > due + 1000000)
		return now + period;
	while (now < due)
		now = bench_now_ns();
	return due + period;
}

static void *writer_main(void *arg)
{
	struct bench_writer *w = arg;
	struct bench_writers *ws = w->ws;
	size_t pages = ws->mem->size / BENCH_PAGE, next = 0;
	uint64_t x = (uint64_t)(w->idx + 1) * 0x9e3779b97f4a7c15ull, last, due = 0;
	int seen = atomic_load(&ws->phase);
	struct bench_slot *s = &w->slot[seen & 1];

	writer_slot_reset(w, seen, &last);
	while (!atomic_load_explicit(&ws->stop, memory_order_relaxed)) {
		int ph = atomic_load_explicit(&ws->phase, memory_order_acquire);
		uint64_t t0, t1;
		size_t pg;

		if (ph != seen) {
			seen = ph;
			s = &w->slot[ph & 1];
			writer_slot_reset(w, ph, &last);
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		pg = ws->pattern == BENCH_RANDOM ? x % pages : next++ % pages;
		if (ws->rate)
			due = pace(due, 1000000000ull / ws->rate);
		t0 = bench_now_ns();
		ws->mem->p[pg * BENCH_PAGE + (x >> 52) % BENCH_PAGE] = (uint8_t)x | 1;
		t1 = bench_now_ns();
		bench_hist_add(&s->hist, t1 - t0);
		if (t1 - last > s->max_gap_ns)
			s->max_gap_ns = t1 - last;
		last = t1;
		s->stores++;
	}
	return NULL;
}

static void wait_acks(struct bench_writers *ws, int ph)
{
	for (int i = 0; i < ws->n; i++)
		while (atomic_load(&ws->w[i].ack) != ph)
			usleep(50);
}

/* Steal time of all CPUs so far, in ms (/proc/stat counts it in USER_HZ ticks); 0 if unknown. */
static uint64_t steal_ms_now(void)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "re");
	int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7])
		  : 0;

	if (f)
		fclose(f);
	return n == 8 ? v[7] * 1000 / (uint64_t)sysconf(_SC_CLK_TCK) : 0;
}

int bench_writers_start(struct bench_writers *ws, struct bench_mem *m, int n,
			enum bench_pattern pattern)
{
	ws->mem = m;
	ws->n = n;
	ws->pattern = pattern;
	atomic_store(&ws->stop, 0);
	for (int i = 0; i < n; i++) {
		int r;

		ws->w[i].ws = ws;
		ws->w[i].idx = i;
		atomic_store(&ws->w[i].ack, -1);
		r = pthread_create(&ws->w[i].th, NULL, writer_main, &ws->w[i]);
		if (r)
			return -r;
	}
	wait_acks(ws, atomic_load(&ws->phase));
	ws->phase_steal0 = steal_ms_now();
	ws->phase_t0 = bench_now_ns();
	return 0;
}

void bench_writers_stop(struct bench_writers *ws)
{
	atomic_store(&ws->stop, 1);
	for (int i = 0; i < ws->n; i++)
		pthread_join(ws->w[i].th, NULL);
}

int bench_fresh(struct bench_mem *m, size_t size, bool thp, struct bench_writers *ws, int n,
		enum bench_pattern pattern, uint64_t rate)
{
	struct bench_phase warm;
	int r;

	bench_mem_free(m);
	r = bench_mem_populate(m, size, thp);
	if (r < 0)
		return r;
	memset(ws, 0, sizeof(*ws));
	ws->rate = rate;
	r = bench_writers_start(ws, m, n, pattern);
	usleep(200000);
	bench_phase_next(ws, &warm);
	return r;
}

void bench_phase_next(struct bench_writers *ws, struct bench_phase *ret)
{
	uint64_t steal = steal_ms_now();
	int old = atomic_load(&ws->phase), ph = old + 1;
	uint64_t t1 = bench_now_ns();

	atomic_store_explicit(&ws->phase, ph, memory_order_release);
	wait_acks(ws, ph);
	memset(ret, 0, sizeof(*ret));
	ret->ns = t1 - ws->phase_t0;
	for (int i = 0; i < ws->n; i++) {
		const struct bench_slot *s = &ws->w[i].slot[old & 1];

		bench_hist_merge(&ret->hist, &s->hist);
		ret->stores += s->stores;
		if (s->max_gap_ns > ret->max_gap_ns)
			ret->max_gap_ns = s->max_gap_ns;
	}
	ret->stores_per_s = ret->ns ? ret->stores * 1000000000ull / ret->ns : 0;
	ret->steal_ms = steal - ws->phase_steal0;
	ws->phase_steal0 = steal; /* phases tile: no steal falls between two */
	ws->phase_t0 = bench_now_ns();
}

void bench_phase_json(FILE *f, const char *name, const struct bench_phase *p)
{
	fprintf(f,
		"\"%s\":{\"ns\":%" PRIu64 ",\"stores\":%" PRIu64 ",\"stores_per_s\":%" PRIu64
		",\"max_gap_ns\":%" PRIu64 ",\"steal_ms\":%" PRIu64 ",",
		name, p->ns, p->stores, p->stores_per_s, p->max_gap_ns, p->steal_ms);
	bench_hist_json(f, &p->hist);
	fputc('}', f);
}

int bench_spawn(char *const argv[], int *ret_out_fd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/*
	 * vfork(), not fork(): the benchmark is itself the target, and a fork() would copy its
	 * page tables (stopping its writers) and share its pages copy-on-write until exec.
	 * It also returns only once the child has exec'd, so its VmHWM is the program's own.
	 */
	pid = vfork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	*ret_out_fd = p[0];
	return pid;
}

int bench_finish(pid_t pid, int fd, uint64_t t0, struct bench_run *ret)
{
	FILE *f = fdopen(fd, "r");
	char drain[4096];

	ret->out[0] = 0;
	if (f) {
		if (!fgets(ret->out, sizeof(ret->out), f))
			ret->out[0] = 0;
		while (fgets(drain, sizeof(drain), f))
			;
		fclose(f);
	} else {
		close(fd);
	}
	ret->out[strcspn(ret->out, "\n")] = 0;
	if (wait4(pid, &ret->status, 0, &ret->ru) < 0)
		return -errno;
	ret->wall_ns = bench_now_ns() - t0;
	return WIFEXITED(ret->status) && WEXITSTATUS(ret->status) == 0 ? 0 : -EIO;
}

/* VmHWM of pid plus that of its descendants (uffsnapd's spawner and holders), in KiB. */
static long tree_hwm_kib(pid_t pid, int depth)
{
	char path[64];
	long total = bench_proc_kib(pid, "status", "VmHWM");
	FILE *f;
	int child;

	if (total < 0 || depth == 0)
		return total;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "re");
	if (!f)
		return total;
	while (fscanf(f, "%d", &child) == 1) {
		long v = tree_hwm_kib(child, depth - 1);
		total += v > 0 ? v : 0;
	}
	fclose(f);
	return total;
}

int bench_watch(pid_t pid, int fd, uint64_t t0, void (*sample)(void *), void *arg,
		struct bench_run *ret)
{
	siginfo_t si;

	ret->hwm_kib = 0;
	/* The program prints its JSON at its end: poll for the exit without reaping it. */
	for (;;) {
		long hwm = tree_hwm_kib(pid, 2);

		if (hwm > ret->hwm_kib)
			ret->hwm_kib = hwm;
		if (sample)
			sample(arg);
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid)
			break;
		usleep(20000);
	}
	return bench_finish(pid, fd, t0, ret);
}

int bench_run(char *const argv[], struct bench_run *ret)
{
	uint64_t t0 = bench_now_ns();
	int fd = -1, pid = bench_spawn(argv, &fd);

	if (pid < 0)
		return pid;
	return bench_watch(pid, fd, t0, NULL, NULL, ret);
}

uint64_t bench_json_u64(const char *json, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/*
 * What a Redis BGSAVE child does with its file: write it, fdatasync every 32 MiB
 * (rdb-save-incremental-fsync, on by default: REDIS_AUTOSYNC_BYTES in rdb.c) and fsync it at
 * the end. uffsnapd fsyncs its image too: both snapshots are durable when they end.
 */
#define FORK_AUTOSYNC_BYTES (32ul << 20)

static void fork_child_write(const struct bench_mem *m, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t chunk = 1ul << 20;
	struct stat st;
	bool file;

	if (fd < 0 || fstat(fd, &st) < 0)
		_exit(1);
	file = S_ISREG(st.st_mode); /* a FIFO (bench-bound) is not synced */
	for (size_t off = 0; off < m->size; off += chunk) {
		size_t n = m->size - off < chunk ? m->size - off : chunk;
		if (write(fd, m->p + off, n) != (ssize_t)n)
			_exit(1);
		if (file && (off + n) % FORK_AUTOSYNC_BYTES == 0 && fdatasync(fd) < 0)
			_exit(1);
	}
	if (file && fsync(fd) < 0)
		_exit(1);
	close(fd);
	_exit(0);
}

pid_t bench_fork_snapshot(const struct bench_mem *m, const char *path, uint64_t *ret_call_ns)
{
	uint64_t t0 = bench_now_ns();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fork_child_write(m, path);
	}
	*ret_call_ns = bench_now_ns() - t0;
	return pid < 0 ? -errno : pid;
}

long bench_proc_kib(pid_t pid, const char *file, const char *field)
{
	char v[64];
	int r = test_proc_field(pid, file, field, v, sizeof(v));

	return r < 0 ? r : strtol(v, NULL, 10);
}

/* A socket listens on 127.0.0.1:port (from /proc/net/tcp: connecting would be logged). */
static bool port_open(int port)
{
	char want[32], line[256];
	bool ok = false;
	FILE *f = fopen("/proc/net/tcp", "re");

	if (!f)
		return false;
	snprintf(want, sizeof(want), "0100007F:%04X 00000000:0000 0A", port);
	while (!ok && fgets(line, sizeof(line), f))
		ok = strstr(line, want) != NULL;
	fclose(f);
	return ok;
}

pid_t bench_receiver_start(const char *uffsnapd, int port, const char *dir, const char *key)
{
	char listen[32];
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	pid = vfork(); /* see bench_spawn() */
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(uffsnapd, uffsnapd, "--receive", "--listen", listen, "--dir", dir, "--key",
		      key, "--quiet", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !port_open(port); i++)
		usleep(10000);
	if (!port_open(port)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ECONNREFUSED;
	}
	return pid;
}

void bench_receiver_stop(pid_t pid, long *ret_hwm_kib)
{
	if (pid <= 0)
		return;
	if (ret_hwm_kib)
		*ret_hwm_kib = bench_proc_kib(pid, "status", "VmHWM");
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

uint64_t bench_dir_bytes(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t total = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[4096];
		struct stat st;

		if (!strstr(e->d_name, part))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
	}
	closedir(d);
	return total;
}

void bench_dir_clean(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[4096];

		if (!strstr(e->d_name, part))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}
