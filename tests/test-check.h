/* SPDX-License-Identifier: MIT */
/*
 * The integration tests' assertion (print what failed, where, and jump to the caller's fail:)
 * and their small shared helpers.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Sleeps ms milliseconds (for polling loops; never a measurement). */
static inline void test_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * Does a server listen on the Unix socket at path? Its file appears at bind(), before
 * listen(): until then a connect() is refused (a QEMU starting its QMP server under load).
 */
static inline bool test_unix_listening(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	int fd = n < sizeof(sa.sun_path) ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
	bool ok;

	if (fd >= 0)
		memcpy(sa.sun_path, path, n + 1);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
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
