/* SPDX-License-Identifier: MIT */
/* The fault handler thread (engine/faults.c): the only reader of the userfaultfd. */
#pragma once

#include "engine/snap.h"

/* Starts the fault handler thread (once); stops and joins it. Main thread only. */
int snap_handler_start(struct snap *s);
void snap_handler_stop(struct snap *s);
/* Stops the handler, closes the uffd (dropping all protection, waking every waiter) and the
 * other fds. Safe at any point, held or not. */
void snap_cleanup(struct snap *s);
