/* SPDX-License-Identifier: MIT */
/* The part of a snapshot done while the target is held: plan, arm, copy the untrackable. */
#pragma once

#include "snapshot.h"

void snap_defaults(struct snap_opts *o);
/* Reads the layout and decides each VMA's plan (thread stacks are copied, not tracked). */
int snap_plan(struct snap *s);
/* Registers every tracked VMA and write-protects them, on several threads at once. */
int snap_arm(struct snap *s);
/* Copies the VMAs planned as "copied" into the image. */
int snap_copy_held(struct snap *s);
