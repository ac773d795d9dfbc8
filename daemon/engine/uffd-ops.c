/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sched.h>
#include <sys/ioctl.h>

#include "sys/linux-compat.h"
#include "engine/uffd-ops.h"

/* How often a protect is retried while events are pending before giving up. */
#define UFFD_EAGAIN_RETRIES 100000

int uffd_api(int uffd, uint64_t want, uint64_t *ret_features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = want};

	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return -errno;
	if (ret_features)
		*ret_features = api.features;
	return 0;
}

int uffd_register_wp(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = {.start = start, .len = len},
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT)))
		return -EOPNOTSUPP;
	return 0;
}

int uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = {.start = start, .len = len};

	return ioctl(uffd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int uffd_unprotect_once(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_writeprotect wp = {.range = {.start = start, .len = len}, .mode = 0};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

int uffd_protect(int uffd, uint64_t start, uint64_t len, int on)
{
	struct uffdio_writeprotect wp = {
		.range = {.start = start, .len = len},
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	for (int i = 0; i < UFFD_EAGAIN_RETRIES; i++) {
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		sched_yield();
	}
	return -EAGAIN;
}

int uffd_mmap_changing(int uffd)
{
	struct uffdio_writeprotect wp = {.range = {.start = 0, .len = 0}, .mode = 0};

	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
		return 0;
	return errno == EAGAIN;
}
