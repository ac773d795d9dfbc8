/* SPDX-License-Identifier: MIT */
/*
 * A migration receiver's writer (apply.c): the image bytes of a guest's pre-copy stream, pushed
 * as they arrive in any chunking, written into the destination QEMU's memory backend files.
 * Each PAGES frame's bytes go to its backend's file at (addr - backend addr), each ZERO frame
 * punches a hole there, in stream order: a later frame overwrites an earlier one, as a
 * pre-copy image resolves (FORMAT.md "Pre-copy images"). The frames' checksums and order are
 * stream/check.c's to check, fed the same bytes first; this only parses what it must.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uffsnap/image.h"

/* One backend: where the source mapped it (from the image's META) and its file here. */
struct apply_backend {
	uint64_t addr, size;
	int fd;
};

struct apply {
	/* The caller's: the first META (nth 0) and the instant's (1); a negative return (with
	 * msg) fails the stream. Backends must be set (apply_set_backends) by the first. */
	int (*meta)(void *ctx, unsigned nth, const char *json, size_t len, char *msg, size_t n);
	void *ctx;
	/* Internal. */
	int state;
	uint8_t hdr[IMG_HEADER_SIZE];
	size_t have;
	struct img_frame f;
	uint64_t done; /* payload bytes of the current frame seen */
	char *meta_buf;
	struct apply_backend *b, *cur;
	size_t nb;
	uint32_t page_size;
	unsigned metas;
	uint64_t pages_written, pages_zeroed; /* counting rewrites */
};

void apply_init(struct apply *a);
/* The backends frames may name (copied; fds stay the caller's). */
int apply_set_backends(struct apply *a, const struct apply_backend *b, size_t n);
/* The next n image bytes. 0, or -errno with msg. */
int apply_feed(struct apply *a, const uint8_t *buf, size_t n, char *msg, size_t len);
void apply_free(struct apply *a);
