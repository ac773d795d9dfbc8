/* SPDX-License-Identifier: MIT */
/*
 * Stop time and writer throughput: a process with SIZE MiB of touched anonymous memory and
 * two threads writing random pages is snapshotted by fork() (a BGSAVE-style snapshot) and by
 * uffsnapd, in the same run. The writers themselves measure how long they were stopped: the
 * longest gap between two of their consecutive stores. A quiet period first measures that
 * gap without any snapshot (scheduler noise), reported alongside. Prints one JSON object.
 *
 * usage: bench-hold UFFSNAPD [SIZE_MIB [thp]]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WRITERS 2
#define PHASE_NS 1000000000ull /* how long each measured phase lasts */

struct bench {
	uint8_t *mem;
	size_t size;
	atomic_int stop;
	atomic_int phase; /* bumped to reset the writers' gap and count */
	struct writer {
		pthread_t th;
		_Atomic uint64_t max_gap_ns, stores;
		int seen_phase;
	} w[WRITERS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void *writer(void *arg)
{
	struct bench *b = ((void **)arg)[0];
	struct writer *w = ((void **)arg)[1];
	uint64_t x = (uintptr_t)w | 1, last = now_ns();
	size_t pages = b->size / 4096;

	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		uint64_t t = now_ns();
		int ph = atomic_load_explicit(&b->phase, memory_order_relaxed);

		if (ph != w->seen_phase) {
			w->seen_phase = ph;
			atomic_store(&w->max_gap_ns, 0);
			atomic_store(&w->stores, 0);
			last = t;
		}
		if (t - last > atomic_load_explicit(&w->max_gap_ns, memory_order_relaxed))
			atomic_store_explicit(&w->max_gap_ns, t - last, memory_order_relaxed);
		last = t;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift: a random page */
		b->mem[(x % pages) * 4096 + (x >> 50) % 4096] = (uint8_t)x;
		atomic_fetch_add_explicit(&w->stores, 1, memory_order_relaxed);
	}
	return NULL;
}

struct phase_result {
	uint64_t max_gap_ns, stores_per_s;
};

/* Resets the writers' counters, runs fn, waits PHASE_NS in all, collects. */
static struct phase_result phase(struct bench *b, void (*fn)(struct bench *, void *), void *ctx)
{
	struct phase_result r = {0};
	uint64_t t0, stores = 0;

	atomic_fetch_add(&b->phase, 1);
	usleep(1000);
	t0 = now_ns();
	if (fn)
		fn(b, ctx);
	while (now_ns() - t0 < PHASE_NS)
		usleep(10000);
	for (int i = 0; i < WRITERS; i++) {
		uint64_t g = atomic_load(&b->w[i].max_gap_ns);

		r.max_gap_ns = g > r.max_gap_ns ? g : r.max_gap_ns;
		stores += atomic_load(&b->w[i].stores);
	}
	r.stores_per_s = stores * 1000000000ull / (now_ns() - t0);
	return r;
}

struct fork_ctx {
	uint64_t call_ns;
	pid_t child;
};

/* The child lives as long as a BGSAVE would, so the parent pays copy-on-write meanwhile. */
static void do_fork(struct bench *b, void *arg)
{
	struct fork_ctx *c = arg;
	uint64_t t0 = now_ns();

	c->child = fork();
	if (c->child == 0) {
		usleep(PHASE_NS / 1000);
		_exit(0);
	}
	c->call_ns = now_ns() - t0;
}

struct snap_ctx {
	const char *uffsnapd;
	char json[4096];
};

static void do_snapshot(struct bench *b, void *arg)
{
	struct snap_ctx *c = arg;
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s --pid %d --output /dev/shm/bench-hold.img --force --json",
		 c->uffsnapd, getpid());
	p = popen(cmd, "r");
	if (!p || !fgets(c->json, sizeof(c->json), p))
		snprintf(c->json, sizeof(c->json), "null");
	c->json[strcspn(c->json, "\n")] = 0;
	if (p)
		pclose(p);
	unlink("/dev/shm/bench-hold.img");
}

static void writers_start(struct bench *b, void *(*args)[2])
{
	atomic_store(&b->stop, 0);
	for (int i = 0; i < WRITERS; i++) {
		args[i][0] = b;
		args[i][1] = &b->w[i];
		pthread_create(&b->w[i].th, NULL, writer, args[i]);
	}
}

static void writers_stop(struct bench *b)
{
	atomic_store(&b->stop, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(b->w[i].th, NULL);
}

/*
 * Fresh memory for each method: copy-on-write after fork() splits transparent huge pages, so
 * whichever method ran second would otherwise inherit the first one's page tables.
 */
static int populate(struct bench *b, bool thp)
{
	if (b->mem)
		munmap(b->mem, b->size);
	b->mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED)
		return -errno;
	madvise(b->mem, b->size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t i = 0; i < b->size; i += 4096)
		b->mem[i] = (uint8_t)(i >> 12) | 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = {0};
	struct fork_ctx fc = {0};
	struct snap_ctx sc = {0};
	struct phase_result quiet, forked, after_fork, snap, after_snap;
	void *args[WRITERS][2];
	bool thp;

	if (argc < 2) {
		fprintf(stderr, "usage: %s UFFSNAPD [SIZE_MIB [thp]]\n", argv[0]);
		return 2;
	}
	sc.uffsnapd = argv[1];
	b.size = (size_t)(argc > 2 ? atol(argv[2]) : 2048) << 20;
	thp = argc > 3 && !strcmp(argv[3], "thp");
	if (populate(&b, thp) < 0)
		return perror("mmap"), 1;
	writers_start(&b, args);
	quiet = phase(&b, NULL, NULL);
	forked = phase(&b, do_fork, &fc);
	waitpid(fc.child, NULL, 0);
	after_fork = phase(&b, NULL, NULL);
	writers_stop(&b);
	if (populate(&b, thp) < 0)
		return perror("mmap"), 1;
	writers_start(&b, args);
	snap = phase(&b, do_snapshot, &sc);
	after_snap = phase(&b, NULL, NULL);
	writers_stop(&b);
	printf("{\"bench\":\"hold\",\"size_mib\":%zu,\"thp\":%s,\"writers\":%d,"
	       "\"quiet_max_gap_ns\":%" PRIu64 ",\"quiet_stores_per_s\":%" PRIu64 ","
	       "\"fork_call_ns\":%" PRIu64 ",\"fork_max_gap_ns\":%" PRIu64
	       ",\"fork_stores_per_s\":%" PRIu64 ",\"after_fork_stores_per_s\":%" PRIu64 ","
	       "\"uffsnap_max_gap_ns\":%" PRIu64 ",\"uffsnap_stores_per_s\":%" PRIu64
	       ",\"after_uffsnap_stores_per_s\":%" PRIu64 ","
	       "\"ratio_max_gap_uffsnap_over_fork\":%.3f,"
	       "\"ratio_throughput_uffsnap_over_fork\":%.3f,\"uffsnapd\":%s}\n",
	       b.size >> 20, thp ? "true" : "false", WRITERS, quiet.max_gap_ns,
	       quiet.stores_per_s, fc.call_ns, forked.max_gap_ns, forked.stores_per_s,
	       after_fork.stores_per_s, snap.max_gap_ns, snap.stores_per_s, after_snap.stores_per_s,
	       (double)snap.max_gap_ns / (forked.max_gap_ns ? forked.max_gap_ns : 1),
	       (double)snap.stores_per_s / (forked.stores_per_s ? forked.stores_per_s : 1),
	       sc.json);
	return 0;
}
