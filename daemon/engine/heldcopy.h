/* SPDX-License-Identifier: MIT */
/*
 * What an image of a chain copied while the target was held (the VMAs planned VMA_PLAN_COPY:
 * thread stacks, private file data, the vDSO), kept until the next image is taken: that one
 * writes only the pages that differ, since a page an increment lacks reads as its parent's
 * (FORMAT.md "Chains"). Without it every increment would carry every thread's stack whole.
 * Pages are kept exactly (no hashes): a page is left out only if its bytes are equal.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this much is kept; past it, later pages are written again in the next image. */
#define HELD_COPIES_MAX (64ull << 20)

struct held_copy {
	uint64_t start, end;
	uint8_t *data; /* NULL: every page zero (not present) */
};

struct held_copies {
	struct held_copy *v; /* ascending, not overlapping */
	size_t n, cap;
	uint64_t bytes;
};

/*
 * Keeps a copy of [start, start + len) (buf, or zeros if buf is NULL). Ranges come in
 * ascending order; one that does not, or past HELD_COPIES_MAX, is not kept (0: a page not kept
 * is written again). -ENOMEM.
 */
int held_copies_add(struct held_copies *h, uint64_t start, const uint8_t *buf, size_t len);
/* Whether the page at addr (page_size bytes) was kept with the same bytes as page (NULL: zeros). */
bool held_copies_same(const struct held_copies *h, uint64_t addr, const uint8_t *page,
		      size_t page_size);
void held_copies_free(struct held_copies *h);
