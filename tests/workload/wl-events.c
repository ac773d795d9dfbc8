/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl-events.h"
#include "wl-fork.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* Scratch sizes in pages. */
#define WL_MREMAP_PAGES	 8
#define WL_MUNMAP_PAGES	 32
#define WL_MADVISE_PAGES 16
#define WL_THREADS_PAGES 4
#define WL_FORK_PAGES	 16
/* Short-lived threads started per round, and the stack bytes each one writes. */
#define WL_THREADS_BATCH 4
#define WL_THREAD_STACK_BYTES (16u << 10)

struct wl_event_ops {
	const char *name;
	unsigned interval_us; /* pause between two rounds, so events do not starve the stores */
	int (*step)(struct wl_events *ev, uint64_t gen);
};

static int wl_mremap_step(struct wl_events *ev, uint64_t gen);
static int wl_munmap_step(struct wl_events *ev, uint64_t gen);
static int wl_madvise_step(struct wl_events *ev, uint64_t gen);
static int wl_threads_step(struct wl_events *ev, uint64_t gen);
static int wl_fork_step(struct wl_events *ev, uint64_t gen);

static const struct wl_event_ops wl_event_table[WL_EV_COUNT] = {
	[WL_EV_FORK] = {"fork", 10000, wl_fork_step},
	[WL_EV_MREMAP] = {"mremap", 1000, wl_mremap_step},
	[WL_EV_MUNMAP] = {"munmap", 1000, wl_munmap_step},
	[WL_EV_MADVISE] = {"madvise", 1000, wl_madvise_step},
	[WL_EV_THREADS] = {"threads", 1000, wl_threads_step},
	[WL_EV_READINTO] = {"readinto", 0, NULL},
};

const char *wl_event_name(enum wl_event e)
{
	return e < WL_EV_COUNT ? wl_event_table[e].name : "?";
}

int wl_events_parse(const char *list, unsigned *ret_mask, const char **ret_bad)
{
	char buf[256], *save = NULL, *tok;
	unsigned mask = 0;

	if (strcmp(list, "all") == 0) {
		*ret_mask = WL_EV_ALL;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int e;

		for (e = 0; e < WL_EV_COUNT && strcmp(tok, wl_event_table[e].name) != 0; e++)
			;
		if (e == WL_EV_COUNT) {
			*ret_bad = list + (tok - buf);
			return -EINVAL;
		}
		mask |= WL_EV_BIT(e);
	}
	*ret_mask = mask;
	return 0;
}

void wl_scratch_fill(uint8_t *p, size_t len, uint32_t event, uint64_t gen)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = wl_scratch_word(event, gen, i);
}

size_t wl_scratch_verify(const uint8_t *p, size_t len, uint32_t event, uint64_t gen)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != wl_scratch_word(event, gen, i))
			break;
	return i;
}

static int wl_scratch_check(struct wl_events *ev, const uint8_t *p, size_t len, uint32_t event,
			    uint64_t gen, const char *when)
{
	size_t bad = wl_scratch_verify(p, len, event, gen);

	if (bad == len / 8)
		return 0;
	wl_status_fail(ev->status, "%s: word %zu at %p %s is 0x%" PRIx64 ", expected 0x%" PRIx64,
		       wl_event_name(event), bad, (void *)(p + bad * 8), when,
		       ((const uint64_t *)p)[bad], wl_scratch_word(event, gen, bad));
	return -EIO;
}

/*
 * The scratch moves between the two middle quarters a and b of an area [guard][a][b][guard]
 * (the PROT_NONE guards keep a and b from merging with foreign neighbours). MREMAP_DONTUNMAP
 * leaves the quarter it moved from mapped and empty, so no hole ever opens that another mapping
 * could take; the moved pages raise the same UFFD_EVENT_REMAP as a plain move.
 */
