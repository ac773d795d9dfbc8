/* SPDX-License-Identifier: MIT */
/* Outputs given their name only when complete (see out-file.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/out-file.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Tries a few random names: another writer may race us for one. */
#define OUT_TMP_TRIES 16

static int split_path(struct out_file *o, const char *path)
{
	char *d = strdup(path), *b = strdup(path);
	int r = 0;

	if (!d || !b) {
		r = -ENOMEM;
		goto out;
	}
	o->name = strdup(basename(b));
	if (!o->name) {
		r = -ENOMEM;
		goto out;
	}
	o->dirfd = open(dirname(d), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0)
		r = -errno;
out:
	free(d);
	free(b);
	return r;
}

/* A hidden name beside the target: ".NAME.XXXXXXXX.tmp". */
static int create_named_tmp(struct out_file *o, mode_t mode)
{
	for (int i = 0; i < OUT_TMP_TRIES; i++) {
		unsigned v = 0;
		char *t = NULL;

		if (getrandom(&v, sizeof(v), 0) < 0 ||
		    asprintf(&t, ".%.200s.%08x.tmp", o->name, v) < 0)
			return -ENOMEM;
		o->fd = openat(o->dirfd, t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			       mode);
		if (o->fd >= 0) {
			o->tmp = t;
			return 0;
		}
		free(t);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* An existing path: a device or FIFO is written in place; a file needs force. */
static int open_existing(struct out_file *o, const char *path, const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	if (S_ISREG(st->st_mode))
		return o->force ? 1 : -EEXIST;
	o->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (o->fd < 0)
		return -errno;
	o->in_place = true;
	return 0;
}

int out_file_open(struct out_file *o, const char *path, bool force, mode_t mode)
{
	struct stat st;
	int r;

	*o = (struct out_file)OUT_FILE_INIT;
	o->force = force;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && !force)
		return -EEXIST; /* replacing the link itself needs --force too */
	if (stat(path, &st) == 0) {
		r = open_existing(o, path, &st);
		if (r <= 0)
			return r;
	} else if (errno != ENOENT) {
		return -errno;
	}
	r = split_path(o, path);
	if (r < 0)
		return out_file_close(o), r;
	o->fd = openat(o->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (o->fd >= 0)
		return 0;
	/* fs/open.c: a filesystem without ->tmpfile says EOPNOTSUPP (older kernels EISDIR) */
	r = -errno;
	if (r == -EOPNOTSUPP || r == -EISDIR || r == -EINVAL)
		r = create_named_tmp(o, mode);
	if (r < 0)
		out_file_close(o);
	return r;
}

/* Names the O_TMPFILE file: /proc/self/fd works for any user (AT_EMPTY_PATH needs a cap). */
static int link_tmpfile(struct out_file *o, const char *name)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	return linkat(AT_FDCWD, proc, o->dirfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

static int rename_into_place(struct out_file *o)
{
	if (!o->force) {
		if (renameat2(o->dirfd, o->tmp, o->dirfd, o->name, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* no RENAME_NOREPLACE here: link(2) never replaces either */
		if (linkat(o->dirfd, o->tmp, o->dirfd, o->name, 0) < 0)
			return -errno;
		unlinkat(o->dirfd, o->tmp, 0);
		return 0;
	}
	return renameat(o->dirfd, o->tmp, o->dirfd, o->name) < 0 ? -errno : 0;
}

int out_file_commit(struct out_file *o)
{
	int r;

	if (o->in_place)
		return 0;
	if (!o->tmp) {
		r = link_tmpfile(o, o->name);
		if (r != -EEXIST || !o->force)
			return r;
		/* replacing: a named temporary first, then rename(2) over the old file */
		for (int i = 0; i < OUT_TMP_TRIES && r == -EEXIST; i++) {
			unsigned v = 0;

			free(o->tmp);
			o->tmp = NULL;
			if (getrandom(&v, sizeof(v), 0) < 0 ||
			    asprintf(&o->tmp, ".%.200s.%08x.tmp", o->name, v) < 0)
				return o->tmp = NULL, -ENOMEM;
			r = link_tmpfile(o, o->tmp);
		}
		if (r < 0)
			return free(o->tmp), o->tmp = NULL, r;
	}
	r = rename_into_place(o);
	if (r == 0) {
		free(o->tmp);
		o->tmp = NULL;
	}
	return r;
}

void out_file_close(struct out_file *o)
{
	if (o->tmp && o->dirfd >= 0)
		unlinkat(o->dirfd, o->tmp, 0);
	if (o->fd >= 0)
		close(o->fd);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->name);
	free(o->tmp);
	*o = (struct out_file)OUT_FILE_INIT;
}
