/* SPDX-License-Identifier: MIT */
/*
 * The checker: decides from an image alone whether it holds exactly one instant's memory of
 * the workload (uffsnap-workload). The layout is the JSON line the workload prints at start-up.
 *
 * Functions return >= 0 on success and -errno on failure; none of them prints. Problems found in
 * the image are not errors: they are the verdict, passed line by line to opts->report.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wl-verify.h"

struct img_reader;

struct wl_layout_region {
	uint32_t thread;
	uint64_t addr;	  /* first data page */
	uint64_t header;  /* header page */
	uint64_t counter; /* counter word (in the header page) */
	uint32_t pages;
	uint32_t records;
};

/* A background event's scratch memory (not part of the consistency verdict). */
struct wl_layout_scratch {
	char event[16];
	uint64_t addr; /* 0 when it moves around (munmap) */
	uint64_t alt;  /* mremap: the other address it moves to; else 0 */
	uint32_t pages;
};

#define WL_LAYOUT_MAX_SCRATCH 16

struct wl_layout {
	int64_t pid;
	uint64_t page_size;
	char kind[16];
	uint32_t nthreads;
	uint32_t kernel_store_every; /* every n-th store is written by read(2); 0: none */
	struct wl_layout_region regions[WL_MAX_THREADS]; /* indexed by thread */
	size_t nscratch;
	struct wl_layout_scratch scratch[WL_LAYOUT_MAX_SCRATCH];
};

/*
 * Parse the workload's layout line. -EINVAL when it is not a valid layout; then errbuf (if not
 * NULL) says what is wrong.
 */
int wl_layout_parse(const char *json, size_t len, struct wl_layout *ret, char *errbuf,
		    size_t errlen);
int wl_layout_load(const char *path, struct wl_layout *ret, char *errbuf, size_t errlen);
struct wl_geometry wl_layout_geometry(const struct wl_layout *l, uint32_t thread);

struct wl_check_opts {
	bool allow_discarded;	 /* pages discarded after the instant are acceptable */
	unsigned max_reports;	 /* per thread; 0: 20 */
	wl_report_fn report;	 /* NULL: count only */
	void *userdata;
};

/*
 * Check the workload's regions in an open image. Returns 0 with ret filled (ret->consistent is
 * the verdict), or -errno (-ENOMEM, -EIO from the reader, -EINVAL for a bad layout).
 */
int wl_check_image(struct img_reader *r, const struct wl_layout *l, const struct wl_check_opts *o,
		   struct wl_verify_result *ret);

/* Same from an image file; an image the reader cannot open gives -EBADMSG and a report line. */
int wl_check_image_file(const char *image_path, const struct wl_layout *l,
			const struct wl_check_opts *o, struct wl_verify_result *ret);
