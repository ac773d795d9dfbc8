/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/userfaultfd.h>

#include "target-proc.h"
#include "test-proc.h"

#define MAX_ENTRIES 512

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts lines[0..n), joins them into out, frees them. */
static int join_sorted(char **lines, size_t n, char *out, size_t size)
{
	size_t used = 0;

	qsort(lines, n, sizeof(lines[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s\n",
					 lines[i]);
		free(lines[i]);
	}
	return used < size ? 0 : -ENOBUFS;
}

/* One line per entry of directory path: line(path, entry, &result) makes it. */
static int per_entry(const char *path, int (*line)(const char *, const char *, char **),
		     char *out, size_t size)
{
	char *lines[MAX_ENTRIES];
	struct dirent *de;
	size_t n = 0;
	DIR *dir = opendir(path);

	if (!dir)
		return -errno;
	while ((de = readdir(dir)) && n < MAX_ENTRIES)
		if (de->d_name[0] != '.' && line(path, de->d_name, &lines[n]) == 0)
			n++;
	closedir(dir);
	return join_sorted(lines, n, out, size);
}

static int fd_line(const char *dir, const char *name, char **ret)
{
	char link[PATH_MAX], what[PATH_MAX] = "";

	snprintf(link, sizeof(link), "%s/%s", dir, name);
	if (readlink(link, what, sizeof(what) - 1) < 0)
		return -errno;
	return asprintf(ret, "%s -> %s", name, what) < 0 ? -ENOMEM : 0;
}

int proc_fds(pid_t pid, char *out, size_t size)
{
	char path[64];

	test_proc_path(path, sizeof(path), pid, "fd");
	return per_entry(path, fd_line, out, size);
}

static int read_file(const char *path, char *out, size_t size)
{
	ssize_t n, used = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, out + used, size - 1 - (size_t)used)) > 0)
		used += n;
	close(fd);
	out[used] = '\0';
	return (size_t)used < size - 1 ? 0 : -ENOBUFS;
}

int proc_maps(pid_t pid, char *out, size_t size)
{
	ssize_t n = test_proc_read(pid, "maps", out, size);

	return n < 0 ? (int)n : (size_t)n < size - 1 ? 0 : -ENOBUFS;
}

static const char *field(const char *status, const char *name)
{
	const char *p = strstr(status, name);

	return p ? p + strlen(name) + strspn(p + strlen(name), " \t") : "?";
}

static int signal_line(const char *dir, const char *tid, char **ret)
{
	char path[PATH_MAX], status[4096];
	int r;

	snprintf(path, sizeof(path), "%s/%s/status", dir, tid);
	r = read_file(path, status, sizeof(status));
	if (r < 0)
		return r;
	return asprintf(ret, "%s %.16s %.16s %.16s %.16s %.16s", tid, field(status, "\nSigPnd:"),
			field(status, "\nShdPnd:"), field(status, "\nSigBlk:"),
			field(status, "\nSigIgn:"), field(status, "\nSigCgt:")) < 0
		   ? -ENOMEM
		   : 0;
}

int proc_signals(pid_t pid, char *out, size_t size)
{
	char path[64];

	test_proc_path(path, sizeof(path), pid, "task");
	return per_entry(path, signal_line, out, size);
}

int proc_devuffd_or_skip(void)
{
	int fd;

	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace, /dev/userfaultfd is 0600 root)\n");
		return -1;
	}
	fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		printf("SKIP: cannot open /dev/userfaultfd: %m\n");
	return fd;
}

int proc_writeprotect(int uffd, uint64_t start, uint64_t len, bool on)
{
	struct uffdio_writeprotect wp = {
	    .range = {.start = start, .len = len},
	    .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	/* EAGAIN while a non-cooperative event is pending (mmap_changing). */
	for (int i = 0; i < 1000; i++) {
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		usleep(1000);
	}
	return -EAGAIN;
}

char proc_peek(pid_t pid, uint64_t addr)
{
	char c = 0;
	struct iovec local = {&c, 1}, remote = {(void *)(uintptr_t)addr, 1};

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == 1 ? c : 0;
}
