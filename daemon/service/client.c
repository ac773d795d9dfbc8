/* SPDX-License-Identifier: MIT */
/*
 * Control connections: accept, non-blocking reads with fds (SCM_RIGHTS), line splitting, a
 * bounded output queue. No client can delay another: every socket is non-blocking, a client
 * is read at most one buffer per wake-up, and one that stops reading is dropped.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sys/clock.h"
#include "service/client.h"

/* Room for more fds than allowed, to see (and close) the excess of one message. */
#define SVC_CMSG_FDS 16

static void client_free(struct svc_client *c)
{
	for (unsigned i = 0; i < c->nfds; i++) {
		close(c->fds[i]);
		free(c->fdnames[i]);
	}
	if (c->fd >= 0) {
		/* Explicitly: a holder process forked by a job may share the open file, and
		 * epoll forgets an fd only when its last reference is closed. */
		epoll_ctl(c->svc->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	free(c->out);
	free(c);
}

static void client_drop(struct svc_client *c, const char *why)
{
	if (c->dead)
		return;
	svc_log("client %u (pid %d, uid %u): %s", c->serial, c->peer.pid, c->peer.uid, why);
	c->dead = true;
}

static void client_set_out(struct svc_client *c, bool want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == want || c->dead)
		return;
	if (epoll_ctl(c->svc->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return client_drop(c, "cannot wait for it to read (epoll)");
	c->want_out = want;
}

void svc_client_output(struct svc_client *c)
{
	while (!c->dead && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			return client_drop(c, "disconnected (write failed)");
		c->out_off += n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->close_when_flushed)
			client_drop(c, "closed after its last reply");
	}
	client_set_out(c, c->out_off < c->out_len);
}

static int out_reserve(struct svc_client *c, size_t n)
{
	char *p;
	size_t cap;

	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n <= c->out_cap)
		return 0;
	cap = c->out_cap ? c->out_cap : 4096;
	while (cap < c->out_len + n)
		cap *= 2;
	p = realloc(c->out, cap);
	if (!p)
		return -ENOMEM;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

void svc_client_send(struct svc_client *c, char *line)
{
	size_t n = line ? strlen(line) : 0;

	if (c->dead)
		goto out;
	if (!line) {
		client_drop(c, "dropped: out of memory for its reply");
		goto out;
	}
	if (c->out_len - c->out_off + n > SVC_OUT_MAX) {
		client_drop(c, "dropped: it left 4 MiB of output unread");
		goto out;
	}
	if (out_reserve(c, n) < 0) {
		client_drop(c, "dropped: out of memory for its output");
		goto out;
	}
	memcpy(c->out + c->out_len, line, n);
	c->out_len += n;
	svc_client_output(c);
out:
	free(line);
}

static void client_add_fds(struct svc_client *c, struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		size_t n;
		int *fds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			if (c->nfds < SVC_FDS_MAX) {
				c->fdnames[c->nfds] = NULL;
				c->fds[c->nfds++] = fds[i];
			} else {
				close(fds[i]);
				c->fds_dropped = true;
			}
		}
	}
	if (m->msg_flags & MSG_CTRUNC) /* the kernel closed what did not fit */
		c->fds_dropped = true;
}

static ssize_t client_recv(struct svc_client *c, char *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(SVC_CMSG_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = cbuf.buf,
			   .msg_controllen = sizeof(cbuf.buf)};
	ssize_t n;

	do
		n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		client_add_fds(c, &m);
	return n < 0 ? -errno : n;
}

void svc_client_input(struct svc_client *c, svc_line_fn *handle)
{
	const char *line;
	size_t space, len;
	char *buf = ctl_linebuf_space(&c->in, &space);
	ssize_t n = client_recv(c, buf, space);
	int r;

	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return;
	if (n <= 0)
		return client_drop(c, n == 0 ? "disconnected" : "disconnected (read failed)");
	ctl_linebuf_added(&c->in, n);
	while (!c->dead && !c->close_when_flushed && (r = ctl_linebuf_next(&c->in, &line, &len))) {
		if (r == -E2BIG) {
			struct ctl_error e;

			ctl_fail(&e, CTL_E_LIMIT,
				 "the request line is longer than %d bytes; it was "
				 "discarded",
				 CTL_LINE_MAX);
			svc_client_send(c, ctl_line_error(&e, NULL));
			continue;
		}
		if (len == 0 || (len == 1 && line[0] == '\r'))
			continue; /* empty lines are ignored */
		c->last_request_ns = sys_now_ns();
		handle(c, line, len);
	}
}

static struct svc_client *client_new(struct svc *svc, int fd)
{
	struct svc_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->svc = svc;
	c->fd = fd;
	c->serial = ++svc->next_client;
	c->connected_ns = sys_now_ns();
	return c;
}

/* One error line, then close (CONTROL.md "Limits"). */
static void client_refuse(struct svc_client *c, const char *class, const char *why)
{
	struct ctl_error e;

	ctl_fail(&e, class, "%s", why);
	c->close_when_flushed = true;
	svc_client_send(c, ctl_line_error(&e, NULL));
	if (!c->dead && c->out_off < c->out_len)
		client_drop(c, why);
	else
		svc_log("client %u (pid %d, uid %u): %s", c->serial, c->peer.pid, c->peer.uid, why);
}

static bool client_live(const struct svc_client *c)
{
	return !c->dead && !c->close_when_flushed;
}