static int wl_mremap_step(struct wl_events *ev, uint64_t gen)
{
	size_t len = WL_MREMAP_PAGES * ev->page_size;
	uint8_t *a = ev->mremap_area.addr + len, *cur = ev->mremap_cur, *to = cur == a ? a + len : a;
	void *p;
	int r;

	wl_scratch_fill(cur, len, WL_EV_MREMAP, gen);
	p = mremap(cur, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	if (p != to) {
		wl_status_fail(ev->status, "mremap %p -> %p: %m", (void *)cur, (void *)to);
		return -EIO;
	}
	ev->mremap_cur = to;
	r = wl_scratch_check(ev, to, len, WL_EV_MREMAP, gen, "after the move");
	/* The pages left the old range: it reads as zeros now. */
	for (size_t i = 0; r >= 0 && i < len; i++)
		if (((volatile uint8_t *)cur)[i]) {
			wl_status_fail(ev->status, "mremap: byte %zu left behind at %p", i,
				       (void *)cur);
			r = -EIO;
		}
	return r;
}

static int wl_munmap_step(struct wl_events *ev, uint64_t gen)
{
	size_t len = WL_MUNMAP_PAGES * ev->page_size;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (p == MAP_FAILED) {
		wl_status_fail(ev->status, "munmap: mmap of %zu bytes: %m", len);
		return -EIO;
	}
	wl_scratch_fill(p, len, WL_EV_MUNMAP, gen);
	r = wl_scratch_check(ev, p, len, WL_EV_MUNMAP, gen, "before munmap");
	if (munmap(p, len) < 0) {
		wl_status_fail(ev->status, "munmap %p: %m", (void *)p);
		return -EIO;
	}
	return r;
}

static int wl_madvise_step(struct wl_events *ev, uint64_t gen)
{
	struct wl_mapping *m = &ev->madvise_scratch;
	int r;

	wl_scratch_fill(m->addr, m->size, WL_EV_MADVISE, gen);
	r = wl_scratch_check(ev, m->addr, m->size, WL_EV_MADVISE, gen, "before MADV_DONTNEED");
	if (r < 0)
		return r;
	if (madvise(m->addr, m->size, MADV_DONTNEED) < 0) {
		wl_status_fail(ev->status, "madvise(MADV_DONTNEED) %p: %m", (void *)m->addr);
		return -EIO;
	}
	/* Private anonymous memory reads back as zeros after MADV_DONTNEED. */
	for (size_t i = 0; i < m->size; i++)
		if (((volatile uint8_t *)m->addr)[i]) {
			wl_status_fail(ev->status, "madvise: byte %zu not zero after MADV_DONTNEED", i);
			return -EIO;
		}
	return 0;
}

struct wl_short_thread {
	struct wl_events *ev;
	uint64_t serial;
	bool ok;
};

static void *wl_short_thread_main(void *arg)
{
	struct wl_short_thread *st = arg;
	struct wl_events *ev = st->ev;
	size_t page = st->serial % WL_THREADS_PAGES;
	uint8_t *p = ev->threads_scratch.addr + page * ev->page_size;
	uint8_t stack[WL_THREAD_STACK_BYTES];

	wl_scratch_fill(stack, sizeof(stack), WL_EV_THREADS, st->serial);
	wl_scratch_fill(p, ev->page_size, WL_EV_THREADS, st->serial);
	st->ok = wl_scratch_verify(stack, sizeof(stack), WL_EV_THREADS, st->serial) ==
			 sizeof(stack) / 8 &&
		 wl_scratch_verify(p, ev->page_size, WL_EV_THREADS, st->serial) ==
			 ev->page_size / 8;
	return NULL;
}

static int wl_threads_step(struct wl_events *ev, uint64_t gen)
{
	struct wl_short_thread st[WL_THREADS_BATCH];
	pthread_t tid[WL_THREADS_BATCH];
	unsigned n = 0;
	int r = 0;

	/* Each of the batch writes its own scratch page: WL_THREADS_BATCH == WL_THREADS_PAGES. */
	for (; n < WL_THREADS_BATCH; n++) {
		st[n] = (struct wl_short_thread){ev, gen * WL_THREADS_BATCH + n, false};
		r = -pthread_create(&tid[n], NULL, wl_short_thread_main, &st[n]);
		if (r < 0) {
			wl_status_fail(ev->status, "threads: pthread_create: %s", strerror(-r));
			break;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(tid[i], NULL);
		if (!st[i].ok && r == 0) {
			wl_status_fail(ev->status, "threads: short-lived thread %" PRIu64
				       " read back wrong data", st[i].serial);
			r = -EIO;
		}
	}
	return r < 0 ? -EIO : 0;
}

static int wl_fork_step(struct wl_events *ev, uint64_t gen)
{
	int status, r;
	pid_t pid = fork();

	if (pid < 0) {
		wl_status_fail(ev->status, "fork: %m");
		return -EIO;
	}
	if (pid == 0)
		_exit(wl_fork_child(ev, gen));
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		wl_status_fail(ev->status, "fork: waitpid %d: %m", pid);
		return -EIO;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	/* A private hugetlb page the parent writes while the child exists needs a free huge page
	 * for the parent's copy; without one the kernel takes the page from the child, which then
	 * dies of SIGBUS (mm/hugetlb.c, unmap_ref_private). A shortage, not a harm: say so. */
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS && ev->store->kind == WL_KIND_HUGETLB) {
		fprintf(stderr, "uffsnap-workload: fork child %d lost its hugetlb copy (SIGBUS): "
			"too few free huge pages for copy-on-write; its check did not run\n", pid);
		return 0;
	}
	if (WIFEXITED(status))
		wl_status_fail(ev->status, "fork: child %d exited %d (its check failed)", pid,
			       WEXITSTATUS(status));
	else
		wl_status_fail(ev->status, "fork: child %d killed by signal %d", pid,
			       WTERMSIG(status));
	return -EIO;
}

static void wl_sleep_us(unsigned us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct wl_event_thread {
	struct wl_events *ev;
	enum wl_event e;
};

static void *wl_event_main(void *arg)
{
	struct wl_events *ev = ((struct wl_event_thread *)arg)->ev;
	enum wl_event e = ((struct wl_event_thread *)arg)->e;
	uint64_t gen = ev->seed;

	free(arg);
	/* A failed event stops: its failure is recorded, repeating it would only add noise. */
	while (!atomic_load(&ev->stop)) {
		if (wl_event_table[e].step(ev, ++gen) < 0)
			break;
		atomic_fetch_add(&ev->iterations[e], 1);
		wl_sleep_us(wl_event_table[e].interval_us);
	}
	return NULL;
}

static int wl_map_scratch(struct wl_events *ev, unsigned pages, struct wl_mapping *ret)
{
	return wl_memory_map(WL_KIND_ANON, pages * ev->page_size, NULL, ret);
}

int wl_events_setup(struct wl_events *ev)
{
	size_t len = WL_MREMAP_PAGES * ev->page_size;
	int r = 0;

	atomic_init(&ev->stop, false);
	if (ev->mask & WL_EV_BIT(WL_EV_FORK))
		r = wl_map_scratch(ev, WL_FORK_PAGES, &ev->fork_scratch);
	if (r >= 0 && ev->mask & WL_EV_BIT(WL_EV_MADVISE))
		r = wl_map_scratch(ev, WL_MADVISE_PAGES, &ev->madvise_scratch);
	if (r >= 0 && ev->mask & WL_EV_BIT(WL_EV_THREADS))
		r = wl_map_scratch(ev, WL_THREADS_PAGES, &ev->threads_scratch);
	if (r < 0 || !(ev->mask & WL_EV_BIT(WL_EV_MREMAP)))
		return r;
	ev->mremap_area.addr = mmap(NULL, 4 * len, PROT_NONE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ev->mremap_area.addr == MAP_FAILED) {
		ev->mremap_area.addr = NULL;
		return -errno;
	}
	ev->mremap_area.size = 4 * len;
	ev->mremap_cur = mmap(ev->mremap_area.addr + len, 2 * len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return ev->mremap_cur == MAP_FAILED ? -errno : 0;
}

int wl_events_start(struct wl_events *ev)
{
	for (int e = 0; e < WL_EV_COUNT; e++) {
		struct wl_event_thread *et;
		int r;

		if (!(ev->mask & WL_EV_BIT(e)) || !wl_event_table[e].step)
			continue;
		et = malloc(sizeof(*et));
		if (!et)
			return -ENOMEM;
		*et = (struct wl_event_thread){ev, (enum wl_event)e};
		r = -pthread_create(&ev->tids[e], NULL, wl_event_main, et);
		if (r < 0) {
			free(et);
			return r;
		}
		ev->started[e] = true;
	}
	return 0;
}

void wl_events_stop(struct wl_events *ev)
{
	atomic_store(&ev->stop, true);
	for (int e = 0; e < WL_EV_COUNT; e++) {
		if (!ev->started[e])
			continue;
		pthread_join(ev->tids[e], NULL);
		ev->started[e] = false;
	}
}

void wl_events_teardown(struct wl_events *ev)
{
	if (!ev)
		return;
	wl_memory_unmap(&ev->fork_scratch);
	wl_memory_unmap(&ev->madvise_scratch);
	wl_memory_unmap(&ev->threads_scratch);
	wl_memory_unmap(&ev->mremap_area);
}

size_t wl_events_scratch(const struct wl_events *ev, struct wl_scratch_info *out, size_t max)
{
	/* In enum wl_event order. */
	const struct wl_scratch_info all[] = {
		{"fork", (uintptr_t)ev->fork_scratch.addr, 0, WL_FORK_PAGES},
		{"mremap", (uintptr_t)ev->mremap_area.addr + WL_MREMAP_PAGES * ev->page_size,
		 (uintptr_t)ev->mremap_area.addr + 2 * WL_MREMAP_PAGES * ev->page_size,
		 WL_MREMAP_PAGES},
		{"munmap", 0, 0, WL_MUNMAP_PAGES},
		{"madvise", (uintptr_t)ev->madvise_scratch.addr, 0, WL_MADVISE_PAGES},
		{"threads", (uintptr_t)ev->threads_scratch.addr, 0, WL_THREADS_PAGES},
	};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && n < max; i++)
		if (ev->mask & WL_EV_BIT(i))
			out[n++] = all[i];
	return n;
}
