/* SPDX-License-Identifier: MIT */
/*
 * The control-protocol client (include/uffsnap/client.h; the protocol is proto/CONTROL.md).
 *
 * Everything the daemon sends is read into one buffer and cut into lines as it arrives, from
 * whichever call happens to be reading: events are queued, the reply being waited for is kept,
 * replies to requests given up on (timeout) are dropped. Replies come in request order
 * (CONTROL.md), so counting them identifies each one; the "id" we send is checked when echoed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "uffsnap/client.h"

/* Bytes asked of each read(2); the buffer grows to hold a longer line. */
#define CLIENT_READ_CHUNK 65536

struct uffsnap_client {
	int fd;
	int timeout_ms; /* per reply, -1 none */
	int broken;	/* 0, or the -errno that made the connection unusable */
	json_t *greeting;
	json_t *events; /* array, oldest first */
	char *buf;	/* received, not yet cut into lines */
	size_t len, cap;
	uint64_t sent;	   /* requests sent have ids 1..sent */
	uint64_t answered; /* replies received */
	uint64_t awaited;  /* id whose reply is wanted, 0 for none */
	json_t *reply;	   /* that reply, once it arrived */
	unsigned fdnames;  /* fd names generated so far */
};

static int64_t client_deadline(int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
}

/* Milliseconds left until deadline, for poll(2): -1 for none, 0 once passed. */
static int client_remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - client_deadline(0);
	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* A failure that leaves the stream in an unknown state breaks the connection for good. */
static int client_failed(struct uffsnap_client *c, int r)
{
	if (r < 0 && r != -ETIMEDOUT && r != -EINTR && !c->broken)
		c->broken = r;
	return r;
}

static int client_take_reply(struct uffsnap_client *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");

	if (c->answered == c->sent)
		return -EBADMSG; /* a reply to nothing */
	c->answered++;
	if (id && (!json_is_integer(id) || (uint64_t)json_integer_value(id) != c->answered))
		return -EBADMSG;
	if (c->answered != c->awaited)
		return 0; /* the late reply to a request given up on */
	c->reply = json_incref(msg);
	return 0;
}

static int client_dispatch(struct uffsnap_client *c, json_t *msg)
{
	if (!c->greeting) {
		c->greeting = json_incref(msg); /* checked by uffsnap_client_connect() */
		return 0;
	}
	if (json_is_string(json_object_get(msg, "event")))
		return json_array_append(c->events, msg) ? -ENOMEM : 0;
	if (json_object_get(msg, "return") || json_object_get(msg, "error"))
		return client_take_reply(c, msg);
	return -EBADMSG;
}

static int client_line(struct uffsnap_client *c, const char *line, size_t len)
{
	json_t *msg;
	int r;

	if (strspn(line, " \t\r") >= len)
		return 0; /* an empty line carries nothing */
	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return -EBADMSG;
	}
	r = client_dispatch(c, msg);
	json_decref(msg);
	return r;
}

/* Cuts every complete line out of the buffer; keeps the incomplete rest. */
static int client_cut_lines(struct uffsnap_client *c, size_t scan_from)
{
	size_t start = 0;
	char *nl;
	int r = 0;

	while (r >= 0 && (nl = memchr(c->buf + scan_from, '\n', c->len - scan_from))) {
		r = client_line(c, c->buf + start, nl - (c->buf + start));
		start = scan_from = nl + 1 - c->buf;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (r >= 0 && c->len > UFFSNAP_CLIENT_MAX_LINE)
		r = -EMSGSIZE;
	return r;
}

static int client_grow(struct uffsnap_client *c)
{
	size_t cap = c->cap ? c->cap * 2 : CLIENT_READ_CHUNK * 2;
	char *buf;

	if (c->cap - c->len >= CLIENT_READ_CHUNK)
		return 0;
	buf = realloc(c->buf, cap);
	if (!buf)
		return -ENOMEM;
	c->buf = buf;
	c->cap = cap;
	return 0;
}

/* Reads what the socket holds and handles every complete line. */
static int client_read(struct uffsnap_client *c)
{
	size_t old = c->len;
	ssize_t n;
	int r;

	r = client_grow(c);
	if (r < 0)
		return r;
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET; /* also when a line was cut short */
	c->len += n;
	return client_cut_lines(c, old);
}

/* Waits up to timeout_ms for the socket to be readable, then reads. */
static int client_fill(struct uffsnap_client *c, int timeout_ms)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	return client_read(c);
}

/* sendmsg(2) of len bytes, with fd attached (SCM_RIGHTS) when fd >= 0. */
static ssize_t client_sendmsg(int sock, const char *p, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *h;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL);
}

