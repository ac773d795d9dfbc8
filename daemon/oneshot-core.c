/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oneshot-core.h"

/* The directory part of path ("." for a bare name). */
static void dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

/* An unnamed file in dir (O_TMPFILE), or a named one unlinked at once where that is missing. */
static int temp_in(const char *dir)
{
	char tmpl[PATH_MAX + 32];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	if (snprintf(tmpl, sizeof(tmpl), "%s/.uffsnap-core-XXXXXX", dir) >= (int)sizeof(tmpl))
		return -ENAMETOOLONG;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

int oneshot_core_temp(const char *core, int *ret_image_fd, char *msg, size_t msglen)
{
	char dir[PATH_MAX];
	int ifd;

	dir_of(core, dir, sizeof(dir));
	ifd = temp_in(dir);
	if (ifd < 0) {
		snprintf(msg, msglen, "cannot create a temporary image in '%s': %s", dir,
			 strerror(-ifd));
		return ifd;
	}
	*ret_image_fd = ifd;
	return 0;
}

static void warn_missing(const char *core, const struct img_core_report *rep)
{
	for (uint32_t bit = 1; bit & IMG_CORE_MISSING_ALL; bit <<= 1)
		if (rep->missing & bit)
			fprintf(stderr, "uffsnapd: warning: %s lacks %s\n", core,
				img_core_missing_name(bit));
}

int oneshot_core_write(int image_fd, int core_fd, const char *core, char *msg, size_t msglen)
{
	struct img_core_report rep = {0};
	struct img_error err = {0};
	struct img_reader *r = NULL;
	int k = img_reader_open(image_fd, &r, &err);

	if (k < 0)
		snprintf(msg, msglen, "cannot read the temporary image back: %s",
			 err.msg[0] ? err.msg : strerror(-k));
	if (k >= 0 && (k = img_core_write(r, core_fd, &rep, &err)) < 0)
		snprintf(msg, msglen, "cannot write the core '%s': %s", core,
			 err.msg[0] ? err.msg : strerror(-k));
	img_reader_free(r);
	if (k >= 0)
		warn_missing(core, &rep);
	return k;
}
