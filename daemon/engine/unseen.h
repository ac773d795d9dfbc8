/* SPDX-License-Identifier: MIT */
/*
 * Writes write protection cannot see (README "Writes write protection cannot see"): what the
 * engine finds of them is named in the image as an EVENT "may-not-be-exact" (proto/FORMAT.md
 * "Events"), the image's pages left as they are read. engine/rings.c finds the io_uring and
 * AIO contexts, engine/shared.c the other writers of shared memory; io_uring registered
 * buffers are copied while held (engine/pinned.c) and use the EVENT "not-exact" beyond the
 * bound.
 */
#pragma once

#include <stdint.h>

#include <jansson.h>

struct snap;

/*
 * Writes {"event": "may-not-be-exact", "why": why, ...members} (members may be NULL; its
 * reference is taken). Returns 0 or -errno.
 */
int unseen_note(struct snap *s, const char *why, json_t *members);
/* "0x7f..." for an address, as the image's events spell them (a new reference). */
json_t *unseen_addr(uint64_t addr);
