/* SPDX-License-Identifier: MIT */
/* What engine/shared.c and engine/shared-scan.c share: the objects and their writers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "engine/shared.h"
#include "engine/snap-types.h"

#define WHY_MAPPED "shared with another process"
#define WHY_FD	   "descriptor open for writing"
#define WHY_NAMED  "shared file changed"

/* One of the target's mappings of an object: [start, end) shows the file from offset on. */
struct shared_map {
	uint64_t start, end, offset;
};

struct shared_obj {
	unsigned major, minor;
	uint64_t ino;
	char *path; /* as /proc/PID/maps names it: "/memfd:x (deleted)", "/dev/shm/x" */
	bool named; /* a file any process may open by its name */
	int pathfd; /* O_PATH, through /proc/PID/map_files: the object's ctime at the end */
	struct timespec ctime; /* at the instant */
	struct shared_map *maps;
	size_t nmaps;
};

/* A process that may write an object: through a mapping (fd < 0) or a descriptor. */
struct shared_writer {
	pid_t pid;
	int fd;
	size_t obj;
	uint64_t start, end; /* a mapping's: the target's addresses both map */
	char comm[32];
};

struct shared_state {
	struct shared_obj *obj;
	size_t nobj;
	struct shared_writer *w;
	size_t nw, wcap;
	bool any_path; /* some object can have descriptors: scan them */
};

/*
 * Does a file of that /proc/PID/maps path have a name any process may open? Not a deleted
 * file (a memfd is "/memfd:NAME (deleted)"), shared anonymous memory ("/dev/zero (deleted)")
 * or SysV memory ("/SYSV...").
 */
bool shared_named(const char *path);
/*
 * The addresses of the target's mapping m that show the part [offset, offset + len) of the
 * same object another mapping shows; false if none.
 */
bool shared_overlap(const struct shared_map *m, uint64_t offset, uint64_t len,
		    struct snap_span *ret);
/* The object with that device and inode, or -1. */
ssize_t shared_obj_find(const struct shared_state *st, unsigned major, unsigned minor,
			uint64_t ino);
/* Appends w (its comm read now) unless known already: 1 if new, 0 if known, or -ENOMEM. */
int shared_writer_add(struct shared_state *st, const struct shared_writer *w);
/* One EVENT "may-not-be-exact" for w (NULL: no process known) over [start, end). */
int shared_note_writer(struct snap *s, const char *why, const struct shared_writer *w,
		       uint64_t start, uint64_t end);
