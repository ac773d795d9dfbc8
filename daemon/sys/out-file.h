/* SPDX-License-Identifier: MIT */
/*
 * An output file that is never half-written and never destroys what was there: the data goes
 * to a new, unnamed (O_TMPFILE) or hidden temporary file beside the target, and only a complete
 * one is given the target's name (without --force, never over an existing file). An existing
 * device or FIFO is written in place: there is no file to replace, and it is never removed.
 * Used by uffsnapd (--output) and uffsnapctl (snapshot --output, image read --output).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct out_file {
	int fd;	       /* write the data here */
	int dirfd;     /* the target's directory */
	char *name;    /* the target's name in dirfd */
	char *tmp;     /* a named temporary in dirfd, or NULL (O_TMPFILE, or in place) */
	bool in_place; /* an existing device or FIFO: written as it is */
	bool force;    /* the target may be replaced */
};

#define OUT_FILE_INIT {.fd = -EBADF, .dirfd = -EBADF}

/*
 * Opens the way to path. Fails with -EEXIST if path is a file (or a symlink) and !force,
 * -EISDIR for a directory; nothing is created at path itself until out_file_commit().
 */
int out_file_open(struct out_file *o, const char *path, bool force, mode_t mode);
/* Gives the complete data path's name (the fd stays open): 0, -EEXIST (appeared meanwhile). */
int out_file_commit(struct out_file *o);
/* Closes; before a commit, also removes what out_file_open() created (never path itself). */
void out_file_close(struct out_file *o);
