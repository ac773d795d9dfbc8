/* SPDX-License-Identifier: MIT */
/*
 * The hold gate: a sink in front of the image's output that keeps in memory what is written
 * while the target is held (the image's start, and the memory copied while held), and writes
 * it out once the target runs again. So nothing the output does (a pipe nobody reads, a slow
 * ssh, a full disk) can keep a target thread stopped: the holds last as long as the copying,
 * never as long as the writing.
 *
 * Threads: the writer calls the gate's writev and flush with its lock held, so the queue is
 * the writer's; `holding` is the only field another thread (the engine's, opening and
 * closing the gate) touches, and it is atomic.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "uffsnap/image.h"

/*
 * What may be queued while held. The memory copied while held is the untrackable kind
 * (private file mappings, small thread stacks, a window around each thread's stack pointer):
 * megabytes, rarely more. Beyond this the snapshot fails (and the target is released) rather
 * than grow without bound.
 */
#define SNAP_GATE_MAX_BYTES (256u << 20)

struct snap_gate;

/* A gate in front of out (which stays the caller's). 0 or -errno. */
int snap_gate_new(struct img_sink *out, struct snap_gate **ret);
/* The gate as a sink, for the image writer. */
struct img_sink *snap_gate_sink(struct snap_gate *g);
/*
 * Makes sure that queueing up to bytes (at most 64 MiB are kept) will not fault in fresh
 * memory while the target is held: call it while the target runs. Best effort.
 */
void snap_gate_reserve(struct snap_gate *g, size_t bytes);
/* Held: queue every write. Not held: the queue goes out before the next write or flush. */
void snap_gate_hold(struct snap_gate *g, bool held);
/* Frees what is still queued (after a failure). NULL is fine. */
void snap_gate_free(struct snap_gate *g);
