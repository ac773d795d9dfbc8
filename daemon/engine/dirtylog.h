/* SPDX-License-Identifier: MIT */
/*
 * The dirty log (DESIGN.md "A second way to track writes"): memory registered with an
 * asynchronous userfaultfd (UFFD_FEATURE_WP_ASYNC) and write-protected is never waited on: the
 * kernel resolves a write fault itself and only clears that page's protection. PAGEMAP_SCAN
 * then lists the pages written since they were last protected and protects them again in the
 * same walk. Plus the span sets the pre-copy rounds are made of.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/snap-types.h"

/* A growable list of address ranges. */
struct span_set {
	struct snap_span *v;
	size_t n, cap;
};

int spans_add(struct span_set *s, uint64_t start, uint64_t end);
/* Sorts and merges touching or overlapping spans. */
void spans_merge(struct span_set *s);
uint64_t spans_bytes(const struct span_set *s);
void spans_free(struct span_set *s);
/* Whether addr lies in a span of s (sorted and merged). */
bool spans_has(const struct span_set *s, uint64_t addr);
/* Appends to out every span of a minus b (both sorted and merged). */
int spans_subtract(const struct span_set *a, const struct span_set *b, struct span_set *out);

/*
 * Appends to out the parts of [start, end) written since they were last protected, and
 * protects them again (PM_SCAN_WP_MATCHING). -EPERM if part of the range is not registered
 * with an asynchronous userfaultfd (PM_SCAN_CHECK_WPASYNC: the layout changed under us), else
 * -errno of the ioctl.
 */
int dirtylog_collect(int pagemapfd, uint64_t start, uint64_t end, struct span_set *out);
/*
 * Bytes of the private anonymous range [start, end) that a copy must read (snap_scan_present():
 * present or swapped, but not the zero page nor a uffd-wp marker, where wp_marker can tell),
 * or -errno.
 */
int64_t dirtylog_present_bytes(int pagemapfd, uint64_t wp_marker, uint64_t start, uint64_t end);
