/* SPDX-License-Identifier: MIT */
/* Shared between the format's writer and readers; not installed. */
#pragma once

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "uffsnap/image.h"

/* "\x89UFFSNP\n": the high byte and the newline catch 7-bit and text-mode transfers. */
#define IMG_MAGIC	  "\x89UFFSNP\n"
#define IMG_FRAME_MAGIC	  "UFRM"
#define IMG_TRAILER_MAGIC "\x89UFSEND\n"
#define IMG_MAGIC_LEN	  8

/* Known frame flag bits; any other set bit makes a frame header invalid. */
#define IMG_FRAME_KNOWN_FLAGS IMG_FRAME_F_OPTIONAL
/* Header flags this reader knows (img_header_decode() refuses any other). */
#define IMG_HEADER_KNOWN_FLAGS (IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL)
/* Header flags under which UNMAPPED extents may appear. */
#define IMG_HEADER_UNMAPS (IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL)

/*
 * Says what is wrong with the input, and where, in err (when the caller gave one) and returns
 * ret, the error the caller returns: return img_fail(err, off, -EBADMSG, "...", ...);
 */
__attribute__((format(printf, 4, 5))) static inline int
img_fail(struct img_error *err, uint64_t offset, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->offset = offset;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* Why a pre-copy image cut before its second META is of no use (FORMAT.md "Pre-copy images"). */
#define IMG_NO_INSTANT_MSG                                                                         \
	"a pre-copy image cut before its instant: no page in it is known to be from one moment"

/* Checks a decoded frame against the rules of its type (FORMAT.md "Frames"). */
int img_frame_check(const struct img_frame *f, uint32_t page_size, struct img_error *err);

/* True for the frame types that map page addresses (and so appear in the index). */
static inline int img_frame_is_extent(uint16_t type)
{
	return type == IMG_FRAME_PAGES || type == IMG_FRAME_ZERO || type == IMG_FRAME_DISCARDED ||
	       type == IMG_FRAME_UNMAPPED;
}

/*
 * Whether an extent of this type may appear in an image with these header flags: UNMAPPED
 * only in a pre-copy or incremental image (a page there is known to have been mapped before).
 */
static inline int img_extent_allowed(uint16_t type, uint32_t header_flags)
{
	return img_frame_is_extent(type) &&
	       (type != IMG_FRAME_UNMAPPED || (header_flags & IMG_HEADER_UNMAPS));
}

/* SHA-256 of the header and every frame header, in order (FORMAT.md "Trailer"). */
struct img_digest;
int img_digest_new(struct img_digest **ret);
int img_digest_update(struct img_digest *d, const void *buf, size_t len);
int img_digest_final(struct img_digest *d, uint8_t out[IMG_DIGEST_SIZE]);
void img_digest_free(struct img_digest *d);

/* Sorting and overlap check of index entries (by address). */
void img_index_sort(struct img_index_entry *e, size_t n);
/* Returns the index of the first entry overlapping its predecessor, or n if none. */
size_t img_index_find_overlap(const struct img_index_entry *e, size_t n, uint32_t page_size);

/*
 * Later-wins resolution (FORMAT.md "Pre-copy images"). in[] are extents in the order they were
 * written (for an image: its extent frames in seq order, each a whole frame). *ret receives,
 * sorted by address, the effective extents: for every page, the last in[] entry covering it;
 * each output entry is a maximal run of pages won by in[] entries of the same offset and type
 * (for an image, the same frame), with that offset and type. *ret is malloc'd (NULL when
 * *ret_n is 0); both are left untouched on failure (-ENOMEM), in[] always. Every in[]
 * extent must be valid (count >= 1, not wrapping). O(n log n) time, O(n) memory.
 */
int img_resolve(const struct img_index_entry *in, size_t n, uint32_t page_size,
		struct img_index_entry **ret, size_t *ret_n);

/* The pages of n entries; saturates at UINT64_MAX (crafted overlapping extents can). */
uint64_t img_index_pages(const struct img_index_entry *e, size_t n);

/* Field by field (the struct has padding, which memcmp would compare). */
int img_index_equal(const struct img_index_entry *a, size_t na, const struct img_index_entry *b,
		    size_t nb);
