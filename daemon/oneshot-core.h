/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd --pid PID --core CORE: a snapshot written as an ELF core file in one step. The image
 * goes to an unnamed temporary file beside CORE (frames come in any address order, a core's
 * segments in address order), then libuffsnap's img_core_write() turns it into the core, as
 * `uffsnapctl image core` does.
 */
#pragma once

#include <stdbool.h>

#include "uffsnap/core.h"

/*
 * Creates CORE (not over an existing file unless force) and the temporary image file in its
 * directory. On failure -errno, and msg says which file and why.
 */
int oneshot_core_open(const char *core, bool force, int *ret_core_fd, int *ret_image_fd,
		      char *msg, size_t msglen);

/*
 * Writes the core from the finished image and closes core_fd; says on stderr what the core
 * lacks. On failure removes CORE, returns -errno and msg says why.
 */
int oneshot_core_finish(int image_fd, int core_fd, const char *core, char *msg, size_t msglen);
