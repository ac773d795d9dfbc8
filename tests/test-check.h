/* SPDX-License-Identifier: MIT */
/* The integration tests' assertion: print what failed, where, and jump to the caller's fail:. */
#pragma once

#include <stdio.h>

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAIL %s:%d: %s: ", __func__, __LINE__, #cond);                     \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)
