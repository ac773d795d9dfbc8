/* SPDX-License-Identifier: MIT */
/* Shared by the chain's files (img-chain*.c); not installed. */
#pragma once

#include <stdbool.h>

#include "img-internal.h"
#include "uffsnap/chain.h"

struct img_chain {
	struct img_chain_link *links; /* [0] the top .. [depth - 1] the full image */
	int *fds;		      /* each link's file, read by its reader */
	size_t depth, cap;
	uint32_t page_size;
	/* The resolved extents, UNMAPPED ones included (to say why a page is absent); offset is
	 * the link's index. */
	struct img_index_entry *table;
	size_t ntable;
	struct img_chain_extent *ext; /* the same without UNMAPPED */
	size_t next;
};

/* What a child's META says of its parent (FORMAT.md "Chains"). */
struct chain_parent {
	uint8_t digest[IMG_DIGEST_SIZE];
	char hex[2 * IMG_DIGEST_SIZE + 1];
	char time[64];	/* parent.time, "?" if absent */
	char file[256]; /* parent.file without any directory, "" if absent */
};

/* Parses the META's parent member; -EBADMSG (naming child) if it is missing or malformed. */
int chain_parse_parent(const char *meta, const char *child, struct chain_parent *ret,
		       struct img_error *err);

/*
 * The digest in the trailer of the regular file fd, reading only the trailer: 0, -ENODATA if
 * it has none that checks out (an incomplete image, or not an image), -errno.
 */
int chain_trailer_digest(int fd, uint8_t ret[IMG_DIGEST_SIZE]);

/* The directories scanned so far for parents, and what their files' trailers say. */
struct chain_finder;
void chain_finder_free(struct chain_finder *f);

/*
 * Finds the file beside child_path whose trailer digest is p->digest: p->file first, then any
 * regular file of the directory (each directory is scanned once per *finder). *ret_path is
 * malloc'd. -ENOENT if none, -ENODATA if the one p->file names is incomplete; err says so.
 * top: the child is the chain's top, for which --parent can name the parent.
 */
int chain_find_parent(struct chain_finder **finder, const char *child_path,
		      const struct chain_parent *p, bool top, char **ret_path,
		      struct img_error *err);
