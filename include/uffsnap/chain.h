/* SPDX-License-Identifier: MIT */
/*
 * libuffsnap: incremental chains (proto/FORMAT.md "Chains"). An incremental image (header flag
 * IMG_HEADER_F_INCREMENTAL) holds what changed since its parent's instant; every other page is
 * its parent's, and so on down to a full image. A chain is opened from its top (the child) and
 * read as one image. Pure format code, as image.h: pread only, -errno returns, no logging;
 * struct img_error says what went wrong, naming the file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uffsnap/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Links followed at most from a top to its full image (and a guard against loops). */
#define IMG_CHAIN_MAX_DEPTH 4096

struct img_chain;

/* One image of a chain; link 0 is the top (the image opened), the last the full image. */
struct img_chain_link {
	const char *path;		 /* as given, or where its parent was found */
	struct img_reader *reader;	 /* that image alone; owned by the chain */
	uint8_t digest[IMG_DIGEST_SIZE]; /* its trailer's digest (zero if incomplete) */
	bool complete;			 /* only the top of a one-image chain may be incomplete */
};

/*
 * One effective extent of the chain: for each page, the top-most image holding it wins, and a
 * page an image has as UNMAPPED is in none (neither its own nor its parents').
 */
struct img_chain_extent {
	uint64_t addr;
	uint64_t npages;
	uint16_t type; /* IMG_FRAME_PAGES, _ZERO or _DISCARDED */
	uint32_t link; /* the image holding it (index into the links) */
};

/*
 * Opens the image at path and, if it is incremental, its parents down to a full image. The
 * direct parent is parent_path if not NULL, else looked up in the child's directory: the file
 * its META's parent.file names, else any regular file whose trailer digest is the one
 * parent.digest names (only trailers are read). Each further parent is looked up beside its
 * child in the same way. A parent must be complete, its digest the one its child names, its
 * page size its child's; an incremental top must be complete too (its missing pages would be
 * taken from its parent, which may predate them). A full image opens as a chain of one, and
 * may then be incomplete (readable up to its last valid frame, as img_reader_open()).
 * -ENOENT: a parent was not found; -EBADMSG: a parent does not match or is corrupt, or a loop;
 * -ENODATA: an incomplete incremental top or parent; -ELOOP: deeper than IMG_CHAIN_MAX_DEPTH;
 * else as img_reader_open().
 */
int img_chain_open(const char *path, const char *parent_path, struct img_chain **ret,
		   struct img_error *err);
void img_chain_free(struct img_chain *c);

/* The top's metadata (its last META): the layout and threads of the chain's instant. */
const char *img_chain_meta(const struct img_chain *c);
uint32_t img_chain_page_size(const struct img_chain *c);
/* Number of images: 1 for a full image. */
size_t img_chain_depth(const struct img_chain *c);
/* Link i (0: the top); NULL past the depth. */
const struct img_chain_link *img_chain_link(const struct img_chain *c, size_t i);

/*
 * The chain's effective extents, sorted by address and disjoint (computed once, by the same
 * later-wins resolution as a pre-copy image's frames, over every link's index): what flatten
 * writes and a core holds. Unmapped pages are not listed.
 */
size_t img_chain_extents(const struct img_chain *c, const struct img_chain_extent **ret);

/*
 * As img_reader_read(), through the chain: a page is the top-most image's that has it.
 * -ENOENT for a page no image has, or one unmapped at the instant; -ESTALE for a discarded one.
 */
int img_chain_read(struct img_chain *c, uint64_t addr, void *buf, size_t len,
		   struct img_error *err);

/*
 * Verifies links first .. depth - 1, front to back (img_verify_fd() on each file). Returns 0
 * and *ret_bad = depth when every one is complete; else *ret_bad is the first link that is not
 * and *ret_sum its summary (status and error). -errno if a file cannot be read.
 */
int img_chain_verify(const struct img_chain *c, size_t first, size_t *ret_bad,
		     struct img_summary *ret_sum);

/*
 * Writes the chain as one full image to sink: the top's META without its parent member, the
 * top's device state if any, and the effective extents as PAGES, ZERO and DISCARDED frames;
 * header flags 0. Events and progress marks are not carried over. -ENODATA if the top is
 * incomplete (a full image from part of one would pass for whole). ret (may be NULL): the
 * writer's counters.
 */
int img_chain_flatten(struct img_chain *c, struct img_sink *sink, struct img_writer_stats *ret,
		      struct img_error *err);

#ifdef __cplusplus
}
#endif
