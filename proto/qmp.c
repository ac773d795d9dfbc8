/* SPDX-License-Identifier: MIT */
/*
 * A QMP client (proto/qmp.h). QEMU sends one JSON object per line ("\r\n"): the greeting, then
 * a reply ("return" or "error", with the "id" we sent) per command, and events ("event") at any
 * time. Everything read is cut into lines as it arrives; events are queued.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"

/* A line longer than this is not QEMU talking (its largest replies are a few hundred KiB). */
#define QMP_MAX_LINE (16u << 20)

struct qmp {
	int fd;
	int cancel_fd;
	int timeout_ms;
	pid_t pid;
	char version[32];
	json_t *events; /* array, oldest first */
	char *buf;	/* received, not yet cut into lines */
	size_t len, cap;
	uint64_t next_id;
};

__attribute__((format(printf, 4, 5))) static int fail(char *msg, size_t len, int err,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return err;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until the socket is readable: 0, -ETIMEDOUT at deadline (-1: none), or -ECANCELED
 * when cancel_fd (-1: none) is readable.
 */
static int wait_readable(struct qmp *q, int cancel_fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = q->fd, .events = POLLIN},
				      {.fd = cancel_fd, .events = POLLIN}};
		int64_t left = deadline < 0 ? -1 : deadline - now_ms();
		int k;

		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		k = poll(p, cancel_fd >= 0 ? 2 : 1, (int)(left > INT32_MAX ? INT32_MAX : left));
		if (k < 0 && errno != EINTR)
			return -errno;
		if (k > 0 && cancel_fd >= 0 && p[1].revents)
			return -ECANCELED;
		if (k > 0)
			return 0;
	}
}

/* The next message QEMU sent, or a negative errno (-EPIPE: QEMU closed the socket). */
static int read_message(struct qmp *q, int cancel_fd, int64_t deadline, json_t **ret, char *msg,
			size_t len)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		json_error_t jerr;
		ssize_t n;
		int k;

		if (nl) {
			size_t line = (size_t)(nl - q->buf) + 1;
			json_t *j = json_loadb(q->buf, line, 0, &jerr);

			memmove(q->buf, q->buf + line, q->len - line);
			q->len -= line;
			if (!j || !json_is_object(j)) {
				json_decref(j);
				return fail(msg, len, -EPROTO, "QMP: not a JSON object: %s",
					    jerr.text);
			}
			*ret = j;
			return 0;
		}
		if (q->len >= QMP_MAX_LINE)
			return fail(msg, len, -EPROTO, "QMP: a line longer than %u bytes",
				    QMP_MAX_LINE);
		if (q->cap - q->len < 65536) {
			size_t cap = q->cap ? q->cap * 2 : 65536;
			char *b = realloc(q->buf, cap);

			if (!b)
				return fail(msg, len, -ENOMEM, "QMP: out of memory");
			q->buf = b;
			q->cap = cap;
		}
		k = wait_readable(q, cancel_fd, deadline);
		if (k == -ETIMEDOUT)
			return fail(msg, len, k, "QEMU did not answer on its QMP socket in time");
		if (k == -ECANCELED)
			return fail(msg, len, k, "cancelled while waiting for QEMU");
		if (k < 0)
			return fail(msg, len, k, "QMP: poll: %s", strerror(-k));
		n = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return fail(msg, len, -errno, "QMP: cannot read: %m");
		if (n == 0)
			return fail(msg, len, -EPIPE, "QEMU closed its QMP connection (it exited?)");
		q->len += (size_t)n;
	}
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int send_line(struct qmp *q, const char *text, int fd, char *msg, size_t len)
{
	size_t n = strlen(text), done = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;

	while (done < n) {
		struct iovec iov = {.iov_base = (char *)text + done, .iov_len = n - done};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t k;

		if (fd >= 0 && done == 0) { /* the fd rides with the first byte */
			struct cmsghdr *c;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		k = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return fail(msg, len, -errno, "QMP: cannot send: %m");
		done += (size_t)k;
	}
	return 0;
}

static int greet(struct qmp *q, char *msg, size_t len)
{
	json_t *g = NULL, *v;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	int k = read_message(q, q->cancel_fd, deadline_of(q->timeout_ms), &g, msg, len);

	if (k == -ETIMEDOUT) /* QEMU serves one client at a time per QMP socket */
		return fail(msg, len, -EBUSY, "no QMP greeting: not QEMU's QMP socket, or another "
			    "client is connected to it");
	if (k == -EPROTO)
		return fail(msg, len, k, "not a QMP socket: %s", msg);
	if (k < 0)
		return k;
	v = json_object_get(json_object_get(json_object_get(g, "QMP"), "version"), "qemu");
	if (!json_is_object(v)) {
		json_decref(g);
		return fail(msg, len, -EPROTO, "not a QMP socket: the greeting is not QEMU's");
	}
	snprintf(q->version, sizeof(q->version), "%lld.%lld.%lld",
		 (long long)json_integer_value(json_object_get(v, "major")),
		 (long long)json_integer_value(json_object_get(v, "minor")),
		 (long long)json_integer_value(json_object_get(v, "micro")));
	json_decref(g);
	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.pid <= 0)
		return fail(msg, len, -EPROTO, "cannot tell which process serves the QMP socket");
	q->pid = cred.pid;
	return qmp_exec(q, "qmp_capabilities", NULL, -1, NULL, msg, len);
}

