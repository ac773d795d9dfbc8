/* SPDX-License-Identifier: MIT */
/*
 * Incremental check of an image as its bytes arrive (push, any chunking): the header, every
 * frame header and payload CRC, the frame sequence and order (a pre-copy image's second META,
 * UNMAPPED frames where the header allows them), and the trailer with its digest and its
 * pointer to the second META (proto/FORMAT.md). What needs the whole image (index against the
 * frames, overlaps or their resolution) is left to img_verify_fd() once the trailer has
 * checked out.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "uffsnap/image.h"

struct stream_check;

int stream_check_new(struct stream_check **ret);
void stream_check_free(struct stream_check *c);
/*
 * Feeds the next len bytes. Returns 0 (fine so far), 1 (the trailer arrived and checks out:
 * nothing may follow), -EBADMSG or -EPROTONOSUPPORT (err says what and where), -ENOMEM.
 */
int stream_check_feed(struct stream_check *c, const uint8_t *buf, size_t len,
		      struct img_error *err);
/* Bytes fed so far. */
uint64_t stream_check_offset(const struct stream_check *c);
