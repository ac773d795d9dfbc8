/* SPDX-License-Identifier: MIT */
/* The part of a snapshot done while the target is held: plan, arm, copy the untrackable. */
#pragma once

#include "engine/snap.h"

struct holder;

void snap_defaults(struct snap_opts *o);
/* Reads the layout (before the target is held: smaps is slow) and plans each VMA. */
int snap_scan(struct snap *s);
/* While held: the layout again if it changed since snap_scan (vma_list_refresh()); marks thread
 * stacks. */
int snap_plan(struct snap *s);
/* Registers every tracked VMA (a VMA the kernel refuses is planned as copied instead) and
 * sets up their per-page states. */
int snap_register(struct snap *s);
/* Write-protects every registered range, on several threads at once; -errno of the first
 * failure (the caller decides what it means). */
int snap_protect_all(struct snap *s);
/* Both, failing the snapshot on error: arming while every thread is held. */
int snap_arm(struct snap *s);
/* Copies the VMAs planned as "copied" into the image. */
int snap_copy_held(struct snap *s);
/*
 * Attaches through a new holder, gets the userfaultfd and calls UFFDIO_API: the first hold.
 * registers: whether the image takes this hold's registers (holder_start()).
 */
int snap_first_hold(struct snap *s, bool registers, struct holder **ret);
/*
 * When the hold asked for at asked_ns began: when the holder began to stop the threads
 * (s->held), not when the daemon asked (the holder's start, for the first hold). The holds'
 * figures run from there to the release.
 */
uint64_t snap_hold_began(const struct snap *s, uint64_t asked_ns);
/* UFFDIO_API with the features a snapshot needs (async: the dirty log's), failing it on error. */
int snap_uffd_api(struct snap *s, int uffd, bool async);
/* snap_copy_held(), timed into stats.copy_held_ns. */
int snap_copy_held_timed(struct snap *s);
