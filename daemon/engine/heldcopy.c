/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/heldcopy.h"

int held_copies_add(struct held_copies *h, uint64_t start, const uint8_t *buf, size_t len)
{
	uint8_t *data = NULL;

	if (h->n && start < h->v[h->n - 1].end)
		return 0;
	if (buf && h->bytes + len > HELD_COPIES_MAX)
		return 0;
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct held_copy *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	if (buf) {
		data = malloc(len);
		if (!data)
			return -ENOMEM;
		memcpy(data, buf, len);
		h->bytes += len;
	}
	h->v[h->n++] = (struct held_copy){.start = start, .end = start + len, .data = data};
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

bool held_copies_same(const struct held_copies *h, uint64_t addr, const uint8_t *page,
		      size_t page_size)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) { /* the first range ending after addr */
		size_t mid = lo + (hi - lo) / 2;

		if (h->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == h->n || h->v[lo].start > addr || addr + page_size > h->v[lo].end)
		return false;
	if (!h->v[lo].data)
		return !page || all_zero(page, page_size);
	if (!page)
		return all_zero(h->v[lo].data + (addr - h->v[lo].start), page_size);
	return !memcmp(h->v[lo].data + (addr - h->v[lo].start), page, page_size);
}

void held_copies_free(struct held_copies *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].data);
	free(h->v);
	*h = (struct held_copies){0};
}
