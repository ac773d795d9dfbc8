/* SPDX-License-Identifier: MIT */
/* A held thread's pending and blocked signals, for the image metadata (an ELF core needs them). */
#pragma once

#include <jansson.h>
#include <sys/types.h>

/* {"pending": "0x...", "blocked": "0x..."}, or NULL if /proc does not say (the thread is gone). */
json_t *target_sigstate_json(pid_t pid, pid_t tid);
