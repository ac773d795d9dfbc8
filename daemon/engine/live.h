/* SPDX-License-Identifier: MIT */
/* Arming while the target runs (engine/live.c). */
#pragma once

#include "engine/snap.h"

/* On success the target runs and T has passed. */
int snap_hold_and_arm_live(struct snap *s);
