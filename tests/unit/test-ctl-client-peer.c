/* SPDX-License-Identifier: MIT */
/* The hand-driven daemon of the control client's unit tests (see test-ctl-client-peer.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "test-ctl-client-peer.h"

/* A request that never comes fails the test instead of hanging it. */
#define PEER_READ_TIMEOUT_S 20

void peer_listen(struct peer *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(p, 0, sizeof(*p));
	p->fd = p->got_fd = -1;
	strcpy(p->dir, "/tmp/uffsnap-ctl-test.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/sock", p->dir);
	strcpy(sa.sun_path, p->path);
	p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->listen_fd >= 0);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->listen_fd, 4), 0);
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the client went away: its side of the test reports it */
		s += n;
		len -= n;
	}
}

static void *peer_accept(void *arg)
{
	struct peer *p = arg;
	struct timeval tv = {.tv_sec = PEER_READ_TIMEOUT_S};

	p->fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (p->fd < 0)
		return NULL;
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (p->first)
		write_all(p->fd, p->first, strlen(p->first));
	if (p->shut_after_first)
		shutdown(p->fd, SHUT_WR);
	return NULL;
}

int peer_connect(struct peer *p, const char *first, struct uffsnap_client **ret_client,
		 struct uffsnap_client_error *ret_error)
{
	pthread_t t;
	int r;

	p->first = first;
	assert_int_equal(pthread_create(&t, NULL, peer_accept, p), 0);
	r = uffsnap_client_connect(p->path, PEER_READ_TIMEOUT_S * 1000, ret_client, ret_error);
	pthread_join(t, NULL);
	assert_true(p->fd >= 0);
	return r;
}

void peer_send(struct peer *p, const char *s)
{
	write_all(p->fd, s, strlen(s));
}

static void *peer_write_big(void *arg)
{
	struct peer *p = arg;

	write_all(p->fd, p->big, p->big_len);
	return NULL;
}

void peer_send_async(struct peer *p, const char *data, size_t len)
{
	p->big = malloc(len);
	assert_non_null(p->big);
	memcpy(p->big, data, len);
	p->big_len = len;
	assert_int_equal(pthread_create(&p->writer, NULL, peer_write_big, p), 0);
	p->writer_running = 1;
}

/* One recvmsg(2) into the buffer, keeping an fd that came with it. No cmocka here: the
 * server thread calls it too. Returns 0, or -1 on EOF, error or the read timeout. */
static int peer_recv(struct peer *p)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov;
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *h;
	ssize_t n;

	if (p->cap - p->len < 4096) {
		p->cap = p->cap ? p->cap * 2 : 65536;
		p->buf = realloc(p->buf, p->cap);
		if (!p->buf)
			abort();
	}
	iov.iov_base = p->buf + p->len;
	iov.iov_len = p->cap - p->len;
	n = recvmsg(p->fd, &m, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return -1;
	p->len += n;
	for (h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		if (p->got_fd >= 0)
			close(p->got_fd);
		memcpy(&p->got_fd, CMSG_DATA(h), sizeof(int));
		if (h->cmsg_len != CMSG_LEN(sizeof(int)))
			p->extra_fds = 1;
	}
	return 0;
}

/* The next line, parsed; NULL on EOF, timeout, or a line that is not JSON. */
static json_t *peer_line(struct peer *p)
{
	char *nl;
	json_t *j;

	while (!(nl = p->len ? memchr(p->buf, '\n', p->len) : NULL))
		if (peer_recv(p) < 0)
			return NULL;
	j = json_loadb(p->buf, nl - p->buf, 0, NULL);
	p->len -= nl + 1 - p->buf;
	memmove(p->buf, nl + 1, p->len);
	return j;
}

json_t *peer_request(struct peer *p)
{
	json_t *j = peer_line(p);

	if (!j)
		fail_msg("no request line from the client (EOF, timeout, or not JSON)");
	return j;
}

static void *peer_server(void *arg)
{
	struct peer *p = arg;

	for (size_t i = 0; i < p->nreplies && i < PEER_MAX_REQUESTS; i++) {
		p->requests[i] = peer_line(p);
		if (!p->requests[i])
			break;
		p->request_fds[i] = p->got_fd;
		p->got_fd = -1;
		p->nrequests++;
		write_all(p->fd, p->replies[i], strlen(p->replies[i]));
	}
	return NULL;
}

void peer_serve(struct peer *p, const char *const *replies, size_t n)
{
	p->replies = replies;
	p->nreplies = n;
	assert_int_equal(pthread_create(&p->server, NULL, peer_server, p), 0);
	p->serving = 1;
}

size_t peer_served(struct peer *p)
{
	if (p->serving)
		pthread_join(p->server, NULL);
	p->serving = 0;
	assert_false(p->extra_fds);
	return p->nrequests;
}

void peer_hangup(struct peer *p)
{
	if (p->writer_running) {
		pthread_join(p->writer, NULL);
		p->writer_running = 0;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

void peer_close(struct peer *p)
{
	peer_served(p);
	for (size_t i = 0; i < p->nrequests; i++) {
		json_decref(p->requests[i]);
		if (p->request_fds[i] >= 0)
			close(p->request_fds[i]);
	}
	peer_hangup(p);
	if (p->got_fd >= 0)
		close(p->got_fd);
	close(p->listen_fd);
	unlink(p->path);
	rmdir(p->dir);
	free(p->buf);
	free(p->big);
}