int qmp_open_fd(int fd, int timeout_ms, struct qmp **ret, char *msg, size_t len)
{
	struct qmp *q = calloc(1, sizeof(*q));
	int k;

	if (!q) {
		close(fd);
		return fail(msg, len, -ENOMEM, "out of memory");
	}
	q->fd = fd;
	q->cancel_fd = -1;
	q->timeout_ms = timeout_ms;
	q->events = json_array();
	k = q->events ? greet(q, msg, len) : fail(msg, len, -ENOMEM, "out of memory");
	if (k < 0) {
		qmp_close(q);
		return k;
	}
	*ret = q;
	return 0;
}

int qmp_open_path(const char *path, int timeout_ms, struct qmp **ret, char *msg, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(msg, len, -ENAMETOOLONG, "'%s': path too long for a unix socket", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(msg, len, -errno, "socket: %m");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return fail(msg, len, -e, "cannot connect to '%s': %s", path, strerror(e));
	}
	return qmp_open_fd(fd, timeout_ms, ret, msg, len);
}

int qmp_fd(const struct qmp *q)
{
	return q->fd;
}

pid_t qmp_peer_pid(const struct qmp *q)
{
	return q->pid;
}

const char *qmp_version(const struct qmp *q)
{
	return q->version;
}

void qmp_set_cancel_fd(struct qmp *q, int fd)
{
	q->cancel_fd = fd;
}

/* A reply to our request id, an event (queued), or something else (a protocol error). */
static int take_reply(struct qmp *q, json_t *m, uint64_t id, json_t **ret, char *msg, size_t len)
{
	json_t *r, *e;

	if (json_object_get(m, "event")) {
		json_array_append_new(q->events, m);
		return 1;
	}
	if (json_integer_value(json_object_get(m, "id")) != (json_int_t)id) {
		json_decref(m);
		return 1; /* a late reply to a request given up on */
	}
	if ((e = json_object_get(m, "error"))) {
		const char *d = json_string_value(json_object_get(e, "desc"));

		fail(msg, len, -EREMOTEIO, "%s", d ? d : "QEMU refused (no description)");
		json_decref(m);
		return -EREMOTEIO;
	}
	r = json_object_get(m, "return");
	if (!r) {
		json_decref(m);
		return fail(msg, len, -EPROTO, "QMP: a reply with neither return nor error");
	}
	if (ret)
		*ret = json_incref(r);
	json_decref(m);
	return 0;
}

int qmp_exec(struct qmp *q, const char *cmd, json_t *args, int fd, json_t **ret, char *msg,
	     size_t len)
{
	uint64_t id = ++q->next_id;
	int64_t deadline = deadline_of(q->timeout_ms);
	json_t *req = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	char *text;
	int k;

	struct pollfd c = {.fd = q->cancel_fd, .events = POLLIN};

	/* Cancelled: nothing more is sent. Once sent, the reply is awaited whatever happens, so
	 * that the caller knows whether QEMU did it. */
	if (q->cancel_fd >= 0 && poll(&c, 1, 0) > 0) {
		json_decref(req);
		return fail(msg, len, -ECANCELED, "cancelled before asking QEMU to %s", cmd);
	}
	if (!req)
		return fail(msg, len, -ENOMEM, "out of memory");
	if (args)
		json_object_set(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return fail(msg, len, -ENOMEM, "out of memory");
	/* json_dumps never emits a newline in compact mode; QMP wants one to end the line */
	k = send_line(q, text, fd, msg, len);
	free(text);
	if (k >= 0)
		k = send_line(q, "\n", -1, msg, len);
	while (k >= 0) {
		json_t *m = NULL;

		k = read_message(q, -1, deadline, &m, msg, len);
		if (k < 0)
			break;
		k = take_reply(q, m, id, ret, msg, len);
		if (k <= 0)
			return k;
	}
	return k;
}

int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, json_t **ret, char *msg,
		   size_t len)
{
	int64_t deadline = deadline_of(timeout_ms);

	for (;;) {
		json_t *m = NULL;
		size_t i;
		int k;

		for (i = 0; i < json_array_size(q->events); i++) {
			json_t *e = json_array_get(q->events, i);
			const char *n = json_string_value(json_object_get(e, "event"));

			if (!name || (n && !strcmp(n, name))) {
				*ret = json_incref(e);
				json_array_remove(q->events, i);
				return 0;
			}
		}
		k = read_message(q, q->cancel_fd, deadline, &m, msg, len);
		if (k == -ETIMEDOUT)
			return fail(msg, len, k, "no %s event from QEMU in time",
				    name ? name : "QMP");
		if (k < 0)
			return k;
		if (json_object_get(m, "event"))
			json_array_append_new(q->events, m);
		else
			json_decref(m); /* a late reply */
	}
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	json_decref(q->events);
	free(q->buf);
	free(q);
}
