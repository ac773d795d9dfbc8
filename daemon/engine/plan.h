/* SPDX-License-Identifier: MIT */
/* The pure arithmetic of a snapshot's plan: span merging and the hot ranges of threads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/snap-types.h"
#include "engine/vmas.h"

/* Saved while held on either side of a thread's stack pointer and TLS pointer. */
#define PLAN_HOT_BYTES (32u << 10)

/*
 * Only the VMAs that meet one of the n spans (sorted) stay planned; the others become layout
 * only (VMA_PLAN_NONE, noted). Returns how many VMAs meet a span.
 */
size_t plan_scope(struct vma_list *l, const struct snap_span *scope, size_t n);
/* Sorts and merges overlapping or touching spans in place; v may be NULL if *n is 0. */
void plan_merge_spans(struct snap_span *v, size_t *n);
/*
 * The pages around each address (stack pointers, TLS bases) that lies in a tracked anonymous
 * VMA of page_size granules: PLAN_HOT_BYTES either side, page-aligned, clipped to the VMA;
 * sorted, overlaps merged. ret has room for n spans; returns how many it holds.
 */
size_t plan_hot_spans(const struct vma_list *vmas, const uint64_t *addrs, size_t n,
		      uint64_t page_size, struct snap_span *ret);
