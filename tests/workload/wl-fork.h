/* SPDX-License-Identifier: MIT */
/*
 * The fork event's child. fork() is itself a point-in-time copy of private memory (the kernel
 * write-protects the parent's page tables, and a thread that faults waits for fork to finish),
 * so the child first checks its copy of the regions as one instant's memory, then writes all
 * over it: none of that may ever show up in the parent, or in a snapshot of the parent.
 * It runs in a child of a multi-threaded process: no locks, no stdio, no allocation.
 */
#pragma once

#include <stdint.h>

struct wl_events;

/* The child's exit status: 0 all well, 1 its copy is not one instant, 2 its writes read back
 * wrong. */
int wl_fork_child(struct wl_events *ev, uint64_t gen);
