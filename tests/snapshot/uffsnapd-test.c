/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd with pause points, for tests only (never installed): the real program, whose
 * snapshots stop at the point named by UFFSNAPD_TEST_PAUSE=POINT:DIR (struct snap_opts
 * test_pause: "start", "armed", "instant", a pre-copy's "round"; a QEMU guest's
 * "guest-stopped", "guest-saved"), create DIR/POINT and wait for DIR/go, so that a test can
 * change the target at exactly that point.
 * Without the variable it is uffsnapd.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uffsnapd.h"

/* A hang guard, never a measurement: the test creates DIR/go or kills us. */
#define PAUSE_MAX_MS 120000

static void pause_at(const char *point)
{
	const char *spec = getenv("UFFSNAPD_TEST_PAUSE"), *dir;
	size_t n = strlen(point);
	char path[512];
	int fd;

	if (!spec || strncmp(spec, point, n) || spec[n] != ':')
		return;
	dir = spec + n + 1;
	snprintf(path, sizeof(path), "%s/%s", dir, point);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/go", dir);
	for (int i = 0; i < PAUSE_MAX_MS && access(path, F_OK) < 0; i++)
		usleep(1000);
}

int main(int argc, char **argv)
{
	return uffsnapd_main(argc, argv, pause_at);
}