unsigned svc_clients_of(const struct svc *svc, uid_t uid)
{
	unsigned n = 0;

	for (const struct svc_client *c = svc->clients; c; c = c->next)
		n += client_live(c) && c->peer.uid == uid;
	return n;
}

/* Who goes first under pressure: a silent connection, then the one quiet the longest. */
static bool quieter(const struct svc_client *a, const struct svc_client *b)
{
	if (!a->last_request_ns != !b->last_request_ns)
		return !a->last_request_ns;
	return (a->last_request_ns ?: a->connected_ns) < (b->last_request_ns ?: b->connected_ns);
}

/* Makes room for c (privileged) by closing another user's quietest connection. */
static bool client_make_room(struct svc *svc, struct svc_client *c)
{
	struct svc_client *v = NULL;
	char why[160];

	for (struct svc_client *o = svc->clients; o; o = o->next)
		if (o != c && client_live(o) && !o->peer.privileged && (!v || quieter(o, v)))
			v = o;
	if (!v)
		return false;
	snprintf(why, sizeof(why), "closed to make room for uid %u: too many clients (at most %u)",
		 c->peer.uid, svc->o.max_clients);
	client_refuse(v, CTL_E_LIMIT, why);
	return true;
}

/* NULL if c may stay, else why not. */
static const char *client_admit(struct svc *svc, struct svc_client *c, char *why, size_t len)
{
	unsigned max = svc->o.max_clients;

	if (c->peer.privileged)
		return svc->nclients <= max || client_make_room(svc, c)
			   ? NULL
			   : (snprintf(why, len, "too many clients (at most %u); try again later",
				       max),
			      why);
	if (svc_clients_of(svc, c->peer.uid) > svc->o.max_user_clients)
		return snprintf(why, len,
				"uid %u has %u connections, the most one user may have "
				"(--max-user-clients); close one",
				c->peer.uid, svc->o.max_user_clients),
		       why;
	if (max > SVC_RESERVED_CLIENTS)
		max -= SVC_RESERVED_CLIENTS;
	if (svc->nclients > max)
		return snprintf(why, len, "too many clients (at most %u); try again later", max),
		       why;
	return NULL;
}

void svc_accept(struct svc *svc)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct svc_client *c;
	char buf[200];
	const char *why;
	int fd = accept4(svc->listenfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			svc_log("cannot accept a connection: %m");
		return;
	}
	c = client_new(svc, fd);
	if (!c) {
		close(fd);
		return svc_log("cannot accept a connection: out of memory");
	}
	c->next = svc->clients;
	svc->clients = c;
	svc->nclients++;
	ev.data.ptr = c;
	if (svc_peer_identify(fd, &c->peer) < 0)
		return client_drop(c, "dropped: cannot identify it (SO_PEERCRED)");
	if (epoll_ctl(svc->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return client_drop(c, "dropped: cannot watch it (epoll)");
	c->peer.privileged = c->peer.uid == 0 || c->peer.uid == geteuid() ||
			     c->peer.gid == getegid();
	why = client_admit(svc, c, buf, sizeof(buf));
	if (why)
		return client_refuse(c, CTL_E_LIMIT, why);
	svc_client_send(c, ctl_line_greeting(SVC_PROTOCOL));
}

int svc_clients_expire(struct svc *svc)
{
	uint64_t idle = (uint64_t)svc->o.idle_timeout_s * 1000000000ull, now = sys_now_ns();
	int64_t next = -1;
	char why[96];

	for (struct svc_client *c = svc->clients; c; c = c->next) {
		if (!client_live(c) || c->last_request_ns)
			continue;
		if (now - c->connected_ns >= idle) {
			snprintf(why, sizeof(why), "closed: no request within %u s of connecting",
				 svc->o.idle_timeout_s);
			client_refuse(c, CTL_E_GENERIC, why);
			continue;
		}
		/* in ms, rounded up: waking early would only wait again */
		int64_t left = (int64_t)((c->connected_ns + idle - now + 999999) / 1000000);

		if (next < 0 || left < next)
			next = left;
	}
	return next > INT32_MAX ? INT32_MAX : (int)next;
}

void svc_clients_reap(struct svc *svc)
{
	struct svc_client **pc = &svc->clients;

	while (*pc) {
		struct svc_client *c = *pc;

		if (!c->dead) {
			pc = &c->next;
			continue;
		}
		*pc = c->next;
		svc->nclients--;
		client_free(c); /* closing the fd removes it from the epoll set */
	}
}

void svc_clients_free(struct svc *svc)
{
	while (svc->clients) {
		struct svc_client *c = svc->clients;

		svc->clients = c->next;
		client_free(c);
	}
	svc->nclients = 0;
}

int svc_client_fd_find(struct svc_client *c, const char *name)
{
	for (unsigned i = 0; i < c->nfds; i++)
		if (name ? c->fdnames[i] && !strcmp(c->fdnames[i], name) : !c->fdnames[i])
			return (int)i;
	return -1;
}

int svc_client_fd_take(struct svc_client *c, int i)
{
	int fd = c->fds[i];

	free(c->fdnames[i]);
	memmove(c->fds + i, c->fds + i + 1, (c->nfds - i - 1) * sizeof(int));
	memmove(c->fdnames + i, c->fdnames + i + 1, (c->nfds - i - 1) * sizeof(char *));
	c->nfds--;
	return fd;
}
