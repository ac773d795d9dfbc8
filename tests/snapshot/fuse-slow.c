/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse-slow.h"

#define ROOT_ID	  1
#define FILE_ID	  2
#define MAX_WRITE (128u << 10)
#define BUF_SIZE  (MAX_WRITE + 4096)

int fslow_private_ns(void)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	return 0;
}

static void reply(struct fslow *f, uint64_t unique, int error, const void *data, size_t len)
{
	struct fuse_out_header h = {.len = sizeof(h) + len, .error = error, .unique = unique};
	struct iovec v[2] = {{&h, sizeof(h)}, {(void *)data, len}};
	ssize_t k = writev(f->devfd, v, len ? 2 : 1);

	(void)k; /* a reader that gave up (killed) makes the kernel refuse the answer: fine */
}

static void attr_of(uint64_t id, struct fuse_attr *a)
{
	*a = (struct fuse_attr){.ino = id, .nlink = 1, .blksize = 4096};
	if (id == ROOT_ID) {
		a->mode = S_IFDIR | 0755;
	} else {
		a->mode = S_IFREG | 0644;
		a->size = FSLOW_SIZE;
		a->blocks = FSLOW_SIZE / 512;
	}
}

static void answer_read(struct fslow *f, uint64_t unique, uint32_t size, uint64_t fill)
{
	uint64_t *data = malloc(size + 8);

	for (uint32_t i = 0; data && i < size / 8 + 1; i++)
		data[i] = fill;
	reply(f, unique, data ? 0 : -ENOMEM, data, data ? size : 0);
	free(data);
}

static void on_read(struct fslow *f, const struct fuse_in_header *h, const struct fuse_read_in *r)
{
	uint32_t size = r->offset >= FSLOW_SIZE ? 0 : r->size;
	uint64_t fill;

	pthread_mutex_lock(&f->lock);
	if (f->hold && f->npending < FSLOW_PENDING) {
		f->pending[f->npending].unique = h->unique;
		f->pending[f->npending++].size = size;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	fill = f->fill;
	pthread_mutex_unlock(&f->lock);
	answer_read(f, h->unique, size, fill);
}

static void on_init(struct fslow *f, const struct fuse_in_header *h, const struct fuse_init_in *in)
{
	struct fuse_init_out o = {.major = FUSE_KERNEL_VERSION,
				  .minor = in->minor < 31 ? in->minor : 31,
				  .max_readahead = in->max_readahead,
				  /* Asynchronous O_DIRECT: an AIO or io_uring read is a request in
				   * flight, with no thread of the reader waiting for it. */
				  .flags = FUSE_ASYNC_READ | FUSE_ASYNC_DIO | FUSE_BIG_WRITES,
				  .max_background = 16,
				  .congestion_threshold = 12,
				  .max_write = MAX_WRITE};

	reply(f, h->unique, 0, &o, sizeof(o));
}

static void on_lookup(struct fslow *f, const struct fuse_in_header *h, const char *name)
{
	struct fuse_entry_out e = {.nodeid = FILE_ID};

	if (h->nodeid != ROOT_ID || strcmp(name, "f"))
		return reply(f, h->unique, -ENOENT, NULL, 0);
	attr_of(FILE_ID, &e.attr);
	reply(f, h->unique, 0, &e, sizeof(e));
}

static void on_getattr(struct fslow *f, const struct fuse_in_header *h)
{
	struct fuse_attr_out a = {0};

	attr_of(h->nodeid, &a.attr);
	reply(f, h->unique, 0, &a, sizeof(a));
}

static void dispatch(struct fslow *f, const struct fuse_in_header *h, const void *arg)
{
	struct fuse_open_out o = {.fh = 1, .open_flags = FOPEN_DIRECT_IO};
	struct fuse_statfs_out st = {.st = {.bsize = 4096, .namelen = 255}};

	switch (h->opcode) {
	case FUSE_INIT:
		return on_init(f, h, arg);
	case FUSE_LOOKUP:
		return on_lookup(f, h, arg);
	case FUSE_GETATTR:
		return on_getattr(f, h);
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		return reply(f, h->unique, 0, &o, sizeof(o));
	case FUSE_READ:
		return on_read(f, h, arg);
	case FUSE_STATFS:
		return reply(f, h->unique, 0, &st, sizeof(st));
	case FUSE_READDIR: /* empty */
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_DESTROY:
		return reply(f, h->unique, 0, NULL, 0);
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT: /* the reader waits on, killable only: answered when released */
		return;
	default:
		return reply(f, h->unique, -ENOSYS, NULL, 0);
	}
}

/* Until fslow_unmount() writes its stop pipe, or the connection ends (ENODEV). */
static void *serve(void *arg)
{
	struct fslow *f = arg;
	struct pollfd p[2] = {{.fd = f->devfd, .events = POLLIN},
			      {.fd = f->stop[0], .events = POLLIN}};
	char *buf = malloc(BUF_SIZE);
	ssize_t n = 0;

	while (buf && poll(p, 2, -1) >= 0 && !p[1].revents) {
		const struct fuse_in_header *h = (const void *)buf;

		if (!p[0].revents)
			continue;
		n = read(f->devfd, buf, BUF_SIZE);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			break;
		if (n >= (ssize_t)sizeof(*h))
			dispatch(f, h, buf + sizeof(*h));
	}
	free(buf);
	return NULL;
}

int fslow_mount(struct fslow *f, bool hold, uint64_t fill)
{
	char opts[128];

	*f = (struct fslow){.devfd = -1, .stop = {-1, -1}, .hold = hold, .fill = fill};
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	snprintf(f->dir, sizeof(f->dir), "/tmp/fslow.XXXXXX");
	f->devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (f->devfd < 0 || pipe2(f->stop, O_CLOEXEC) < 0 || !mkdtemp(f->dir))
		return -errno;
	snprintf(f->path, sizeof(f->path), "%s/f", f->dir);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other",
		 f->devfd);
	if (mount("fslow", f->dir, "fuse", MS_NOSUID | MS_NODEV, opts) < 0)
		return -errno;
	f->mounted = true;
	if (pthread_create(&f->th, NULL, serve, f))
		return -EAGAIN;
	f->started = true;
	return 0;
}

void fslow_wait_pending(struct fslow *f, int n)
{
	pthread_mutex_lock(&f->lock);
	while (f->npending < n)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

void fslow_release(struct fslow *f, uint64_t fill, bool hold)
{
	int n;

	pthread_mutex_lock(&f->lock);
	f->fill = fill;
	f->hold = hold;
	n = f->npending;
	f->npending = 0;
	for (int i = 0; i < n; i++)
		answer_read(f, f->pending[i].unique, f->pending[i].size, fill);
	pthread_mutex_unlock(&f->lock);
}

void fslow_unmount(struct fslow *f)
{
	if (f->mounted)
		fslow_release(f, f->fill, false);
	if (f->mounted && umount2(f->dir, MNT_DETACH) == 0)
		f->mounted = false;
	if (f->started && write(f->stop[1], "", 1) == 1)
		pthread_join(f->th, NULL);
	if (f->devfd >= 0)
		close(f->devfd); /* the last reference: aborts the connection, fails what waits */
	for (int i = 0; i < 2; i++)
		if (f->stop[i] >= 0)
			close(f->stop[i]);
	if (f->dir[0] && strstr(f->dir, "XXXXXX") == NULL)
		rmdir(f->dir);
	f->devfd = -1;
	f->started = false;
}
