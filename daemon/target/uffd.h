/* SPDX-License-Identifier: MIT */
/*
 * A userfaultfd bound to the target's mm, for the daemon to use from outside.
 */
#pragma once

#include <stdbool.h>

#include "target/attach.h"

/*
 * Create a userfaultfd inside the held target (bound to its mm: fs/userfaultfd.c takes
 * ctx->mm = current->mm at creation) and pull it out into the daemon. devuffd_fd is the
 * daemon's fd of /dev/userfaultfd; the target gets a copy only for the time of the ioctl.
 * Nothing is left behind in the target: no fd, no mapping. The returned fd is O_CLOEXEC and
 * O_NONBLOCK; UFFDIO_API has NOT been called on it (the caller does, exactly once).
 */
int target_uffd_create(struct target *t, int devuffd_fd, int *ret_uffd);

/* For tests and benchmarks: see every step of target_uffd_create(), and make any one fail. */
enum target_uffd_phase { TARGET_UFFD_BEFORE, TARGET_UFFD_AFTER };

struct target_uffd_step {
	unsigned int index; /* 0, 1, ... in the order the steps run */
	const char *name;   /* e.g. "mmap", "pidfd_getfd uffd" */
	bool remote;	    /* a syscall injected into the target, else a call made here */
	enum target_uffd_phase phase;
};

struct target_uffd_hooks {
	/*
	 * Called before and after each step that succeeded. A negative return fails the step
	 * with that -errno: before, the step does not run; after, it ran, and whatever it made
	 * (a remote fd, the scratch mapping) is recorded and undone like on any other failure.
	 */
	int (*step)(void *arg, const struct target_uffd_step *step);
	void *arg;
};

/* target_uffd_create() with hooks (NULL: none). */
int target_uffd_create_hooked(struct target *t, int devuffd_fd,
			      const struct target_uffd_hooks *hooks, int *ret_uffd);
