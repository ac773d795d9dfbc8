/* SPDX-License-Identifier: MIT */
#include "test-proc.h"

#include <errno.h>
#include <dirent.h>
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

int test_proc_open(pid_t pid, const char *file, int flags)
{
	char path[128];
	int fd, r = test_proc_path(path, sizeof(path), pid, file);

	if (r < 0)
		return r;
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int test_proc_field(pid_t pid, const char *file, const char *field, char *buf, size_t len)
{
	char text[8192], *line = text;
	size_t flen = strlen(field);
	ssize_t n = test_proc_read(pid, file, text, sizeof(text));

	if (n < 0)
		return (int)n;
	while (line && (strncmp(line, field, flen) || line[flen] != ':')) {
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	if (!line)
		return -ENOENT;
	line += flen + 1 + strspn(line + flen + 1, " \t");
	snprintf(buf, len, "%.*s", (int)strcspn(line, "\n"), line);
	return 0;
}

int test_proc_find_fd(pid_t pid, const char *prefix, char *ret_path, size_t len)
{
	char dir[64], p[320], link[256];
	struct dirent *e;
	int found = 0;
	DIR *d;

	test_proc_path(dir, sizeof(dir), pid, "fd");
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		ssize_t n;

		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strncmp(link, prefix, strlen(prefix)))
			continue;
		found++;
		snprintf(ret_path, len, "%s", p);
	}
	closedir(d);
	return found;
}
