/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "engine/pages.h"

int pages_init(struct pages *p, const struct vma_list *vmas)
{
	size_t n = 0;

	*p = (struct pages){0};
	for (size_t i = 0; i < vmas->n; i++)
		n += vmas->v[i].plan == VMA_PLAN_TRACK;
	p->r = calloc(n ? n : 1, sizeof(*p->r));
	if (!p->r)
		return -ENOMEM;
	for (size_t i = 0; i < vmas->n; i++) {
		const struct vma *v = &vmas->v[i];
		struct pages_range *r;

		if (v->plan != VMA_PLAN_TRACK)
			continue;
		r = &p->r[p->n];
		*r = (struct pages_range){v->start, v->end, v->granule, v->kind, NULL};
		r->state = calloc((v->end - v->start) / v->granule, 1);
		if (!r->state) {
			pages_free(p);
			return -ENOMEM;
		}
		p->total_granules += (v->end - v->start) / v->granule;
		p->n++;
	}
	return 0;
}

void pages_free(struct pages *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->r[i].state);
	free(p->r);
	*p = (struct pages){0};
}

struct pages_range *pages_find(struct pages *p, uint64_t addr)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < p->r[mid].start)
			hi = mid;
		else if (addr >= p->r[mid].end)
			lo = mid + 1;
		else
			return &p->r[mid];
	}
	return NULL;
}
