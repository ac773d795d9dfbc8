/* SPDX-License-Identifier: MIT */
/*
 * A FUSE file system of one file whose reads the test answers when it chooses: a read can be
 * kept in flight across a snapshot's instant and completed after it. The kernel copies a FUSE
 * reply into the reader's pages (fs/fuse/dev.c, fuse_copy_page(): kmap of the page the
 * O_DIRECT read pinned), so it is a real path by which I/O issued before the instant lands
 * after it. Raw /dev/fuse protocol: no libfuse.
 *
 * The mount lives in a mount namespace of the test's own (fslow_private_ns()), so it goes
 * away with the test and its children however they end.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FSLOW_SIZE    (1u << 20) /* the file's size */
#define FSLOW_PENDING 16

struct fslow {
	int devfd;
	int stop[2];   /* a pipe: the server thread stops when it is written */
	char dir[64];  /* the mount point */
	char path[80]; /* the file: dir/f */
	pthread_t th;
	bool started, mounted;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;     /* reads wait for fslow_release() */
	uint64_t fill; /* what the file reads as: this value, repeated */
	struct {
		uint64_t unique;
		uint32_t size;
	} pending[FSLOW_PENDING];
	int npending;
};

/* Moves the calling process into a mount namespace of its own (before any child starts). */
int fslow_private_ns(void);
/* Mounts the file system (root only); its file reads as fill, at once unless hold. */
int fslow_mount(struct fslow *f, bool hold, uint64_t fill);
/* Waits until n reads wait for an answer. */
void fslow_wait_pending(struct fslow *f, int n);
/* Answers the waiting reads with fill (and every later read, too, at once if !hold). */
void fslow_release(struct fslow *f, uint64_t fill, bool hold);
void fslow_unmount(struct fslow *f);
