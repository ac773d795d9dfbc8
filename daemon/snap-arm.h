/* SPDX-License-Identifier: MIT */
/* The part of a snapshot done while the target is held: plan, arm, copy the untrackable. */
#pragma once

#include "snapshot.h"

void snap_defaults(struct snap_opts *o);
/* Reads the layout (before the target is held: smaps is slow) and plans each VMA. */
int snap_scan(struct snap *s);
/* While held: rescans if the layout changed since snap_scan; marks thread stacks. */
int snap_plan(struct snap *s);
/* Registers every tracked VMA and write-protects them, on several threads at once. */
int snap_arm(struct snap *s);
/* Copies the VMAs planned as "copied" into the image. */
int snap_copy_held(struct snap *s);
