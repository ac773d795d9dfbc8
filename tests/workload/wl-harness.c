/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-proc.h"
#include "wl-harness.h"

/* Waiting for a stopped state: polls this often, this many times (a hang guard). */
#define WL_STOP_POLL_NS	 (1000 * 1000)
#define WL_STOP_POLLS	 10000
#define WL_MAX_ARGS	 32

static void wl_child_exec(const char *exe, const char *const *args, int out, pid_t parent)
{
	const char *argv[WL_MAX_ARGS + 2] = {exe};
	size_t n = 1;

	/* A test that dies (crash, ctest timeout) must not leave a workload spinning on the CPUs
	 * and holding its output pipe open. The workload keeps this across --as-user. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);

	for (; args && args[n - 1] && n <= WL_MAX_ARGS; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	if (dup2(out, STDOUT_FILENO) < 0)
		_exit(127);
	execv(exe, (char *const *)argv);
	fprintf(stderr, "cannot run %s: %m\n", exe);
	_exit(127);
}

static int wl_proc_ready(struct wl_proc *p)
{
	char line[sizeof(p->buf)], err[256];
	int r = wl_proc_line(p, line, sizeof(line));

	if (r < 0)
		return r;
	if (strncmp(line, "no free huge pages", 18) == 0)
		return -ENOSPC;
	p->layout_json = strdup(line);
	if (!p->layout_json)
		return -ENOMEM;
	r = wl_layout_parse(line, strlen(line), &p->layout, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "workload layout line: %s\n", err);
		return r;
	}
	r = wl_proc_line(p, line, sizeof(line));
	if (r >= 0 && strcmp(line, "ready") != 0)
		return -EBADMSG;
	return r;
}

int wl_proc_spawn(const char *exe, const char *const *args, struct wl_proc **ret_proc)
{
	struct wl_proc *p = calloc(1, sizeof(*p));
	pid_t parent;
	int fds[2];

	if (!p)
		return -ENOMEM;
	p->out_fd = -EBADF;
	p->pid = -1;
	*ret_proc = p;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	p->out_fd = fds[0];
	parent = getpid();
	p->pid = fork();
	if (p->pid < 0) {
		close(fds[1]);
		return -errno;
	}
	if (p->pid == 0)
		wl_child_exec(exe, args, fds[1], parent);
	close(fds[1]);
	return wl_proc_ready(p);
}

int wl_proc_line(struct wl_proc *p, char *ret_line, size_t len)
{
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pfd = {p->out_fd, POLLIN, 0};
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - p->buf);

			snprintf(ret_line, len, "%.*s", (int)l, p->buf);
			memmove(p->buf, nl + 1, p->len - l - 1);
			p->len -= l + 1;
			return 0;
		}
		if (p->len == sizeof(p->buf))
			return -E2BIG;
		n = poll(&pfd, 1, WL_HARNESS_LINE_TIMEOUT_MS);
		if (n == 0)
			return -ETIMEDOUT;
		if (n > 0)
			n = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - p->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p->len += (size_t)n;
	}
}

int wl_proc_ask(struct wl_proc *p, int sig, char *ret_line, size_t len)
{
	if (kill(p->pid, sig) < 0)
		return -errno;
	return wl_proc_line(p, ret_line, len);
}

int wl_proc_finish(struct wl_proc *p, char *ret_line, size_t len, int *ret_status)
{
	int r = wl_proc_ask(p, SIGTERM, ret_line, len), status;

	if (r < 0)
		return r;
	if (waitpid(p->pid, &status, 0) < 0)
		return -errno;
	p->reaped = true;
	*ret_status = status;
	return 0;
}

void wl_proc_free(struct wl_proc *p)
{
	if (!p)
		return;
	if (p->pid > 0 && !p->reaped) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	free(p->layout_json);
	free(p);
}

/* State letter of a task from /proc/.../stat: after the last ')' of the command name. */
static int wl_task_state(pid_t pid, const char *tid)
{
	char file[320];
	int state;

	snprintf(file, sizeof(file), "task/%s/stat", tid);
	state = test_proc_state(pid, file);
	return state < 0 ? 'X' /* gone */ : state;
}

/* 1 when every task is stopped (or gone), 0 when one still runs, -errno. */
static int wl_all_stopped(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int r = 1;

	test_proc_path(path, sizeof(path), pid, "task");
	d = opendir(path);
	if (!d)
		return -errno;
	while (r == 1 && (de = readdir(d))) {
		int st;

		if (de->d_name[0] == '.')
			continue;
		st = wl_task_state(pid, de->d_name);
		r = st == 'T' || st == 't' || st == 'X' || st == 'Z' ? 1 : 0;
	}
	closedir(d);
	return r;
}

int wl_proc_stop(pid_t pid)
{
	struct timespec ts = {0, WL_STOP_POLL_NS};

	if (kill(pid, SIGSTOP) < 0)
		return -errno;
	for (int i = 0; i < WL_STOP_POLLS; i++) {
		int r = wl_all_stopped(pid);

		if (r != 0)
			return r < 0 ? r : 0;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

int wl_proc_cont(pid_t pid)
{
	return kill(pid, SIGCONT) < 0 ? -errno : 0;
}

int wl_proc_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int wl_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;
	size_t len = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	return r;
}

static long wl_read_long(const char *path, const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!key ? sscanf(line, "%ld", &v) == 1
			 : strncmp(line, key, strlen(key)) == 0 &&
				   sscanf(line + strlen(key), " %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int wl_hugetlb_reserve(unsigned need, long *ret_old)
{
	long old = wl_read_long("/proc/sys/vm/nr_hugepages", NULL), free_pages;
	char text[32];

	if (old < 0)
		return -ENOENT;
	free_pages = wl_read_long("/proc/meminfo", "HugePages_Free:");
	if (free_pages < 0)
		return -ENOENT;
	*ret_old = old;
	if (free_pages >= (long)need)
		return 0;
	snprintf(text, sizeof(text), "%ld\n", old + (long)need - free_pages);
	if (wl_write_file("/proc/sys/vm/nr_hugepages", text) < 0)
		return -EACCES;
	return wl_read_long("/proc/meminfo", "HugePages_Free:") >= (long)need ? 0 : -ENOSPC;
}

void wl_hugetlb_restore(long old)
{
	char text[32];

	snprintf(text, sizeof(text), "%ld\n", old);
	wl_write_file("/proc/sys/vm/nr_hugepages", text);
}

int wl_proc_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec local = {(void *)buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int wl_proc_counters(const struct wl_proc *p, uint64_t *ret)
{
	for (uint32_t t = 0; t < p->layout.nthreads; t++) {
		int r = wl_proc_read(p->pid, p->layout.regions[t].counter, &ret[t], sizeof(ret[t]));

		if (r < 0)
			return r;
	}
	return 0;
}

int wl_proc_wait_stores(const struct wl_proc *p, const uint64_t *since, uint64_t delta)
{
	struct timespec ts = {0, WL_STOP_POLL_NS};
	uint64_t c[WL_MAX_THREADS];

	for (int i = 0; i < WL_HARNESS_LINE_TIMEOUT_MS; i++) {
		uint32_t t = 0;
		int r = wl_proc_counters(p, c);

		if (r < 0)
			return r;
		while (t < p->layout.nthreads && c[t] > (since ? since[t] : 0) + delta)
			t++;
		if (t == p->layout.nthreads)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

int wl_run_check(const char *check_exe, const char *image, const char *layout_path)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl(check_exe, check_exe, "--max-reports", "3", image, layout_path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}
