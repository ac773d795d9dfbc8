/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "engine/plan.h"

static int cmp_span(const void *a, const void *b)
{
	const struct snap_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void plan_merge_spans(struct snap_span *v, size_t *n)
{
	size_t m = 0;

	if (!*n)
		return; /* v may be NULL */
	qsort(v, *n, sizeof(*v), cmp_span);
	for (size_t i = 0; i < *n; i++) {
		if (m && v[i].start <= v[m - 1].end) {
			if (v[i].end > v[m - 1].end)
				v[m - 1].end = v[i].end;
		} else {
			v[m++] = v[i];
		}
	}
	*n = m;
}

size_t plan_scope(struct vma_list *l, const struct snap_span *scope, size_t n)
{
	size_t in = 0, j = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct vma *v = &l->v[i];

		while (j < n && scope[j].end <= v->start)
			j++;
		if (j < n && scope[j].start < v->end) {
			in++;
			continue;
		}
		v->plan = VMA_PLAN_NONE;
		snprintf(v->note, sizeof(v->note), "outside the snapshot's scope");
	}
	return in;
}

size_t plan_hot_spans(const struct vma_list *vmas, const uint64_t *addrs, size_t n,
		      uint64_t page_size, struct snap_span *ret)
{
	const uint64_t ps = page_size;
	size_t m = 0, nhot = 0;

	for (size_t i = 0; i < n; i++) {
		ssize_t k = vma_find(vmas, addrs[i]);
		const struct vma *v = k >= 0 ? &vmas->v[k] : NULL;
		uint64_t a = addrs[i];

		if (!v || v->plan != VMA_PLAN_TRACK || v->kind != VMA_ANON || v->granule != ps)
			continue;
		ret[m].start = a < v->start + PLAN_HOT_BYTES ? v->start
							     : (a - PLAN_HOT_BYTES) / ps * ps;
		ret[m].end = a + PLAN_HOT_BYTES > v->end ? v->end
							 : (a + PLAN_HOT_BYTES + ps - 1) / ps * ps;
		m++;
	}
	if (!m)
		return 0;
	qsort(ret, m, sizeof(*ret), cmp_span);
	for (size_t i = 0; i < m; i++) /* merge overlaps */
		if (nhot && ret[i].start < ret[nhot - 1].end) /* same VMA then */
			ret[nhot - 1].end =
			    ret[i].end > ret[nhot - 1].end ? ret[i].end : ret[nhot - 1].end;
		else
			ret[nhot++] = ret[i];
	return nhot;
}
