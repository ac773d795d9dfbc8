/* SPDX-License-Identifier: MIT */
/* Outputs in the snapshot directory, and what the kernel offers (for query-status). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "engine/chain-image.h"
#include "sys/linux-compat.h"
#include "service/output.h"
#include "uffsnap/image.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/*
 * A --file image is written to an unnamed file (O_TMPFILE) in the snapshot directory and
 * linked in under its name only once complete and verified (svc_output_finish()): a job that
 * fails leaves nothing. The name was checked ([A-Za-z0-9._-], no leading '.' or '-': no '/',
 * no ".."); openat2's RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS keeps even "." to the directory
 * opened at start-up. ENOSYS: plain openat.
 */
static int create_unnamed(int dirfd)
{
	struct open_how how = {
	    .flags = O_WRONLY | O_TMPFILE | O_CLOEXEC,
	    .mode = SVC_FILE_MODE,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = syscall(SYS_openat2, dirfd, ".", &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dirfd, ".", (int)how.flags, (mode_t)how.mode);
	return fd < 0 ? -errno : fd;
}

/* The name is free: no file, and no running job that will link one there. */
static int name_free(struct svc *svc, const char *name)
{
	struct stat st;

	if (fstatat(svc->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING && j->ops->writes && j->ops->writes(j, name))
			return -EEXIST;
	return 0;
}

int svc_output_create(struct svc *svc, const char *name, struct ctl_error *err)
{
	int fd = name_free(svc, name);

	if (fd == -EEXIST)
		return ctl_fail(err, CTL_E_PARAM,
				"'%s' already exists in the snapshot directory %s (or a running "
				"job writes it): images are never overwritten; choose another name",
				name, svc->o.snapdir),
		       fd;
	if (fd >= 0)
		fd = create_unnamed(svc->dirfd);
	if (fd < 0)
		ctl_fail(err, CTL_E_GENERIC, "cannot create '%s' in the snapshot directory %s: %s",
			 name, svc->o.snapdir, strerror(-fd));
	return fd;
}

int svc_output_unnamed(struct svc *svc)
{
	return create_unnamed(svc->dirfd);
}

int svc_output_chain_check(struct svc *svc, const char *prefix, struct ctl_error *err)
{
	char first[CTL_NAME_MAX + 2];
	int r;

	if (strlen(prefix) + strlen(SVC_CHAIN_SUFFIX0) > CTL_NAME_MAX)
		return ctl_fail(err, CTL_E_PARAM,
				"'file' is the chain's name prefix: with '" SVC_CHAIN_SUFFIX0
				"' it must stay within %d bytes",
				CTL_NAME_MAX);
	snprintf(first, sizeof(first), "%s" SVC_CHAIN_SUFFIX0, prefix);
	r = name_free(svc, first);
	if (r == -EEXIST)
		return ctl_fail(err, CTL_E_PARAM,
				"'%s' already exists in the snapshot directory %s (or a running "
				"job writes it): images are never overwritten; choose another "
				"prefix",
				first, svc->o.snapdir);
	if (r < 0)
		return ctl_fail(err, CTL_E_GENERIC, "cannot look for '%s' in %s: %s", first,
				svc->o.snapdir, strerror(-r));
	return 0;
}

int svc_output_name(struct svc_job *j, int out, const char *name)
{
	int r = 0;

	/*
	 * fs/namei.c: linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH (kept) and, with
	 * fs.protected_hardlinks, a file we own: so it is given away only once named.
	 */
	if (linkat(out, "", j->svc->dirfd, name, AT_EMPTY_PATH) < 0)
		r = -errno,
		snprintf(j->err.msg, sizeof(j->err.msg),
			 "cannot name the image '%s' in the snapshot directory: %s", name,
			 r == -EEXIST ? "a file of that name appeared meanwhile" : strerror(-r));
	/* the client's own image (CAP_CHOWN): readable by the user who asked, no one else */
	if (r >= 0 && fchown(out, j->owner, j->owner_gid) < 0) {
		r = -errno;
		snprintf(j->err.msg, sizeof(j->err.msg), "cannot give '%s' to uid %u gid %u: %s",
			 name, j->owner, j->owner_gid, strerror(-r));
		unlinkat(j->svc->dirfd, name, 0);
	}
	return r;
}

int svc_output_finish(struct svc_job *j, int out, const char *name)
{
	int r = chain_image_verify(out, name, j->err.msg, sizeof(j->err.msg));

	if (r >= 0 && fsync(out) < 0)
		r = -errno, snprintf(j->err.msg, sizeof(j->err.msg), "cannot write '%s': %s", name,
				     strerror(-r));
	return r >= 0 ? svc_output_name(j, out, name) : r;
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
