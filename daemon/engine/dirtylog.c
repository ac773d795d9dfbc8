/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "sys/linux-compat.h"
#include "engine/dirtylog.h"
#include "engine/plan.h"
#include "engine/wpmarker.h"

/* Regions returned per PAGEMAP_SCAN call: the kernel stops when they are used up. */
#define SCAN_REGIONS 512

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

int64_t dirtylog_present_bytes(int pagemapfd, uint64_t wp_marker, uint64_t start, uint64_t end)
{
	struct page_region regs[SCAN_REGIONS];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)regs,
		.vec_len = SCAN_REGIONS,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO,
	};
	int64_t bytes = 0;

	while (arg.start < end) {
		long n = ioctl(pagemapfd, PAGEMAP_SCAN, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			if (regs[i].categories & PAGE_IS_PFNZERO)
				continue;
			bytes += regs[i].end - regs[i].start;
			if (regs[i].categories == PAGE_IS_SWAPPED)
				bytes -= wpmarker_bytes(pagemapfd, wp_marker, regs[i].start,
							regs[i].end);
		}
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	return bytes;
}
