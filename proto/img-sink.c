/* SPDX-License-Identifier: MIT */
/* The file-descriptor sink: files, pipes and sockets. The fd stays the caller's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
};

static void kick_writeback(struct img_sink_fd *f, size_t n)
{
	struct stat st;

	if (f->is_file < 0)
		f->is_file = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	f->unkicked += n;
	if (!f->is_file || f->unkicked < IMG_SINK_KICK_BYTES)
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
		ssize_t n = writev(f->fd, cur, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
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
	*ret = &f->base;
	return 0;
}

void img_sink_free(struct img_sink *s)
{
	if (s && s->ops->free)
		s->ops->free(s);
}
