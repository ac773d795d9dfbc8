// SPDX-License-Identifier: MIT
/*
 * A tiny blocking QMP client for the tests (guest-harness.h): newline-delimited JSON over a
 * unix socket, one command at a time, events queued until asked for.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "test-check.h"

#define QMP_REPLY_TIMEOUT_S 120 /* safety net for one reply; TCG on a busy machine is slow */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receives more bytes, waiting until deadline_ms. */
static int qmp_fill(struct qmp *q, int64_t deadline_ms)
{
	struct pollfd p = {.fd = q->fd, .events = POLLIN};
	int64_t left = deadline_ms - now_ms();
	ssize_t n;
	int r;

	if (left <= 0)
		return -ETIMEDOUT;
	r = poll(&p, 1, left > 1000 ? 1000 : left);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return 0;
	if (q->cap - q->len < 4096) {
		char *b = realloc(q->buf, q->cap * 2 + 4096);

		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = q->cap * 2 + 4096;
	}
	n = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	q->len += n;
	return 0;
}

/* The next complete message, waiting until deadline_ms. */
static int qmp_next(struct qmp *q, int64_t deadline_ms, json_t **ret)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		json_error_t e;
		json_t *m;
		int r;

		if (nl) {
			size_t n = nl - q->buf + 1;

			m = json_loadb(q->buf, n, 0, &e);
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			if (!m) {
				snprintf(q->error, sizeof(q->error), "bad JSON from QMP: %s",
					 e.text);
				return -EBADMSG;
			}
			*ret = m;
			return 0;
		}
		r = qmp_fill(q, deadline_ms);
		if (r < 0) {
			snprintf(q->error, sizeof(q->error), "QMP connection: %s", strerror(-r));
			return r;
		}
	}
}

static int qmp_send(struct qmp *q, const char *text, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* Short commands: one sendmsg carries all (and the fd with its first byte). */
	if (sendmsg(q->fd, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len) {
		snprintf(q->error, sizeof(q->error), "QMP send: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

int qmp_exec_fd(struct qmp *q, const char *name, json_t *args, int fd, json_t **ret_return)
{
	json_t *cmd = json_pack("{s:s}", "execute", name), *m;
	int64_t deadline = now_ms() + QMP_REPLY_TIMEOUT_S * 1000;
	char *text;
	int r;

	if (!cmd) {
		json_decref(args);
		return -ENOMEM;
	}
	if (args)
		json_object_set_new(cmd, "arguments", args);
	text = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	if (!text)
		return -ENOMEM;
	r = qmp_send(q, text, fd);
	free(text);
	while (r == 0 && (r = qmp_next(q, deadline, &m)) == 0) {
		json_t *ret = json_object_get(m, "return"), *err = json_object_get(m, "error");

		if (json_object_get(m, "event")) {
			json_array_append_new(q->events, m);
			continue;
		}
		if (err) {
			snprintf(q->error, sizeof(q->error), "%s: %s: %s", name,
				 json_string_value(json_object_get(err, "class")),
				 json_string_value(json_object_get(err, "desc")));
			json_decref(m);
			return -EREMOTEIO;
		}
		if (ret && ret_return)
			*ret_return = json_incref(ret);
		json_decref(m);
		return 0;
	}
	return r;
}

int qmp_exec(struct qmp *q, const char *name, json_t *args, json_t **ret_return)
{
	return qmp_exec_fd(q, name, args, -1, ret_return);
}

/* Consumes m: hands it over when it is the event asked for, else drops it. */
static bool take_event(json_t *m, const char *name, const char *status, json_t **ret_event)
{
	const char *ev = json_string_value(json_object_get(m, "event"));
	const char *st = json_string_value(json_object_get(json_object_get(m, "data"), "status"));
	bool hit = ev && !strcmp(ev, name) && (!status || (st && !strcmp(st, status)));

	if (hit && ret_event)
		*ret_event = json_incref(m);
	json_decref(m);
	return hit;
}

int qmp_wait_event(struct qmp *q, const char *name, const char *status, unsigned timeout_s,
		   json_t **ret_event)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	json_t *m;
	int r;

	while (json_array_size(q->events)) {
		m = json_incref(json_array_get(q->events, 0));
		json_array_remove(q->events, 0);
		if (take_event(m, name, status, ret_event))
			return 0;
	}
	for (;;) {
		r = qmp_next(q, deadline, &m);
		if (r < 0)
			return r;
		if (take_event(m, name, status, ret_event))
			return 0;
	}
}

int qmp_migrate_caps(struct qmp *q, const char *const *names, bool on)
{
	json_t *caps = json_array();

	for (; *names; names++)
		json_array_append_new(caps, json_pack("{s:s,s:b}", "capability", *names,
						      "state", on));
	return qmp_exec(q, "migrate-set-capabilities", json_pack("{s:o}", "capabilities", caps),
			NULL);
}

static int qmp_connect(struct qmp *q, const char *path, unsigned timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		e = errno;
		close(fd);
		/* QEMU creates the socket a little after it starts. */
		if ((e != ENOENT && e != ECONNREFUSED) || now_ms() > deadline)
			return -e;
		test_sleep_ms(50);
	}
}

int qmp_open(struct qmp *q, const char *path, unsigned timeout_s)
{
	json_t *greeting = NULL;
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = -EBADF;
	q->events = json_array();
	q->fd = qmp_connect(q, path, timeout_s);
	if (q->fd < 0) {
		r = q->fd;
		snprintf(q->error, sizeof(q->error), "connect %s: %s", path, strerror(-r));
		return r;
	}
	r = qmp_next(q, now_ms() + QMP_REPLY_TIMEOUT_S * 1000, &greeting);
	if (r == 0 && !json_object_get(greeting, "QMP")) {
		snprintf(q->error, sizeof(q->error), "%s: no QMP greeting", path);
		r = -EPROTO;
	}
	json_decref(greeting);
	return r < 0 ? r : qmp_exec(q, "qmp_capabilities", NULL, NULL);
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -EBADF;
	free(q->buf);
	q->buf = NULL;
	q->len = q->cap = 0;
	json_decref(q->events);
	q->events = NULL;
}
