/* SPDX-License-Identifier: MIT */
/* Outputs in the snapshot directory, and what the kernel offers (for query-status). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "linux-compat.h"
#include "svc.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/*
 * The name was checked ([A-Za-z0-9._-], no leading dot: no '/', no "..") and O_CREAT|O_EXCL
 * never follows a symlink at the last component (fs/namei.c open_last_lookups()); openat2's
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS says so once more to the kernel. ENOSYS: plain openat.
 */
static int create_beneath(int dirfd, const char *name)
{
	struct open_how how = {
	    .flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    .mode = 0640,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dirfd, name, (int)how.flags, (mode_t)how.mode);
	return fd < 0 ? -errno : fd;
}

int svc_output_create(struct svc *svc, const char *name, struct ctl_error *err)
{
	int fd;

	if (!ctl_name_valid(name, strlen(name)))
		return ctl_fail(err, CTL_E_PARAM,
				"'file' must be a name of [A-Za-z0-9._-] not "
				"starting with '.'"),
		       -EINVAL;
	fd = create_beneath(svc->dirfd, name);
	if (fd == -EEXIST)
		ctl_fail(err, CTL_E_PARAM,
			 "'%s' already exists in the snapshot directory %s: "
			 "images are never overwritten; choose another name",
			 name, svc->o.snapdir);
	else if (fd < 0)
		ctl_fail(err, CTL_E_GENERIC, "cannot create '%s' in the snapshot directory %s: %s",
			 name, svc->o.snapdir, strerror(-fd));
	return fd;
}

/* Asking for no feature makes UFFDIO_API report every feature it has (fs/userfaultfd.c). */
static void probe_uffd(struct svc *svc)
{
	struct uffdio_api api = {.api = UFFD_API};
	int uffd;

	if (svc->devuffd < 0)
		return;
	uffd = ioctl(svc->devuffd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return;
	if (ioctl(uffd, UFFDIO_API, &api) == 0) {
		svc->uffd_ok = true;
		svc->uffd_features = api.features;
	}
	close(uffd);
}

/* PAGEMAP_SCAN on our own (empty) range: ENOTTY if the kernel lacks it. */
static void probe_pagemap_scan(struct svc *svc)
{
	struct pm_scan_arg arg = {.size = sizeof(arg), .start = 0, .end = 0};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	svc->pagemap_scan = ioctl(fd, PAGEMAP_SCAN, &arg) >= 0 || errno != ENOTTY;
	close(fd);
}

void svc_probe_kernel(struct svc *svc)
{
	struct utsname u;

	if (uname(&u) == 0)
		snprintf(svc->kernel, sizeof(svc->kernel), "%s", u.release);
	probe_uffd(svc);
	probe_pagemap_scan(svc);
}
