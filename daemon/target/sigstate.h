/* SPDX-License-Identifier: MIT */
/* A held thread's pending and blocked signals, for the image metadata (an ELF core needs them). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* The thread's pending and blocked masks (bit n-1: signal n). -errno if /proc does not say
 * (the thread is gone). */
int target_sigstate_read(pid_t pid, pid_t tid, uint64_t *ret_pending, uint64_t *ret_blocked);
