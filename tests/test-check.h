/* SPDX-License-Identifier: MIT */
/*
 * The integration tests' assertion (print what failed, where, and jump to the caller's fail:)
 * and their small shared helpers.
 */
#pragma once

#include <stdio.h>
#include <time.h>

/* Sleeps ms milliseconds (for polling loops; never a measurement). */
static inline void test_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAIL %s:%d: %s: ", __func__, __LINE__, #cond);                     \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)
