/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-check.h"
#include "svc-harness.h"
#include "test-proc.h"

int svc_paths_parse(int argc, char **argv, struct svc_paths *ret)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK [args]\n", argv[0]);
		exit(2);
	}
	*ret = (struct svc_paths){argv[1], argv[2], argv[3]};
	return 4;
}

static int try_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static void daemon_exec(const struct svc_paths *p, const char *const *extra,
			const struct svc_daemon *d, pid_t parent)
{
	const char *argv[32] = {p->uffsnapd, "--service",      "--control",
				d->sock,     "--snapshot-dir", d->snapdir};
	int n = 6;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	for (; extra && *extra && n < 31; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	execv(p->uffsnapd, (char *const *)argv);
	_exit(127);
}

int svc_daemon_start(const struct svc_paths *p, const char *const *extra, struct svc_daemon *d)
{
	pid_t parent = getpid();

	snprintf(d->dir, sizeof(d->dir), "/tmp/uffsnap-svc-XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/control.sock", d->dir);
	snprintf(d->snapdir, sizeof(d->snapdir), "%s/snaps", d->dir);
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0)
		daemon_exec(p, extra, d, parent);
	for (int i = 0; i < SVC_T_TIMEOUT_MS / 20; i++) {
		int fd = try_connect(d->sock), st;

		if (fd >= 0)
			return close(fd), 0;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			fprintf(stderr,
				"FAIL: uffsnapd --service exited at start-up (status %#x)\n", st);
			d->pid = -1;
			return -ECHILD;
		}
		test_sleep_ms(20);
	}
	return -ETIMEDOUT;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	remove(path);
	return 0;
}

int svc_daemon_stop(struct svc_daemon *d)
{
	int st = 0, r = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
			;
		r = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		d->pid = -1;
	}
	if (d->dir[0])
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	d->dir[0] = '\0';
	return r;
}

long svc_daemon_hwm_kib(const struct svc_daemon *d)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	test_proc_path(path, sizeof(path), d->pid, "status");
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "VmHWM: %ld", &v);
	fclose(f);
	return v;
}

int svc_connect(const char *sock, struct svc_conn **ret)
{
	struct svc_conn *c = calloc(1, sizeof(*c));
	int fd = try_connect(sock);

	if (!c || fd < 0) {
		free(c);
		if (fd >= 0)
			close(fd);
		return fd < 0 ? fd : -ENOMEM;
	}
	c->fd = fd;
	c->events = json_array();
	c->greeting = svc_read(c, SVC_T_TIMEOUT_MS);
	*ret = c;
	return c->greeting ? 0 : -EPROTO;
}

void svc_conn_free(struct svc_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	json_decref(c->greeting);
	json_decref(c->events);
	free(c);
}

int svc_send_raw(struct svc_conn *c, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *cm;

		m.msg_control = cbuf.buf;
		m.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while (iov.iov_len) {
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= n;
		m.msg_control = NULL;
		m.msg_controllen = 0;
	}
	return 0;
}

json_t *svc_read(struct svc_conn *c, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		json_error_t err;
		ssize_t n;

		if (nl) {
			json_t *j = json_loadb(c->buf, nl - c->buf, 0, &err);

			if (!j)
				printf("bad line from the daemon: %s: %.*s\n", err.text,
				       (int)(nl - c->buf), c->buf);
			c->len -= nl + 1 - c->buf;
			memmove(c->buf, nl + 1, c->len);
			return j;
		}
		if (c->len == sizeof(c->buf) || poll(&pfd, 1, timeout_ms) <= 0) {
			printf("no line from the daemon within the hang guard\n");
			return NULL;
		}
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return NULL;
		c->len += n;
	}
}

json_t *svc_call(struct svc_conn *c, const char *cmd, json_t *args, int fd)
{
	static long long next_id = 1;
	json_t *req = json_pack("{s:s, s:I}", "execute", cmd, "id", next_id++), *j;
	char *line;
	int r;

	if (args)
		json_object_set_new(req, "arguments", args);
	line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	r = line ? svc_send_raw(c, line, strlen(line), fd) : -ENOMEM;
	if (r >= 0)
		r = svc_send_raw(c, "\n", 1, -1);
	free(line);
	if (r < 0)
		return NULL;
	while ((j = svc_read(c, SVC_T_TIMEOUT_MS))) {
		if (!json_object_get(j, "event"))
			return j;
		json_array_append_new(c->events, j);
	}
	return NULL;
}

const char *svc_class(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");

	if (json_object_get(reply, "return"))
		return "";
	return e ? json_string_value(json_object_get(e, "class")) : "(none)";
}

static bool event_is(json_t *e, const char *name, long long id)
{
	return !strcmp(json_string_value(json_object_get(e, "event")) ?: "", name) &&
	       (!id || json_integer_value(json_object_get(json_object_get(e, "data"), "id")) == id);
}

json_t *svc_wait_event(struct svc_conn *c, const char *name, long long id)
{
	size_t i;
	json_t *e;

	json_array_foreach(c->events, i, e)
	{
		if (event_is(e, name, id)) {
			json_incref(e);
			json_array_remove(c->events, i);
			return e;
		}
	}
	while ((e = svc_read(c, SVC_T_TIMEOUT_MS))) {
		if (event_is(e, name, id))
			return e;
		json_array_append_new(c->events, e);
	}
	return NULL;
}

long long svc_snapshot(struct svc_conn *c, pid_t pid, const char *key, const char *value)
{
	json_t *r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", pid, key, value), -1);
	long long id = json_integer_value(json_object_get(json_object_get(r, "return"), "id"));

	if (id <= 0) {
		char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;

		printf("snapshot of pid %d to %s %s: %s\n", pid, key, value, s ? s : "no reply");
		free(s);
		id = -1;
	}
	json_decref(r);
	return id;
}

int svc_workload(const struct svc_paths *p, const char *const *args, const char *layout_path,
		 struct wl_proc **ret)
{
	int r = wl_proc_spawn(p->workload, args, ret);

	if (r >= 0)
		r = wl_write_file(layout_path, (*ret)->layout_json);
	return r;
}

long long svc_drain(int fd, const char *path)
{
	int out = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	char buf[1 << 16];
	long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		if (n > 0 && out >= 0 && write(out, buf, n) != n) {
			close(out);
			return -EIO;
		}
		total += n > 0 ? n : 0;
	}
	if (out >= 0)
		close(out);
	return n < 0 ? -errno : total;
}

long long svc_stalled_job(struct svc_conn *c, pid_t pid, const char *fdname, int *ret_read_end)
{
	char head[4096];
	int pfd[2];
	json_t *r;
	long long id;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", fdname), pfd[1]);
	close(pfd[1]);
	id = r && !strcmp(svc_class(r), "") ? svc_snapshot(c, pid, "fd", fdname) : -1;
	json_decref(r);
	/* The job has begun writing: it is past its checks, into the snapshot. */
	if (id <= 0 || read(pfd[0], head, sizeof(head)) <= 0) {
		close(pfd[0]);
		return -1;
	}
	*ret_read_end = pfd[0];
	return id;
}

pid_t svc_fork_nobody(int (*fn)(void *ctx), void *ctx)
{
	struct passwd *pw = getpwnam("nobody");
	pid_t parent = getpid(), child;
	int r;

	if (!pw)
		return printf("FAIL: no user nobody\n"), -1;
	child = fork();
	if (child == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent ||
		    setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(1);
		r = fn(ctx);
		fflush(stdout);
		_exit(r == 0 ? 0 : 1);
	}
	return child;
}

int svc_wait_child(pid_t pid)
{
	int st;

	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}
