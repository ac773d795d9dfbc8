/* SPDX-License-Identifier: MIT */
/* Pre-copy snapshots: rounds of the dirty log, then one bounded hold (engine/precopy.c). */
#pragma once

#include "engine/snap.h"

/*
 * From the first hold to the release of the final one (the instant), as
 * snap_hold_and_arm_live() is for write-protect snapshots; after it nothing is left to copy.
 * On failure the target is released and every protection dropped.
 */
int snap_precopy(struct snap *s);

/*
 * A chain of pre-copy images (engine/snapshot.c: snapshot_chain_*()): the first hold and
 * arming once, then one precopy_next() per image, the dirty log armed from one instant to the
 * next so that each image after the first copies only what changed since. The caller opens
 * each image's writer (flag INCREMENTAL but for the first) and finishes it.
 */
struct precopy;
int precopy_new(struct snap *s, bool chain, struct precopy **ret);
int precopy_next(struct precopy *pc);
void precopy_free(struct precopy *pc);
