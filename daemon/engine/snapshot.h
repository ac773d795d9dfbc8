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
/*
 * A chain of pre-copy snapshots of one process (FORMAT.md "Chains"): the dirty log stays armed
 * from one image's instant to the next, so that each image after the first holds only what
 * changed since the one before, and names it as its parent. Start: attach and arm once (the
 * target held briefly). Take: the next image into sink; parent_json, a JSON object for the
 * image's META "parent" member (the previous image's digest, time and file name), is NULL for
 * the first, full, image. A failed image ends the chain: every later take fails with its
 * error. End: release everything (the dirty log drops with the userfaultfd).
 */
struct snapshot_chain;
int snapshot_chain_start(pid_t pid, const struct snap_opts *opts, struct snapshot_chain **ret,
			 struct snap_error *err);
int snapshot_chain_take(struct snapshot_chain *c, struct img_sink *sink, const char *parent_json,
			struct snap_stats *ret_stats, struct snap_error *err);
void snapshot_chain_end(struct snapshot_chain *c);
/* False once pid has no address space: it exited (zombie, or reaped) or never existed. */
bool snapshot_target_has_mm(pid_t pid);
