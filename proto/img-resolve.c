/* SPDX-License-Identifier: MIT */
/*
 * Later-wins resolution of overlapping extents (FORMAT.md "Pre-copy images"): for each page, the
 * extent written last holds it. An 8 GiB pre-copy image has 10^4 .. 10^5 extent frames, some of
 * them 2^40 pages long in crafted input, so neither a page map nor a pairwise scan will do: a
 * sweep over the sorted extent boundaries keeps the extents covering the current address in a
 * max-heap keyed by their position in the input (their seq order). An extent that has ended
 * leaves the heap only when it reaches the top (lazy deletion), so every extent is pushed and
 * popped once: O(n log n).
 */
#include <errno.h>
#include <stdlib.h>

#include "img-internal.h"

struct sweep {
	const struct img_index_entry *in;
	uint32_t ps;
	size_t *heap; /* indexes into in[]; the largest (the latest) on top */
	size_t nheap;
	struct img_index_entry *out;
	size_t nout;
};

static uint64_t in_end(const struct sweep *s, size_t i)
{
	return s->in[i].addr + s->in[i].npages * s->ps;
}

static void heap_push(struct sweep *s, size_t x)
{
	size_t i = s->nheap++;

	while (i && s->heap[(i - 1) / 2] < x) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = x;
}

static void heap_pop(struct sweep *s)
{
	size_t x = s->heap[--s->nheap], i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && s->heap[c + 1] > s->heap[c])
			c++;
		if (s->heap[c] <= x)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = x;
}

/*
 * Appends [start, end) won by in[src], extending the previous run if it has the same offset and
 * type (in an image, the same frame: no two frames share an offset).
 */
static void emit(struct sweep *s, uint64_t start, uint64_t end, size_t src)
{
	struct img_index_entry *last = s->nout ? &s->out[s->nout - 1] : NULL;

	if (last && last->offset == s->in[src].offset && last->type == s->in[src].type &&
	    last->addr + last->npages * s->ps == start) {
		last->npages += (end - start) / s->ps;
		return;
	}
	s->out[s->nout++] = (struct img_index_entry){.addr = start,
						     .npages = (end - start) / s->ps,
						     .offset = s->in[src].offset,
						     .type = s->in[src].type};
}

static int cmp_start(const void *a, const void *b, void *in)
{
	const struct img_index_entry *e = in;
	uint64_t x = e[*(const size_t *)a].addr, y = e[*(const size_t *)b].addr;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The sweep proper. by_start: in[] indexes sorted by start; ends: every end, sorted. Each step
 * moves to the next boundary x, takes in what starts there, drops from the top what has ended,
 * and gives [x, next boundary) to the top of the heap.
 */
static void sweep_run(struct sweep *s, const size_t *by_start, const uint64_t *ends, size_t n)
{
	size_t si = 0, ei = 0;

	while (ei < n) {
		uint64_t x = si < n && s->in[by_start[si]].addr <= ends[ei]
				 ? s->in[by_start[si]].addr
				 : ends[ei];
		uint64_t next;

		while (si < n && s->in[by_start[si]].addr == x)
			heap_push(s, by_start[si++]);
		while (ei < n && ends[ei] == x)
			ei++;
		while (s->nheap && in_end(s, s->heap[0]) <= x)
			heap_pop(s);
		if (!s->nheap)
			continue;
		/* The top covers x and ends after it, so ends[ei] exists and is its end or before.
		 */
		next = ends[ei];
		if (si < n && s->in[by_start[si]].addr < next)
			next = s->in[by_start[si]].addr;
		emit(s, x, next, s->heap[0]);
	}
}

int img_resolve(const struct img_index_entry *in, size_t n, uint32_t page_size,
		struct img_index_entry **ret, size_t *ret_n)
{
	struct sweep s = {.in = in, .ps = page_size};
	size_t *by_start = NULL;
	uint64_t *ends = NULL;
	int r = -ENOMEM;

	if (n == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	by_start = malloc(n * sizeof(*by_start));
	ends = malloc(n * sizeof(*ends));
	s.heap = malloc(n * sizeof(*s.heap));
	/* Every boundary but the last starts at most one run: fewer than 2n of them. */
	s.out = malloc(2 * n * sizeof(*s.out));
	if (!by_start || !ends || !s.heap || !s.out)
		goto out;
	for (size_t i = 0; i < n; i++) {
		by_start[i] = i;
		ends[i] = in[i].addr + in[i].npages * page_size;
	}
	qsort_r(by_start, n, sizeof(*by_start), cmp_start, (void *)in);
	qsort(ends, n, sizeof(*ends), cmp_u64);
	sweep_run(&s, by_start, ends, n);
	*ret = s.out;
	*ret_n = s.nout;
	s.out = NULL;
	r = 0;
out:
	free(by_start);
	free(ends);
	free(s.heap);
	free(s.out);
	return r;
}

uint64_t img_index_pages(const struct img_index_entry *e, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		if (__builtin_add_overflow(sum, e[i].npages, &sum))
			return UINT64_MAX;
	return sum;
}

int img_index_equal(const struct img_index_entry *a, size_t na, const struct img_index_entry *b,
		    size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (a[i].addr != b[i].addr || a[i].npages != b[i].npages ||
		    a[i].offset != b[i].offset || a[i].type != b[i].type)
			return 0;
	return 1;
}
