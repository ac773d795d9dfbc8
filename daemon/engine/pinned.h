/* SPDX-License-Identifier: MIT */
/*
 * Memory the kernel writes behind write protection's back (DESIGN.md "Writes that bypass
 * uffd-wp"): buffers registered with io_uring. io_sqe_buffers_register() pins them
 * (io_pin_pages(), FOLL_LONGTERM) and READ_FIXED completions write them through the pinned
 * pages, never through the target's page tables, so no write-protect fault tells us.
 *
 * They are found in two steps: the target's io_uring fds before any hold (a readlink per fd),
 * then their buffers (/proc/PID/fdinfo/FD, "UserBufs:") while held, when the list cannot
 * change. Up to PINNED_HELD_MAX bytes are copied while held, so the image holds them as at
 * the instant; the rest is recorded as not exact (DISCARDED, with an EVENT saying why).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/snap-types.h"

/* Registered buffers copied while held, at most; beyond, they are recorded as not exact. */
#define PINNED_HELD_MAX (64ull << 20)

struct snap;

/*
 * Appends the buffers listed in the text of an io_uring fdinfo ("    0: 0x7f0de8fdc000/4096"
 * lines after "UserBufs:\t2") to *v (of *n, room for *cap; grown). Returns how many it
 * appended, or -errno: -EAGAIN if the list is shorter than its count (the kernel could not
 * take the ring's lock and left it out).
 */
int pinned_parse_fdinfo(const char *text, struct snap_span **v, size_t *n, size_t *cap);
/* The target's io_uring fds (links to anon_inode:[io_uring]) into s->rings. Before any hold. */
int pinned_find_rings(struct snap *s);
/* While held: the registered buffers of s->rings, page-aligned and merged, into s->pinned. */
int pinned_read_bufs(struct snap *s);
/*
 * While held, after the hot spans were saved: saves the tracked pages of s->pinned, smallest
 * buffer first, up to PINNED_HELD_MAX bytes and marks the rest discarded (an EVENT frame says
 * why); either way they are claimed and unprotected, so that neither the copier nor a fault
 * saves them later from newer bytes. Pages in VMAs copied while held were exact already.
 */
int pinned_save_held(struct snap *s);
