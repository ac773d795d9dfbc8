/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys-test-util.h"
#include "test-proc.h"

static int status_hex(const char *text, const char *key, uint64_t *ret)
{
	const char *p = strstr(text, key);

	if (!p || sscanf(p + strlen(key), " %" SCNx64, ret) != 1)
		return -1;
	return 0;
}

static int read_status(char *buf, size_t len)
{
	return test_proc_read(0, "self/status", buf, len) < 0 ? -1 : 0;
}

int systest_check_caps(uint64_t mask, const char *user)
{
	static const struct {
		const char *key;
		bool is_mask;
	} want[] = {{"\nCapInh:", false},
		    {"\nCapPrm:", true},
		    {"\nCapEff:", true},
		    {"\nCapBnd:", true},
		    {"\nCapAmb:", false}};
	struct passwd *pw = getpwnam(user);
	char buf[8192], uids[64];
	uint64_t v, nnp = 0;
	int bad = 0;

	if (!pw || read_status(buf, sizeof(buf)) < 0)
		return fprintf(stderr, "FAIL: no user %s or no /proc/self/status\n", user), -1;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint64_t exp = want[i].is_mask ? mask : 0;

		if (status_hex(buf, want[i].key, &v) < 0 || v != exp) {
			fprintf(stderr, "FAIL: %s %016" PRIx64 ", expected %016" PRIx64 "\n",
				want[i].key + 1, v, exp);
			bad = 1;
		}
	}
	if (status_hex(buf, "\nNoNewPrivs:", &nnp) < 0 || nnp != 1)
		bad = fprintf(stderr, "FAIL: NoNewPrivs is not 1\n");
	snprintf(uids, sizeof(uids), "\nUid:\t%u\t%u\t%u\t%u\n", pw->pw_uid, pw->pw_uid, pw->pw_uid,
		 pw->pw_uid);
	if (!strstr(buf, uids))
		bad = fprintf(stderr, "FAIL: not running as %s (uid %u) everywhere\n", user,
			      pw->pw_uid);
	return bad ? -1 : 0;
}

int systest_lower_cap(cap_value_t cap)
{
	cap_t c = cap_get_proc();
	int r = -1;

	if (c && cap_set_flag(c, CAP_EFFECTIVE, 1, &cap, CAP_CLEAR) == 0 &&
	    cap_set_flag(c, CAP_PERMITTED, 1, &cap, CAP_CLEAR) == 0 && cap_set_proc(c) == 0)
		r = 0;
	else
		fprintf(stderr, "FAIL: cannot lower %s: %m\n", systest_cap_name(cap));
	cap_free(c);
	return r;
}

const char *systest_cap_name(cap_value_t cap)
{
	static char name[32];
	char *s = cap_to_name(cap);

	snprintf(name, sizeof(name), "%s", s ? s : "?");
	cap_free(s);
	return name;
}

/* Runs argv quietly; its exit status, or -1. */
static int run_quiet(char *const argv[])
{
	pid_t p = fork();
	int st;

	if (p == 0) {
		int null = open("/dev/null", 1);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int systest_user_add(const char *name)
{
	char *argv[] = {"useradd", "--system",		"--no-create-home", "--user-group",
			"--shell", "/usr/sbin/nologin", (char *)name,	    NULL};

	return run_quiet(argv) == 0 ? 0 : -1;
}

void systest_user_remove(const char *name)
{
	char *argv[] = {"userdel", (char *)name, NULL}, *gargv[] = {"groupdel", (char *)name, NULL};

	if (!name[0])
		return;
	run_quiet(argv);
	run_quiet(gargv); /* gone with the user already where USERGROUPS_ENAB is set */
}

static void (*exit_fn)(void);

static void on_signal(int sig)
{
	if (exit_fn)
		exit_fn();
	_exit(1);
}

void systest_on_exit(void (*fn)(void))
{
	exit_fn = fn;
	atexit(fn);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
}

int systest_dgram_bind(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	socklen_t alen;
	int fd;

	if (n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, name, n);
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] != '@'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, alen) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int wait_in(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r == 0 ? -ETIMEDOUT : 0;
}

int systest_dgram_recv(int fd, char *buf, size_t len, int timeout_ms)
{
	int r = wait_in(fd, timeout_ms);
	ssize_t n;

	if (r < 0)
		return r;
	n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

int systest_stream_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct timespec pause = {0, 20 * 1000 * 1000};

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	for (int waited = 0;; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		r = -errno;
		close(fd);
		if ((r != -ENOENT && r != -ECONNREFUSED) || waited >= timeout_ms)
			return r;
		nanosleep(&pause, NULL);
	}
}

int systest_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t n = 0;

	while (n + 1 < len) {
		int r = wait_in(fd, timeout_ms);
		ssize_t k;

		if (r < 0)
			return r;
		k = read(fd, buf + n, 1);
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}
