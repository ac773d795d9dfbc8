/* SPDX-License-Identifier: MIT */
/*
 * Pure verification of the workload's regions (no I/O, no allocation): given each thread's
 * header page and data pages as bytes, decide whether together they are one instant's memory.
 * Used by the checker (bytes from an image), by the workload's own full self-check (bytes from
 * its live, paused memory) and by its fork children (bytes from the copy fork gave them).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wl-scheme.h"

/* What a source knows about one page. */
enum wl_page_state {
	WL_PAGE_PRESENT = 0,
	WL_PAGE_DISCARDED = 1, /* the image says: discarded after the snapshot instant */
	WL_PAGE_MISSING = 2,   /* not in the image at all */
	WL_PAGE_BAD = 3,       /* in the image but unreadable (checksum) */
};

struct wl_view {
	uint32_t thread;
	struct wl_geometry geo;
	uint64_t header_addr;	   /* addresses, for messages only */
	uint64_t data_addr;
	const uint8_t *header;	   /* page_size bytes */
	const uint8_t *data;	   /* pages * page_size bytes */
	uint8_t header_state;	   /* enum wl_page_state */
	const uint8_t *page_state; /* per data page; NULL: all present */
};

/* One line describing one problem, without a newline. */
typedef void (*wl_report_fn)(void *userdata, const char *line);

struct wl_verify_opts {
	bool exact_counter;   /* the threads were stopped between stores: counter == K */
	bool allow_discarded; /* discarded pages do not make the memory inconsistent */
	/*
	 * Every kernel_store_every-th store is written by read(2) (0: none). The kernel copies
	 * those 16 bytes with more than one instruction, so at an instant that falls inside the
	 * copy the record of the in-flight store (counter + 1) may be any mix of its old and new
	 * bytes; that one slot is then checked byte by byte, and its seen value not at all.
	 */
	unsigned kernel_store_every;
	unsigned max_reports; /* lines per thread before "... more"; 0: 20 */
	wl_report_fn report;  /* NULL: count only */
	void *userdata;
};

struct wl_verify_result {
	bool consistent;
	uint32_t nthreads;
	uint64_t problems;
	uint64_t discarded_pages;
	uint64_t missing_pages;
	uint64_t bad_pages;
	uint64_t stores;	       /* sum of K */
	uint64_t k[WL_MAX_THREADS];    /* stores of each thread the memory holds */
	uint64_t counter[WL_MAX_THREADS];
	bool has_counter[WL_MAX_THREADS];
	uint64_t max_seen[WL_MAX_THREADS];
};

/*
 * views[t] must be thread t's region, n the number of threads. Returns 0 with ret filled
 * (ret->consistent is the verdict) or -EINVAL when the views do not describe a workload.
 */
int wl_verify(const struct wl_view *views, size_t n, const struct wl_verify_opts *opts,
	      struct wl_verify_result *ret);

/* The geometry is usable: pages >= 1, 1 <= records <= page_size / 16, page_size >= 4096. */
bool wl_geometry_valid(const struct wl_geometry *g);