/* The socket is full: wait until it drains, reading what arrives meanwhile. */
static int client_wait_writable(struct uffsnap_client *c, int64_t deadline)
{
	struct pollfd p = {.fd = c->fd, .events = POLLOUT | POLLIN};
	int n = poll(&p, 1, client_remaining(deadline));

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (p.revents & POLLIN)
		return client_read(c);
	return 0;
}

/* Sends the line; the fd (if any) travels with its first byte. */
static int client_send_line(struct uffsnap_client *c, const char *p, size_t len, int fd)
{
	int64_t deadline = client_deadline(c->timeout_ms);
	ssize_t n;
	int r;

	while (len) {
		n = client_sendmsg(c->fd, p, len, fd);
		if (n < 0 && errno == EAGAIN) {
			r = client_wait_writable(c, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			/* Gone: keep the events it sent before (until EOF or nothing more). */
			while (client_fill(c, 0) >= 0)
				;
			return -ECONNRESET;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
		fd = -EBADF;
	}
	return 0;
}

static int client_send(struct uffsnap_client *c, json_t *msg, int fd)
{
	char *text = json_dumps(msg, JSON_COMPACT); /* escapes control characters: one line */
	size_t len;
	char *line;
	int r;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	r = client_send_line(c, line, len + 1, fd);
	free(line);
	return r;
}

static int client_wait_reply(struct uffsnap_client *c, json_t **ret_reply)
{
	int64_t deadline = client_deadline(c->timeout_ms);
	int r;

	while (!c->reply) {
		r = client_fill(c, client_remaining(deadline));
		if (r == -EINTR)
			continue; /* see uffsnap_client_execute(): the outcome is always returned */
		if (r < 0) {
			c->awaited = 0;
			return r;
		}
	}
	*ret_reply = c->reply;
	c->reply = NULL;
	c->awaited = 0;
	return 0;
}

static void client_copy_str(char *dst, size_t size, const json_t *s, const char *fallback)
{
	snprintf(dst, size, "%s", json_is_string(s) ? json_string_value(s) : fallback);
}

/* {"error": {"class", "desc"}} into ret_error (may be NULL). */
static int client_error_of(const json_t *msg, struct uffsnap_client_error *ret_error)
{
	const json_t *e = json_object_get(msg, "error");

	if (!json_is_object(e))
		return -EBADMSG;
	if (ret_error) {
		client_copy_str(ret_error->class, sizeof(ret_error->class),
				json_object_get(e, "class"), "GenericError");
		client_copy_str(ret_error->desc, sizeof(ret_error->desc),
				json_object_get(e, "desc"), "the daemon gave no description");
	}
	return -EREMOTEIO;
}

static int client_split_reply(const json_t *reply, json_t **ret_return,
			      struct uffsnap_client_error *ret_error)
{
	json_t *v = json_object_get(reply, "return");

	if (!v)
		return client_error_of(reply, ret_error);
	if (ret_return)
		*ret_return = json_incref(v);
	return 0;
}

/* One request and its reply; fd (if >= 0) is attached to the request line. */
static int client_call(struct uffsnap_client *c, const char *command, json_t *arguments, int fd,
		       json_t **ret_return, struct uffsnap_client_error *ret_error)
{
	json_t *req, *reply = NULL;
	int r;

	req = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)(c->sent + 1));
	if (!req || (arguments && json_object_set(req, "arguments", arguments) < 0)) {
		json_decref(req);
		return -ENOMEM;
	}
	c->awaited = ++c->sent;
	r = client_send(c, req, fd);
	json_decref(req);
	if (r >= 0)
		r = client_wait_reply(c, &reply);
	if (r < 0)
		return client_failed(c, r);
	r = client_split_reply(reply, ret_return, ret_error);
	json_decref(reply);
	return r == -EREMOTEIO ? r : client_failed(c, r);
}

/* closefd of the names given so far: the command was refused (or never sent). */
static void client_close_names(struct uffsnap_client *c, const json_t *args,
			       const struct uffsnap_client_fd *pass, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_pack("{s:O}", "fdname", json_object_get(args, pass[i].argument));

		if (a)
			client_call(c, "closefd", a, -EBADF, NULL, NULL);
		json_decref(a);
	}
}

/* getfd under a fresh name for each fd, the command with the names in it, closefd if refused. */
static int client_call_with_fds(struct uffsnap_client *c, const char *command, json_t *arguments,
				const struct uffsnap_client_fd *pass, size_t npass,
				json_t **ret_return, struct uffsnap_client_error *ret_error)
{
	json_t *args = arguments ? json_copy(arguments) : json_object(), *a;
	size_t named = 0;
	int r = args ? 0 : -ENOMEM;

	for (; r >= 0 && named < npass; named++) {
		char name[32];

		snprintf(name, sizeof(name), "uffsnap-fd-%u", ++c->fdnames);
		if (json_object_set_new(args, pass[named].argument, json_string(name)) < 0) {
			r = -ENOMEM;
			break;
		}
		a = json_pack("{s:s}", "fdname", name);
		r = a ? client_call(c, "getfd", a, pass[named].fd, NULL, ret_error) : -ENOMEM;
		json_decref(a);
		if (r < 0)
			break;
	}
	if (r >= 0)
		r = client_call(c, command, args, -EBADF, ret_return, ret_error);
	if (r == -EREMOTEIO || (r < 0 && !c->broken))
		client_close_names(c, args, pass, named);
	json_decref(args);
	return r;
}

