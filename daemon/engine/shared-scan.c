/* SPDX-License-Identifier: MIT */
/*
 * Walking every process for the writers of the shared objects the snapshot saves: mappings
 * in /proc/PID/maps (device and inode, as the target's), descriptors in /proc/PID/fd.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/shared-internal.h"
#include "engine/snap.h"

/* One line of /proc/PID/maps. */
struct maps_line {
	uint64_t start, end, offset, ino;
	unsigned major, minor;
	char prot[5];
};

/* A process that shares the target's mm (CLONE_VM without CLONE_THREAD: vfork) faults too. */
static bool same_mm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/*
 * A read-only shared mapping can be made writable by mprotect() if its file was opened for
 * writing: VM_MAYWRITE, "mw" in the VmFlags of /proc/PID/smaps (read only for such a one).
 */
static bool may_write(pid_t pid, uint64_t start)
{
	char path[64], prot[5], *line = NULL;
	bool in = false, mw = false;
	size_t cap = 0;
	uint64_t a, b;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	while (f && getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s", &a, &b, prot) == 3)
			in = a == start;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			mw = strstr(line, " mw") != NULL;
			break;
		}
	}
	free(line);
	if (f)
		fclose(f);
	return mw;
}

/* The target's addresses of object o that the other mapping l shows too; events for new ones. */
static int add_mapping(struct snap *s, size_t o, pid_t pid, const struct maps_line *l)
{
	struct shared_state *st = s->shared;
	const struct shared_obj *ob = &st->obj[o];
	int k = 0;

	for (size_t i = 0; i < ob->nmaps && k >= 0; i++) {
		struct shared_writer w = {.pid = pid, .fd = -1, .obj = o};
		struct snap_span both;

		if (!shared_overlap(&ob->maps[i], l->offset, l->end - l->start, &both))
			continue;
		w.start = both.start;
		w.end = both.end;
		k = shared_writer_add(st, &w);
		if (k > 0) {
			s->stats.shared_writers++;
			k = shared_note_writer(s, WHY_MAPPED, &st->w[st->nw - 1], w.start, w.end);
		}
	}
	return k;
}

static int scan_maps(struct snap *s, pid_t pid)
{
	char path[64], *line = NULL;
	struct maps_line l;
	size_t cap = 0;
	int k = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	while (f && k >= 0 && getline(&line, &cap, f) > 0) {
		ssize_t o;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64, &l.start,
			   &l.end, l.prot, &l.offset, &l.major, &l.minor, &l.ino) != 7 ||
		    l.prot[3] != 's')
			continue;
		o = shared_obj_find(s->shared, l.major, l.minor, l.ino);
		if (o < 0 || (l.prot[1] != 'w' && !may_write(pid, l.start)) || same_mm(pid, s->pid))
			continue;
		k = add_mapping(s, o, pid, &l);
	}
	free(line);
	if (f)
		fclose(f);
	return k;
}

/* Is descriptor fd of pid open for writing? ("flags:" of its fdinfo, octal) */
static bool fd_writable(pid_t pid, const char *fd)
{
	char path[48 + NAME_MAX], line[128]; /* fd: a name from readdir() */
	unsigned flags = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	f = fopen(path, "re");
	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "flags: %o", &flags) == 1;
	if (f)
		fclose(f);
	return found && (flags & O_ACCMODE) != O_RDONLY;
}

/* The object descriptor fd of pid (its link already read: link) is, or -1. */
static ssize_t fd_object(const struct shared_state *st, pid_t pid, const char *fd, const char *link)
{
	char path[48 + NAME_MAX]; /* fd: a name from readdir() */
	struct stat sb;
	size_t i;

	for (i = 0; i < st->nobj; i++)
		if (st->obj[i].path && !strcmp(st->obj[i].path, link))
			break;
	snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, fd);
	if (i == st->nobj || stat(path, &sb) < 0)
		return -1;
	return shared_obj_find(st, major(sb.st_dev), minor(sb.st_dev), sb.st_ino);
}

static int scan_fds(struct shared_state *st, pid_t pid)
{
	char path[64], link[4096];
	struct dirent *e;
	int k = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	while (d && k >= 0 && (e = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1), o;

		if (n <= 0 || link[0] != '/')
			continue; /* sockets, pipes, anon inodes */
		link[n] = 0;
		o = fd_object(st, pid, e->d_name, link);
		if (o >= 0 && fd_writable(pid, e->d_name))
			k = shared_writer_add(st, &(struct shared_writer){
						      .pid = pid, .fd = atoi(e->d_name), .obj = o});
	}
	if (d)
		closedir(d);
	return k;
}

/*
 * A process with no executable: a kernel thread (most of /proc on a small machine) or a zombie.
 * Either has no memory map and no descriptors; one readlink() instead of reading both, in a
 * walk that may run while a guest is stopped. Only ENOENT says so (EACCES: look anyway).
 */
static bool no_program(pid_t pid)
{
	char path[48], link[8];

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return readlink(path, link, sizeof(link)) < 0 && errno == ENOENT;
}

/* --strict: the first process found to map shared memory of the target writably. */
static int fail_strict(struct snap *s)
{
	const struct shared_state *st = s->shared;
	size_t i = 0;

	while (i < st->nw && st->w[i].fd >= 0)
		i++;
	return snap_fail(s, -EOPNOTSUPP,
			 "another process (pid %d, %s) may write shared memory of pid %d where "
			 "write protection cannot see (--strict)",
			 st->w[i].pid, st->w[i].comm, s->pid),
	       -EOPNOTSUPP;
}

int shared_scan(struct snap *s)
{
	struct shared_state *st = s->shared;
	struct dirent *e;
	int k = 0;
	DIR *d;

	if (!st || !st->nobj)
		return 0;
	d = opendir("/proc");
	if (!d)
		k = -errno;
	while (d && k >= 0 && (e = readdir(d))) {
		pid_t pid = atoi(e->d_name);

		if (pid <= 0 || pid == getpid() || no_program(pid))
			continue;
		if (pid != s->pid)
			k = scan_maps(s, pid);
		if (k >= 0 && st->any_path)
			k = scan_fds(st, pid);
	}
	if (d)
		closedir(d);
	if (k < 0)
		return snap_fail(s, k, "cannot look for other writers of shared memory: %s",
				 strerror(-k)),
		       k;
	return s->opts.strict && s->stats.shared_writers ? fail_strict(s) : 0;
}
