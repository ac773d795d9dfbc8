/* SPDX-License-Identifier: MIT */
/*
 * One live snapshot of one target (DESIGN.md "The way of one snapshot"): the engine's public
 * API. The engine returns -errno and a message in struct snap_error; it never logs. The state
 * of one snapshot (struct snap) is private to the engine: engine/snap.h.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "engine/snap-types.h"
#include "uffsnap/image.h"

int snapshot_take(pid_t pid, const struct snap_opts *opts, struct img_sink *sink,
		  struct snap_stats *ret_stats, struct snap_error *err);
int snapshot_stats_to_json(const struct snap_stats *s, json_t **ret);
/* False once pid has no address space: it exited (zombie, or reaped) or never existed. */
bool snapshot_target_has_mm(pid_t pid);
