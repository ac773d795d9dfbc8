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
 * The temporary image: an unnamed file in CORE's directory (the core itself is an out_file,
 * named only when complete). On failure -errno, and msg says where and why.
 */
int oneshot_core_temp(const char *core, int *ret_image_fd, char *msg, size_t msglen);

/*
 * Writes the core into core_fd from the finished image in image_fd; says on stderr what the
 * core lacks. On failure -errno and msg says why (the caller removes what it created).
 */
int oneshot_core_write(int image_fd, int core_fd, const char *core, char *msg, size_t msglen);
