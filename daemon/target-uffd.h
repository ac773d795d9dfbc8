/* SPDX-License-Identifier: MIT */
/*
 * A userfaultfd bound to the target's mm, for the daemon to use from outside.
 */
#pragma once

#include "target-attach.h"

/*
 * Create a userfaultfd inside the held target (bound to its mm: fs/userfaultfd.c takes
 * ctx->mm = current->mm at creation) and pull it out into the daemon. devuffd_fd is the
 * daemon's fd of /dev/userfaultfd; the target gets a copy only for the time of the ioctl.
 * Nothing is left behind in the target: no fd, no mapping. The returned fd is O_CLOEXEC and
 * O_NONBLOCK; UFFDIO_API has NOT been called on it (the caller does, exactly once).
 */
int target_uffd_create(struct target *t, int devuffd_fd, int *ret_uffd);
