/* SPDX-License-Identifier: MIT */
/* Blocking control-message I/O on a stream socket (msgio.h). */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "stream/msgio.h"

void stream_sock_timeouts(int fd, unsigned secs)
{
	struct timeval tv = {.tv_sec = secs};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int stream_io_exact(int fd, uint8_t *p, size_t n, bool out)
{
	while (n) {
		ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			return -ECONNRESET;
		p += r;
		n -= r;
	}
	return 0;
}

int stream_msg_recv(int fd, struct stream_msg *m)
{
	uint8_t buf[STREAM_MSG_MAX_SIZE];
	size_t body, used;
	int r = stream_io_exact(fd, buf, STREAM_MSG_HEADER_SIZE, false);

	if (r < 0)
		return r;
	body = buf[6] | buf[7] << 8;
	if (body > STREAM_MSG_MAX_SIZE - STREAM_MSG_HEADER_SIZE)
		return -EBADMSG;
	r = stream_io_exact(fd, buf + STREAM_MSG_HEADER_SIZE, body, false);
	if (r < 0)
		return r;
	r = stream_msg_decode(buf, STREAM_MSG_HEADER_SIZE + body, m, &used);
	return r == -EAGAIN ? -EBADMSG : r;
}
