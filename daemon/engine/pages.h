/* SPDX-License-Identifier: MIT */
/*
 * Per-page state of the tracked memory: the "claim" of DESIGN.md's read-before-claim rule.
 * A page starts PROTECTED (write-protected, not yet saved). Whoever has read its content while
 * it was still protected may claim it (PROTECTED -> SAVED, atomically); only the winner stores
 * its copy, and only a claimed page is ever unprotected. DISCARDED marks pages the target
 * unmapped or dropped before they could be saved.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/vmas.h"

enum page_state {
	PAGE_PROTECTED = 0,
	PAGE_SAVED = 1,
	PAGE_DISCARDED = 2,
};

/* One tracked range (a VMA at the snapshot instant), with one state byte per granule. */
struct pages_range {
	uint64_t start, end;
	uint32_t granule;
	enum vma_kind kind;
	uint8_t *state;
};

struct pages {
	struct pages_range *r;
	size_t n;
	uint64_t total_granules;
};

int pages_init(struct pages *p, const struct vma_list *vmas);
void pages_free(struct pages *p);
/* The range containing the T-address addr, or NULL. */
struct pages_range *pages_find(struct pages *p, uint64_t addr);

static inline size_t pages_index(const struct pages_range *r, uint64_t addr)
{
	return (addr - r->start) / r->granule;
}

static inline enum page_state pages_get(const struct pages_range *r, size_t i)
{
	return __atomic_load_n(&r->state[i], __ATOMIC_ACQUIRE);
}

/* PROTECTED -> to; true if this caller won. */
static inline bool pages_claim(struct pages_range *r, size_t i, enum page_state to)
{
	uint8_t expect = PAGE_PROTECTED;

	return __atomic_compare_exchange_n(&r->state[i], &expect, to, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}