int uffsnap_client_execute_fds(struct uffsnap_client *c, const char *command, json_t *arguments,
			       const struct uffsnap_client_fd *pass, size_t npass,
			       json_t **ret_return, struct uffsnap_client_error *ret_error)
{
	if (!c || !command || !*command || (arguments && !json_is_object(arguments)))
		return -EINVAL;
	if (npass && !pass)
		return -EINVAL;
	for (size_t i = 0; i < npass; i++) {
		if (pass[i].fd < 0 || !pass[i].argument || !*pass[i].argument)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(pass[i].argument, pass[k].argument))
				return -EINVAL;
	}
	if (c->broken)
		return c->broken;
	if (npass)
		return client_call_with_fds(c, command, arguments, pass, npass, ret_return,
					    ret_error);
	return client_call(c, command, arguments, -EBADF, ret_return, ret_error);
}

int uffsnap_client_execute(struct uffsnap_client *c, const char *command, json_t *arguments,
			   const struct uffsnap_client_fd *pass, json_t **ret_return,
			   struct uffsnap_client_error *ret_error)
{
	return uffsnap_client_execute_fds(c, command, arguments, pass, pass ? 1 : 0, ret_return,
					  ret_error);
}

int uffsnap_client_next_event(struct uffsnap_client *c, int timeout_ms, json_t **ret_event)
{
	int64_t deadline = client_deadline(timeout_ms);
	int r;

	for (;;) {
		if (json_array_size(c->events)) {
			*ret_event = json_incref(json_array_get(c->events, 0));
			json_array_remove(c->events, 0);
			return 0;
		}
		if (c->broken)
			return c->broken;
		r = client_fill(c, client_remaining(deadline));
		if (r < 0)
			return client_failed(c, r);
	}
}

/* The greeting (or the error line a daemon sends instead) is the first line. */
static int client_check_greeting(struct uffsnap_client *c, struct uffsnap_client_error *ret_error)
{
	const json_t *g = json_object_get(c->greeting, "uffsnap");
	const json_t *proto = json_object_get(g, "protocol");

	if (json_object_get(c->greeting, "error"))
		return client_error_of(c->greeting, ret_error);
	if (!json_is_object(g) || !json_is_integer(proto))
		return -EBADMSG;
	if (json_integer_value(proto) != UFFSNAP_CLIENT_PROTOCOL)
		return -EPROTONOSUPPORT;
	return 0;
}

static int client_open(struct uffsnap_client *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = client_deadline(timeout_ms);
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	while (!c->greeting) {
		r = client_fill(c, client_remaining(deadline));
		if (r < 0 && r != -EINTR)
			return r;
	}
	return 0;
}

int uffsnap_client_connect(const char *path, int timeout_ms, struct uffsnap_client **ret_client,
			   struct uffsnap_client_error *ret_error)
{
	struct uffsnap_client *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->fd = -EBADF;
	c->timeout_ms = -1;
	c->events = json_array();
	r = c->events ? client_open(c, path ? path : UFFSNAP_CLIENT_DEFAULT_SOCKET, timeout_ms)
		      : -ENOMEM;
	if (r >= 0)
		r = client_check_greeting(c, ret_error);
	if (r < 0) {
		uffsnap_client_free(c);
		return r;
	}
	*ret_client = c;
	return 0;
}

void uffsnap_client_free(struct uffsnap_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	json_decref(c->greeting);
	json_decref(c->events);
	json_decref(c->reply);
	free(c->buf);
	free(c);
}

const json_t *uffsnap_client_greeting(const struct uffsnap_client *c)
{
	return c->greeting;
}

bool uffsnap_client_has_capability(const struct uffsnap_client *c, const char *name)
{
	const json_t *caps =
	    json_object_get(json_object_get(c->greeting, "uffsnap"), "capabilities");

	for (size_t i = 0; i < json_array_size(caps); i++) {
		const json_t *v = json_array_get(caps, i);

		if (json_is_string(v) && !strcmp(json_string_value(v), name))
			return true;
	}
	return false;
}

void uffsnap_client_set_timeout(struct uffsnap_client *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

int uffsnap_client_fd(const struct uffsnap_client *c)
{
	return c->fd;
}
