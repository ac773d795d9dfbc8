/* SPDX-License-Identifier: MIT */
/*
 * Sequential walk over an image: header, then frames, checking every checksum, the sequence
 * numbers and the order rules (META first, DEVSTATE frames right after it, a pre-copy image's
 * second META, UNMAPPED frames only where the header allows them, INDEX frames last). Used by
 * verification (read(), works on pipes) and by the reader when an image has no trailer
 * (pread()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "img-internal.h"

/* Reads up to len bytes; returns the count (short only at end of input) or -errno. */
typedef ssize_t (*img_read_fn)(void *ctx, void *buf, size_t len);

enum img_walk_result {
	IMG_WALK_FRAME = 1,   /* *ret_frame and payload are valid */
	IMG_WALK_TRAILER = 2, /* the trailer was read into w->trailer */
	IMG_WALK_END = 3,     /* input ended at a frame boundary without a trailer */
	IMG_WALK_TRUNCATED = 4, /* input ended inside a frame or the trailer */
};

struct img_walker {
	img_read_fn read;
	void *ctx;
	struct img_header header;
	uint64_t offset;     /* where the next frame starts */
	uint64_t seq;	     /* expected sequence number of the next frame */
	bool in_index;	     /* an INDEX frame was seen: only INDEX or the trailer may follow */
	uint16_t last_type;  /* the previous frame's type (DEVSTATE follows META or DEVSTATE) */
	uint64_t metas;	     /* META frames so far (a pre-copy image has a second one) */
	uint64_t meta_offset; /* the second META frame's offset, 0 until there is one */
	uint64_t index_offset;
	uint8_t *payload;    /* the current frame's payload */
	size_t payload_cap;
	struct img_digest *digest;
	struct img_trailer trailer;
};

int img_walk_start(struct img_walker *w, img_read_fn read, void *ctx, struct img_error *err);
/* Returns an img_walk_result, or -EBADMSG/-EPROTONOSUPPORT (err filled) or -errno. */
int img_walk_next(struct img_walker *w, struct img_frame *ret_frame, struct img_error *err);
void img_walk_done(struct img_walker *w);
