/* SPDX-License-Identifier: MIT */
/* The file-descriptor sink: files, pipes and sockets. The fd stays the caller's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uffsnap/image.h"

/*
 * A regular file's writeback is started every IMG_SINK_KICK_BYTES (SYNC_FILE_RANGE_WRITE does
 * not wait for the writes to complete, only, at worst, for room in the device's queue), so
 * the fsync at the end finds little left. One fsync of a whole multi-GiB
 * image at the end is a burst of disk I/O, and on virtual machines whose host bills its I/O
 * emulation to the guest's CPUs the target then loses its CPUs for tens of milliseconds at a
 * time. Redis BGSAVE spreads its writes the same way (fdatasync every 32 MiB).
 */
#define IMG_SINK_KICK_BYTES (32ull << 20)

struct img_sink_fd {
	struct img_sink base;
	int fd;
	int is_file;	     /* -1: not checked yet */
	uint64_t unkicked; /* bytes written since writeback was last started */
	int cancel_fd;	   /* readable: give up waiting for the fd; -EBADF: none */
	bool nowait;	   /* the fd takes RWF_NOWAIT (pipes, sockets) */
};

static bool sink_is_file(struct img_sink_fd *f)
{
	struct stat st;

	if (f->is_file < 0)
		f->is_file = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	return f->is_file;
}

static void kick_writeback(struct img_sink_fd *f, size_t n)
{
	f->unkicked += n;
	if (!sink_is_file(f) || f->unkicked < IMG_SINK_KICK_BYTES)
		return;
	f->unkicked = 0;
	/* Whole file: the fd may not start at offset 0. A failure here is reported by fsync. */
	sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* Advances an iovec array past n written bytes. */
static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (*iovcnt && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*iovcnt)--;
	}
	if (*iovcnt && n) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/*
 * A pipe or socket nobody reads would block a writer for ever, and a snapshot that must end
 * (cancelled, interrupted) could not. So with a cancel fd, writes to them do not block
 * (RWF_NOWAIT: fs/pipe.c and net/socket.c honour IOCB_NOWAIT) and the wait for room is a
 * poll() that the cancel fd ends. A regular file's writes are left blocking: the disk
 * always gets there.
 */
static ssize_t sink_fd_write_some(struct img_sink_fd *f, const struct iovec *iov, int iovcnt)
{
	struct pollfd p[2] = {{.fd = f->fd, .events = POLLOUT},
			      {.fd = f->cancel_fd, .events = POLLIN}};
	ssize_t n;

	if (iovcnt > IOV_MAX)
		iovcnt = IOV_MAX;
	while (f->nowait) {
		n = pwritev2(f->fd, iov, iovcnt, -1, RWF_NOWAIT);

		if (n >= 0 || (errno != EAGAIN && errno != EOPNOTSUPP))
			return n < 0 ? -errno : n;
		if (errno == EOPNOTSUPP) {
			f->nowait = false;
			break;
		}
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
	}
	n = writev(f->fd, iov, iovcnt);
	return n < 0 ? -errno : n;
}

static int sink_fd_writev(struct img_sink *s, const struct iovec *iov, int iovcnt)
{
	struct img_sink_fd *f = (struct img_sink_fd *)s;
	struct iovec local[64], *v = local;
	int r = 0;

	if (iovcnt > 64) {
		v = malloc(sizeof(*v) * iovcnt);
		if (!v)
			return -ENOMEM;
	}
	memcpy(v, iov, sizeof(*v) * iovcnt);
	struct iovec *cur = v;
	while (iovcnt > 0) {
		ssize_t n = sink_fd_write_some(f, cur, iovcnt);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			r = (int)n;
			break;
		}
		iov_advance(&cur, &iovcnt, n);
		kick_writeback(f, n);
		/* Skip empty entries so that a zero-length tail does not loop. */
		while (iovcnt && cur->iov_len == 0) {
			cur++;
			iovcnt--;
		}
	}
	if (v != local)
		free(v);
	return r;
}

static int sink_fd_flush(struct img_sink *s)
{
	struct img_sink_fd *f = (struct img_sink_fd *)s;
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && fsync(f->fd) < 0)
		return -errno;
	return 0;
}

static void sink_fd_free(struct img_sink *s)
{
	free(s);
}

static const struct img_sink_ops sink_fd_ops = {
	.writev = sink_fd_writev,
	.flush = sink_fd_flush,
	.free = sink_fd_free,
};

int img_sink_fd_new(int fd, struct img_sink **ret)
{
	struct img_sink_fd *f;

	if (fd < 0)
		return -EBADF;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &sink_fd_ops;
	f->fd = fd;
	f->is_file = -1;
	f->cancel_fd = -EBADF;
	*ret = &f->base;
	return 0;
}

int img_sink_fd_set_cancel(struct img_sink *s, int cancel_fd)
{
	struct img_sink_fd *f = (struct img_sink_fd *)s;

	if (!s || s->ops != &sink_fd_ops)
		return -EINVAL;
	f->cancel_fd = cancel_fd;
	f->nowait = cancel_fd >= 0 && !sink_is_file(f);
	return 0;
}

void img_sink_free(struct img_sink *s)
{
	if (s && s->ops->free)
		s->ops->free(s);
}
