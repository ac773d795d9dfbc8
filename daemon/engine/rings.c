/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/rings.h"
#include "engine/snap.h"
#include "engine/unseen.h"

#define RING_PATH "anon_inode:[io_uring]" /* io_uring/io_uring.c: anon_inode_create_getfile */
#define AIO_PATH  "/[aio] (deleted)"	  /* fs/aio.c: aio_private_file() */

#define WHY_NO_FD     "io_uring ring with no descriptor"
#define WHY_NO_MMAP   "io_uring ring in the target's memory"
#define WHY_IN_FLIGHT "I/O in flight"

/*
 * The inode of the target's ring descriptor fd (each ring has an inode of its own), or 0 if
 * the fd is closed or is no ring any more (closed since engine/pinned.c found it, reused).
 */
static uint64_t fd_inode(pid_t pid, int fd)
{
	char path[64], link[sizeof(RING_PATH) + 1];
	struct stat st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0 || (link[n] = 0, strcmp(link, RING_PATH)) || stat(path, &st) < 0)
		return 0;
	return st.st_ino;
}

static bool has_inode(const uint64_t *v, size_t n, uint64_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == ino)
			return true;
	return false;
}

/* Is VMA i the first mapping of its inode (a ring has two or three, an AIO context one)? */
static bool first_of_inode(const struct vma_list *l, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (l->v[j].inode == l->v[i].inode && l->v[j].path &&
		    !strcmp(l->v[j].path, l->v[i].path))
			return false;
	return true;
}

static int note(struct snap *s, const char *why, const char *ctx, uint64_t ino, int fd,
		uint64_t addr)
{
	json_t *m = json_pack("{s:s, s:I}", "context", ctx, "inode", (json_int_t)ino);

	if (m && fd >= 0)
		json_object_set_new(m, "fd", json_integer(fd));
	if (m && addr)
		json_object_set_new(m, "addr", unseen_addr(addr));
	if (!strcmp(why, WHY_IN_FLIGHT))
		s->stats.io_contexts++;
	else
		s->stats.io_rings_hidden++;
	return m ? unseen_note(s, why, m) : -ENOMEM;
}

/* Rings and AIO contexts found by their mappings; a ring's with a descriptor is in fds. */
static int note_mapped(struct snap *s, const uint64_t *fds, bool in_flight)
{
	int k = 0;

	for (size_t i = 0; i < s->vmas.n && k >= 0; i++) {
		const struct vma *v = &s->vmas.v[i];
		bool ring = v->path && !strcmp(v->path, RING_PATH);

		if ((!ring && !(v->path && !strcmp(v->path, AIO_PATH))) ||
		    !first_of_inode(&s->vmas, i))
			continue;
		if (ring && !has_inode(fds, s->nrings, v->inode))
			k = note(s, WHY_NO_FD, "io_uring", v->inode, -1, v->start);
		if (k >= 0 && in_flight && (!ring || !has_inode(fds, s->nrings, v->inode)))
			k = note(s, WHY_IN_FLIGHT, ring ? "io_uring" : "aio", v->inode, -1,
				 v->start);
	}
	return k;
}

static bool mapped(const struct vma_list *l, uint64_t ino)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].inode == ino && l->v[i].path && !strcmp(l->v[i].path, RING_PATH))
			return true;
	return false;
}

/* Rings with a descriptor: with no mapping, their SQ and CQ rings are in the target's memory. */
static int note_fds(struct snap *s, const uint64_t *fds, bool in_flight)
{
	int k = 0;

	for (size_t i = 0; i < s->nrings && k >= 0; i++) {
		if (!fds[i])
			continue; /* closed since the scan */
		if (!mapped(&s->vmas, fds[i]))
			k = note(s, WHY_NO_MMAP, "io_uring", fds[i], s->rings[i], 0);
		if (k >= 0 && in_flight)
			k = note(s, WHY_IN_FLIGHT, "io_uring", fds[i], s->rings[i], 0);
	}
	return k;
}

int rings_note_held(struct snap *s)
{
	uint64_t *fds = calloc(s->nrings + 1, sizeof(*fds));
	/* A stopped QEMU guest's block I/O was drained (vm_stop) before the instant. */
	bool in_flight = !(s->opts.scope && s->opts.quiet_at_instant);
	int k;

	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < s->nrings; i++)
		fds[i] = fd_inode(s->pid, s->rings[i]);
	k = note_fds(s, fds, in_flight);
	if (k >= 0)
		k = note_mapped(s, fds, in_flight);
	free(fds);
	if (k >= 0 && s->opts.strict && s->stats.io_rings_hidden)
		return snap_fail(
			   s, -EOPNOTSUPP,
			   "pid %d has %" PRIu64 " io_uring ring%s uffsnapd cannot inspect (no "
			   "descriptor, or rings in its own memory): the kernel may write its "
			   "memory where write protection cannot see (--strict)",
			   s->pid, s->stats.io_rings_hidden,
			   s->stats.io_rings_hidden == 1 ? "" : "s"),
		       -EOPNOTSUPP;
	return k;
}
