/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/shared-internal.h"
#include "engine/snap.h"
#include "engine/unseen.h"
#include "engine/ustr.h"

static bool saved_shared(const struct vma *v)
{
	return (v->plan == VMA_PLAN_TRACK || v->plan == VMA_PLAN_COPY) && v->prot[3] == 's' &&
	       (v->kind == VMA_SHM || v->kind == VMA_HUGETLB);
}

/* Shared anonymous and SysV memory have no descriptor (short of root reopening the map). */
static bool fd_capable(const char *path)
{
	return path && path[0] == '/' && strncmp(path, "/dev/zero", 9) && strncmp(path, "/SYSV", 5);
}

bool shared_named(const char *path)
{
	size_t n = path ? strlen(path) : 0, d = sizeof(" (deleted)") - 1;

	return fd_capable(path) && !(n >= d && !strcmp(path + n - d, " (deleted)"));
}

bool shared_overlap(const struct shared_map *m, uint64_t offset, uint64_t len,
		    struct snap_span *ret)
{
	uint64_t lo = offset > m->offset ? offset : m->offset;
	uint64_t hi = offset + len < m->offset + (m->end - m->start)
			  ? offset + len
			  : m->offset + (m->end - m->start);

	if (lo >= hi)
		return false;
	*ret = (struct snap_span){m->start + (lo - m->offset), m->start + (hi - m->offset)};
	return true;
}

ssize_t shared_obj_find(const struct shared_state *st, unsigned ma, unsigned mi, uint64_t ino)
{
	for (size_t i = 0; i < st->nobj; i++)
		if (st->obj[i].ino == ino && st->obj[i].major == ma && st->obj[i].minor == mi)
			return i;
	return -1;
}

/*
 * A handle on object o through a descriptor of pid's that names it, when its mapping's
 * /proc/PID/map_files link cannot be followed (that needs CAP_CHECKPOINT_RESTORE or
 * CAP_SYS_ADMIN, which service mode drops); -1 if pid has none.
 */
static int open_by_fd(pid_t pid, const struct shared_obj *o)
{
	char path[64 + sizeof(((struct dirent *)0)->d_name)], link[4096];
	struct dirent *e;
	struct stat sb;
	int fd = -1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = o->path ? opendir(path) : NULL;
	while (d && fd < 0 && (e = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

		if (n <= 0 || (link[n] = 0, strcmp(link, o->path)))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, e->d_name);
		fd = open(path, O_PATH | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &sb) < 0 || sb.st_ino != o->ino ||
				major(sb.st_dev) != o->major || minor(sb.st_dev) != o->minor)) {
			close(fd);
			fd = -1;
		}
	}
	if (d)
		closedir(d);
	return fd;
}

/* A new object for VMA v, with a handle on it and its ctime now. */
static int obj_new(struct shared_state *st, pid_t pid, const struct vma *v)
{
	struct shared_obj *o, *no = realloc(st->obj, (st->nobj + 1) * sizeof(*no));
	char path[96];
	struct stat sb;

	if (!no)
		return -ENOMEM;
	st->obj = no;
	o = &st->obj[st->nobj];
	*o = (struct shared_obj){
	    .major = v->dev_major, .minor = v->dev_minor, .ino = v->inode, .pathfd = -EBADF};
	if (v->path && !(o->path = strdup(v->path)))
		return -ENOMEM;
	st->nobj++;
	o->named = shared_named(o->path);
	st->any_path |= fd_capable(o->path);
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	o->pathfd = open(path, O_PATH | O_CLOEXEC);
	if (o->pathfd < 0)
		o->pathfd = open_by_fd(pid, o);
	if (o->pathfd >= 0 && fstat(o->pathfd, &sb) == 0)
		o->ctime = sb.st_ctim; /* and, read, the next change gets a fine-grained one */
	return 0;
}

