/* SPDX-License-Identifier: MIT */
/* The one monotonic clock every part measures with (holds, faults, progress, timeouts). */
#pragma once

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t sys_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Sleeps ns nanoseconds (less if a signal comes: callers only pace themselves with it). */
static inline void sys_sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	nanosleep(&ts, NULL);
}

/*
 * Paces a loop of changes to a target's page tables: sleeps as long as the step that began at
 * since_ns took, at most max_ns (engine/faults.c, dirty_log_release(), says why).
 */
static inline void sys_pace(uint64_t since_ns, uint64_t max_ns)
{
	uint64_t took = sys_now_ns() - since_ns;

	sys_sleep_ns(took < max_ns ? took : max_ns);
}
