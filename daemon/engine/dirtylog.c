/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "sys/linux-compat.h"
#include "engine/dirtylog.h"
#include "engine/pages.h"
#include "engine/plan.h"

/* Regions returned per PAGEMAP_SCAN call: the kernel stops when they are used up. */
#define SCAN_REGIONS 512
#define COLLECT_THREADS_MAX 4
/* Below this per thread, one thread walks it faster than starting another. */
#define COLLECT_THREAD_MIN (256ull << 20)
#define COLLECT_ALIGN	   (2ull << 20)

int spans_add(struct span_set *s, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	if (s->n && s->v[s->n - 1].end == start) { /* the scans return runs in order */
		s->v[s->n - 1].end = end;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct snap_span *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct snap_span){start, end};
	return 0;
}

void spans_merge(struct span_set *s)
{
	plan_merge_spans(s->v, &s->n);
}

uint64_t spans_bytes(const struct span_set *s)
{
	uint64_t b = 0;

	for (size_t i = 0; i < s->n; i++)
		b += s->v[i].end - s->v[i].start;
	return b;
}

void spans_free(struct span_set *s)
{
	free(s->v);
	*s = (struct span_set){0};
}

bool spans_has(const struct span_set *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) { /* the first span ending after addr */
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->v[lo].start <= addr;
}

int spans_subtract(const struct span_set *a, const struct span_set *b, struct span_set *out)
{
	size_t j = 0;
	int k = 0;

	for (size_t i = 0; i < a->n && k >= 0; i++) {
		uint64_t pos = a->v[i].start, end = a->v[i].end;

		while (j < b->n && b->v[j].end <= pos)
			j++;
		for (size_t x = j; x < b->n && b->v[x].start < end && k >= 0; x++) {
			k = spans_add(out, pos, b->v[x].start > pos ? b->v[x].start : pos);
			if (b->v[x].end > pos)
				pos = b->v[x].end;
		}
		if (k >= 0 && pos < end)
			k = spans_add(out, pos, end);
	}
	return k;
}

/*
 * fs/proc/task_mmu.c (6.18), do_pagemap_scan(): the walk stops when the regions are used up
 * (or, with PM_SCAN_WP_MATCHING, where it stopped protecting) and says where in walk_end, so
 * the next call starts there. Only the pages reported are protected again.
 */
int dirtylog_collect(int pagemapfd, uint64_t start, uint64_t end, struct span_set *out)
{
	struct page_region regs[SCAN_REGIONS];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.vec = (uintptr_t)regs,
		.vec_len = SCAN_REGIONS,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int k = 0;

	while (arg.start < end && k >= 0) {
		long n = ioctl(pagemapfd, PAGEMAP_SCAN, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (long i = 0; i < n && k >= 0; i++)
			k = spans_add(out, regs[i].start, regs[i].end);
		if (arg.walk_end <= arg.start)
			break; /* no progress: cannot happen, but never loop */
		arg.start = arg.walk_end;
	}
	return k;
}

struct collect_job {
	int fd;
	const struct pages *p;
	uint64_t from, to; /* this job's share: [from, to) of the ranges' addresses */
	struct span_set out;
	int result;
};

static void *collect_worker(void *arg)
{
	struct collect_job *j = arg;

	for (size_t i = 0; i < j->p->n && j->result >= 0; i++) {
		const struct pages_range *r = &j->p->r[i];
		uint64_t a = r->start > j->from ? r->start : j->from;
		uint64_t b = r->end < j->to ? r->end : j->to;

		if (a < b)
			j->result = dirtylog_collect(j->fd, a, b, &j->out);
	}
	return NULL;
}

/* The first boundary with at least `want` bytes of the ranges before it. */
static uint64_t split_at(const struct pages *p, uint64_t want)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct pages_range *r = &p->r[i];
		uint64_t len = r->end - r->start, al = r->granule > COLLECT_ALIGN ? r->granule
										 : COLLECT_ALIGN;

		if (want < len) {
			uint64_t at = (r->start + want + al - 1) & ~(al - 1);

			return at < r->end ? at : r->end;
		}
		want -= len;
	}
	return p->n ? p->r[p->n - 1].end : 0;
}

int dirtylog_collect_pages(int pagemapfd, const struct pages *p, unsigned nthreads,
			   struct span_set *out)
{
	struct collect_job jobs[COLLECT_THREADS_MAX];
	pthread_t th[COLLECT_THREADS_MAX];
	bool started[COLLECT_THREADS_MAX] = {false};
	uint64_t total = 0, from = 0;
	unsigned m;
	int k = 0;

	for (size_t i = 0; i < p->n; i++)
		total += p->r[i].end - p->r[i].start;
	m = nthreads > COLLECT_THREADS_MAX ? COLLECT_THREADS_MAX : nthreads ? nthreads : 1;
	while (m > 1 && total / m < COLLECT_THREAD_MIN)
		m--;
	for (unsigned t = 0; t < m; t++) {
		uint64_t to = t == m - 1 ? UINT64_MAX : split_at(p, total / m * (t + 1));

		jobs[t] = (struct collect_job){.fd = pagemapfd, .p = p, .from = from, .to = to};
		from = to;
		started[t] = t && pthread_create(&th[t], NULL, collect_worker, &jobs[t]) == 0;
	}
	for (unsigned t = 0; t < m; t++)
		if (!started[t]) /* ours, or a thread that could not start: here */
			collect_worker(&jobs[t]);
	for (unsigned t = 0; t < m; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		for (size_t i = 0; k >= 0 && jobs[t].result >= 0 && i < jobs[t].out.n; i++)
			k = spans_add(out, jobs[t].out.v[i].start, jobs[t].out.v[i].end);
		if (k >= 0 && jobs[t].result < 0)
			k = jobs[t].result;
		spans_free(&jobs[t].out);
	}
	return k;
}

int64_t dirtylog_present_bytes(int pagemapfd, uint64_t start, uint64_t end)
{
	struct page_region regs[SCAN_REGIONS];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)regs,
		.vec_len = SCAN_REGIONS,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};
	int64_t bytes = 0;

	while (arg.start < end) {
		long n = ioctl(pagemapfd, PAGEMAP_SCAN, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			bytes += regs[i].end - regs[i].start;
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	return bytes;
}
