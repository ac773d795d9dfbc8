/* SPDX-License-Identifier: MIT */
#include "test-proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int test_proc_path(char *buf, size_t len, pid_t pid, const char *file)
{
	int n = pid ? snprintf(buf, len, "/proc/%d/%s", pid, file)
		    : snprintf(buf, len, "/proc/%s", file);

	return n < 0 ? -EINVAL : (size_t)n < len ? 0 : -ENAMETOOLONG;
}

ssize_t test_proc_read(pid_t pid, const char *file, char *buf, size_t len)
{
	char path[128];
	size_t used = 0;
	ssize_t n = 0;
	int fd, r;

	r = test_proc_path(path, sizeof(path), pid, file);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A read(2) of a seq_file may end short of the file (a page at a time): read to EOF. */
	while (used < len - 1 && (n = read(fd, buf + used, len - 1 - used)) > 0)
		used += (size_t)n;
	r = n < 0 ? -errno : 0;
	close(fd);
	buf[used] = '\0';
	return r < 0 ? r : (ssize_t)used;
}

int test_proc_state(pid_t pid, const char *file)
{
	char buf[512], *p;
	ssize_t n = test_proc_read(pid, file, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] ? p[2] : '?';
}