static int obj_add_map(struct shared_state *st, pid_t pid, const struct vma *v)
{
	ssize_t i = shared_obj_find(st, v->dev_major, v->dev_minor, v->inode);
	struct shared_map *m;
	int k;

	if (i < 0) {
		k = obj_new(st, pid, v);
		if (k < 0)
			return k;
		i = st->nobj - 1;
	}
	m = realloc(st->obj[i].maps, (st->obj[i].nmaps + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	st->obj[i].maps = m;
	m[st->obj[i].nmaps++] = (struct shared_map){v->start, v->end, v->offset};
	return 0;
}

int shared_note_instant(struct snap *s)
{
	struct shared_state *st;
	int k = 0;

	shared_free(s);
	st = s->shared = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (size_t i = 0; i < s->vmas.n && k >= 0; i++)
		if (saved_shared(&s->vmas.v[i]))
			k = obj_add_map(st, s->pid, &s->vmas.v[i]);
	return k;
}

void shared_free(struct snap *s)
{
	struct shared_state *st = s->shared;

	for (size_t i = 0; st && i < st->nobj; i++) {
		free(st->obj[i].path);
		free(st->obj[i].maps);
		if (st->obj[i].pathfd >= 0)
			close(st->obj[i].pathfd);
	}
	if (st) {
		free(st->obj);
		free(st->w);
	}
	free(st);
	s->shared = NULL;
}

static void read_comm(pid_t pid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	comm[0] = 0;
	f = fopen(path, "re");
	if (f && fgets(comm, len, f))
		comm[strcspn(comm, "\n")] = 0;
	if (f)
		fclose(f);
}

/* Appends w unless known already. 1 if new, 0 if known, -ENOMEM. */
int shared_writer_add(struct shared_state *st, const struct shared_writer *w)
{
	for (size_t i = 0; i < st->nw; i++) {
		const struct shared_writer *x = &st->w[i];

		if (x->pid == w->pid && x->fd == w->fd && x->obj == w->obj && x->start == w->start)
			return 0;
	}
	if (st->nw == st->wcap) {
		size_t cap = st->wcap ? st->wcap * 2 : 8;
		struct shared_writer *nw = realloc(st->w, cap * sizeof(*nw));

		if (!nw)
			return -ENOMEM;
		st->w = nw;
		st->wcap = cap;
	}
	st->w[st->nw] = *w;
	read_comm(w->pid, st->w[st->nw].comm, sizeof(w->comm));
	st->nw++;
	return 1;
}

/* One EVENT for writer w, over [start, end) of the target. */
int shared_note_writer(struct snap *s, const char *why, const struct shared_writer *w,
		       uint64_t start, uint64_t end)
{
	json_t *m = json_pack("{s:o, s:o}", "start", unseen_addr(start), "end", unseen_addr(end));

	if (m && w) {
		json_object_set_new(m, "pid", json_integer(w->pid));
		json_object_set_new(m, "comm", ustr_json(w->comm));
		if (w->fd >= 0)
			json_object_set_new(m, "fd", json_integer(w->fd));
	}
	return m ? unseen_note(s, why, m) : -ENOMEM;
}

/* Did object o change since the instant (its ctime moved)? Unknown counts as changed. */
static bool obj_changed(const struct shared_obj *o)
{
	struct stat sb;

	if (o->pathfd < 0 || fstat(o->pathfd, &sb) < 0)
		return true;
	return sb.st_ctim.tv_sec != o->ctime.tv_sec || sb.st_ctim.tv_nsec != o->ctime.tv_nsec;
}

/* EVENTs over every mapping of object o: for writer w, or (NULL) for a file with a name. */
static int note_obj(struct snap *s, size_t o, const char *why, const struct shared_writer *w)
{
	const struct shared_obj *ob = &s->shared->obj[o];
	int k = 0;

	s->stats.fd_writers++;
	for (size_t i = 0; i < ob->nmaps && k >= 0; i++)
		k = shared_note_writer(s, why, w, ob->maps[i].start, ob->maps[i].end);
	return k;
}

/* The objects that changed: each descriptor open for writing to one, or its name, noted. */
static int note_changed(struct snap *s)
{
	struct shared_state *st = s->shared;
	int k = 0;

	for (size_t o = 0; o < st->nobj && k >= 0; o++) {
		bool any = false;

		if (!fd_capable(st->obj[o].path) || !obj_changed(&st->obj[o]))
			continue; /* no descriptor wrote it after the instant */
		for (size_t i = 0; i < st->nw && k >= 0; i++) {
			if (st->w[i].fd < 0 || st->w[i].obj != o)
				continue;
			any = true;
			k = note_obj(s, o, WHY_FD, &st->w[i]);
		}
		if (k >= 0 && !any && st->obj[o].named)
			k = note_obj(s, o, WHY_NAMED, NULL);
	}
	return k;
}

int shared_finish(struct snap *s)
{
	int k = shared_scan(s);

	if (k < 0 || !s->shared)
		return k;
	k = note_changed(s);
	if (k < 0)
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
	return k;
}
